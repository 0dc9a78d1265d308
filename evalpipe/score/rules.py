"""Rule checks over whole columns (pyarrow compute, DuckDB); one function per check `type`.

Each check function takes the scoring frame (responses joined to their records, see
`scoring_frame`) and returns a boolean array: True passed, False failed, null not scorable.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast

import duckdb
import jsonschema
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.errors import ScorerError
from evalpipe.pii import PII_PATTERNS, contains_pii
from evalpipe.score.textstats import bleu, rouge_n
from evalpipe.score.toolcalls import tool_call_scores
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
from evalpipe.tables import SCORES, column_values, conform

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
    # check parses strictly with orjson (about 1 µs a document).
    return pa.array([_strict_json(t) for t in frame["output_text"].to_pylist()], pa.bool_())


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


def _validate_grouped(texts: pa.Array | pa.ChunkedArray, schemas: pa.Array) -> pa.Array:
    """Each text against its row's schema: one compiled validator per distinct schema."""
    out = np.zeros(len(schemas), dtype=np.int8)  # 0 fail, 1 pass, 2 not scorable
    encoded = pc.dictionary_encode(schemas)
    codes = np.asarray(pc.fill_null(encoded.indices, -1), dtype=np.int64)
    text_list = texts.to_pylist()
    out[codes < 0] = 2
    for code, schema in enumerate(encoded.dictionary.to_pylist()):
        is_valid = _validator(schema)
        for i in np.flatnonzero(codes == code).tolist():
            text = text_list[i]
            if text is None:
                out[i] = 2
                continue
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            out[i] = is_valid(doc)
    return pc.if_else(pa.array(out == 2), _NULL_BOOL, pa.array(out == 1))


def _json_schema(frame: pa.Table, check: JsonSchemaCheck, spec: Spec | None = None) -> pa.Array:
    if check.schema_ == "request":
        schemas = _schema_of_requests(frame)
    else:
        assert spec is not None
        text = orjson.dumps(orjson.loads(spec.resolve_input(check.schema_).read_bytes())).decode()
        schemas = pa.array([text] * frame.num_rows, pa.string())
    return _validate_grouped(frame["output_text"], schemas)


def _not_refusal(frame: pa.Table, check: NotRefusal, spec: Spec | None = None) -> pa.ChunkedArray:
    refused = pc.or_kleene(
        pc.match_substring_regex(frame["output_text"], REFUSAL_PATTERN),
        pc.equal(frame["finish_reason"], "refusal"),
    )
    return pc.invert(refused)


