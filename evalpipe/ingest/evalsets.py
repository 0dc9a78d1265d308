"""Golden eval sets: curated cases replayed beside the logged traffic (spec `eval_sets:`).

An eval set is a folder (or one file) of JSON Lines cases, one object a line::

    {"id": "empty-input", "request": {...}, "reference": "..." | [tool calls],
     "tags": ["edge", "empty"], "metadata": {"feature": "answer"}}

`request` is a request body as a provider's API takes it (OpenAI chat completions or Anthropic
messages: the format is detected as for traffic); `reference` (optional) is the answer the
reference checks and judges compare with (text, or the expected tool calls as JSON); `tags`
(optional) are kept as the attribute `eval_tags` (comma-joined); `metadata` (optional) becomes
attributes, as a log's metadata does, so `where:` and slices see them.

Each case goes through the same adapters as logged traffic (a case is a log line without a
response) and becomes a record with id ``<set>:<id>``, the attribute ``eval_set = <set>`` (the
slice `spec.EVAL_SET_COLUMN`) and its own file and line as `source_file` / `source_line`. A case
that is not an object with a `request` object is a quarantine row, as a bad log line is.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalpipe.errors import InputError
from evalpipe.ingest.files import BadLine, iter_items
from evalpipe.logfiles import list_files
from evalpipe.pii import redact_pii
from evalpipe.spec import EVAL_SET_COLUMN
from evalpipe.store import atomic_path
from evalpipe.tables import QUARANTINE, RECORDS, from_rows

if TYPE_CHECKING:
    from evalpipe.spec import Spec

__all__ = ["EvalSets", "append_records", "ingest_eval_set", "ingest_eval_sets"]

log = logging.getLogger(__name__)

TAGS_ATTRIBUTE: Final = "eval_tags"
_CASE_SUFFIXES: Final = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
_RAW_LIMIT: Final = 2000


class EvalSets(NamedTuple):
    """What `ingest_eval_sets` read."""

    records: pa.Table
    """Every set's records (tables.RECORDS), set after set."""
    quarantine: pa.Table
    """Cases that could not be read (tables.QUARANTINE)."""
    counts: dict[str, int]
    """Records per eval set name."""


def _case_files(where: Path) -> list[Path]:
    files = [f for f in list_files(where) if f.name.lower().endswith(_CASE_SUFFIXES)]
    if not files:
        raise InputError(str(where), "the eval set holds no cases", "Expected *.jsonl files.")
    return files


def ingest_eval_set(
    name: str, where: Path, *, redact_quarantine: bool = True
) -> tuple[pa.Table, pa.Table]:
    """(records, quarantine) of one eval set's cases.

    Raises:
        InputError: no case file there.
        NoUsableRecordsError: no case could be read.
    """
    from evalpipe.ingest import ingest_paths

    bad: list[dict[str, object]] = []
    origin: list[tuple[str, int]] = []  # (file, line) of each line written for the adapters
    with tempfile.TemporaryDirectory(prefix="evalpipe-evalset-") as scratch:
        staged = Path(scratch) / "cases.jsonl"
        with staged.open("wb") as out:
            for f in _case_files(where):
                for line_no, raw, item in iter_items(f):
                    problem = _problem(item)
                    if problem is not None:
                        text = (
                            raw.decode("utf-8", "replace") if raw else orjson.dumps(item).decode()
                        )
                        bad.append(
                            {
                                "file": str(f),
                                "line": line_no,
                                "field": problem[0],
                                "reason": problem[1],
                                "raw": text[:_RAW_LIMIT],
                            }
                        )
                        continue
                    assert isinstance(item, dict)
                    out.write(orjson.dumps(_as_log(item, name, f, line_no)) + b"\n")
                    origin.append((str(f), line_no))
        result = ingest_paths(staged, redact_quarantine=redact_quarantine)
        records = _located(result.records, origin)
        theirs = _located_quarantine(result.quarantine, staged, origin)
    quarantine = pa.concat_tables([from_rows(bad, QUARANTINE), theirs])
    if redact_quarantine and quarantine.num_rows:
        quarantine = quarantine.set_column(
            quarantine.schema.get_field_index("raw"), "raw", redact_pii(quarantine["raw"])
        )
    return records, quarantine


