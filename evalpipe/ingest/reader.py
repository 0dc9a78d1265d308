"""The ingestion loop: files → adapter → canonical rows in batches, bad items → quarantine.

Rows are yielded as RECORDS tables of at most `batch_rows` rows, so a caller that writes each
batch out (``ingest_to_parquet``) holds one batch at a time whatever the input size. Every span
and observation ends ingested, quarantined with a reason, or skipped with a reason (counted in
`skipped_by_reason`). A large
JSON Lines file of a stateless format is converted by worker processes, chunk by chunk, in
order; the duplicate-id check stays in this process.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.errors import InputError
from evalpipe.ingest.detect import detect_file, detect_value
from evalpipe.ingest.files import (
    BadLine,
    is_parquet,
    iter_items,
    iter_lines,
    line_item,
    list_files,
)
from evalpipe.ingest.formats import adapter_class
from evalpipe.ingest.quarantine import QuarantineColumns
from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    RecordColumns,
    Row,
    Skipped,
    sha256_hex,
)

__all__ = ["BATCH_ROWS", "PARALLEL_MIN_BYTES", "Reader"]

log = logging.getLogger(__name__)

BATCH_ROWS: Final = 20_000
"""Rows per yielded batch (about 100 MB of Python strings at 5 KB a row)."""

PARALLEL_MIN_BYTES: Final = 64 * 1024 * 1024
"""Files smaller than this are read in-process even when workers are allowed."""

_CHUNK_LINES: Final = 2000


class Reader:
    """One ingest call: reads a path, yields RECORDS batches, collects quarantine and counts."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        format: str = "auto",
        batch_rows: int = BATCH_ROWS,
        workers: int | None = 1,
    ):
        self.files = list_files(path) if path is not None else []
        self.forced = None if format in ("", "auto") else adapter_class(format)
        self.batch_rows = batch_rows
        self.workers = workers
        self.quarantine = QuarantineColumns()
        self.counts: dict[str, int] = {
            "files": len(self.files),
            "read": 0,
            "ingested": 0,
            "quarantined": 0,
            "skipped": 0,
        }
        self.formats: dict[str, str] = {}
        self.records_by_format: dict[str, int] = {}
        """Records ingested per source format (a file of mixed formats counts under each)."""
        self.skipped_by_reason: dict[str, int] = {}
        """Spans and observations left out on purpose, by reason (``not a generation`` …)."""
        self._adapters: dict[str, Adapter] = {}
        self._ids: set[str] = set()
        self._columns = RecordColumns()

    # --- public -------------------------------------------------------------------------------

    def batches(self) -> Iterator[pa.Table]:
        """RECORDS tables, in input order, `batch_rows` rows at most each."""
        # Millions of small acyclic objects make the cyclic GC rescan them again and again
        # (it doubled ingest time); nothing here builds cycles.
        enabled = gc.isenabled()
        gc.disable()
        try:
            for path in self.files:
                yield from self._file(path)
            for adapter in self._adapters.values():
                for loc, result in adapter.finish():
                    self._take(adapter, loc, result, 0)
                    if self._columns.n >= self.batch_rows:
                        yield from self._flush()
            yield from self._flush()
        finally:
            if enabled:
                gc.enable()
        self.counts["quarantined"] = len(self.quarantine)

    # --- per file -----------------------------------------------------------------------------

    def _adapter(self, fmt: type[Adapter]) -> Adapter:
        adapter = self._adapters.get(fmt.name)
        if adapter is None:
            adapter = self._adapters[fmt.name] = fmt()
        return adapter

    def _file(self, path: Path) -> Iterator[pa.Table]:
        file = str(path)
        try:
            if self.forced is not None:
                cls = self.forced
            else:
                name = detect_file(path)
                cls = adapter_class(name)
        except InputError as exc:
            log.warning("%s", exc)
            yield from self._undetected(path, exc.problem)
            return
        adapter = self._adapter(cls)
        self.formats[file] = adapter.source_format
        log.info("%s: %s", file, adapter.source_format)
        if is_parquet(path):
            yield from self._parquet(adapter, path)
            return
        auto = self.forced is None
        workers = self._workers_for(path, cls)
        if workers > 1:
            yield from self._flush()
            yield from self._file_parallel(path, cls, workers, auto=auto)
            return
        for line, raw, value in iter_items(path):
            self.counts["read"] += 1
            if raw is None:  # an element of a JSON array: its own JSON stands for the line
                raw = _stable_bytes(value)
            loc = Location(file, line, raw)
            if isinstance(value, BadLine):
                self._bad(loc, None, value.reason)
                continue
            self._convert(adapter, loc, value, auto=auto)
            if self._columns.n >= self.batch_rows:
                yield from self._flush()

    def _parquet(self, adapter: Adapter, path: Path) -> Iterator[pa.Table]:
        read_parquet = getattr(adapter, "read_parquet", None)
        if read_parquet is None:
            self._bad(Location(str(path), 0), None, f"{adapter.name} does not read Parquet")
            return
        for loc, result in read_parquet(path):
            self.counts["read"] += result.num_rows if isinstance(result, pa.Table) else 1
            if isinstance(result, pa.Table):
                yield from self._flush()
                yield from self._whole_table(result)
            else:
                self._take(adapter, loc, result, 0)
            if self._columns.n >= self.batch_rows:
                yield from self._flush()

    def _whole_table(self, table: pa.Table) -> Iterator[pa.Table]:
        """A table already converted (records.parquet, a worker's chunk): check its ids only."""
        ids = table["record_id"].to_pylist()
        seen = self._ids
        fresh = set(ids)
        if len(fresh) == len(ids) and None not in fresh and seen.isdisjoint(fresh):
            seen |= fresh
            self._ingested(table)
            yield table
            return
        keep = []
        lines = table["source_line"].to_pylist()
        files = table["source_file"].to_pylist()
        raws = table["request_raw"].to_pylist()
        for i, rid in enumerate(ids):
            if rid is None or rid in seen:
                raw = raws[i]
                self.quarantine.add(
                    files[i] or "",
                    lines[i],
                    "record_id",
                    "missing record_id" if rid is None else "duplicate record_id",
                    raw if isinstance(raw, str) else None,
                )
                keep.append(False)
            else:
                seen.add(rid)
                keep.append(True)
        out = table.filter(pa.array(keep, pa.bool_()))
        self._ingested(out)
        if out.num_rows:
            yield out

    # --- worker processes ---------------------------------------------------------------------

    def _workers_for(self, path: Path, cls: type[Adapter]) -> int:
        if not cls.parallel_safe or self.workers == 1:
            return 1
        if self.workers is None:
            # Measured on an idle 2-vCPU machine, 1M records (2 GB, 218 MB gzip): 1 process
            # 61.8 s, 2 workers 45.5 s. Below 64 MiB the workers' start-up costs more than they give.
            cpus = os.cpu_count() or 1
            if path.stat().st_size < PARALLEL_MIN_BYTES or cpus < 2:
                return 1
            return min(max(2, cpus - 1), 8)
        return max(1, self.workers)

    def _file_parallel(
        self, path: Path, cls: type[Adapter], workers: int, *, auto: bool = False
    ) -> Iterator[pa.Table]:
        """Convert a JSON Lines file in worker processes, `_CHUNK_LINES` lines per task."""
        file = str(path)
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init)
        try:
            # Workers re-import the caller's main module; a script without a `__main__` guard
            # breaks them at start-up, which this probe finds before any row is produced.
            pool.submit(_worker_init).result()
        except BrokenProcessPool:
            log.warning("worker processes cannot start here; reading %s in-process", file)
            pool.shutdown(cancel_futures=True)
            self.workers = 1
            yield from self._file(path)
            return
        pending: deque[Future[_ChunkResult]] = deque()
        chunk: list[tuple[int, bytes, bool]] = []
        done: list[pa.Table] = []
        with pool:

            def drain(keep: int) -> Iterator[pa.Table]:
                # chunks are gathered into batches of `batch_rows`, as in-process reading makes
                while len(pending) > keep:
                    done.extend(self._merge(pending.popleft().result()))
                    if sum(t.num_rows for t in done) >= self.batch_rows:
                        yield pa.concat_tables(done)
                        done.clear()

            for item in iter_lines(path):
                chunk.append(item)
                if len(chunk) >= _CHUNK_LINES:
                    pending.append(pool.submit(_convert_chunk, cls.name, file, chunk, auto))
                    chunk = []
                    yield from drain(2 * workers)
            if chunk:
                pending.append(pool.submit(_convert_chunk, cls.name, file, chunk, auto))
            yield from drain(0)
            if done:
                yield pa.concat_tables(done)

    def _merge(self, result: _ChunkResult) -> Iterator[pa.Table]:
        table, quarantine, skipped, read = result
        self.counts["read"] += read
        for file, line, field, reason, raw in zip(*quarantine, strict=True):
            self.quarantine.add(file, line, field, reason, raw)
        for reason, n in skipped.items():
            self._skip(reason, n)
        if table.num_rows:
            yield from self._whole_table(table)

    def _undetected(self, path: Path, problem: str) -> Iterator[pa.Table]:
        """Quarantine every line of a file whose format cannot be told, with the reason."""
        file = str(path)
        if is_parquet(path):
            self._bad(Location(file, 0), None, problem)
            return
        empty = True
        for line, raw, value in iter_items(path):
            empty = False
            self.counts["read"] += 1
            loc = Location(file, line, raw)
            if isinstance(value, BadLine):
                self._bad(loc, None, value.reason)
            else:
                self._bad(loc, None, "record of no known format")
        if empty:
            self._bad(Location(file, 0), None, "empty file")
        return
        yield

    # --- per item -----------------------------------------------------------------------------

    def _convert(self, adapter: Adapter, loc: Location, value: Any, *, auto: bool = False) -> None:
        if auto and not adapter.sniff(value):
            # a file of mixed formats: a record its detected adapter does not recognise but
            # another does is read by that one (stateless adapters), or quarantined as such
            other = detect_value(value)
            if other is not None and other != adapter.source_format:
                cls = adapter_class(other)
                if not cls.parallel_safe:
                    self._bad(
                        loc,
                        None,
                        f"this record is {other}, the file {adapter.source_format}: "
                        "split the file by format, or pass --format",
                    )
                    return
                adapter = self._adapter(cls)
        try:
            rows = adapter.convert(value, loc)
        except BadRecord as exc:
            self._bad(loc, exc.field, self._explain(adapter, value, exc.reason))
            return
        except Exception as exc:  # an adapter bug must cost one line, not the run
            log.debug("adapter %s failed on %s:%s", adapter.name, loc.file, loc.line, exc_info=True)
            self._bad(loc, None, f"cannot convert: {type(exc).__name__}: {exc}")
            return
        for index, row in enumerate(rows):
            self._take(adapter, loc, row, index if len(rows) > 1 else 0)

    def _take(
        self, adapter: Adapter, loc: Location, result: Row | BadRecord | Skipped, index: int
    ) -> None:
        """One adapter result: a row to add, a bad record to quarantine, or a skip to count."""
        if isinstance(result, BadRecord):
            self._bad(loc, result.field, result.reason)
        elif isinstance(result, Skipped):
            self._skip(result.reason)
        else:
            self._add(adapter, loc, result, index)

    def _explain(self, adapter: Adapter, value: Any, reason: str) -> str:
        other = detect_value(value)
        if other is not None and other != adapter.source_format:
            return f"{reason} (the record looks like {other}, the file is {adapter.source_format})"
        return reason

    def _add(self, adapter: Adapter, loc: Location, row: Row, index: int) -> None:
        rid = row.get("record_id")
        if rid is None:
            raw = loc.raw if loc.raw is not None else _stable_bytes(row.get("request_raw"))
            rid = sha256_hex(raw if index == 0 else raw + b"#%d" % index)
            row["record_id"] = rid
        if rid in self._ids:
            self._bad(loc, "record_id", "duplicate record_id")
            return
        self._ids.add(rid)
        if row.get("source_file") is None:
            row["source_file"] = loc.file
            row["source_line"] = loc.line
        row.setdefault("source_format", adapter.source_format)
        if row.get("provider") is None:
            row["provider"] = adapter.provider
        self._columns.add(row)

    def _bad(self, loc: Location, field: str | None, reason: str) -> None:
        self.quarantine.add(loc.file, loc.line, field, reason, loc.raw)

    def _skip(self, reason: str, n: int = 1) -> None:
        self.counts["skipped"] += n
        self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + n

    def _flush(self) -> Iterator[pa.Table]:
        if not self._columns.n:
            return
        table, bad = self._columns.to_table_checked()
        for file, line, reason in bad:
            self.quarantine.add(file, line, None, reason)
        self._ingested(table)
        if table.num_rows:
            yield table

    def _ingested(self, table: pa.Table) -> None:
        self.counts["ingested"] += table.num_rows
        if table.num_rows:
            for entry in pc.value_counts(table["source_format"]).to_pylist():
                name = str(entry["values"])
                self.records_by_format[name] = self.records_by_format.get(name, 0) + entry["counts"]


