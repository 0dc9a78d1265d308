"""Diffs of each candidate (and of the baseline's own repeats) against baseline repeat 0."""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz
from rapidfuzz.process import cpdist

from evalpipe.tables import ARMS_LOGGED, SCORES, conform

__all__ = ["DIFFS", "score_diffs"]

SCORER_VERSION: Final = "diffs@1"
DIFFS: Final = ("exact", "similarity", "json_structure", "length_ratio", "tool_calls")


def _norm(texts: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.utf8_trim_whitespace(pc.fill_null(texts, ""))


def _json_keys(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    import duckdb

    with duckdb.connect() as con:
        con.register("f", pa.table({"t": texts}))
        out = con.sql(
            "SELECT CASE WHEN json_valid(t) THEN CAST(list_sort(json_keys(t)) AS VARCHAR) END AS k "
            "FROM f"
        ).to_arrow_table()
    return out["k"].combine_chunks()


def _tool_names(calls: pa.ChunkedArray | pa.Array) -> pa.Array:
    import duckdb

    with duckdb.connect() as con:
        con.register("f", pa.table({"t": pc.fill_null(calls, "[]")}))
        out = con.sql(
            "SELECT CASE WHEN json_valid(t) THEN CAST(json_extract_string(t, '$[*].name') AS VARCHAR) END AS k FROM f"
        ).to_arrow_table()
    return out["k"].combine_chunks()


def score_diffs(responses: pa.Table, diffs: list[str], *, run_id: str) -> pa.Table:
    """tables.SCORES rows (kind `diff`) for every non-baseline arm paired with baseline repeat 0.

    Metrics: `diff.exact` (1 identical after trimming), `diff.similarity` (rapidfuzz ratio, 0–1),
    `diff.json_structure` (1 same top-level keys), `diff.length_ratio` (chars / baseline chars),
    `diff.tool_calls` (1 same tool names in order).
    """
    ok = responses.filter(pc.equal(responses["status"], "ok"))
    base = ok.filter(pc.and_(pc.equal(ok["arm"], "baseline"), pc.equal(ok["repeat"], 0)))
    others = ok.filter(
        pc.invert(pc.and_(pc.equal(ok["arm"], "baseline"), pc.equal(ok["repeat"], 0)))
    )
    others = others.filter(pc.not_equal(others["arm"], ARMS_LOGGED)) if others.num_rows else others
    idx = pc.index_in(others["record_id"], value_set=base["record_id"])
    others = others.filter(pc.is_valid(idx))
    idx = pc.drop_null(idx)
    if others.num_rows == 0:
        return SCORES.empty_table()
    b_text = _norm(base["output_text"].take(idx))
    c_text = _norm(others["output_text"])
    values: dict[str, pa.Array | pa.ChunkedArray] = {}
    if "exact" in diffs:
        values["exact"] = pc.cast(pc.equal(b_text, c_text), pa.float64())
    if "similarity" in diffs:
        sim = cpdist(c_text.to_pylist(), b_text.to_pylist(), scorer=fuzz.ratio, workers=1)
        values["similarity"] = pa.array(np.asarray(sim, dtype=np.float64) / 100.0)
    if "length_ratio" in diffs:
        b_len = pc.cast(pc.utf8_length(b_text), pa.float64())
        c_len = pc.cast(pc.utf8_length(c_text), pa.float64())
        values["length_ratio"] = pc.if_else(pc.equal(b_len, 0), None, pc.divide(c_len, b_len))
    if "json_structure" in diffs:
        bk, ck = _json_keys(b_text), _json_keys(c_text)
        both = pc.and_(pc.is_valid(bk), pc.is_valid(ck))
        values["json_structure"] = pc.if_else(
            both, pc.cast(pc.equal(bk, ck), pa.float64()), pa.scalar(None, pa.float64())
        )
    if "tool_calls" in diffs:
        names_b = _tool_names(base["output_tool_calls"].take(idx))
        names_c = _tool_names(others["output_tool_calls"])
        values["tool_calls"] = pc.cast(pc.equal(names_b, names_c), pa.float64())
    n = others.num_rows
    tables = [
        pa.table(
            {
                "run_id": pa.array([run_id] * n, pa.string()),
                "record_id": others["record_id"],
                "arm": others["arm"],
                "repeat": others["repeat"],
                "scorer": pa.array([f"diff.{name}"] * n, pa.string()),
                "kind": pa.array(["diff"] * n, pa.string()),
                "metric": pa.array([f"diff.{name}"] * n, pa.string()),
                "value": pc.cast(v, pa.float64()),
                "scorer_version": pa.array([SCORER_VERSION] * n, pa.string()),
            }
        )
        for name, v in values.items()
    ]
    return conform(pa.concat_tables([conform(t, SCORES) for t in tables]), SCORES)
