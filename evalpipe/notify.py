"""Sending a document to a URL that must never fail a run (webhooks, a Pushgateway)."""

from __future__ import annotations

import urllib.error
import urllib.request

__all__ = ["deliver"]


def deliver(url: str, body: bytes, *, method: str, content_type: str, timeout_s: float) -> str:
    """Send `body` once; returns ``sent`` on a 2xx, else why not (``HTTP 500``, ``no answer``,
    the connection error). Never raises: monitoring and alerts must not fail a run."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return "sent" if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return "no answer" if isinstance(reason, TimeoutError) else str(reason)
