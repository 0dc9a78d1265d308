"""The pyarrow schemas of evalpipe's tables, declared once (FORMATS.md).

Every stage ends with ``conform(out, SCHEMA)`` and its test asserts ``out.schema.equals(SCHEMA)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "ARMS_ANCHOR",
    "ARMS_LOGGED",
    "GATE",
    "QUARANTINE",
    "RAW_COLUMNS",
    "RECORDS",
    "RECORDS_LEAN",
    "RESPONSES",
    "SCORES",
    "column_values",
    "conform",
    "empty",
    "from_rows",
    "map_value",
    "take_rows",
]

ARMS_LOGGED: Final = "logged"
"""Arm name of what production served (scored and shown, never gated)."""
ARMS_ANCHOR: Final = "anchor"
"""Arm name of a judge's answers on its frozen anchor set (`score.anchors`; never gated as a
metric: they tell whether the judge itself changed)."""

_TS = pa.timestamp("us", tz="UTC")
_ATTRS = pa.map_(pa.string(), pa.string())

RECORDS: Final = pa.schema(
    [
        ("record_id", pa.string()),
        ("request_sha256", pa.string()),
        ("timestamp", _TS),
        ("source_format", pa.string()),
        ("source_file", pa.string()),
        ("source_line", pa.int64()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("response_model", pa.string()),
        ("system_fingerprint", pa.string()),
        ("request", pa.string()),
        ("request_raw", pa.string()),
        ("response_raw", pa.string()),
        ("output_text", pa.string()),
        ("output_tool_calls", pa.string()),
        ("finish_reason", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("ttft_ms", pa.float64()),
        ("status", pa.string()),
        ("error_type", pa.string()),
        ("session_id", pa.string()),
        ("user_id", pa.string()),
        ("attributes", _ATTRS),
        ("reference", pa.string()),
        ("labels", pa.map_(pa.string(), pa.float64())),
        ("replayable", pa.bool_()),
        ("replay_issue", pa.string()),
    ]
)
RAW_COLUMNS: Final = ("request_raw", "response_raw")
"""The logged JSON as it came, kept by ingest; no later stage reads it."""
RECORDS_LEAN: Final = pa.schema([f for f in RECORDS if f.name not in RAW_COLUMNS])
"""RECORDS without `RAW_COLUMNS`: what the stages after ingest read."""

RESPONSES: Final = pa.schema(
    [
        ("run_id", pa.string()),
        ("record_id", pa.string()),
        ("arm", pa.string()),
        ("repeat", pa.int32()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("response_model", pa.string()),
        ("system_fingerprint", pa.string()),
        ("output_text", pa.string()),
        ("output_tool_calls", pa.string()),
        ("finish_reason", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cached_input_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("latency_ms", pa.float64()),
        ("ttft_ms", pa.float64()),
        ("cost_usd", pa.float64()),
        ("status", pa.string()),
        ("error_origin", pa.string()),
        ("http_status", pa.int32()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
        ("params_not_replayed", pa.string()),  # JSON [{param, reason}] not sent; null: none
        ("attempts", pa.int32()),
        ("cache_hit", pa.bool_()),
        ("request_key", pa.string()),
        ("config_version", pa.string()),
        ("config_hash", pa.string()),
        ("fallback_used", pa.bool_()),
        ("started_at", _TS),
    ]
)

SCORES: Final = pa.schema(
    [
        ("run_id", pa.string()),
        ("record_id", pa.string()),
        ("arm", pa.string()),
        ("repeat", pa.int32()),
        ("scorer", pa.string()),
        ("kind", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("passed", pa.bool_()),
        ("detail", pa.string()),
        ("scorer_version", pa.string()),
        ("judge_model", pa.string()),
        ("prompt_version", pa.string()),
        ("error", pa.string()),
        ("rationale", pa.string()),  # a judge's own words for its verdict (short); null: none
    ]
)

GATE: Final = pa.schema(
    [
        ("run_id", pa.string()),
        ("candidate", pa.string()),
        ("metric", pa.string()),
        ("kind", pa.string()),
        ("source", pa.string()),
        ("gated", pa.bool_()),
        ("critical", pa.bool_()),
        ("slice_col", pa.string()),
        ("slice_value", pa.string()),
        ("n", pa.int64()),
        ("clusters", pa.int64()),
        ("baseline", pa.float64()),
        ("candidate_value", pa.float64()),
        ("estimate", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("margin", pa.float64()),
        ("p_value", pa.float64()),
        ("p_adjusted", pa.float64()),
        ("q_value", pa.float64()),
        ("flagged", pa.bool_()),
        ("regressed", pa.int64()),
        ("improved", pa.int64()),
        ("mde", pa.float64()),
        ("n_needed", pa.int64()),
        ("verdict", pa.string()),
        ("reason", pa.string()),
    ]
)

QUARANTINE: Final = pa.schema(
    [
        ("file", pa.string()),
        ("line", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Select the schema's columns in order (adding missing ones as nulls) and cast to it."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table[field.name]
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def empty(schema: pa.Schema) -> pa.Table:
    """An empty table of the schema."""
    return schema.empty_table()


def from_rows(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Build a table of the schema from row dicts (missing keys become nulls).

    For I/O-bound producers (replay, ingest) that collect rows one at a time.
    """
    if not rows:
        return empty(schema)
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def column_values(records: pa.Table, column: str) -> pa.ChunkedArray:
    """A record column by its spec name (SPEC.md): a top-level column when one has that name,
    `attributes.x` / `labels.x` explicitly, else a key of `attributes`."""
    if column in records.column_names:
        return records[column].cast(pa.string())
    container, _, key = column.partition(".")
    if container in ("attributes", "labels") and key:
        return map_value(records[container], key).cast(pa.string())
    return map_value(records["attributes"], column)


