"""Rule checks over whole columns (pyarrow compute, DuckDB); one function per check `type`.

Each check function takes the scoring frame (responses joined to their records, see
`scoring_frame`) and returns a boolean array: True passed, False failed, null not scorable.

`score_rules` runs the checks on a few threads (the kernels release the GIL) and, while it
runs, shares what several checks derive from the same frame: the words and n-gram counts of
ROUGE and BLEU, the tool-call scores, the text lengths, the error column, each `where` scope.
What must run in Python per value (strict JSON, JSON schema, tool-call matching) runs once per
distinct value; so do the text scans (regex, contains & co., no_pii) when a sample of the
outputs shows they repeat, and the reference checks run once per distinct (output, reference).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Final, NamedTuple, TypeVar, cast

import duckdb
import jsonschema
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalpipe.errors import ScorerError
from evalpipe.pii import PII_PATTERNS, contains_pii
from evalpipe.score.textstats import (
    Counts,
    Pairs,
    Words,
    bleu,
    counts_of,
    pairs_of,
    rouge_n,
    words_of,
)
from evalpipe.score.toolcalls import tool_call_scores, tool_calls_valid
from evalpipe.spec import (
    REFERENCE_CHECKS,
    BleuMin,
    Check,
    Contains,
    ContainsAll,
    ContainsAny,
    CostUsdMax,
    Equals,
    FinishReasonNot,
    JsonPath,
    JsonSchemaCheck,
    JsonValid,
    LatencyMsMax,
    LevenshteinMax,
    MaxChars,
    MaxOutputTokens,
    MinChars,
    NoPii,
    NotContains,
    NotRefusal,
    PythonCheck,
    Regex,
    RougeNMin,
    Spec,
    StartsWith,
    ToolCallExact,
    ToolCallF1,
    ToolCallValid,
)
from evalpipe.tables import SCORES, column_values, conform, take_rows

__all__ = ["CHECKS", "REFUSAL_PATTERN", "Measured", "score_rules", "where_mask"]

log = logging.getLogger(__name__)

SCORER_VERSION: Final = "rules@3"  # 3: promptfoo's deterministic set; 2: no_pii uses evalpipe.pii

REFUSAL_PATTERN: Final = (
    r"(?i)^\s*(i'?m sorry,? but|i am sorry,? but|sorry,? (but )?i (can(no|')t|am unable)|"
    r"i (can(no|')t|am unable to|won'?t) (help|assist|comply|provide|do that)|"
    r"as an ai( language model)?,? i)"
)
"""Openings of a refusal (versioned with SCORER_VERSION)."""


def where_mask(frame: pa.Table, where: dict[str, str | list[str]]) -> pa.ChunkedArray:
    """Rows whose columns match every `where` condition."""
    mask = pa.chunked_array([pa.array(np.ones(frame.num_rows, dtype=bool))])
    for column, wanted in where.items():
        values = column_values(frame, column)
        allowed = pa.array([wanted] if isinstance(wanted, str) else list(wanted), pa.string())
        mask = pc.and_(mask, pc.fill_null(pc.is_in(values, value_set=allowed), False))
    return mask


class Measured(NamedTuple):
    """A check's verdict per row and the figure it compared (shown in `detail`)."""

    passed: pa.Array | pa.ChunkedArray
    figure: pa.Array | pa.ChunkedArray
    name: str
    """What the figure is, e.g. `distance`, `rouge1_f1`, `f1`."""


CheckFn = Callable[[pa.Table, Any, "Spec | None"], "pa.Array | pa.ChunkedArray | Measured"]

_NULL_BOOL = pa.scalar(None, pa.bool_())

T = TypeVar("T")


