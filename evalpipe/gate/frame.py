"""The gate's view of a run: one slot per record, per arm, per metric (STATISTICS.md, "Which records count").

Records are put in record_id order, so every array here is indexed by that position and no
result depends on the order of rows in the input tables. Response states fold status and
error_origin into four codes; the mapping of errors onto metric values happens in `shadow.py`.

Out of core: responses and scores are DuckDB views (`GateTables`, over a run's Parquet files or
over Arrow tables), read one arm or one metric × arm at a time, only the columns needed, into
numeric arrays of one slot per record; no table of score rows or output texts is held whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from numpy.typing import NDArray

from evalpipe.spec import Spec
from evalpipe.store import out_of_core_config
from evalpipe.tables import column_values

__all__ = [
    "INFRA",
    "MISSING",
    "OK",
    "OWN_ERROR",
    "ArmData",
    "Frame",
    "GateTables",
    "MetricValues",
    "ScoreIndex",
    "build_frame",
    "frame_of",
    "out_of_core_config",
    "query_table",
    "record_columns",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

MISSING: Final = 0
"""No response (skipped, not replayed)."""
OK: Final = 1
OWN_ERROR: Final = 2
"""The arm's own failure (4xx on its request, content filter, its own timeout)."""
INFRA: Final = 3
"""Infrastructure failure after retries (429, 5xx, connection); an error of unknown origin too."""


GATE_MEMORY_LIMIT: Final = "384MB"
"""DuckDB's memory for the gate's queries (it spills beyond: the run's size does not matter).
At 1M records × 3 arms, single runs with the allocator settings of `out_of_core_config`:
peak RSS 1,662 MB at 512 MB (56 s), 1,505–1,660 at 384 MB (59–60 s), 1,465 at 256 MB (64 s)."""


