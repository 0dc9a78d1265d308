"""Ingest: logged traffic in many formats → canonical records (FORMATS.md); bad lines → quarantine.

Users and flows import from here only: `ingest_paths` (path → records table),
`ingest_to_parquet` (the same, written as part files with bounded memory), `ingest_selected`
(ingest and select into one Parquet file, bounded memory), `ingest_to_folder` (what
``evalpipe ingest --out`` writes: records parts and quarantine.jsonl), `select_records`
(window, dedupe, sample; `select_rows` for row numbers), `write_quarantine`, `detect_format`, `redact_pii`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from evalpipe.errors import NoUsableRecordsError
from evalpipe.ingest.detect import detect_format
from evalpipe.ingest.formats import ADAPTERS, FORMAT_NAMES
from evalpipe.ingest.reader import BATCH_ROWS, Reader
from evalpipe.ingest.selection import (
    Selection,
    select_records,
    select_rows,
    selection_columns,
    selection_table,
)
from evalpipe.pii import redact_pii
from evalpipe.store import atomic_path, write_rows_atomic
from evalpipe.tables import RECORDS

if TYPE_CHECKING:
    from evalpipe.spec import Spec

__all__ = [
    "ADAPTERS",
    "FORMAT_NAMES",
    "IngestResult",
    "ParquetIngest",
    "SelectedIngest",
    "Selection",
    "detect_format",
    "ingest_paths",
    "ingest_selected",
    "ingest_to_folder",
    "ingest_to_parquet",
    "redact_pii",
    "select_records",
    "select_rows",
    "selection_columns",
    "selection_of",
    "write_quarantine",
]

log = logging.getLogger(__name__)

_PART: Final = "part-{:05d}.parquet"
"""Name of the n-th records part file."""
_PARTS: Final = "part-*.parquet"

# Columns worth dictionary-encoding in Parquet; the JSON and text columns are all distinct.
_DICTIONARY_COLUMNS = [
    "source_format",
    "source_file",
    "provider",
    "model",
    "response_model",
    "system_fingerprint",
    "finish_reason",
    "status",
    "error_type",
]


class IngestResult(NamedTuple):
    """What `ingest_paths` read."""

    records: pa.Table
    """The canonical records (schema `tables.RECORDS`)."""
    quarantine: pa.Table
    """Rejected input (schema `tables.QUARANTINE`): file, line, field, reason, raw (truncated)."""
    counts: dict[str, int]
    """files, read (items), ingested, quarantined, skipped."""
    formats: dict[str, str]
    """Format detected (or forced) per file."""
    records_by_format: dict[str, int]
    """Records ingested per source format (a file of mixed formats counts under each)."""
    skipped_by_reason: dict[str, int]
    """Spans and observations left out on purpose, by reason (``not a generation`` …)."""


class SelectedIngest(NamedTuple):
    """What `ingest_selected` (or `ingest_to_folder`) wrote."""

    records: int
    """Records written (after selection)."""
    quarantine: pa.Table
    counts: dict[str, int]
    """files, read, ingested, quarantined, skipped, then the selection's out_of_window,
    duplicates_dropped, sampled_out, selected."""
    formats: dict[str, str]
    """Format detected (or forced) per file."""
    records_by_format: dict[str, int]
    """Records ingested per source format (a file of mixed formats counts under each)."""
    skipped_by_reason: dict[str, int]
    """Spans and observations left out on purpose, by reason (``not a generation`` …)."""
    written: tuple[Path, ...] = ()
    """What `ingest_to_folder` wrote: the records folder, and quarantine.jsonl when any."""


class ParquetIngest(NamedTuple):
    """What `ingest_to_parquet` wrote."""

    parts: list[Path]
    """The part files, in input order (each a RECORDS table)."""
    quarantine: pa.Table
    counts: dict[str, int]
    formats: dict[str, str]
    """Format detected (or forced) per file."""
    records_by_format: dict[str, int]
    """Records ingested per source format (a file of mixed formats counts under each)."""
    skipped_by_reason: dict[str, int]
    """Spans and observations left out on purpose, by reason (``not a generation`` …)."""


def _no_records(path: str | Path, reader: Reader, quarantine: pa.Table) -> NoUsableRecordsError:
    hint = ""
    if quarantine.num_rows:
        first = quarantine.slice(0, 1).to_pylist()[0]
        hint = f"First problem: line {first['line']}: {first['field'] or '-'}: {first['reason']}."
    return NoUsableRecordsError(
        str(path),
        f"no usable record ({reader.counts['read']} read, {quarantine.num_rows} quarantined)",
        hint,
    )


def write_quarantine(quarantine: pa.Table, path: str | Path) -> Path:
    """Write quarantine rows as JSON Lines (one rejected input per line), atomically."""
    out = Path(path)
    with atomic_path(out) as tmp, tmp.open("wb") as fh:
        for row in quarantine.to_pylist():
            fh.write(orjson.dumps(row) + b"\n")
    return out


def ingest_selected(
    path: str | Path,
    dest: Path,
    *,
    format: str = "auto",
    redact_quarantine: bool = True,
    selection: Selection | None = None,
    row_group_size: int = BATCH_ROWS,
    part_rows: int = 250_000,
) -> SelectedIngest:
    """Ingest and select into one Parquet file `dest`, with bounded memory however large the logs.

    The adapters write part files beside `dest` as they read; the selection reads only the
    columns it needs; the kept rows are copied part by part into `dest`, in row groups of
    `row_group_size`. The part files are removed.

    Raises:
        InputError, NoUsableRecordsError: as `ingest_paths`.
    """
    scratch = dest.parent / f".{dest.name}.parts"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        written = ingest_to_parquet(
            path,
            scratch,
            format=format,
            redact_quarantine=redact_quarantine,
            part_rows=part_rows,
            batch_rows=min(BATCH_ROWS, part_rows),
        )
        selection = selection or Selection()
        stratify = selection.stratify
        narrow = pa.concat_tables(
            [
                selection_table(pq.read_table(part, columns=selection_columns(stratify)), stratify)
                for part in written.parts
            ]
        )
        rows, selected = select_rows(narrow, selection)
        kept = write_rows_atomic(written.parts, rows, dest, RECORDS, row_group_size=row_group_size)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    counts = {**written.counts, **selected}
    return SelectedIngest(
        kept,
        written.quarantine,
        {k: int(v) for k, v in counts.items()},
        written.formats,
        written.records_by_format,
        written.skipped_by_reason,
    )


def selection_of(spec: Spec) -> Selection:
    """The selection the spec's `traffic:` block asks for."""
    traffic = spec.traffic
    return Selection(
        window_start=traffic.window.start if traffic.window else None,
        window_end=traffic.window.end if traffic.window else None,
        dedupe=traffic.dedupe,
        sample_n=traffic.sample.n if traffic.sample else None,
        stratify=tuple(traffic.sample.stratify) if traffic.sample else (),
        seed=spec.seed,
    )


