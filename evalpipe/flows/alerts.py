"""Slack-compatible webhook alerts of the nightly flow: built from findings, POSTed with retries.

A failed POST (an error status, no answer in time, no connection) is retried `alerts.retries`
times with a doubling pause, then logged: it never fails the night.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import orjson

from evalpipe.notify import deliver

__all__ = ["BACKOFF_S", "alert_payload", "post_alert"]

log = logging.getLogger(__name__)

BACKOFF_S: Final = 0.5
"""Pause before the first retry; each later retry waits twice as long."""


def alert_payload(
    spec_name: str,
    when: str,
    new: list[dict[str, Any]],
    cleared: list[dict[str, Any]],
    *,
    report: str | None = None,
) -> dict[str, Any]:
    """The webhook body: `text` (every client shows it) and Slack `blocks`.

    Args:
        when: what the findings are of (`night 2026-11-03`, `ramp step 2`).
    """
    lines = [f"• {f['text']}" for f in new] + [f"• cleared: {f['text']}" for f in cleared]
    head = f"evalpipe {spec_name}, {when}: " + ", ".join(
        part
        for part in (
            f"{len(new)} new finding{'s' if len(new) != 1 else ''}" if new else "",
            f"{len(cleared)} cleared" if cleared else "",
        )
        if part
    )
    text = head + "\n" + "\n".join(lines)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
    ]
    if report:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Report: {report}"}]}
        )
    return {"text": text, "blocks": blocks}


def post_alert(url: str, payload: dict[str, Any], *, retries: int, timeout_s: float) -> str:
    """POST `payload` as JSON; returns `sent` or `failed: <why>` (never raises)."""
    body = orjson.dumps(payload)
    why = "not tried"
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        why = deliver(
            url, body, method="POST", content_type="application/json", timeout_s=timeout_s
        )
        if why == "sent":
            return why
        log.warning("alert webhook: %s (attempt %d of %d)", why, attempt + 1, retries + 1)
    log.error("alert webhook failed after %d attempts (%s); the night goes on", retries + 1, why)
    return f"failed: {why}"