def query_table(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> pa.Table:
    """The rows of a query as an Arrow table."""
    table = con.sql(sql, params=params or None).to_arrow_table()
    assert table is not None
    return table


class GateTables:
    """A run's tables where the gate reads them: DuckDB views `scores` and `responses` (over
    Parquet files, or Arrow tables registered in place) and the records' few columns the gate
    reads (`record_columns`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, records: pa.Table) -> None:
        self.con = con
        self.records = records

    @classmethod
    def from_tables(cls, scores: pa.Table, responses: pa.Table, records: pa.Table) -> GateTables:
        con = duckdb.connect()
        con.register("scores", scores)
        con.register("responses", responses)
        return cls(con, records)

    @classmethod
    def from_files(
        cls, scores: str, responses: str | None, records: Path, spec: Spec
    ) -> GateTables:
        """Views over Parquet: `scores` and `responses` are paths or globs (`responses` None:
        no responses yet), `records` the records file (only `record_columns` are read)."""
        from evalpipe.tables import RESPONSES, SCORES

        con = duckdb.connect(config=out_of_core_config(GATE_MEMORY_LIMIT))
        for name, source, schema in (
            ("scores", scores, SCORES),
            ("responses", responses, RESPONSES),
        ):
            if source is None:
                con.register(name, schema.empty_table())
                continue
            quoted = source.replace("'", "''")
            # a small run's files are read once into DuckDB's memory; a large run's in place
            # by every query (out of core)
            kind = "TABLE" if _bytes(source) <= IN_MEMORY_BYTES else "VIEW"
            con.execute(
                f"CREATE {kind} {name} AS SELECT * FROM read_parquet('{quoted}', "
                "union_by_name = true)"
            )
        names = pq.read_schema(records).names
        table = pq.read_table(records, columns=[c for c in record_columns(spec) if c in names])
        return cls(con, table)

    def release_records(self) -> None:
        """Let the records go once the frame and the validity checks have read them (the frame
        keeps its ids, clusters and slice codes; a million records' maps need not stay)."""
        self.records = self.records.schema.empty_table()

    def close(self) -> None:
        self.con.close()


IN_MEMORY_BYTES: Final = 16 << 20
"""Parquet (compressed) up to which a table is loaded once rather than read by each query."""


def _bytes(glob: str) -> int:
    path = Path(glob)
    files = path.parent.glob(path.name) if "*" in path.name else [path]
    return sum(f.stat().st_size for f in files if f.is_file())


def record_columns(spec: Spec) -> list[str]:
    """The records' columns the gate reads: ids, request hashes, the cluster and slice columns
    (a key of `attributes` or `labels` reads that map), and what the labels read."""
    from evalpipe.tables import RECORDS

    wanted = {"record_id", "request_sha256"}
    named = [spec.gate.cluster, *spec.gate.slices]
    named += [label.column for label in spec.labels.values()]
    for col in named:
        if col is None:
            continue
        if col in RECORDS.names:
            wanted.add(col)
            continue
        container, _, key = col.partition(".")
        wanted.add(container if container in ("attributes", "labels") and key else "attributes")
    return [c for c in RECORDS.names if c in wanted]


@dataclass(frozen=True)
class ArmData:
    """One arm's repeat-0 responses, one slot per record."""

    state: NDArray[np.int8]
    latency: F64
    cost: F64
    length: F64
    model: str | None
    ttft: F64
    """Time to first token in ms (nan where not streamed)."""
    texts: _Texts = field(repr=False)

    @property
    def text(self) -> pa.Array:
        """output_text per record (null where there is no ok response), read when asked."""
        return self.texts.read()

    def count(self, state: int) -> int:
        return int(np.count_nonzero(self.state == state))


@dataclass(frozen=True)
class _Texts:
    """An arm's ok output texts, read from the `responses` view when asked (not kept)."""

    con: duckdb.DuckDBPyConnection
    arm: str
    n: int

    _ROWS: Final = (
        "SELECT i.pos, r.output_text FROM responses r JOIN ids i USING (record_id) "
        "WHERE r.repeat = 0 AND r.arm = ? AND r.status = 'ok'"
    )
    _ONE_EACH: Final = (
        "SELECT i.pos, any_value(r.output_text) AS output_text FROM responses r "
        "JOIN ids i USING (record_id) WHERE r.repeat = 0 AND r.arm = ? AND r.status = 'ok' "
        "GROUP BY i.pos"
    )

    @cached_property
    def _ok(self) -> str:
        """The query of one ok text per record: the rows as they are when no record has two
        (as replay writes them: they stream through), else one of each record's (grouped: the
        group holds every text in DuckDB, ~600 MB more at 1M records)."""
        ((rows, records),) = self.con.execute(
            f"SELECT count(*), count(DISTINCT pos) FROM ({self._ROWS})", [self.arm]
        ).fetchall()
        return self._ROWS if rows == records else self._ONE_EACH

    def count_matching(self, pattern: str) -> tuple[int, int]:
        """(ok output texts, those `pattern` matches anywhere, ignoring case), counted where the
        texts are: none of them is read into this process."""
        sql = (
            "SELECT count(output_text), count(*) FILTER (WHERE regexp_matches(output_text, ?, 'i'))"
            f" FROM ({self._ok})"
        )
        ((total, hits),) = self.con.execute(sql, [pattern, self.arm]).fetchall()
        return int(total), int(hits)

    def read(self) -> pa.Array:
        """output_text per record, null where the arm has no ok response."""
        got = query_table(self.con, self._ok, [self.arm])
        order = np.full(self.n, -1, dtype=np.int64)
        order[np.asarray(got["pos"], dtype=np.int64)] = np.arange(got.num_rows)
        if got.num_rows == 0:
            return pa.nulls(self.n, pa.string())
        text = got["output_text"].combine_chunks().take(pa.array(np.maximum(order, 0)))
        return pc.if_else(pa.array(order >= 0), text, pa.scalar(None, pa.string()))

    def batches_at(self, positions: I64, rows: int = 25_000) -> Iterator[pa.Array]:
        """The ok output texts of the records at `positions` (none for a record without one),
        `rows` at a time, in no set order."""
        self.con.register("wanted", pa.table({"pos": pa.array(positions, pa.int64())}))
        try:
            reader = self.con.sql(
                f"SELECT t.output_text FROM ({self._ok}) t SEMI JOIN wanted w USING (pos)",
                params=[self.arm],
            ).to_arrow_reader(rows)
            for batch in reader:
                yield batch.column("output_text")
        finally:
            self.con.unregister("wanted")


@dataclass(frozen=True)
class MetricValues:
    """One metric on one arm, one slot per record."""

    has_row: NDArray[np.bool_]
    value: F64
    """nan where the row is missing or null."""
    agree: NDArray[np.bool_]
    """Pairwise judges: the two orders agreed."""


_AGREE: Final = (
    "coalesce(contains(s.detail, '\"orders_agree\":true') "
    "OR contains(s.detail, '\"orders_agree\": true'), false)"
)


class ScoreIndex:
    """Repeat-0 score rows of the baseline and candidates, one metric × arm at a time from the
    `scores` view, as arrays of one slot per record."""

    _KEEP: Final = 8
    """(metric, arm) arrays kept for the next lookup (a metric's baseline serves every candidate)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, n_records: int, arms: list[str]) -> None:
        self.con = con
        self.n_records = n_records
        self.arms = arms
        self.metrics: list[str] = [
            m
            for (m,) in con.execute(
                "SELECT DISTINCT metric FROM scores WHERE metric IS NOT NULL ORDER BY metric"
            ).fetchall()
        ]
        self._kept: dict[tuple[str, str], MetricValues] = {}

    def get(self, metric: str, arm: str) -> MetricValues:
        key = (metric, arm)
        if key in self._kept:
            return self._kept[key]
        has = np.zeros(self.n_records, dtype=bool)
        value = np.full(self.n_records, np.nan)
        agree = np.zeros(self.n_records, dtype=bool)
        if metric in self.metrics and arm in self.arms:
            got = query_table(
                self.con,
                f"SELECT i.pos, s.value, {_AGREE} AS agree FROM scores s JOIN ids i "
                "USING (record_id) WHERE s.repeat = 0 AND s.metric = ? AND s.arm = ?",
                [metric, arm],
            )
            rows = np.asarray(got["pos"], dtype=np.int64)
            has[rows] = True
            value[rows] = np.asarray(pc.fill_null(got["value"], np.nan), dtype=np.float64)
            agree[rows] = np.asarray(got["agree"], dtype=bool)
        out = MetricValues(has, value, agree)
        if len(self._kept) >= self._KEEP:
            del self._kept[next(iter(self._kept))]
        self._kept[key] = out
        return out


@dataclass(frozen=True)
class Frame:
    record_ids: pa.Array
    cluster: I64
    """Cluster code per record (records without a cluster value are their own cluster)."""
    clustered: bool
    slices: dict[str, tuple[I64, list[str]]]
    """Slice column → (code per record, −1 where null; the value of each code)."""
    distinct_input: NDArray[np.bool_]
    """The first record (by id) of each distinct request."""
    arms: dict[str, ArmData]
    scores: ScoreIndex

    @property
    def n(self) -> int:
        return len(self.record_ids)


def _codes(values: pa.ChunkedArray | pa.Array) -> tuple[I64, list[str]]:
    labels = pc.unique(pc.drop_null(values)).sort()
    idx = pc.index_in(values, value_set=labels)
    return np.asarray(pc.fill_null(idx, -1), dtype=np.int64), labels.to_pylist()


def _arm(
    con: duckdb.DuckDBPyConnection, n: int, arm: str, model: str | None, timeout_ms: float
) -> ArmData:
    sub = query_table(
        con,
        "SELECT i.pos, r.status, r.error_origin, r.latency_ms, r.cost_usd, r.ttft_ms, "
        "length(coalesce(r.output_text, '')) AS length FROM responses r JOIN ids i "
        "USING (record_id) WHERE r.repeat = 0 AND r.arm = ?",
        [arm],
    )
    where = np.asarray(sub["pos"], dtype=np.int64)
    status = sub["status"]
    ok = np.asarray(pc.fill_null(pc.equal(status, "ok"), False), dtype=bool)
    err = np.asarray(pc.fill_null(pc.equal(status, "error"), False), dtype=bool)
    own = np.asarray(pc.fill_null(pc.equal(sub["error_origin"], "candidate"), False), dtype=bool)
    code = np.where(ok, OK, np.where(err & own, OWN_ERROR, np.where(err, INFRA, MISSING)))
    state = np.zeros(n, dtype=np.int8)
    state[where] = code
    latency = np.full(n, np.nan)
    latency[where] = np.asarray(pc.fill_null(sub["latency_ms"], np.nan), dtype=np.float64)
    latency[state == OWN_ERROR] = timeout_ms  # censored at the arm's timeout
    cost = np.full(n, np.nan)
    cost[where] = np.asarray(pc.fill_null(sub["cost_usd"], np.nan), dtype=np.float64)
    length = np.full(n, np.nan)
    length[where] = np.asarray(pc.fill_null(sub["length"], 0), dtype=np.float64)
    length[state == OWN_ERROR] = 0.0
    ttft = np.full(n, np.nan)
    ttft[where] = np.asarray(pc.fill_null(sub["ttft_ms"], np.nan), dtype=np.float64)
    ttft[state == OWN_ERROR] = timeout_ms  # censored as latency is
    return ArmData(state, latency, cost, length, model, ttft, _Texts(con, arm, n))


def build_frame(scores: pa.Table, responses: pa.Table, records: pa.Table, spec: Spec) -> Frame:
    """Index records, repeat-0 responses and scores of the baseline and candidates by record."""
    return frame_of(GateTables.from_tables(scores, responses, records), spec)


def frame_of(tables: GateTables, spec: Spec) -> Frame:
    """`build_frame` over `GateTables`: responses and scores read from DuckDB as needed."""
    records = tables.records
    # (each column read in record_id order; the records' maps are not copied into that order)
    order = pc.sort_indices(records["record_id"])

    def sorted_values(column: str) -> pa.ChunkedArray:
        return column_values(records, column).take(order)

    ids = records["record_id"].take(order).combine_chunks()
    n = len(ids)
    arm_names = ["baseline", *(c.name for c in spec.candidates)]

    if spec.gate.cluster:
        keys = sorted_values(spec.gate.cluster)
        keys = pc.if_else(pc.is_null(keys), pc.binary_join_element_wise("\x00", ids, ""), keys)
        cluster = np.asarray(pc.rank(keys, sort_keys="ascending", tiebreaker="dense"), np.int64) - 1
    else:
        cluster = np.arange(n, dtype=np.int64)
    slices = {col: _codes(sorted_values(col)) for col in spec.gate.slices}
    sha = records["request_sha256"].take(order)
    sha = pc.if_else(pc.is_null(sha), pc.binary_join_element_wise("\x00", ids, ""), sha)
    _, first = np.unique(np.asarray(pc.rank(sha, tiebreaker="dense")), return_index=True)
    distinct = np.zeros(n, dtype=bool)
    distinct[first] = True

    con = tables.con
    con.register("ids", pa.table({"record_id": ids, "pos": pa.array(np.arange(n, dtype=np.int64))}))
    arms = {}
    for name in arm_names:
        arm = spec.arm_named(name)
        timeout = spec.limit_for(arm.model).timeout_s or 60.0
        arms[name] = _arm(con, n, name, arm.model, timeout * 1000.0)
    index = ScoreIndex(con, n, arm_names)
    return Frame(ids, cluster, spec.gate.cluster is not None, slices, distinct, arms, index)
