"""The one PII rule: emails, phone and card numbers, API-key shapes (ARCHITECTURE.md, "Safe
output"). Ingest redacts quarantine lines with it, reports and judge prompts redact their texts
with it, and the `no_pii` check fails an output that it would change.

Each pattern runs over a whole string column (RE2 in pyarrow compute); only the few strings that
hold a card-shaped number are looked at in Python, for the Luhn check.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["PII_PATTERNS", "PiiPattern", "contains_pii", "redact_pii"]


class PiiPattern(NamedTuple):
    """One kind of PII and what replaces it."""

    pattern: str
    """RE2 pattern (the same in Python's `re` with re.ASCII)."""
    replacement: str
    """What a match becomes, e.g. ``[EMAIL]``."""
    luhn: bool = False
    """A match is replaced only when its digits pass the Luhn check (card numbers)."""


PII_PATTERNS: Final[tuple[PiiPattern, ...]] = (
    # API-key shapes first, so their digits are not taken for a card or phone number.
    PiiPattern(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
        r"|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|hf_[A-Za-z0-9]{30,}"
        r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})",
        "[API_KEY]",
    ),
    PiiPattern(r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]{20,}=*", "Bearer [API_KEY]"),
    PiiPattern(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", "[EMAIL]"),
    # 13-19 digits, optionally grouped by spaces or dashes; issuers start with 2-6 (epoch
    # timestamps in ms and µs start with 1, so they are left alone).
    PiiPattern(r"\b[2-6](?:[ -]?[0-9]){12,18}\b", "[CARD]", luhn=True),
    PiiPattern(
        r"\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4}(?:[ .-]?[0-9]{2,4}){1,3}\b",
        "[PHONE]",
    ),
    PiiPattern(r"(?:\([0-9]{3}\)\s?|\b[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}\b", "[PHONE]"),
)
"""The patterns in the order applied: API keys, emails, card and phone numbers."""


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    doubled = sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    return (sum(digits[-1::-2]) + doubled) % 10 == 0


def _replace_luhn(texts: pa.Array, rule: PiiPattern) -> pa.Array:
    """`rule`'s Luhn-valid matches replaced, in the strings that hold a match at all."""
    mask = pc.fill_null(pc.match_substring_regex(texts, rule.pattern), False)
    if not pc.any(mask).as_py():
        return texts
    regex = re.compile(rule.pattern, re.ASCII)

    def replace(m: re.Match[str]) -> str:
        return rule.replacement if _luhn(m.group(0)) else m.group(0)

    changed = [regex.sub(replace, t) for t in texts.filter(mask).to_pylist()]
    return pc.replace_with_mask(texts, mask, pa.array(changed, texts.type))


def _strings(texts: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(texts, pa.Array):
        texts = pa.chunked_array([texts], type=texts.type)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.string())
    return texts


def redact_pii(texts: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Replace emails, phone and card numbers and API-key shapes by ``[EMAIL]``, ``[PHONE]`` …

    Nulls stay null; a non-string column is read as strings. Runs over the whole column at once.
    """
    out = _strings(texts)
    for rule in PII_PATTERNS:
        if rule.luhn:
            out = pa.chunked_array([_replace_luhn(c, rule) for c in out.chunks], type=out.type)
        else:
            out = pc.replace_substring_regex(
                out, pattern=rule.pattern, replacement=rule.replacement
            )
    return out


def contains_pii(texts: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """True where `redact_pii` would change the text (null stays null)."""
    strings = _strings(texts)
    return pc.not_equal(redact_pii(strings), strings)