def ingest_paths(
    path: str | Path,
    *,
    format: str = "auto",
    redact_quarantine: bool = True,
    workers: int | None = 1,
) -> IngestResult:
    """Read logged traffic into canonical records.

    Args:
        path: a file (``.jsonl``, ``.jsonl.gz``, ``.json``, ``.parquet``), a folder (every log
            file under it) or a glob.
        format: an adapter name (``openai_chat`` or ``openai_chat@1``), or ``auto`` to detect
            each file's format from its first records.
        redact_quarantine: redact PII in the quarantined raw lines.
        workers: processes converting large JSON Lines files (None: as `ingest_to_parquet`
            decides). The records come back in input order either way.

    Returns:
        Records, quarantine rows and counts. A bad line is a quarantine row, never an exception.

    Raises:
        InputError: the path is missing or unreadable, or `format` is unknown.
        NoUsableRecordsError: nothing usable was found.
    """
    reader = Reader(path, format=format, workers=workers)
    tables = list(reader.batches())
    records = pa.concat_tables(tables) if tables else RECORDS.empty_table()
    quarantine = reader.quarantine.to_table(redact=redact_quarantine)
    log.info(
        "ingested %d records from %d files, %d quarantined, %d skipped",
        records.num_rows,
        len(reader.files),
        quarantine.num_rows,
        reader.counts["skipped"],
    )
    if records.num_rows == 0:
        raise _no_records(path, reader, quarantine)
    return IngestResult(
        records,
        quarantine,
        reader.counts,
        reader.formats,
        reader.records_by_format,
        reader.skipped_by_reason,
    )