class _Shared:
    """What checks derive from a frame, made once per (frame, name) however many threads ask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._values: dict[tuple[int, str], Any] = {}

    def get(self, frame: pa.Table, name: str, make: Callable[[], T]) -> T:
        key = (id(frame), name)  # the frames outlive the score_rules call that holds this
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                self._values[key] = make()
            return cast(T, self._values[key])


_SHARED: contextvars.ContextVar[_Shared | None] = contextvars.ContextVar("_SHARED", default=None)


def _shared(frame: pa.Table, name: str, make: Callable[[], T]) -> T:
    """`make()`, made once per frame while `score_rules` runs (every call outside it)."""
    shared = _SHARED.get()
    return make() if shared is None else shared.get(frame, name, make)


def _chunk(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def _per_distinct(
    values: pa.Array | pa.ChunkedArray | pa.DictionaryArray,
    fn: Callable[[Any], Any],
    type_: pa.DataType,
) -> pa.Array:
    """`fn` of each value, called once per distinct value; null stays null."""
    if not isinstance(values, pa.DictionaryArray):
        values = pc.dictionary_encode(_chunk(values))
    results = pa.array([fn(v) for v in values.dictionary.to_pylist()], type_)
    return results.take(values.indices)


def _distinct_outputs(frame: pa.Table) -> pa.DictionaryArray:
    """The frame's outputs dictionary-encoded: each distinct text once (nulls stay null)."""
    return _shared(frame, "distinct_outputs", lambda: _encode(frame["output_text"]))


def _encode(texts: pa.ChunkedArray) -> pa.DictionaryArray:
    """`texts` as one dictionary array. Each chunk is encoded alone and their dictionaries
    put end to end (`unify_dictionaries` hashes every text again: seconds at a million
    distinct texts); a text in several chunks is merged by encoding the dictionaries again
    when they are small (repeating texts), else it stays in the dictionary more than once."""
    chunks = [pc.dictionary_encode(c) for c in texts.chunks]
    if not chunks:
        return pc.dictionary_encode(pa.array([], texts.type))
    if len(chunks) == 1:
        return chunks[0]
    starts = np.cumsum([0] + [len(c.dictionary) for c in chunks])
    indices = pa.concat_arrays(
        [pc.add(c.indices.cast(pa.int64()), int(s)) for c, s in zip(chunks, starts, strict=False)]
    )
    values = pa.concat_arrays([c.dictionary for c in chunks])
    if 2 * len(values) <= len(texts):
        again = pc.dictionary_encode(values)
        return pa.DictionaryArray.from_arrays(again.indices.take(indices), again.dictionary)
    return pa.DictionaryArray.from_arrays(indices, values)


_SAMPLE: Final = 1 << 16


