"""Tool calls against reference calls: F1 over calls and exact match (BFCL's AST rules).

A reference is a JSON list of expected calls in either shape:

- evalpipe's own, as `output_tool_calls` holds them: ``{"name": ..., "arguments": {...}}``
  (every argument required, with that value);
- BFCL's possible answers: ``{"fn": {"param": [acceptable values ...]}}``; ``""`` among the
  values means the parameter may be left out.

A call matches an expected call when the names are equal, every expected parameter is given
with an acceptable value (or may be left out), and no other parameter is given. Values compare
as BFCL's checker does: numbers by value (an int where a float is expected is fine), strings
lower-cased without spaces and ``,./-_*^`` punctuation, lists element by element, dicts key by
key. Calls match one-to-one in any order (a maximum bipartite matching).

Matching nested JSON is in Python, once per distinct (calls, reference) pair of the rows that
have a reference.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalpipe.tables import take_rows

__all__ = [
    "call_matches",
    "expected_calls",
    "match_count",
    "tool_call_scores",
    "tool_calls_valid",
]

_PUNCT: Final = re.compile(r"[\s,./\-_*^]")

Expected = tuple[str, dict[str, list[Any]]]


def expected_calls(reference: Any) -> list[Expected] | None:
    """The reference's calls as (name, parameter → acceptable values); None when unreadable."""
    if not isinstance(reference, list):
        return None
    out: list[Expected] = []
    for item in reference:
        if not isinstance(item, dict):
            return None
        if "name" in item and isinstance(item.get("name"), str) and len(item) <= 3:
            args = item.get("arguments") or {}
            if isinstance(args, str):
                args = _loads(args)
            if not isinstance(args, dict):
                return None
            out.append((item["name"], {k: [v] for k, v in args.items()}))
        elif len(item) == 1:
            name, params = next(iter(item.items()))
            if not isinstance(params, dict):
                return None
            out.append(
                (str(name), {k: v if isinstance(v, list) else [v] for k, v in params.items()})
            )
        else:
            return None
    return out


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _norm_str(s: str) -> str:
    return _PUNCT.sub("", s.lower())


