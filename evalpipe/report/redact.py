"""PII redaction of the texts a report shows (ARCHITECTURE.md, "Safe output").

`redact_texts` uses `evalpipe.ingest.redact_pii` when the ingest package provides it, so reports,
judge prompts and quarantine files redact alike; otherwise a small vectorised fallback here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PATTERNS", "redact_texts"]

log = logging.getLogger(__name__)

PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    # API-key shapes first: they may contain digits a card or phone pattern would eat.
    (
        r"\b(?:sk|pk|rk)-(?:proj-|live-|test-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{16,}",
        "[API_KEY]",
    ),
    (r"\bAKIA[0-9A-Z]{16}\b", "[API_KEY]"),
    (r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", "[API_KEY]"),
    (r"\bxox[abprs]-[A-Za-z0-9-]{10,}", "[API_KEY]"),
    (r"\bAIza[0-9A-Za-z_-]{35}\b", "[API_KEY]"),
    (r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{20,}", "Bearer [API_KEY]"),
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    (r"\b(?:\d[ -]?){12,18}\d\b", "[CARD]"),
    (r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}\b", "[PHONE]"),
    (r"(?:\(\d{3}\)\s?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b", "[PHONE]"),
)
"""(RE2 pattern, replacement) applied in order."""

Redactor = Callable[[pa.Array], pa.Array]


def _fallback(texts: pa.Array) -> pa.Array:
    out = texts
    for pattern, replacement in PATTERNS:
        out = pc.replace_substring_regex(out, pattern=pattern, replacement=replacement)
    return out


def _redactor() -> Redactor:
    try:
        from evalpipe.ingest import redact_pii  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return _fallback

    def run(texts: pa.Array) -> pa.Array:
        try:
            out = redact_pii(texts)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            log.warning("evalpipe.ingest.redact_pii failed (%s); using the report's own", exc)
            return _fallback(texts)
        return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out

    return run


def redact_texts(texts: list[str | None]) -> list[str | None]:
    """Emails, phone and card numbers and API-key shapes replaced by `[EMAIL]` and the like."""
    if not texts:
        return []
    out = _redactor()(pa.array(texts, pa.string()))
    return [None if t is None else str(t) for t in out.to_pylist()]
