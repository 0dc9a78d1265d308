"""Signs that an evaluation cannot be trusted: collapsed outputs, judge injection (INVALID rule 4).

Both work on whole text columns: pyarrow compute for normalising and matching, rapidfuzz for
the similarity of distinct outputs to the most common ones.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

__all__ = [
    "INJECTION_PATTERN",
    "INJECTION_VERSION",
    "collapse_share",
    "injection_share",
    "scorer_failures",
]

INJECTION_VERSION: Final = "injection@1"
"""Version of `INJECTION_PATTERN`; bump it when the list changes."""

_INJECTION: Final = (
    r"ignore\s+(all\s+|the\s+)?(previous|prior|above|earlier|preceding)?\s*(instructions|prompts?)",
    r"ignore\s+(all|previous|the\s+above)\s+instructions",
    r"<\|(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>",
    r"\[/?INST\]|<</?SYS>>|###\s*(system|instruction)\s*:",
    r"\n\n(human|assistant)\s*:",
    r"\byou\s+are\s+now\s+(a|an|the|my)\s+(\w+\s+)?"
    r"(assistant|ai|model|judge|grader|evaluator|rater|system|chatbot|dan)\b",
    r"\byou\s+are\s+now\s+(dan|jailbroken|unrestricted|free\s+from|in\s+\w+\s+mode)",
    r"\b(dear|attention|hey|hello|note\s+to(\s+the)?|to\s+the)\s+(ai\s+)?(evaluator|grader|judge|rater)s?\b",
    r"\b(evaluator|grader|judge|rater)s?\s*:",
    r"\b(give|assign|award)\s+(this|my|the)\s+(response|answer|output)\s+(a\s+)?"
    r"(perfect|full|maximum|max|top|high(est)?)\s+(score|rating|mark|grade)",
    r"\b(rate|score|grade)\s+(this|my)\s+(response|answer|output)\s+(as\s+)?(a\s+)?"
    r"(10|ten|5|five|100|perfect|highest|the\s+best)\b",
    r"\b(prefer|choose|pick|select)\s+(response|answer|output|assistant)\s+[ab12]\b",
    r"\b(response|answer|output)\s+[ab]\s+is\s+(clearly\s+|much\s+)?(better|superior|preferred)",
    r"\"winner\"\s*:\s*\"(a|b)\"",
)
INJECTION_PATTERN: Final = "|".join(f"(?:{p})" for p in _INJECTION)
"""Case-insensitive RE2 pattern of text aimed at the judge rather than the user."""


_SCORER_FAILED: Final = r"^check .+ \(scorer .+\): "
"""How `errors.ScorerError` messages start (the `error` of a failed custom scorer's rows)."""


def scorer_failures(scores: pa.Table) -> list[str]:
    """One reason per custom scorer that failed (raised, or answered the wrong shape): a check
    that could not be computed leaves the evaluation unable to say what it claims."""
    rules = scores.filter(pc.equal(scores["kind"], "rule"))
    failed = rules.filter(
        pc.fill_null(pc.match_substring_regex(rules["error"], _SCORER_FAILED), False)
    )
    return [f"a check could not be computed: {e}" for e in sorted(set(failed["error"].to_pylist()))]


def injection_share(texts: pa.Array | pa.ChunkedArray) -> float:
    """Share of non-null outputs matching `INJECTION_PATTERN` (0 when there are none)."""
    valid = pc.drop_null(texts)
    if len(valid) == 0:
        return 0.0
    hits = pc.match_substring_regex(valid, INJECTION_PATTERN, ignore_case=True)
    return float(pc.sum(hits).as_py() or 0) / len(valid)


def _normalise(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    lowered = pc.utf8_lower(texts)
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(lowered, r"\s+", " "))


def collapse_share(
    texts: pa.Array | pa.ChunkedArray, *, top: int = 5, similarity: float = 0.95
) -> float:
    """Share of outputs equal or nearly equal (rapidfuzz ratio ≥ similarity) to the `top` most common.

    Outputs are lower-cased with whitespace collapsed first. Pass one output per distinct
    input, so that a repeated question answered the same way is not counted as collapse.
    """
    valid = pc.drop_null(texts)
    total = len(valid)
    if total == 0:
        return 0.0
    counts = pc.value_counts(_normalise(valid))
    values = counts.field("values")
    freq = np.asarray(counts.field("counts"), dtype=np.int64)
    order = pc.sort_indices(
        pa.table({"c": freq, "v": values}), sort_keys=[("c", "descending"), ("v", "ascending")]
    )
    head = values.take(order[:top]).to_pylist()
    # Only strings of compatible length can reach the ratio: 2·min / (a + b) ≥ similarity.
    lengths = np.asarray(pc.utf8_length(values), dtype=np.float64)
    head_len = np.asarray(pc.utf8_length(pa.array(head, pa.string())), dtype=np.float64)
    lo = head_len.min() * similarity / (2 - similarity)
    hi = head_len.max() * (2 - similarity) / similarity
    maybe = np.flatnonzero((lengths >= lo) & (lengths <= hi))
    if maybe.size == 0:
        return 0.0
    candidates = values.take(pa.array(maybe)).to_pylist()
    scores = process.cdist(
        candidates, head, scorer=fuzz.ratio, score_cutoff=similarity * 100, dtype=np.float32
    )
    close = scores.max(axis=1) >= similarity * 100
    return float(freq[maybe[close]].sum()) / total