def _stable_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


_ChunkResult = tuple[pa.Table, Sequence[list[Any]], dict[str, int], int]
"""(records, quarantine columns, skips by reason, items read) of one chunk."""

_WORKER: dict[str, Reader] = {}


def _worker_init() -> None:
    gc.disable()


def _convert_chunk(
    fmt: str, file: str, lines: list[tuple[int, bytes, bool]], auto: bool = False
) -> _ChunkResult:
    """The `_ChunkResult` of one chunk of lines, in a worker process."""
    reader = _WORKER.get(fmt)
    if reader is None:
        reader = _WORKER[fmt] = Reader(None, format=fmt)
        reader._ids = _NoIds()
    adapter = reader._adapter(adapter_class(fmt))
    for line_no, line, cut in lines:
        value = line_item(line, cut)
        loc = Location(file, line_no, line)
        if isinstance(value, BadLine):
            reader._bad(loc, None, value.reason)
        else:
            reader._convert(adapter, loc, value, auto=auto)
    table, bad = reader._columns.to_table_checked()
    for bad_file, bad_line, reason in bad:
        reader.quarantine.add(bad_file, bad_line, None, reason)
    q = reader.quarantine
    out = (q.file, q.line, q.field, q.reason, q.raw)
    skipped = reader.skipped_by_reason
    reader.quarantine, reader.skipped_by_reason = QuarantineColumns(), {}
    return table, out, skipped, len(lines)


class _NoIds(set[str]):
    """The id set of a worker: ids are checked in the main process, so nothing is kept."""

    def __contains__(self, item: object) -> bool:
        return False

    def add(self, item: str) -> None:
        pass