def _value_ok(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(wanted, bool) and value == wanted
    if isinstance(wanted, int | float):
        return isinstance(value, int | float) and float(value) == float(wanted)
    if isinstance(wanted, str):
        return isinstance(value, str) and _norm_str(value) == _norm_str(wanted)
    if isinstance(wanted, list):
        return (
            isinstance(value, list)
            and len(value) == len(wanted)
            and all(_value_ok(v, w) for v, w in zip(value, wanted, strict=True))
        )
    if isinstance(wanted, dict):
        if not isinstance(value, dict) or set(value) - set(wanted):
            return False
        for key, alts in wanted.items():
            options = alts if isinstance(alts, list) else [alts]
            if key not in value:
                if "" not in options:
                    return False
            elif not any(_value_ok(value[key], a) for a in options if a != ""):
                return False
        return True
    return bool(value == wanted)


def call_matches(call: Any, expected: Expected) -> bool:
    """Whether one output call `{"name", "arguments"}` satisfies one expected call."""
    if not isinstance(call, dict) or call.get("name") != expected[0]:
        return False
    args = call.get("arguments")
    if isinstance(args, str):
        args = _loads(args) if args.strip() else {}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return False
    params = expected[1]
    if set(args) - set(params):
        return False
    for name, options in params.items():
        if name not in args:
            if "" not in options:
                return False
        elif not any(_value_ok(args[name], o) for o in options if o != ""):
            return False
    return True


def match_count(calls: list[Any], expected: list[Expected]) -> int:
    """Largest number of calls matched one-to-one with expected calls (Kuhn's algorithm)."""
    edges = [[j for j, e in enumerate(expected) if call_matches(c, e)] for c in calls]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    return sum(augment(i, set()) for i in range(len(calls)))


def _chunk(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _score(made: Any, expected: list[Expected]) -> tuple[float, bool]:
    """(F1, exact) of one answer's calls (parsed) against one readable reference."""
    if not isinstance(made, list):
        return 0.0, False
    if not made and not expected:
        return 1.0, True
    m = match_count(made, expected)
    return 2 * m / (len(made) + len(expected)), m == len(made) == len(expected)


def _pairs(
    left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array, rows: NDArray[np.int64]
) -> tuple[list[Any], list[Any], NDArray[np.int64]]:
    """The distinct (left, right) pairs among `rows`, and which pair each row holds."""
    codes = []
    values = []
    for column in (left, right):
        picked = take_rows(column, rows)
        encoded = pc.dictionary_encode(picked, null_encoding="encode")
        codes.append(np.asarray(encoded.indices, dtype=np.int64))
        values.append(encoded.dictionary.to_pylist())
    pair = codes[0] * (len(values[1]) + 1) + codes[1]
    distinct, which = np.unique(pair, return_inverse=True)
    first, second = np.divmod(distinct, len(values[1]) + 1)
    return (
        [values[0][i] for i in first.tolist()],
        [values[1][i] for i in second.tolist()],
        which.reshape(-1),
    )


def tool_call_scores(
    calls: pa.ChunkedArray | pa.Array,
    references: pa.ChunkedArray | pa.Array,
    texts: pa.ChunkedArray | pa.Array,
) -> tuple[pa.Array, pa.Array]:
    """(F1 over calls, exact match) per row; null where there is no answer or no readable
    reference. No call made and none expected is F1 1 and an exact match.

    Matching runs in Python once per distinct (calls, reference) pair of the rows that have
    both an answer and a reference.
    """
    present = pc.and_(pc.or_(pc.is_valid(calls), pc.is_valid(texts)), pc.is_valid(references))
    rows = np.flatnonzero(np.asarray(present, dtype=bool) if len(calls) else np.zeros(0, bool))
    f1 = np.full(len(calls), np.nan)
    exact = np.full(len(calls), 2, dtype=np.int8)  # 0 no, 1 yes, 2 not scorable
    if rows.size:  # first drop the rows whose reference is no list of calls (e.g. a text)
        refs = pc.dictionary_encode(take_rows(references, rows))
        expected = {r: expected_calls(_loads(r)) for r in refs.dictionary.to_pylist()}
        readable = np.array([e is not None for e in expected.values()], bool)
        rows = rows[readable[np.asarray(refs.indices, dtype=np.int64)]]
    if rows.size:
        made, wanted, which = _pairs(calls, references, rows)
        parsed = {c: _loads(c) if c else [] for c in set(made)}  # each distinct answer once
        scored = [_score(parsed[c], expected[r] or []) for c, r in zip(made, wanted, strict=True)]
        f1_pairs = np.array([f for f, _ in scored], dtype=np.float64)
        exact_pairs = np.array([int(e) for _, e in scored], dtype=np.int8)
        f1[rows] = f1_pairs[which]
        exact[rows] = exact_pairs[which]
    return (
        pa.array(f1, pa.float64(), from_pandas=True),
        pa.array(exact == 1, mask=exact == 2),
    )


def tool_calls_valid(
    calls: pa.ChunkedArray | pa.Array,
    requests: pa.ChunkedArray | pa.Array,
    texts: pa.ChunkedArray | pa.Array,
    valid: Callable[[str, str | None], bool],
) -> pa.Array:
    """Whether each answer's calls are valid against its request (`valid(calls, request)`,
    once per distinct pair); True when no call was made, null when there is no answer."""
    n = len(calls)
    made = pc.and_(pc.is_valid(calls), pc.not_equal(calls, ""))
    answered = np.asarray(pc.or_(pc.is_valid(calls), pc.is_valid(texts)), dtype=bool)
    rows = np.flatnonzero(np.asarray(pc.fill_null(made, False), dtype=bool) if n else [])
    out = np.ones(n, dtype=bool)
    if len(rows):
        call_values, request_values, which = _pairs(calls, requests, rows)
        ok = np.array(
            [valid(c, r) for c, r in zip(call_values, request_values, strict=True)], dtype=bool
        )
        out[rows] = ok[which]
    return pa.array(out, mask=~answered)
