"""The store: one folder per run (the truth), a content-addressed cache, and a DuckDB catalog.

Layout (ARCHITECTURE.md, "The store")::

    catalog.duckdb                 runs, run_metrics, nights, night_metrics (an index, rebuildable
                                   from the run folders and nights/)
    nights/<series>/<night>.json   one night of a nightly series: its row and metrics
    runs/<run_id>/manifest.json    spec, hashes, versions, counts, cost, timings, stage status
    runs/<run_id>/records.parquet
    runs/<run_id>/responses/       part-*.parquet (+ journal-*.jsonl while a partition runs)
    runs/<run_id>/scores/          part-<partition>.parquet, one per scored partition
    runs/<run_id>/gate.parquet, verdict.json
    cache/                         provider responses by request key, shared by all runs
    quarantine/<ingest_id>.jsonl   rejected input lines

A store at a remote fsspec URL (``s3://bucket/prefix``) has the same layout there; the stages work
in a local staging copy that `evalpipe.store.remote` keeps in step with it (`Run.remote`).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from evalpipe.errors import StoreError
from evalpipe.spec import Spec
from evalpipe.tables import GATE, RAW_COLUMNS, RECORDS, RECORDS_LEAN, RESPONSES, SCORES, conform
from evalpipe.version import __version__

if TYPE_CHECKING:
    from evalpipe.store.remote import Remote

__all__ = [
    "STAGES",
    "CatalogRun",
    "Night",
    "Run",
    "atomic_path",
    "fetch_run",
    "find_runs",
    "latest_complete_run",
    "list_runs",
    "new_run_id",
    "open_run",
    "out_of_core_config",
    "parquet_rows",
    "read_night_metrics",
    "read_nights",
    "read_rows",
    "read_table",
    "rebuild_catalog",
    "record_night",
    "refresh_catalog",
    "store_root",
    "store_url",
    "update_catalog",
    "write_json_atomic",
    "write_rows_atomic",
    "write_table_atomic",
]

log = logging.getLogger(__name__)

STAGES = ("ingest", "replay", "score", "gate", "report")


def new_run_id(spec_name: str, now: datetime | None = None) -> str:
    """Sortable run id: ``YYYYmmdd-HHMMSS-<spec-name>-<6 hex>``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{spec_name}-{secrets.token_hex(3)}"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` to write; renamed to `path` when the block ends well,
    removed when it fails: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write Parquet atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_rows_atomic(
    parts: list[Path],
    rows: np.ndarray,
    path: Path,
    schema: pa.Schema,
    *,
    row_group_size: int,
) -> int:
    """Copy the rows numbered `rows` (ascending, across `parts` in order) into one Parquet file,
    a row group at a time (bounded memory), in row groups of `row_group_size`, atomically."""
    written, offset = 0, 0
    pending: list[pa.Table] = []
    held = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:

        def flush(final: bool) -> None:
            nonlocal pending, held, written
            table = pa.concat_tables(pending) if pending else schema.empty_table()
            # whole row groups out as they fill, so row group k holds rows k·size onwards
            whole = table.num_rows if final else table.num_rows - table.num_rows % row_group_size
            if whole:
                writer.write_table(table.slice(0, whole), row_group_size=row_group_size)
                written += whole
            rest = table.slice(whole)
            pending, held = ([rest] if rest.num_rows else []), rest.num_rows

        for part in parts:
            source = pq.ParquetFile(part)
            for g in range(source.metadata.num_row_groups):
                size = source.metadata.row_group(g).num_rows
                lo, hi = np.searchsorted(rows, [offset, offset + size])
                if hi > lo:
                    group = source.read_row_group(g).cast(schema)
                    local = rows[lo:hi] - offset
                    pending.append(group if len(local) == size else group.take(pa.array(local)))
                    held += len(local)
                    if held >= row_group_size:
                        flush(final=False)
                offset += size
        flush(final=True)
    return written