def _repeated_outputs(frame: pa.Table) -> pa.DictionaryArray | None:
    """The distinct outputs when they repeat enough that checking each once pays for finding
    them (a strided sample of the rows holds at most half as many distinct texts), else None:
    text checks then run over the column as it is."""

    def decide() -> pa.DictionaryArray | None:
        texts = frame["output_text"]
        sample = take_rows(texts, np.arange(0, len(texts), max(len(texts) // _SAMPLE, 1)))
        distinct = pc.count_distinct(sample, mode="all").as_py()
        return _distinct_outputs(frame) if 2 * distinct <= len(sample) else None

    return _shared(frame, "repeated_outputs", decide)


def _on_outputs(
    frame: pa.Table, fn: Callable[[pa.Array | pa.ChunkedArray], pa.Array | pa.ChunkedArray]
) -> pa.Array | pa.ChunkedArray:
    """`fn` (text column → one value per text, null for null) of the outputs: of each distinct
    output once when outputs repeat (`_repeated_outputs`)."""
    distinct = _repeated_outputs(frame)
    if distinct is None:
        return fn(frame["output_text"])
    return _chunk(fn(distinct.dictionary)).take(distinct.indices)


def _strict_json(text: str | None) -> bool | None:
    if text is None:
        return None
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return False  # a structured answer is an object or an array, not a bare scalar
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False
    return True


def _json_valid(frame: pa.Table, check: JsonValid, spec: Spec | None = None) -> pa.Array:
    # DuckDB's json_valid accepts trailing commas ('{"a":1,}'), which real parsers reject, so this
    # check parses strictly with orjson (about 1 µs a distinct document).
    return _per_distinct(_distinct_outputs(frame), _strict_json, pa.bool_())


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Callable[[Any], bool]:
    """A compiled validator of one schema (its canonical JSON): whether a document is valid.

    fastjsonschema compiles the schema to Python code: about 0.8 µs a document where
    jsonschema's `is_valid` takes about 16 µs (measured on the demo's triage schema). A schema
    it cannot compile (a draft feature it lacks, a bad `$ref`) falls back to jsonschema.
    """
    import fastjsonschema

    schema = orjson.loads(schema_json)
    try:
        compiled = fastjsonschema.compile(schema)
    except (fastjsonschema.JsonSchemaDefinitionException, ValueError, TypeError):
        cls = jsonschema.validators.validator_for(schema)
        return cast(Callable[[Any], bool], cls(schema).is_valid)

    def is_valid(doc: Any) -> bool:
        try:
            compiled(doc)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return is_valid


def _schema_of_requests(frame: pa.Table) -> pa.Array:
    with duckdb.connect() as con:
        con.register("f", pa.table({"r": frame["request"]}))
        out = con.sql(
            "SELECT CAST(json_extract(r, '$.response_format.schema') AS VARCHAR) AS s FROM f"
        ).to_arrow_table()
    return out["s"].combine_chunks()


def _validate_grouped(
    texts: pa.Array | pa.ChunkedArray | pa.DictionaryArray, schemas: pa.Array | str
) -> pa.Array:
    """Each text against its row's schema (or one schema for all): one compiled validator per
    distinct schema, one validation per distinct text under it."""

    def check(is_valid: Callable[[Any], bool]) -> Callable[[str | None], bool | None]:
        def one(text: str | None) -> bool | None:
            if text is None:
                return None
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                return False
            return is_valid(doc)

        return one

    if isinstance(schemas, str):
        return _per_distinct(texts, check(_validator(schemas)), pa.bool_())
    if isinstance(texts, pa.DictionaryArray):
        texts = texts.dictionary.take(texts.indices)
    texts = _chunk(texts)
    out = pa.nulls(len(schemas), pa.bool_())
    encoded = pc.dictionary_encode(schemas)
    for code, schema in enumerate(encoded.dictionary.to_pylist()):
        rows = pc.equal(encoded.indices, code)
        found = _per_distinct(texts.filter(rows), check(_validator(schema)), pa.bool_())
        out = pc.replace_with_mask(out, pc.fill_null(rows, False), found)
    return out


def _json_schema(frame: pa.Table, check: JsonSchemaCheck, spec: Spec | None = None) -> pa.Array:
    if check.schema_ == "request":
        schemas: pa.Array | str = _schema_of_requests(frame)
    else:
        assert spec is not None
        text = orjson.dumps(orjson.loads(spec.resolve_input(check.schema_).read_bytes())).decode()
        return _validate_grouped(_distinct_outputs(frame), text)
    return _validate_grouped(frame["output_text"], schemas)


def _not_refusal(frame: pa.Table, check: NotRefusal, spec: Spec | None = None) -> pa.ChunkedArray:
    refused = pc.or_kleene(
        _on_outputs(frame, lambda texts: pc.match_substring_regex(texts, REFUSAL_PATTERN)),
        pc.equal(frame["finish_reason"], "refusal"),
    )
    return pc.invert(refused)


def _is_ascii(texts: pa.Array) -> bool:
    """Whether every byte of the string array's values is ASCII (one pass, no per-row work)."""
    if len(texts) == 0:
        return True
    _, off_buf, data_buf = texts.buffers()
    width = np.int64 if pa.types.is_large_string(texts.type) else np.int32
    offsets = np.frombuffer(off_buf, width)[texts.offset : texts.offset + len(texts) + 1]
    if data_buf is None or offsets[-1] == offsets[0]:
        return True
    return bool(np.frombuffer(data_buf, np.uint8)[offsets[0] : offsets[-1]].max() < 128)


def _chars(frame: pa.Table) -> pa.ChunkedArray:
    """Characters of each output; bytes when all outputs are ASCII (the same, and free)."""

    def lengths() -> pa.ChunkedArray:
        texts = frame["output_text"]
        if all(_is_ascii(c) for c in texts.chunks) and pa.types.is_string(texts.type):
            return pc.binary_length(texts)
        return pc.utf8_length(texts)

    return _shared(frame, "chars", lengths)


def _max_chars(frame: pa.Table, check: MaxChars, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.less_equal(_chars(frame), check.value)


def _min_chars(frame: pa.Table, check: MinChars, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.greater_equal(_chars(frame), check.value)


_ANY_PII: Final = "|".join(f"(?:{p.pattern})" for p in PII_PATTERNS)


def _no_pii(frame: pa.Table, check: NoPii, spec: Spec | None = None) -> pa.Array:
    return _chunk(_on_outputs(frame, _pii_free))


def _pii_free(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    # One RE2 pass finds the few outputs any PII pattern matches; only those go through the
    # full rule (each pattern's replacement, the Luhn check of card numbers).
    maybe = _chunk(pc.fill_null(pc.match_substring_regex(texts, _ANY_PII), False))
    clean = _chunk(pc.if_else(pc.is_null(texts), _NULL_BOOL, pa.scalar(True)))
    if not pc.any(maybe).as_py():
        return clean
    found = pc.invert(contains_pii(texts.filter(maybe))).combine_chunks()
    return pc.replace_with_mask(clean, maybe, found)


def _finish_reason_not(
    frame: pa.Table, check: FinishReasonNot, spec: Spec | None = None
) -> pa.ChunkedArray:
    reasons = frame["finish_reason"]
    bad = pc.is_in(reasons, value_set=pa.array(check.values, pa.string()))
    return pc.if_else(pc.is_null(frame["output_text"]), _NULL_BOOL, pc.invert(bad))


def _regex(frame: pa.Table, check: Regex, spec: Spec | None = None) -> pa.Array | pa.ChunkedArray:
    return _on_outputs(frame, lambda texts: pc.match_substring_regex(texts, check.pattern))


def _literal(text: str) -> str:
    """An RE2 pattern matching exactly `text` (ASCII punctuation and controls as \\x{..})."""
    return "".join(c if c.isalnum() or ord(c) > 127 else f"\\x{{{ord(c):x}}}" for c in text)


def _has(frame: pa.Table, values: list[str], case_sensitive: bool) -> pa.Array | pa.ChunkedArray:
    """Whether each output contains any of `values`, in one pass: RE2 runs a literal (or an
    alternation of literals) several times faster than the plain substring kernel, and
    case-insensitively it is what `match_substring(ignore_case=True)` runs."""
    pattern = "|".join(_literal(v) for v in values)
    pattern = pattern if case_sensitive else f"(?i:{pattern})"
    return _on_outputs(frame, lambda texts: pc.match_substring_regex(texts, pattern))


def _contains(
    frame: pa.Table, check: Contains, spec: Spec | None = None
) -> pa.Array | pa.ChunkedArray:
    return _has(frame, [check.value], check.case_sensitive)


def _not_contains(
    frame: pa.Table, check: NotContains, spec: Spec | None = None
) -> pa.Array | pa.ChunkedArray:
    return pc.invert(_has(frame, [check.value], check.case_sensitive))


def _contains_any(
    frame: pa.Table, check: ContainsAny, spec: Spec | None = None
) -> pa.Array | pa.ChunkedArray:
    return _has(frame, check.values, check.case_sensitive)


def _contains_all(
    frame: pa.Table, check: ContainsAll, spec: Spec | None = None
) -> pa.Array | pa.ChunkedArray:
    hits = [_has(frame, [v], check.case_sensitive) for v in check.values]
    return functools.reduce(pc.and_, hits)


@functools.cache
def _leading_space() -> NDArray[np.bool_]:
    """Whether a text whose first byte is this may lose it to `utf8_ltrim_whitespace` (probed
    for ASCII; any non-ASCII lead byte may start a Unicode space)."""
    probe = pa.array([chr(b) + "a" for b in range(128)], pa.string())
    trimmed = pc.utf8_ltrim_whitespace(probe).to_pylist()
    table = np.ones(256, dtype=bool)
    table[:128] = [t != chr(b) + "a" for b, t in enumerate(trimmed)]
    return table


def _may_lead_with_space(texts: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """Rows whose text may start with whitespace (False for nulls and empty texts)."""
    table = _leading_space()
    chunks = []
    for chunk in texts.chunks if isinstance(texts, pa.ChunkedArray) else [texts]:
        if not pa.types.is_string(chunk.type) or len(chunk) == 0:
            chunks.append(pc.fill_null(pc.is_valid(chunk), False))
            continue
        _, off_buf, data_buf = chunk.buffers()
        offsets = np.frombuffer(off_buf, np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        starts, stops = offsets[:-1], offsets[1:]
        filled = stops > starts  # a null has no bytes either
        lead = np.zeros(len(chunk), dtype=bool)
        if data_buf is not None and filled.any():
            data = np.frombuffer(data_buf, np.uint8)
            lead[filled] = table[data[starts[filled]]]
        chunks.append(pa.array(lead))
    return pa.chunked_array(chunks, pa.bool_())


def _starts_with(
    frame: pa.Table, check: StartsWith, spec: Spec | None = None
) -> pa.Array | pa.ChunkedArray:
    # leading whitespace is ignored: only the few texts that may have some are trimmed
    def starts(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        hit = pc.starts_with(texts, check.value, ignore_case=not check.case_sensitive)
        spaced = _may_lead_with_space(texts)
        if pc.any(spaced).as_py():
            trimmed = pc.utf8_ltrim_whitespace(texts.filter(spaced))
            again = pc.starts_with(trimmed, check.value, ignore_case=not check.case_sensitive)
            hit = pc.replace_with_mask(_chunk(hit), _chunk(spaced), _chunk(again))
        return hit

    return _on_outputs(frame, starts)


def _reference(frame: pa.Table) -> pa.ChunkedArray:
    return frame["reference"]


def _equals(frame: pa.Table, check: Equals, spec: Spec | None = None) -> pa.Array:
    def canonical(texts: Any) -> Any:
        if check.trim:
            texts = pc.utf8_trim_whitespace(texts)
        return texts if check.case_sensitive else pc.utf8_lower(texts)

    if check.value is not None:
        want = canonical(pa.scalar(check.value, pa.string()))
        return _chunk(_on_outputs(frame, lambda texts: pc.equal(canonical(texts), want)))
    # against the reference: only the rows with both texts (the others are null), each
    # distinct pair once, by the codes of its two texts made canonical
    pairs = _pairs(frame)
    ids = np.asarray(pc.dictionary_encode(canonical(pairs.texts)).indices, np.int64)
    same = ids[pairs.out_text] == ids[pairs.ref_text]
    passed = np.zeros(frame.num_rows, dtype=bool)
    passed[pairs.rows] = same[pairs.pair]
    scored = np.zeros(frame.num_rows, dtype=bool)
    scored[pairs.rows] = True
    return pa.array(passed, mask=~scored)


def _levenshtein_max(frame: pa.Table, check: LevenshteinMax, spec: Spec | None = None) -> Measured:
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cpdist

    pairs = _pairs(frame)  # each distinct pair once; a text against itself is 0 apart
    differ = np.flatnonzero(pairs.out_text != pairs.ref_text)
    per_pair = np.zeros(len(pairs.out_text))
    if differ.size:
        dist = cpdist(
            pairs.texts.take(pa.array(pairs.out_text[differ])).to_pylist(),
            pairs.texts.take(pa.array(pairs.ref_text[differ])).to_pylist(),
            scorer=Levenshtein.distance,
            workers=-1,
            dtype=np.int64,
        )
        per_pair[differ] = np.asarray(dist, dtype=np.float64)
    values = np.full(frame.num_rows, np.nan)
    values[pairs.rows] = per_pair[pairs.pair]
    figure = pa.array(values, pa.float64(), from_pandas=True)  # nan (no pair) → null
    return Measured(pc.less_equal(figure, float(check.value)), figure, "distance")


def _pairs(frame: pa.Table) -> Pairs:
    return _shared(frame, "pairs", lambda: pairs_of(frame["output_text"], _reference(frame)))


def _words(frame: pa.Table) -> Words:
    return _shared(
        frame,
        "words",
        lambda: words_of(frame["output_text"], _reference(frame), pairs=_pairs(frame)),
    )


def _counts(frame: pa.Table, n: int) -> Counts:
    return _shared(frame, f"counts{n}", lambda: counts_of(_words(frame), n))


def _rouge_n_min(frame: pa.Table, check: RougeNMin, spec: Spec | None = None) -> Measured:
    figure = rouge_n(
        frame["output_text"],
        _reference(frame),
        check.n,
        check.measure,
        counts=_counts(frame, check.n),
    )
    return Measured(
        pc.greater_equal(figure, check.value), figure, f"rouge{check.n}_{check.measure}"
    )


def _bleu_min(frame: pa.Table, check: BleuMin, spec: Spec | None = None) -> Measured:
    _words(frame)
    with ThreadPoolExecutor(
        min(4, os.cpu_count() or 1), thread_name_prefix="bleu"
    ) as pool:  # NumPy frees the GIL
        orders = {
            n: pool.submit(contextvars.copy_context().run, _counts, frame, n) for n in (1, 2, 3, 4)
        }
        counts = {n: f.result() for n, f in orders.items()}
    figure = bleu(frame["output_text"], _reference(frame), counts=counts)
    return Measured(pc.greater_equal(figure, check.value), figure, "bleu")


def _max_output_tokens(
    frame: pa.Table, check: MaxOutputTokens, spec: Spec | None = None
) -> pa.ChunkedArray:
    return pc.less_equal(frame["output_tokens"], check.value)


def _latency_ms_max(
    frame: pa.Table, check: LatencyMsMax, spec: Spec | None = None
) -> pa.ChunkedArray:
    return pc.less_equal(frame["latency_ms"], check.value)


def _cost_usd_max(frame: pa.Table, check: CostUsdMax, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.less_equal(frame["cost_usd"], check.value)


def _tool_scores(frame: pa.Table) -> tuple[pa.Array, pa.Array]:
    return _shared(
        frame,
        "tool_scores",
        lambda: tool_call_scores(
            frame["output_tool_calls"], _reference(frame), frame["output_text"]
        ),
    )


def _tool_call_f1(frame: pa.Table, check: ToolCallF1, spec: Spec | None = None) -> Measured:
    f1, _ = _tool_scores(frame)
    return Measured(pc.greater_equal(f1, check.value), f1, "f1")


def _tool_call_exact(frame: pa.Table, check: ToolCallExact, spec: Spec | None = None) -> pa.Array:
    _, exact = _tool_scores(frame)
    return exact


def _tool_call_valid(frame: pa.Table, check: ToolCallValid, spec: Spec | None = None) -> pa.Array:
    def valid(call_json: str, request_json: str | None) -> bool:
        tools = {
            t["name"]: t.get("parameters") or {}
            for t in orjson.loads(request_json or "{}").get("tools") or []
        }
        for call in orjson.loads(call_json):
            args = call.get("arguments")
            if call.get("name") not in tools or not isinstance(args, dict):
                return False
            schema_json = orjson.dumps(tools[call["name"]], option=orjson.OPT_SORT_KEYS).decode()
            if not _validator(schema_json)(args):
                return False
        return True

    return tool_calls_valid(
        frame["output_tool_calls"], frame["request"], frame["output_text"], valid
    )


_JSON_TYPE_TEST: Final = {
    str: "json_type(v) = 'VARCHAR' AND (v ->> '$') = ?",
    float: "json_type(v) IN ('UBIGINT', 'BIGINT', 'DOUBLE') AND CAST(v AS DOUBLE) = ?",
}


def _json_path(frame: pa.Table, check: JsonPath, spec: Spec | None = None) -> pa.Array:
    want = check.equals
    params: list[Any] = [check.path]
    if check.matches is not None:
        test = "coalesce(regexp_matches(v ->> '$', ?), false)"
        params = [check.path, check.matches]
    elif isinstance(want, bool):
        test = f"json_type(v) = 'BOOLEAN' AND CAST(v AS VARCHAR) = '{str(want).lower()}'"
    elif isinstance(want, str):
        test, params = _JSON_TYPE_TEST[str], [check.path, want]
    elif isinstance(want, int | float):
        test, params = _JSON_TYPE_TEST[float], [check.path, float(want)]
    else:  # objects and arrays: compared as parsed JSON below
        test = "NULL"
    found = ", CAST(v AS VARCHAR) AS v" if test == "NULL" else ""
    distinct = _distinct_outputs(frame)  # each distinct text once; null rows stay null
    with duckdb.connect() as con:
        con.register("f", pa.table({"t": distinct.dictionary}))
        # no ORDER BY: DuckDB keeps the rows in order (preserve_insertion_order)
        out = con.sql(
            f"""
            WITH x AS (SELECT t, CASE WHEN json_valid(t) THEN json_extract(t, ?) END AS v FROM f)
            SELECT CASE WHEN t IS NULL THEN NULL WHEN v IS NULL THEN false ELSE {test} END AS ok
                   {found}
            FROM x
            """,
            params=params,
        ).to_arrow_table()
    ok = out["ok"].combine_chunks()
    if check.matches is None and isinstance(want, dict | list):
        values = out["v"].to_pylist()
        ok = pa.array([v is not None and orjson.loads(v) == want for v in values], pa.bool_())
    return ok.take(distinct.indices)


def _python(frame: pa.Table, check: PythonCheck, spec: Spec | None = None) -> pa.Array:
    from evalpipe.score.custom import run_scorer

    return run_scorer(frame, check)


CHECKS: Final[dict[str, CheckFn]] = {
    "json_valid": _json_valid,
    "json_schema": _json_schema,
    "not_refusal": _not_refusal,
    "max_chars": _max_chars,
    "no_pii": _no_pii,
    "tool_call_valid": _tool_call_valid,
    "finish_reason_not": _finish_reason_not,
    "regex": _regex,
    "contains": _contains,
    "not_contains": _not_contains,
    "contains_any": _contains_any,
    "contains_all": _contains_all,
    "starts_with": _starts_with,
    "equals": _equals,
    "levenshtein_max": _levenshtein_max,
    "rouge_n_min": _rouge_n_min,
    "bleu_min": _bleu_min,
    "min_chars": _min_chars,
    "max_output_tokens": _max_output_tokens,
    "latency_ms_max": _latency_ms_max,
    "cost_usd_max": _cost_usd_max,
    "tool_call_f1": _tool_call_f1,
    "tool_call_exact": _tool_call_exact,
    "json_path": _json_path,
    "python": _python,
}
"""Check `type` → its function. A test checks this covers every type the spec accepts."""


_ORDER: Final = {
    name: rank
    for rank, name in enumerate(
        [
            # longest first, so that two threads finish together; a check that reuses what an
            # earlier one derives (rouge after bleu, exact after f1) comes late, not waiting
            "bleu_min",
            "no_pii",
            "contains_all",
            "json_path",
            "regex",
            "not_contains",
            "contains_any",
            "contains",
            "levenshtein_max",
            "json_schema",
            "json_valid",
            "tool_call_f1",
            "tool_call_valid",
            "not_refusal",
            "max_chars",
            "starts_with",
            "equals",
            "finish_reason_not",
            "rouge_n_min",
            "min_chars",
            "tool_call_exact",
        ]
    )
}
"""The order the checks are handed to the threads."""


def _needs_reference(check: Check) -> bool:
    return check.type in REFERENCE_CHECKS or (isinstance(check, Equals) and check.value is None)


def _detail(measured: Measured) -> pa.Array | pa.ChunkedArray:
    figure = pc.round(pc.cast(measured.figure, pa.float64()), 6)
    text = pc.cast(figure, pa.string())
    return pc.binary_join_element_wise(f'{{"{measured.name}": ', text, "}", "")


def _errors(scoped: pa.Table, *, reference: bool = False) -> pa.Array | pa.ChunkedArray:
    """Why each row cannot be scored (null where it can): its status when not `ok`, else
    `no reference` for a check against the reference on a record without one."""
    error: pa.Array | pa.ChunkedArray = pc.if_else(
        pc.equal(scoped["status"], "ok"), pa.scalar(None, pa.string()), scoped["status"]
    )
    if reference:
        no_ref = pc.and_(pc.is_null(error), pc.is_null(scoped["reference"]))
        error = pc.if_else(no_ref, "no reference", error)
    return error


def _check_table(scoped: pa.Table, check: Check, run_id: str, spec: Spec | None) -> pa.Table:
    """One check's tables.SCORES rows over its in-scope responses."""
    error = _shared(scoped, "error", lambda: _errors(scoped))
    if _needs_reference(check):
        error = _shared(scoped, "error_no_reference", lambda: _errors(scoped, reference=True))
    n = scoped.num_rows
    nothing = _shared(scoped, "nulls", lambda: pa.nulls(n, pa.string()))
    detail: pa.Array | pa.ChunkedArray = nothing
    try:
        result = CHECKS[check.type](scoped, check, spec)
    except ScorerError as exc:
        log.error("%s", exc)
        result = pa.nulls(n, pa.bool_())
        error = pc.fill_null(error, str(exc))
    if isinstance(result, Measured):
        detail = pc.if_else(pc.is_null(error), _detail(result), pa.scalar(None, pa.string()))
        result = result.passed
    passed = pc.if_else(pc.is_null(error), result, _NULL_BOOL)

    def repeated(text: str) -> pa.Array:  # the same column for every check of the scope
        return _shared(scoped, f"repeat:{text}", lambda: pa.repeat(pa.scalar(text, pa.string()), n))

    name = pa.repeat(pa.scalar(check.name, pa.string()), n)
    table = pa.table(
        {
            "run_id": repeated(run_id),
            "record_id": scoped["record_id"],
            "arm": scoped["arm"],
            "repeat": scoped["repeat"],
            "scorer": name,
            "kind": repeated("rule"),
            "metric": name,
            "value": pc.cast(passed, pa.float64()),
            "passed": passed,
            "detail": detail,
            "scorer_version": repeated(SCORER_VERSION),
            "judge_model": nothing,
            "prompt_version": nothing,
            "error": error,
            "rationale": nothing,
        }
    )
    return conform(table, SCORES)


def score_rules(
    frame: pa.Table, checks: list[Check], *, run_id: str, spec: Spec | None = None
) -> pa.Table:
    """Every check on every in-scope response (rows of `frame`), as tables.SCORES rows.

    Responses that are not `ok` get a row with null value and `error` set to their status; a
    reference check on a record without `reference` gets a null value and error `no reference`;
    the gate maps both. A custom scorer that fails gets null values and its failure as `error`.
    """
    jobs = list(enumerate(checks))
    tables: dict[int, pa.Table | None] = {}
    token = _SHARED.set(_Shared())
    try:
        builtin = [job for job in jobs if job[1].type != "python"]
        builtin.sort(key=lambda job: _ORDER.get(job[1].type, len(_ORDER) // 2))
        workers = min(len(builtin), os.cpu_count() or 1)
        if workers > 1:
            context = contextvars.copy_context()  # the workers see the same _Shared
            with ThreadPoolExecutor(workers, thread_name_prefix="score_rules") as pool:
                futures = {
                    i: pool.submit(context.copy().run, _scoped_table, frame, check, run_id, spec)
                    for i, check in builtin
                }
                for i, check in jobs:  # user code stays on this thread
                    if check.type == "python":
                        tables[i] = _scoped_table(frame, check, run_id, spec)
                tables.update({i: f.result() for i, f in futures.items()})
        else:
            for i, check in jobs:
                tables[i] = _scoped_table(frame, check, run_id, spec)
    finally:
        _SHARED.reset(token)
    found = [tables[i] for i in sorted(tables)]
    return pa.concat_tables([t for t in found if t is not None] or [SCORES.empty_table()])


def _scope(frame: pa.Table, where: dict[str, str | list[str]]) -> pa.Table:
    """The rows of `frame` a check's `where` keeps: filtered once per distinct `where`, by
    the first check (thread) that needs it."""
    if not where:
        return frame
    key = orjson.dumps(where, option=orjson.OPT_SORT_KEYS).decode()
    return _shared(frame, f"scope:{key}", lambda: frame.filter(where_mask(frame, where)))


def _scoped_table(frame: pa.Table, check: Check, run_id: str, spec: Spec | None) -> pa.Table | None:
    """One check's tables.SCORES rows over the rows its `where` keeps (None: no row)."""
    scoped = _scope(frame, check.where)
    return _check_table(scoped, check, run_id, spec) if scoped.num_rows else None
