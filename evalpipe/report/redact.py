"""PII redaction of the texts a report shows, by the one rule in `evalpipe.pii`."""

from __future__ import annotations

import pyarrow as pa

from evalpipe.pii import redact_pii

__all__ = ["redact_texts"]


def redact_texts(texts: list[str | None]) -> list[str | None]:
    """Emails, phone and card numbers and API-key shapes replaced by `[EMAIL]` and the like."""
    if not texts:
        return []
    redacted: list[str | None] = redact_pii(pa.array(texts, pa.string())).to_pylist()
    return redacted
