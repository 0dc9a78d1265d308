"""PII redaction over whole string columns (RE2 regular expressions in pyarrow compute)."""

from __future__ import annotations

from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PII_PATTERNS", "redact_pii"]

PII_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    # API-key shapes first, so their digits are not taken for a card or phone number.
    (
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}"
        r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
        "[API_KEY]",
    ),
    (r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*", "Bearer [API_KEY]"),
    (r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    # 13-19 digits, optionally grouped by spaces or dashes; issuers start with 2-6 (epoch
    # timestamps in ms and µs start with 1, so they are left alone).
    (r"\b[2-6](?:[ -]?[0-9]){12,18}\b", "[CARD]"),
    (
        r"\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){1,3}\b",
        "[PHONE]",
    ),
    (r"(?:\([0-9]{3}\)\s?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b", "[PHONE]"),
)
"""(RE2 pattern, replacement) in the order applied: API keys, emails, card and phone numbers."""


def redact_pii(texts: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Replace emails, phone and card numbers and API-key shapes by ``[EMAIL]``, ``[PHONE]`` …

    Nulls stay null. Runs over the whole column at once; no Python loop per row.
    """
    if isinstance(texts, pa.Array):
        texts = pa.chunked_array([texts], type=texts.type)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.string())
    out: pa.ChunkedArray = texts
    for pattern, replacement in PII_PATTERNS:
        out = pc.replace_substring_regex(out, pattern=pattern, replacement=replacement)
    return out