def map_value(maps: pa.ChunkedArray | pa.Array, key: str) -> pa.ChunkedArray:
    """Each map's value at `key` (the first when it repeats; null where absent or the map is
    null): `pc.map_lookup(maps, key, "first")` for string-keyed maps, found with vectorised
    ops on the flat keys (map_lookup walks each map's keys one by one, several times slower).
    """
    if isinstance(maps, pa.Array):
        maps = pa.chunked_array([maps], type=maps.type)
    if not (pa.types.is_map(maps.type) and pa.types.is_string(maps.type.key_type)):
        return pc.map_lookup(maps, pa.scalar(key), "first")
    return pa.chunked_array([_map_value(c, key) for c in maps.chunks], maps.type.item_type)


def _map_value(maps: pa.MapArray, key: str) -> pa.Array:
    offsets = np.asarray(maps.offsets, dtype=np.int64)  # this slice's rows, into the whole keys
    keys = maps.keys.slice(offsets[0], offsets[-1] - offsets[0])
    hits = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(keys, key), False), dtype=bool))
    hits += offsets[0]
    first = np.searchsorted(hits, offsets[:-1])  # each map's first hit at or after its start
    at = hits[np.minimum(first, len(hits) - 1)] if len(hits) else np.zeros(len(maps), np.int64)
    found = (first < len(hits)) & (at < offsets[1:])
    if maps.null_count:
        found &= np.asarray(maps.is_valid(), dtype=bool)
    return maps.items.take(pa.array(at, pa.int64(), mask=~found))


def take_rows(column: pa.Array | pa.ChunkedArray, rows: Any) -> pa.Array:
    """The values at `rows` (ascending positions, e.g. from `np.flatnonzero`) as one array.

    Taken chunk by chunk: `ChunkedArray.take` first concatenates every chunk, which copies a
    whole text column to pick a few of its rows.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if isinstance(column, pa.Array):
        return column.take(pa.array(rows, pa.int64()))
    parts = []
    start = 0
    for chunk in column.chunks:
        lo, hi = np.searchsorted(rows, [start, start + len(chunk)])
        if hi > lo:
            parts.append(chunk.take(pa.array(rows[lo:hi] - start, pa.int64())))
        start += len(chunk)
    return pa.concat_arrays(parts) if parts else pa.array([], column.type)