def read_rows(
    path: Path,
    start: int,
    stop: int,
    *,
    columns: list[str] | None = None,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """Rows `start` to `stop` of a Parquet file, reading only the row groups that hold them."""
    meta, offsets = _layout(path)
    # row group g holds rows offsets[g] to offsets[g + 1]: those that overlap [start, stop)
    first = int(np.searchsorted(offsets[1:], start, side="right"))
    last = int(np.searchsorted(offsets[:-1], stop, side="left"))
    if first >= last:
        base = schema if schema is not None else meta.schema.to_arrow_schema()
        return base.empty_table().select(columns or base.names)
    source = pq.ParquetFile(path, metadata=meta)
    table = source.read_row_groups(list(range(first, last)), columns=columns)
    table = table.slice(start - int(offsets[first]), stop - start)
    if schema is not None:
        target = pa.schema([schema.field(n) for n in table.column_names])
        table = table.cast(target) if table.schema != target else table
    return table


def parquet_rows(path: Path) -> int:
    """Rows of a Parquet file, from its footer (parsed once per version of the file)."""
    return int(_layout(path)[1][-1])


def _layout(path: Path) -> tuple[pq.FileMetaData, np.ndarray[Any, np.dtype[np.int64]]]:
    """A Parquet file's footer and its row groups' first rows (+ the row count last).

    Cached per path, inode, modification time and size: a partition of a 1M-record run parses a
    footer of 1,000 row groups (~10 MB, 35 ms) once, not once per read."""
    stat = path.stat()
    return _footer(str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _footer(
    path: str, _inode: int, _mtime_ns: int, _size: int
) -> tuple[pq.FileMetaData, np.ndarray[Any, np.dtype[np.int64]]]:
    meta = pq.read_metadata(path)
    rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    return meta, np.concatenate([[0], np.cumsum(rows, dtype=np.int64)]).astype(np.int64)


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write indented JSON atomically (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def read_table(path: Path, schema: pa.Schema | None = None) -> pa.Table:
    """Read a Parquet file or a folder of part files (empty folder → empty table of `schema`)."""
    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            if schema is None:
                raise StoreError(f"{path} holds no part files")
            return schema.empty_table()
        tables = [pq.read_table(p, schema=schema) for p in parts]
        return pa.concat_tables(tables)
    if not path.exists():
        raise StoreError(f"{path} does not exist; has the stage that writes it run?")
    return pq.read_table(path, schema=schema)


def out_of_core_config(memory_limit: str) -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB settings of a connection that reads a large run: its memory, where it spills
    beyond (the system's temporary folder, not the working directory), and its allocator
    handing freed memory back early.

    DuckDB's `memory_limit` bounds its buffer pool, not what its allocator keeps for reuse (it
    flushes at 128 MB, and 512 MB after bulk frees, by default): the gate over a 1M-record run
    held ~1 GB more than DuckDB accounted for. With the thresholds below its peak was 1,662 MB
    against 1,734–1,754 without, at the same speed (single runs; the rest of that excess was
    freed C-heap memory, see `evalpipe.memory`)."""
    spill = Path(tempfile.gettempdir()) / "evalpipe-duckdb"
    return {
        "memory_limit": memory_limit,
        "temp_directory": str(spill),
        "allocator_flush_threshold": "16MB",
        "allocator_bulk_deallocation_flush_threshold": "64MB",
    }


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_string(t):
        return "VARCHAR"
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ"
    return "BIGINT"


def _git_sha(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass
class Run:
    """One run's folder in the store, and its manifest."""

    run_id: str
    root: Path
    spec: Spec

    @property
    def dir(self) -> Path:
        return self.root / "runs" / self.run_id

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def remote(self) -> Remote | None:
        """The remote store this run's folder stages, None for a local store."""
        return _remote_of(self.root)

    def publish(self, *paths: Path) -> None:
        """Push these files of the store (new or changed ones) to its remote, if it has one."""
        remote = self.remote
        if remote is not None:
            remote.push(paths)

    # --- the run's tables (schemas in tables.py) ----------------------------------------------

    @property
    def responses_dir(self) -> Path:
        """Where replay writes its part files and journals."""
        return self.path("responses")

    def record_count(self) -> int:
        """Rows of records.parquet (from its footer)."""
        return parquet_rows(self._existing("records.parquet", "ingest"))

    def read_records(
        self, start: int = 0, stop: int | None = None, *, request_raw: bool = False
    ) -> pa.Table:
        """Records `start` to `stop` without the raw logged JSON no stage after ingest reads:
        a RECORDS table whose `request_raw` / `response_raw` are null (`request_raw=True`: the
        logged request body is read too — replay reads how it was sent). Reads only the row
        groups that hold them (one per replay partition)."""
        path = self._existing("records.parquet", "ingest")
        if stop is None:
            stop = parquet_rows(path)
        schema = RECORDS_LEAN
        if request_raw:
            schema = schema.append(RECORDS.field("request_raw"))
        table = read_rows(path, start, stop, columns=schema.names, schema=schema)
        for name in RAW_COLUMNS:
            if name not in schema.names:
                table = table.append_column(
                    RECORDS.field(name), pa.nulls(table.num_rows, pa.string())
                )
        return table.select(RECORDS.names)

    def read_responses(self) -> pa.Table:
        """Every response written so far (RESPONSES; empty before replay)."""
        return read_table(self.responses_dir, RESPONSES)

    @property
    def scores_dir(self) -> Path:
        """Where score writes one part file per partition (`score_part_path`)."""
        return self.path("scores")

    def score_part_path(self, part: int) -> Path:
        return self.scores_dir / f"part-{part:05d}.parquet"

    def read_scores(self) -> pa.Table:
        """Every score row (SCORES): the partitions' part files, or a single scores.parquet
        (runs of an older evalpipe, and tables written with `write_scores`)."""
        return read_table(self.scores_source(), SCORES)

    def scores_source(self) -> Path:
        """The score dataset: the scores/ folder when it holds parts, else scores.parquet."""
        if self.scores_dir.is_dir() and any(self.scores_dir.glob("part-*.parquet")):
            return self.scores_dir
        return self._existing("scores.parquet", "score")

    def scores_glob(self) -> str:
        """The score dataset as a path DuckDB's read_parquet takes (a glob over the parts)."""
        source = self.scores_source()
        return str(source / "part-*.parquet") if source.is_dir() else str(source)

    def write_scores(self, table: pa.Table) -> None:
        """Write the whole scores table as one file (scores.parquet)."""
        write_table_atomic(table, self.path("scores.parquet"))

    def write_score_part(self, part: int, table: pa.Table, *, judge_cost_usd: float) -> None:
        """Commit one partition's scores atomically; its judges' spend rides in the footer."""
        meta = {b"evalpipe.judge_cost_usd": repr(float(judge_cost_usd)).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        write_table_atomic(table, self.score_part_path(part))

    def scored_parts(self) -> dict[int, float]:
        """Partitions whose scores are committed → their judges' spend (USD)."""
        out: dict[int, float] = {}
        if not self.scores_dir.is_dir():
            return out
        for path in self.scores_dir.glob("part-*.parquet"):
            stem = path.stem.removeprefix("part-")
            if not stem.isdigit():
                continue
            meta = pq.read_schema(path).metadata or {}
            out[int(stem)] = float(meta.get(b"evalpipe.judge_cost_usd", b"0") or 0)
        return out

    def responses_glob(self) -> str:
        """The responses as a path DuckDB's read_parquet takes (a glob over the part files)."""
        return str(self.responses_dir / "part-*.parquet")

    def select_sql(self, table: str, columns: tuple[str, ...] | list[str]) -> str:
        """A DuckDB SELECT of `columns` over the run's `responses` or `scores` part files, read
        in place (out of core); no part file yet: a SELECT of no rows of the same types."""
        schema, source = (
            (RESPONSES, self.responses_glob())
            if table == "responses"
            else (SCORES, self.scores_glob() if self._has_scores() else None)
        )
        if source is None or (
            table == "responses" and not any(self.responses_dir.glob("part-*.parquet"))
        ):
            casts = ", ".join(
                f"CAST(NULL AS {_duck_type(schema.field(c).type)}) AS {c}" for c in columns
            )
            return f"SELECT {casts} WHERE false"
        quoted = source.replace("'", "''")
        return f"SELECT {', '.join(columns)} FROM read_parquet('{quoted}', union_by_name = true)"

    def _has_scores(self) -> bool:
        return self.path("scores.parquet").exists() or (
            self.scores_dir.is_dir() and any(self.scores_dir.glob("part-*.parquet"))
        )

    def read_partition_responses(self, part: int, record_ids: pa.Array) -> pa.Table:
        """The responses of partition `part`'s records, every arm and repeat (RESPONSES)."""
        import pyarrow.compute as pc

        files = sorted(self.responses_dir.glob(f"part-*-p{part:05d}.parquet"))
        if part != 0:  # a run of an older evalpipe kept every logged response in p00000
            old = self.responses_dir / "part-logged-r0-p00000.parquet"
            if (
                old.exists()
                and not (self.responses_dir / f"part-logged-r0-p{part:05d}.parquet").exists()
            ):
                files.append(old)
        if not files:
            return RESPONSES.empty_table()
        table = pa.concat_tables([pq.read_table(f, schema=RESPONSES) for f in files])
        return table.filter(pc.is_in(table["record_id"], value_set=record_ids))

    def read_gate(self) -> pa.Table:
        """The gate table (GATE; a run of an older evalpipe gets its missing columns as nulls)."""
        return conform(read_table(self._existing("gate.parquet", "gate")), GATE)

    def write_gate(self, table: pa.Table) -> None:
        write_table_atomic(table, self.path("gate.parquet"))

    def _existing(self, name: str, stage: str) -> Path:
        path = self.path(name)
        if not path.exists():
            raise StoreError(f"{path} does not exist; has the {stage} stage run?")
        return path

    # --- manifest ----------------------------------------------------------------------------

    def manifest(self) -> dict[str, Any]:
        p = self.path("manifest.json")
        if not p.exists():
            return {}
        data: dict[str, Any] = orjson.loads(p.read_bytes())
        return data

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into the manifest (dicts merged one level deep) and write it."""
        data = self.manifest()
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        write_json_atomic(data, self.path("manifest.json"))
        remote = self.remote
        if remote is not None:  # the run's new files, then the manifest: the commit
            remote.push_run(self.run_id)
        return data

    def stage_done(self, stage: str) -> bool:
        return bool(self.manifest().get("stages", {}).get(stage) == "done")

    def mark_stage(self, stage: str, seconds: float) -> None:
        self.update_manifest(stages={stage: "done"}, timings={stage: round(seconds, 3)})

    @property
    def complete(self) -> bool:
        stages = self.manifest().get("stages", {})
        return all(stages.get(s) == "done" for s in STAGES if s != "report")


def store_root(url: str) -> Path:
    """The local folder of a store path or ``file://`` URL; for a remote URL (``s3://…``), its
    local staging folder (`evalpipe.store.remote`)."""
    if "://" in url and not url.startswith("file://"):
        from evalpipe.store.remote import staging_for

        return staging_for(url)
    return Path(url.removeprefix("file://")).expanduser().resolve()


_LOCAL_ROOTS: set[Path] = set()


def _remote_of(root: Path) -> Remote | None:
    """The remote a staging folder stands for; None (and nothing imported) for a local store."""
    if root in _LOCAL_ROOTS:
        return None
    if not (root / ".store-url").is_file():  # (remote._MARK)
        _LOCAL_ROOTS.add(root)
        return None
    from evalpipe.store.remote import remote_of

    remote = remote_of(root)
    if remote is None:
        _LOCAL_ROOTS.add(root)
    return remote


def store_url(root: Path) -> str:
    """The store as the user named it: its URL when remote, else its folder."""
    remote = _remote_of(root)
    return remote.url if remote is not None else str(root)


def fetch_run(root: Path, run_id: str) -> bool:
    """Whether the store holds run `run_id`; from a remote store, its files are pulled first."""
    remote = _remote_of(root)
    if remote is not None:
        return remote.pull_run(run_id)
    return (root / "runs" / run_id / "manifest.json").is_file()


def _store_root(spec: Spec, store: str | None) -> Path:
    return store_root(store or spec.store)


def open_run(spec: Spec, run_id: str | None = None, *, store: str | None = None) -> Run:
    """Open run `run_id` (to resume it) or create a new run of the spec."""
    root = _store_root(spec, store)
    if run_id is not None:
        run = Run(run_id, root, spec)
        if not fetch_run(root, run_id):
            where = store_url(root)
            raise StoreError(
                f"no run {run_id!r} in {where}/runs; `evalpipe runs --store {where}` lists them"
            )
        return run
    run = Run(new_run_id(spec.name), root, spec)
    run.dir.mkdir(parents=True, exist_ok=False)
    run.update_manifest(
        run_id=run.run_id,
        spec_name=spec.name,
        spec_hash=spec.spec_hash(),
        spec_path=str(spec.spec_path) if spec.spec_path else None,
        spec=spec.model_dump(mode="json", by_alias=True),
        created=datetime.now(UTC).isoformat(timespec="microseconds"),
        evalpipe_version=__version__,
        seed=spec.seed,
        git_sha=_git_sha(spec.spec_dir),
        stages={},
        timings={},
        counts={},
        cost_usd={},
    )
    log.info("created run %s in %s", run.run_id, store_url(root))
    return run


def find_runs(root: Path) -> list[dict[str, Any]]:
    """Manifests of all runs in a store (a remote store's, as it holds them), newest first (by
    creation time to the microsecond, then run id: two runs started in the same second keep
    their order)."""
    remote = _remote_of(root)
    runs_dir = root / "runs"
    out = []
    if remote is not None:
        out = remote.manifests()
    elif runs_dir.is_dir():
        for d in runs_dir.iterdir():
            m = d / "manifest.json"
            if m.is_file():
                try:
                    out.append(orjson.loads(m.read_bytes()))
                except orjson.JSONDecodeError:
                    log.warning("unreadable manifest %s", m)
    out.sort(key=lambda m: (str(m.get("created") or ""), str(m.get("run_id") or "")), reverse=True)
    return out


def latest_complete_run(spec: Spec, *, store: str | None = None) -> Run | None:
    """The newest run of the same spec hash whose stages all finished, if any."""
    root = _store_root(spec, store)
    spec_hash = spec.spec_hash()
    for manifest in find_runs(root):
        stages = manifest.get("stages") or {}
        complete = all(stages.get(s) == "done" for s in STAGES if s != "report")
        if manifest.get("spec_hash") == spec_hash and complete:
            run = Run(manifest["run_id"], root, spec)
            fetch_run(root, run.run_id)  # (from a remote store: its files)
            return run
    return None


_CANDIDATES = "STRUCT(candidate VARCHAR, verdict VARCHAR)[]"

_CATALOG_DDL = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, spec_name VARCHAR, spec_hash VARCHAR, created VARCHAR,
    verdict VARCHAR, exit_code INTEGER, records BIGINT, cost_usd DOUBLE, evalpipe_version VARCHAR,
    candidates {_CANDIDATES}
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS candidates {_CANDIDATES};
CREATE TABLE IF NOT EXISTS run_metrics (
    run_id VARCHAR, candidate VARCHAR, metric VARCHAR, kind VARCHAR, gated BOOLEAN,
    critical BOOLEAN, slice_col VARCHAR, slice_value VARCHAR, n BIGINT, baseline DOUBLE,
    candidate_value DOUBLE, estimate DOUBLE, ci_low DOUBLE, ci_high DOUBLE, margin DOUBLE,
    p_value DOUBLE, verdict VARCHAR, reason VARCHAR
);
"""
"""`runs.candidates` came later: an older catalog gains it (null for the runs it already holds)."""


_CATALOG_WAIT_S = 60.0
"""Longest wait for another process's hold on catalog.duckdb (DuckDB locks the whole file)."""


@contextmanager
def _catalog_writer(root: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """catalog.duckdb opened for writing, one process at a time: runs finishing side by side on
    a cluster's workers wait in turn (a lock file beside it), and for a reader's hold to end."""
    import fcntl
    import time

    root.mkdir(parents=True, exist_ok=True)
    with (root / "catalog.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            deadline = time.monotonic() + _CATALOG_WAIT_S
            while True:
                try:
                    con = duckdb.connect(str(root / "catalog.duckdb"))
                    break
                except duckdb.IOException as exc:
                    if "lock" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            with con:
                yield con
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update_catalog(run: Run) -> None:
    """Index a finished run in catalog.duckdb (idempotent)."""
    with _catalog_writer(run.root) as con:
        con.execute(_CATALOG_DDL)
        _index_run(con, run.run_id, run.manifest(), run.path("gate.parquet"))


def _index_run(
    con: duckdb.DuckDBPyConnection, run_id: str, m: dict[str, Any], gate_path: Path
) -> None:
    candidates = [
        {"candidate": name, "verdict": c.get("verdict")}
        for name, c in (m.get("candidates") or {}).items()
    ]
    con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])
    con.execute("DELETE FROM run_metrics WHERE run_id = ?", [run_id])
    con.execute(
        "INSERT INTO runs (run_id, spec_name, spec_hash, created, verdict, exit_code, records, "
        "cost_usd, evalpipe_version, candidates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_id,
            m.get("spec_name"),
            m.get("spec_hash"),
            m.get("created"),
            m.get("verdict"),
            m.get("exit_code"),
            m.get("counts", {}).get("records"),
            m.get("cost_usd", {}).get("total"),
            m.get("evalpipe_version"),
            candidates,
        ],
    )
    if gate_path.exists():
        con.execute(
            "INSERT INTO run_metrics BY NAME SELECT run_id, candidate, metric, kind, gated, "
            "critical, slice_col, slice_value, n, baseline, candidate_value, estimate, ci_low, "
            "ci_high, margin, p_value, verdict, reason FROM read_parquet(?)",
            [str(gate_path)],
        )


class CatalogRun(NamedTuple):
    """One finished run as the catalog lists it."""

    run_id: str
    spec_name: str | None
    created: str | None
    """ISO 8601 time the run started."""
    verdict: str | None
    """The run's verdict (the worst of its candidates')."""
    verdicts: dict[str, str]
    """Candidate → its verdict, in the spec's order (empty for runs indexed before they were)."""
    records: int | None
    cost_usd: float | None
    """Replay and judge spend at list prices."""


def list_runs(
    root: Path, *, spec_name: str | None = None, limit: int | None = None
) -> list[CatalogRun]:
    """Finished runs in the store's catalog, newest first (none when there is no catalog).

    Raises:
        StoreError: the catalog cannot be read (another process is writing it, or it is damaged).
    """
    refresh_catalog(root)
    path = root / "catalog.duckdb"
    if not path.is_file():
        return []
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = {t for (t,) in con.execute("SHOW TABLES").fetchall()}
            if "runs" not in tables:
                return []
            query = con.execute(
                "SELECT * FROM runs WHERE ? IS NULL OR spec_name = ? "
                "ORDER BY created DESC NULLS LAST, run_id DESC LIMIT ?",
                [spec_name, spec_name, limit],
            )
            names = [d[0] for d in query.description]
            rows = [dict(zip(names, row, strict=True)) for row in query.fetchall()]
    except duckdb.Error as exc:
        raise StoreError(f"{path} cannot be read ({str(exc).splitlines()[0]})") from None
    return [
        CatalogRun(
            run_id=r["run_id"],
            spec_name=r["spec_name"],
            created=r["created"],
            verdict=r["verdict"],
            verdicts={c["candidate"]: c["verdict"] for c in r.get("candidates") or []},
            records=r["records"],
            cost_usd=r["cost_usd"],
        )
        for r in rows
    ]


def rebuild_catalog(root: Path, spec: Spec) -> int:
    """Recreate catalog.duckdb from the run folders and the nights' files (`nights/`); returns
    the number of runs indexed."""
    (root / "catalog.duckdb").unlink(missing_ok=True)
    if _remote_of(root) is not None:
        _pull_nights(root)
        return refresh_catalog(root)
    count = 0
    for manifest in find_runs(root):
        run = Run(manifest["run_id"], root, spec)
        if run.complete:
            update_catalog(run)
            count += 1
    _index_night_files(root, sorted((root / "nights").glob("*/*.json")))
    return count


def _index_night_files(root: Path, paths: list[Path]) -> None:
    for path in paths:
        try:
            saved = orjson.loads(path.read_bytes())
            _index_night(root, Night(**saved["night"]), saved["metrics"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("unreadable night %s (%s): not indexed", path, exc)


def refresh_catalog(root: Path) -> int:
    """A remote store's runs tables, rebuilt in its staging folder's catalog from the manifests
    and gate tables the remote holds (its run folders are the truth; `read_nights` refreshes the
    nights tables from the nights' files); with them the trends read what the remote holds. Returns the runs indexed (0, and
    nothing done, for a local store, whose catalog is kept as runs finish)."""
    remote = _remote_of(root)
    if remote is None:
        return 0
    manifests = remote.manifests()
    finished = [
        m
        for m in manifests
        if all((m.get("stages") or {}).get(s) == "done" for s in STAGES if s != "report")
    ]
    remote.mirror_gates(finished)
    with _catalog_writer(root) as con:
        con.execute(_CATALOG_DDL)
        con.execute("DELETE FROM runs")
        con.execute("DELETE FROM run_metrics")
        for m in finished:
            run_id = str(m["run_id"])
            _index_run(con, run_id, m, root / "runs" / run_id / "gate.parquet")
    return len(finished)


# --- nights (the nightly flow's catalog tables) -------------------------------------------------

_NIGHTS_DDL = """
CREATE TABLE IF NOT EXISTS nights (
    series VARCHAR, spec_name VARCHAR, night DATE, run_id VARCHAR, status VARCHAR,
    as_of VARCHAR, records BIGINT, snapshots VARCHAR, verdicts VARCHAR, findings VARCHAR,
    alerted VARCHAR, alert_status VARCHAR, PRIMARY KEY (series, night)
);
CREATE TABLE IF NOT EXISTS night_metrics (
    series VARCHAR, night DATE, run_id VARCHAR, arm VARCHAR, metric VARCHAR, n BIGINT,
    mean DOUBLE, var DOUBLE
);
"""
"""`nights`: one row per night of a nightly series (JSON columns: snapshots arm → {models,
fingerprints}, verdicts candidate → verdict, findings the active findings, alerted what the
night's alert said). `night_metrics`: per night, arm and metric the mean, its n and the variance
of the mean, which the drift sequences pool across nights."""


@dataclass(frozen=True)
class Night:
    """One night of a nightly series, as the catalog holds it."""

    series: str
    """Hash of the nightly spec (its traffic window and dated path unfilled)."""
    spec_name: str
    night: str
    """ISO date of the night."""
    run_id: str | None
    status: str
    """`ok`, `skipped: no traffic`, `failed: provider`, `failed: <error>`."""
    as_of: str
    records: int
    snapshots: dict[str, dict[str, list[str]]]
    verdicts: dict[str, str]
    findings: list[dict[str, Any]]
    """Findings active after this night (states carried from earlier nights included)."""
    alerted: dict[str, Any]
    """What this night's alert said (`new`, `cleared`), empty when it sent none."""
    alert_status: str
    """`sent`, `none`, `failed: …` or `no webhook`."""


_NIGHT_JSON = ("snapshots", "verdicts", "findings", "alerted")


def record_night(root: Path, night: Night, metrics: list[dict[str, Any]]) -> None:
    """Write (or rewrite) a night: its file `nights/<series>/<night>.json` (the truth, which
    `rebuild_catalog` reads back) and its rows in catalog.duckdb."""
    fields = {k: getattr(night, k) for k in Night.__dataclass_fields__}
    write_json_atomic(
        {"night": fields, "metrics": metrics},
        root / "nights" / night.series / f"{night.night}.json",
    )
    _index_night(root, night, metrics)
    remote = _remote_of(root)
    if remote is not None:
        remote.push([root / "nights" / night.series / f"{night.night}.json"])


def _index_night(root: Path, night: Night, metrics: list[dict[str, Any]]) -> None:
    row = {k: getattr(night, k) for k in Night.__dataclass_fields__}
    for k in _NIGHT_JSON:
        row[k] = orjson.dumps(row[k]).decode()
    root.mkdir(parents=True, exist_ok=True)  # a night without traffic may be the store's first
    with _catalog_writer(root) as con:
        con.execute(_NIGHTS_DDL)
        con.execute(
            "DELETE FROM nights WHERE series = ? AND night = ?", [night.series, night.night]
        )
        con.execute(
            "DELETE FROM night_metrics WHERE series = ? AND night = ?", [night.series, night.night]
        )
        names = list(row)
        con.execute(
            f"INSERT INTO nights ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [row[k] for k in names],
        )
        if metrics:
            con.executemany(
                "INSERT INTO night_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    [
                        night.series,
                        night.night,
                        night.run_id,
                        m["arm"],
                        m["metric"],
                        m["n"],
                        m["mean"],
                        m["var"],
                    ]
                    for m in metrics
                ],
            )


def _pull_nights(root: Path) -> None:
    """A remote store's nights: their files into the staging folder, its nights tables rebuilt
    from them (nothing done for a local store)."""
    remote = _remote_of(root)
    if remote is None:
        return
    files = remote.pull_small("nights")
    with _catalog_writer(root) as con:
        con.execute(_NIGHTS_DDL)
        con.execute("DELETE FROM nights")
        con.execute("DELETE FROM night_metrics")
    _index_night_files(root, files)


def _catalog_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {t for (t,) in con.execute("SHOW TABLES").fetchall()}


def read_nights(
    root: Path, *, series: str | None = None, spec_name: str | None = None
) -> list[Night]:
    """The nights of a series (or of a spec name), oldest first; none without a catalog."""
    _pull_nights(root)
    path = root / "catalog.duckdb"
    if not path.is_file():
        return []
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            if "nights" not in _catalog_tables(con):
                return []
            query = con.execute(
                "SELECT * FROM nights WHERE (? IS NULL OR series = ?) AND (? IS NULL OR "
                "spec_name = ?) ORDER BY night, series",
                [series, series, spec_name, spec_name],
            )
            names = [d[0] for d in query.description]
            rows = [dict(zip(names, r, strict=True)) for r in query.fetchall()]
    except duckdb.Error as exc:
        raise StoreError(f"{path} cannot be read ({str(exc).splitlines()[0]})") from None
    out = []
    for r in rows:
        for k in _NIGHT_JSON:
            r[k] = orjson.loads(r[k]) if r[k] else ({} if k != "findings" else [])
        r["night"] = r["night"].isoformat()
        out.append(Night(**r))
    return out


def read_night_metrics(root: Path, series: str) -> list[dict[str, Any]]:
    """Per night, arm and metric: n, mean and the variance of the mean, oldest night first."""
    _pull_nights(root)
    path = root / "catalog.duckdb"
    if not path.is_file():
        return []
    with duckdb.connect(str(path), read_only=True) as con:
        if "night_metrics" not in _catalog_tables(con):
            return []
        query = con.execute(
            "SELECT strftime(night, '%Y-%m-%d') AS night, run_id, arm, metric, n, mean, var "
            "FROM night_metrics WHERE series = ? ORDER BY night, arm, metric",
            [series],
        )
        names = [d[0] for d in query.description]
        return [dict(zip(names, r, strict=True)) for r in query.fetchall()]