def _max_chars(frame: pa.Table, check: MaxChars, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.less_equal(pc.utf8_length(frame["output_text"]), check.value)


def _min_chars(frame: pa.Table, check: MinChars, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.greater_equal(pc.utf8_length(frame["output_text"]), check.value)


_ANY_PII: Final = "|".join(f"(?:{p.pattern})" for p in PII_PATTERNS)


def _no_pii(frame: pa.Table, check: NoPii, spec: Spec | None = None) -> pa.Array:
    # One RE2 pass finds the few outputs any PII pattern matches; only those go through the
    # full rule (each pattern's replacement, the Luhn check of card numbers).
    texts = frame["output_text"].combine_chunks()
    maybe = pc.fill_null(pc.match_substring_regex(texts, _ANY_PII), False)
    clean = pc.if_else(pc.is_null(texts), _NULL_BOOL, pa.scalar(True))
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


def _regex(frame: pa.Table, check: Regex, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.match_substring_regex(frame["output_text"], check.pattern)


def _has(texts: pa.ChunkedArray, value: str, case_sensitive: bool) -> pa.ChunkedArray:
    return pc.match_substring(texts, value, ignore_case=not case_sensitive)


def _contains(frame: pa.Table, check: Contains, spec: Spec | None = None) -> pa.ChunkedArray:
    return _has(frame["output_text"], check.value, check.case_sensitive)


def _not_contains(frame: pa.Table, check: NotContains, spec: Spec | None = None) -> pa.ChunkedArray:
    return pc.invert(_has(frame["output_text"], check.value, check.case_sensitive))


def _contains_any(frame: pa.Table, check: ContainsAny, spec: Spec | None = None) -> pa.ChunkedArray:
    hits = [_has(frame["output_text"], v, check.case_sensitive) for v in check.values]
    return functools.reduce(pc.or_, hits)


def _contains_all(frame: pa.Table, check: ContainsAll, spec: Spec | None = None) -> pa.ChunkedArray:
    hits = [_has(frame["output_text"], v, check.case_sensitive) for v in check.values]
    return functools.reduce(pc.and_, hits)


def _starts_with(frame: pa.Table, check: StartsWith, spec: Spec | None = None) -> pa.ChunkedArray:
    texts = pc.utf8_ltrim_whitespace(frame["output_text"])
    return pc.starts_with(texts, check.value, ignore_case=not check.case_sensitive)


def _reference(frame: pa.Table) -> pa.ChunkedArray:
    return frame["reference"]


def _equals(frame: pa.Table, check: Equals, spec: Spec | None = None) -> pa.ChunkedArray:
    out, want = (
        frame["output_text"],
        (
            pa.chunked_array([pa.array([check.value] * frame.num_rows, pa.string())])
            if check.value is not None
            else _reference(frame)
        ),
    )
    if check.trim:
        out, want = pc.utf8_trim_whitespace(out), pc.utf8_trim_whitespace(want)
    if not check.case_sensitive:
        out, want = pc.utf8_lower(out), pc.utf8_lower(want)
    return pc.equal(out, want)


def _both_texts(frame: pa.Table) -> tuple[list[str], list[str], pa.Array]:
    """Output and reference texts ('' for nulls) and where both are present."""
    out, ref = frame["output_text"], _reference(frame)
    present = pc.and_(pc.is_valid(out), pc.is_valid(ref)).combine_chunks()
    return (
        pc.fill_null(out, "").to_pylist(),
        pc.fill_null(ref, "").to_pylist(),
        present,
    )


def _levenshtein_max(frame: pa.Table, check: LevenshteinMax, spec: Spec | None = None) -> Measured:
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cpdist

    out, ref, present = _both_texts(frame)
    dist = cpdist(out, ref, scorer=Levenshtein.distance, workers=-1, dtype=np.int64)
    figure = pc.if_else(present, pa.array(np.asarray(dist, dtype=np.float64)), None)
    return Measured(pc.less_equal(figure, float(check.value)), figure, "distance")


def _rouge_n_min(frame: pa.Table, check: RougeNMin, spec: Spec | None = None) -> Measured:
    figure = rouge_n(frame["output_text"], _reference(frame), check.n, check.measure)
    return Measured(
        pc.greater_equal(figure, check.value), figure, f"rouge{check.n}_{check.measure}"
    )


def _bleu_min(frame: pa.Table, check: BleuMin, spec: Spec | None = None) -> Measured:
    figure = bleu(frame["output_text"], _reference(frame))
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


def _tool_call_f1(frame: pa.Table, check: ToolCallF1, spec: Spec | None = None) -> Measured:
    f1, _ = tool_call_scores(frame["output_tool_calls"], _reference(frame), frame["output_text"])
    return Measured(pc.greater_equal(f1, check.value), f1, "f1")


def _tool_call_exact(frame: pa.Table, check: ToolCallExact, spec: Spec | None = None) -> pa.Array:
    _, exact = tool_call_scores(frame["output_tool_calls"], _reference(frame), frame["output_text"])
    return exact


def _tool_call_valid(frame: pa.Table, check: ToolCallValid, spec: Spec | None = None) -> pa.Array:
    calls = frame["output_tool_calls"].to_pylist()
    requests = frame["request"].to_pylist()
    texts = frame["output_text"].to_pylist()
    out: list[bool | None] = []
    for text, call_json, req_json in zip(texts, calls, requests, strict=True):
        if text is None and call_json is None:
            out.append(None)
            continue
        if not call_json:
            out.append(True)  # no call made: nothing invalid (a diff tracks missing calls)
            continue
        tools = {
            t["name"]: t.get("parameters") or {} for t in orjson.loads(req_json).get("tools") or []
        }
        ok = True
        for call in orjson.loads(call_json):
            args = call.get("arguments")
            if call.get("name") not in tools or not isinstance(args, dict):
                ok = False
                break
            schema_json = orjson.dumps(tools[call["name"]], option=orjson.OPT_SORT_KEYS).decode()
            if not _validator(schema_json)(args):
                ok = False
                break
        out.append(ok)
    return pa.array(out, pa.bool_())


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
    with duckdb.connect() as con:
        con.register("f", pa.table({"t": frame["output_text"]}))
        out = con.sql(
            f"""
            WITH x AS (SELECT row_number() OVER () AS i, t,
                              CASE WHEN json_valid(t) THEN json_extract(t, ?) END AS v FROM f)
            SELECT CASE WHEN t IS NULL THEN NULL WHEN v IS NULL THEN false ELSE {test} END AS ok,
                   CAST(v AS VARCHAR) AS v
            FROM x ORDER BY i
            """,
            params=params,
        ).to_arrow_table()
    ok = out["ok"].combine_chunks()
    if check.matches is None and isinstance(want, dict | list):
        found = out["v"].to_pylist()
        texts = frame["output_text"].to_pylist()
        ok = pa.array(
            [
                None if t is None else (v is not None and orjson.loads(v) == want)
                for t, v in zip(texts, found, strict=True)
            ],
            pa.bool_(),
        )
    return ok


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


def _needs_reference(check: Check) -> bool:
    return check.type in REFERENCE_CHECKS or (isinstance(check, Equals) and check.value is None)


def _detail(measured: Measured) -> pa.Array | pa.ChunkedArray:
    figure = pc.round(pc.cast(measured.figure, pa.float64()), 6)
    text = pc.cast(figure, pa.string())
    return pc.binary_join_element_wise(f'{{"{measured.name}": ', text, "}", "")


def _check_table(scoped: pa.Table, check: Check, run_id: str, spec: Spec | None) -> pa.Table:
    """One check's tables.SCORES rows over its in-scope responses."""
    error: pa.Array | pa.ChunkedArray = pc.if_else(
        pc.equal(scoped["status"], "ok"), pa.scalar(None, pa.string()), scoped["status"]
    )
    if _needs_reference(check):
        no_ref = pc.and_(pc.is_null(error), pc.is_null(scoped["reference"]))
        error = pc.if_else(no_ref, "no reference", error)
    detail: pa.Array | pa.ChunkedArray = pa.nulls(scoped.num_rows, pa.string())
    try:
        result = CHECKS[check.type](scoped, check, spec)
    except ScorerError as exc:
        log.error("%s", exc)
        result = pa.nulls(scoped.num_rows, pa.bool_())
        error = pc.fill_null(error, str(exc))
    if isinstance(result, Measured):
        detail, result = _detail(result), result.passed
    passed = pc.if_else(pc.is_null(error), result, _NULL_BOOL)
    n = scoped.num_rows
    table = pa.table(
        {
            "run_id": pa.repeat(pa.scalar(run_id, pa.string()), n),
            "record_id": scoped["record_id"],
            "arm": scoped["arm"],
            "repeat": scoped["repeat"],
            "scorer": pa.repeat(pa.scalar(check.name, pa.string()), n),
            "kind": pa.repeat(pa.scalar("rule", pa.string()), n),
            "metric": pa.repeat(pa.scalar(check.name, pa.string()), n),
            "value": pc.cast(passed, pa.float64()),
            "passed": passed,
            "detail": pc.if_else(pc.is_null(error), detail, pa.scalar(None, pa.string())),
            "scorer_version": pa.repeat(pa.scalar(SCORER_VERSION, pa.string()), n),
            "error": error,
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
    scopes: dict[str, pa.Table] = {}  # checks with the same `where` share one filtered frame
    tables = []
    for check in checks:
        key = orjson.dumps(check.where, option=orjson.OPT_SORT_KEYS).decode()
        if key not in scopes:
            scopes[key] = frame.filter(where_mask(frame, check.where)) if check.where else frame
        if scopes[key].num_rows:
            tables.append(_check_table(scopes[key], check, run_id, spec))
    return pa.concat_tables(tables) if tables else SCORES.empty_table()