def ingest_to_parquet(
    path: str | Path,
    out_dir: str | Path,
    *,
    format: str = "auto",
    redact_quarantine: bool = True,
    part_rows: int = 250_000,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
) -> ParquetIngest:
    """`ingest_paths`, written as ``part-NNNNN.parquet`` files as it goes (bounded memory).

    Each part holds up to `part_rows` records in row groups of `batch_rows`; a part is written
    to a temporary name and renamed when complete. `workers` processes convert large JSON Lines
    files of stateless formats (None: max(2, CPUs - 1), up to 8, for files over 64 MiB on
    machines with 2 CPUs or more; 1: none).

    Raises:
        InputError: as `ingest_paths`.
        NoUsableRecordsError: nothing usable was found (no part is left behind).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reader = Reader(path, format=format, batch_rows=batch_rows, workers=workers)
    parts: list[Path] = []
    writer: pq.ParquetWriter | None = None
    tmp: Path | None = None
    rows = 0

    def close() -> None:
        nonlocal writer, tmp, rows
        if writer is not None and tmp is not None:
            writer.close()
            final = out / _PART.format(len(parts))
            os.replace(tmp, final)
            parts.append(final)
        writer, tmp, rows = None, None, 0

    try:
        for batch in reader.batches():
            if writer is None:
                tmp = out / f".{_PART.format(len(parts))}.tmp"
                writer = pq.ParquetWriter(
                    tmp, RECORDS, compression="zstd", use_dictionary=_DICTIONARY_COLUMNS
                )
            writer.write_table(batch, row_group_size=batch_rows)
            rows += batch.num_rows
            if rows >= part_rows:
                close()
        close()
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    quarantine = reader.quarantine.to_table(redact=redact_quarantine)
    if not parts:
        raise _no_records(path, reader, quarantine)
    return ParquetIngest(
        parts,
        quarantine,
        reader.counts,
        reader.formats,
        reader.records_by_format,
        reader.skipped_by_reason,
    )


def ingest_to_folder(
    path: str | Path,
    out: Path | None,
    *,
    format: str = "auto",
    selection: Selection | None = None,
    redact_quarantine: bool = True,
) -> SelectedIngest:
    """Ingest into ``out/records/`` (Parquet parts) and ``out/quarantine.jsonl``.

    What ``evalpipe ingest --out`` writes: an earlier ingest into the same folder is replaced.
    Without an active selection the parts stream out with bounded memory (`ingest_to_parquet`);
    with one, the kept records are one part (`ingest_selected`). `out` None: the records go to a
    scratch folder that is removed, for the counts alone.

    Raises:
        InputError, NoUsableRecordsError: as `ingest_paths`.
    """
    selection = selection or Selection()
    with tempfile.TemporaryDirectory(prefix="evalpipe-ingest-") as scratch:
        records_dir = out / "records" if out is not None else Path(scratch)
        if out is not None:
            for old in [*records_dir.glob(_PARTS), out / "quarantine.jsonl"]:
                old.unlink(missing_ok=True)
        if selection.active:
            result = ingest_selected(
                path,
                records_dir / _PART.format(0),
                format=format,
                redact_quarantine=redact_quarantine,
                selection=selection,
            )
        else:
            parts = ingest_to_parquet(
                path, records_dir, format=format, redact_quarantine=redact_quarantine
            )
            result = SelectedIngest(
                parts.counts["ingested"],
                parts.quarantine,
                parts.counts,
                parts.formats,
                parts.records_by_format,
                parts.skipped_by_reason,
            )
    if out is None:
        return result
    written = [records_dir]
    if result.quarantine.num_rows:
        written.append(write_quarantine(result.quarantine, out / "quarantine.jsonl"))
    return result._replace(written=tuple(written))