def _problem(item: object) -> tuple[str | None, str] | None:
    if isinstance(item, BadLine):
        return None, item.reason
    if not isinstance(item, dict):
        return None, "an eval case must be a JSON object"
    if not isinstance(item.get("request"), dict):
        return "request", "an eval case needs a `request` object (the API request body)"
    tags = item.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        return "tags", "tags must be a list of strings"
    if item.get("metadata") is not None and not isinstance(item.get("metadata"), dict):
        return "metadata", "metadata must be an object"
    case_id = item.get("id")
    if case_id is not None and (isinstance(case_id, bool) or not isinstance(case_id, str | int)):
        return "id", "id must be a string or an integer"
    return None


def _as_log(case: dict[str, object], name: str, file: Path, line: int) -> dict[str, object]:
    """The case as a request-only log line that the traffic adapters read."""
    metadata = dict(case.get("metadata") or {})  # type: ignore[call-overload]
    case_id = case.get("id")
    metadata["request_id"] = f"{name}:{case_id if case_id is not None else f'{file.name}:{line}'}"
    metadata[EVAL_SET_COLUMN] = name
    tags = case.get("tags")
    if tags:
        metadata[TAGS_ATTRIBUTE] = ",".join(tags)  # type: ignore[arg-type]
    out: dict[str, object] = {"request": case["request"], "metadata": metadata}
    if case.get("reference") is not None:
        out["reference"] = case["reference"]
    return out


def _located(records: pa.Table, origin: list[tuple[str, int]]) -> pa.Table:
    """The records with their case's own file and line (not the staged copy's)."""
    idx = pc.subtract(records["source_line"], 1)
    files = pa.array([f for f, _ in origin], pa.string()).take(idx)
    lines = pa.array([n for _, n in origin], pa.int64()).take(idx)
    records = records.set_column(
        records.schema.get_field_index("source_file"), "source_file", files
    )
    return records.set_column(records.schema.get_field_index("source_line"), "source_line", lines)


def _located_quarantine(
    quarantine: pa.Table, staged: Path, origin: list[tuple[str, int]]
) -> pa.Table:
    rows = quarantine.to_pylist()  # a few bad cases at most
    for row in rows:
        line = row.get("line")
        if row.get("file") == str(staged) and isinstance(line, int) and 0 < line <= len(origin):
            row["file"], row["line"] = origin[line - 1]
    return from_rows(rows, QUARANTINE)


def ingest_eval_sets(spec: Spec, *, redact_quarantine: bool = True) -> EvalSets:
    """Every eval set the spec lists, as records after one another.

    Raises:
        SpecError: an eval set that cannot be found.
        InputError: one holding no case file, or ids repeated across sets.
        NoUsableRecordsError: one whose cases are all unreadable.
    """
    tables, quarantines, counts = [], [], {}
    for name, where in spec.eval_set_paths():
        records, quarantine = ingest_eval_set(name, where, redact_quarantine=redact_quarantine)
        tables.append(records)
        quarantines.append(quarantine)
        counts[name] = records.num_rows
        log.info("eval set %s: %d cases from %s", name, records.num_rows, where)
    records = pa.concat_tables(tables) if tables else RECORDS.empty_table()
    quarantine = pa.concat_tables(quarantines) if quarantines else QUARANTINE.empty_table()
    return EvalSets(records, quarantine, counts)


def append_records(dest: Path, extra: pa.Table) -> int:
    """Append `extra` (tables.RECORDS) to the records file `dest`, atomically, a row group at a
    time (bounded memory); returns the rows now in `dest`.

    Raises:
        InputError: a record id of `extra` is already in `dest`.
    """
    if extra.num_rows == 0:
        return int(pq.ParquetFile(dest).metadata.num_rows)
    ids = pq.read_table(dest, columns=["record_id"])["record_id"]
    clash = pc.is_in(extra["record_id"], value_set=ids.combine_chunks())
    if pc.any(clash).as_py():
        first = extra["record_id"].filter(clash)[0].as_py()
        raise InputError(
            str(first),
            "an eval case has the id of a logged record (or of another case)",
            "Give the case another `id`.",
        )
    source = pq.ParquetFile(dest)
    with atomic_path(dest) as tmp, pq.ParquetWriter(tmp, RECORDS, compression="zstd") as writer:
        for g in range(source.metadata.num_row_groups):
            writer.write_table(source.read_row_group(g).cast(RECORDS))
        writer.write_table(extra.cast(RECORDS))
    return int(source.metadata.num_rows) + int(extra.num_rows)
