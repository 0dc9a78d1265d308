"""Rule checks over whole columns (pyarrow compute, DuckDB); one function per check `type`.

Each check function takes the scoring frame (responses joined to their records, see
`scoring_frame`) and returns a boolean array: True passed, False failed, null not scorable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import duckdb
import jsonschema
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.pii import contains_pii
from evalpipe.spec import (
    Check,
    FinishReasonNot,
    JsonSchemaCheck,
    JsonValid,
    MaxChars,
    NoPii,
    NotRefusal,
    Regex,
    Spec,
    ToolCallValid,
)
from evalpipe.tables import SCORES, column_values, conform

__all__ = ["CHECKS", "REFUSAL_PATTERN", "score_rules", "where_mask"]

log = logging.getLogger(__name__)

SCORER_VERSION: Final = "rules@2"  # 2: no_pii uses evalpipe.pii (Luhn-checked cards)

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


def _json_valid(frame: pa.Table, check: JsonValid) -> pa.Array:
    # DuckDB's json_valid accepts trailing commas ('{"a":1,}'), which real parsers reject, so this
    # check parses strictly with orjson (about 1 µs a document).
    return pa.array([_strict_json(t) for t in frame["output_text"].to_pylist()], pa.bool_())


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = orjson.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _schema_of_requests(frame: pa.Table) -> pa.Array:
    with duckdb.connect() as con:
        con.register("f", pa.table({"r": frame["request"]}))
        out = con.sql(
            "SELECT CAST(json_extract(r, '$.response_format.schema') AS VARCHAR) AS s FROM f"
        ).to_arrow_table()
    return out["s"].combine_chunks()


def _json_schema(frame: pa.Table, check: JsonSchemaCheck, spec: Spec | None = None) -> pa.Array:
    if check.schema_ == "request":
        schemas = _schema_of_requests(frame).to_pylist()
    else:
        assert spec is not None
        text = orjson.dumps(orjson.loads(spec.resolve_input(check.schema_).read_bytes())).decode()
        schemas = [text] * frame.num_rows
    texts = frame["output_text"].to_pylist()
    out: list[bool | None] = []
    # Validating documents is inherently per document; validators are compiled once per schema.
    for text, schema in zip(texts, schemas, strict=True):
        if text is None or schema is None:
            out.append(None)
            continue
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            out.append(False)
            continue
        out.append(_validator(schema).is_valid(doc))
    return pa.array(out, pa.bool_())


def _not_refusal(frame: pa.Table, check: NotRefusal) -> pa.ChunkedArray:
    refused = pc.or_kleene(
        pc.match_substring_regex(frame["output_text"], REFUSAL_PATTERN),
        pc.equal(frame["finish_reason"], "refusal"),
    )
    return pc.invert(refused)


def _max_chars(frame: pa.Table, check: MaxChars) -> pa.ChunkedArray:
    return pc.less_equal(pc.utf8_length(frame["output_text"]), check.value)


def _no_pii(frame: pa.Table, check: NoPii) -> pa.ChunkedArray:
    return pc.invert(contains_pii(frame["output_text"]))


def _finish_reason_not(frame: pa.Table, check: FinishReasonNot) -> pa.ChunkedArray:
    reasons = frame["finish_reason"]
    bad = pc.is_in(reasons, value_set=pa.array(check.values, pa.string()))
    return pc.if_else(pc.is_null(frame["output_text"]), pa.scalar(None, pa.bool_()), pc.invert(bad))


def _regex(frame: pa.Table, check: Regex) -> pa.ChunkedArray:
    return pc.match_substring_regex(frame["output_text"], check.pattern)


def _tool_call_valid(frame: pa.Table, check: ToolCallValid) -> pa.Array:
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
            if not _validator(schema_json).is_valid(args):
                ok = False
                break
        out.append(ok)
    return pa.array(out, pa.bool_())


CheckFn = Callable[..., pa.Array | pa.ChunkedArray]

CHECKS: Final[dict[str, CheckFn]] = {
    "json_valid": _json_valid,
    "json_schema": _json_schema,
    "not_refusal": _not_refusal,
    "max_chars": _max_chars,
    "no_pii": _no_pii,
    "tool_call_valid": _tool_call_valid,
    "finish_reason_not": _finish_reason_not,
    "regex": _regex,
}
"""Check `type` → its function. A test checks this covers every type the spec accepts."""


def score_rules(
    frame: pa.Table, checks: list[Check], *, run_id: str, spec: Spec | None = None
) -> pa.Table:
    """Every check on every in-scope response (rows of `frame`), as tables.SCORES rows.

    Responses that are not `ok` get a row with null value and `error` set; the gate maps them.
    """
    tables = []
    for check in checks:
        scoped = frame.filter(where_mask(frame, check.where))
        if scoped.num_rows == 0:
            continue
        fn = CHECKS[check.type]
        result = (
            fn(scoped, check, spec) if isinstance(check, JsonSchemaCheck) else fn(scoped, check)
        )
        scoped_ok = pc.equal(scoped["status"], "ok")
        passed = pc.if_else(scoped_ok, result, pa.scalar(None, pa.bool_()))
        n = scoped.num_rows
        tables.append(
            pa.table(
                {
                    "run_id": pa.array([run_id] * n, pa.string()),
                    "record_id": scoped["record_id"],
                    "arm": scoped["arm"],
                    "repeat": scoped["repeat"],
                    "scorer": pa.array([check.name] * n, pa.string()),
                    "kind": pa.array(["rule"] * n, pa.string()),
                    "metric": pa.array([check.name] * n, pa.string()),
                    "value": pc.cast(passed, pa.float64()),
                    "passed": passed,
                    "scorer_version": pa.array([SCORER_VERSION] * n, pa.string()),
                    "error": pc.if_else(scoped_ok, pa.scalar(None, pa.string()), scoped["status"]),
                }
            )
        )
    if not tables:
        return SCORES.empty_table()
    return conform(pa.concat_tables([conform(t, SCORES) for t in tables]), SCORES)
