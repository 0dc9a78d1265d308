"""Selection of the records to replay: time window, dedupe, seeded stratified sample.

Every choice is a function of (seed, record_id), never of row order or partitioning, so the same
records and seed select the same sample anywhere (ARCHITECTURE.md, Deterministic).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.tables import RECORDS

__all__ = [
    "Selection",
    "sample_keys",
    "select_records",
    "select_rows",
    "selection_columns",
    "selection_table",
]

log = logging.getLogger(__name__)


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _column(records: pa.Table, column: str) -> pa.ChunkedArray:
    """A column by spec name: top-level column, `attributes.x`, `labels.x`, or an attribute."""
    if column in records.column_names:
        return records[column].cast(pa.string())
    container, _, key = column.partition(".")
    if container in ("attributes", "labels") and key:
        return pc.map_lookup(records[container], pa.scalar(key), "first").cast(pa.string())
    return pc.map_lookup(records["attributes"], pa.scalar(column), "first")


def sample_keys(record_ids: Sequence[str | None], seed: int, purpose: str = "sample") -> np.ndarray:
    """A uniform 64-bit key per record from hash(seed, record_id, purpose)."""
    prefix = f"{seed}\x1f".encode()
    suffix = f"\x1f{purpose}".encode()
    blake = hashlib.blake2b
    keys: np.ndarray = np.fromiter(
        (
            int.from_bytes(
                blake(prefix + (rid or "").encode() + suffix, digest_size=8).digest(), "big"
            )
            for rid in record_ids
        ),
        dtype=np.uint64,
        count=len(record_ids),
    )
    return keys


def _allocate(sizes: np.ndarray, n: int) -> np.ndarray:
    """Proportional allocation of n over strata by largest remainder (ties: first stratum)."""
    total = int(sizes.sum())
    exact = sizes * (n / total)
    quota = np.floor(exact).astype(np.int64)
    left = n - int(quota.sum())
    if left > 0:
        order = np.lexsort((np.arange(len(sizes)), -(exact - quota)))
        quota[order[:left]] += 1
    out: np.ndarray = np.minimum(quota, sizes)
    return out


@dataclass(frozen=True)
class Selection:
    """Which records to replay (the spec's `traffic:` window, dedupe and sample)."""

    window_start: datetime | None = None
    """Earliest timestamp kept (inclusive); a record without one is dropped."""
    window_end: datetime | None = None
    """Latest timestamp kept (exclusive)."""
    dedupe: bool = False
    """Keep only the first record of each request_sha256."""
    sample_n: int | None = None
    """Keep this many records, chosen by hash(seed, record_id)."""
    stratify: Sequence[str] = ()
    """Columns (`tenant`, `attributes.feature`, `model` …) to allocate the sample over
    proportionally; a missing value is a stratum of its own."""
    seed: int = 0
    """The spec's seed."""

    @property
    def active(self) -> bool:
        """Whether anything would be dropped by rule (not only by what the data holds)."""
        return bool(
            self.window_start or self.window_end or self.dedupe or self.sample_n is not None
        )


def select_rows(
    records: pa.Table, selection: Selection = Selection()
) -> tuple[np.ndarray, dict[str, int]]:
    """The rows of the records to replay, in input order, and what each step dropped.

    Args:
        records: a RECORDS table, or only the columns selection reads (`selection_table`).
        selection: the window, dedupe and sample.

    Returns:
        Row numbers into `records` (ascending) and counts `out_of_window`, `duplicates_dropped`,
        `sampled_out`, `selected`.
    """
    window_start, window_end = selection.window_start, selection.window_end
    sample_n = selection.sample_n
    counts = {"out_of_window": 0, "duplicates_dropped": 0, "sampled_out": 0}
    rows = pa.array(np.arange(records.num_rows, dtype=np.int64))
    out = records.append_column("__row", rows)
    if window_start is not None or window_end is not None:
        ts = out["timestamp"]
        mask = pc.is_valid(ts)
        if window_start is not None:
            start = pa.scalar(_aware(window_start), pa.timestamp("us", tz="UTC"))
            mask = pc.and_(mask, pc.greater_equal(ts, start))
        if window_end is not None:
            end = pa.scalar(_aware(window_end), pa.timestamp("us", tz="UTC"))
            mask = pc.and_(mask, pc.less(ts, end))
        kept = out.filter(pc.fill_null(mask, False))
        counts["out_of_window"] = out.num_rows - kept.num_rows
        out = kept
    if selection.dedupe and out.num_rows:
        # a record without a request hash (no content captured) is never anyone's duplicate
        index = np.arange(out.num_rows, dtype=np.int64)
        sha = out["request_sha256"]
        has_sha = pc.is_valid(sha).to_numpy(zero_copy_only=False)
        firsts = (
            pa.table({"k": sha.filter(pa.array(has_sha)), "i": index[has_sha]})
            .group_by("k", use_threads=False)
            .aggregate([("i", "min")])["i_min"]
            .to_numpy()
        )
        keep = np.sort(np.concatenate([firsts, index[~has_sha]]))
        counts["duplicates_dropped"] = out.num_rows - len(keep)
        out = out.take(pa.array(keep))
    if sample_n is not None and sample_n < out.num_rows:
        keys = sample_keys(out["record_id"].to_pylist(), selection.seed)
        if selection.stratify:
            strata = pa.table(
                {
                    f"s{i}": pc.fill_null(_column(out, col), "\x00")
                    for i, col in enumerate(selection.stratify)
                }
            )
            codes = np.zeros(out.num_rows, dtype=np.int64)
            for name in strata.column_names:
                enc = pc.dictionary_encode(strata[name]).combine_chunks()
                # stratum ids ordered by value so the allocation does not depend on row order
                values = enc.dictionary.to_pylist()
                rank = np.argsort(np.argsort(np.array(values, dtype=object)))
                col_codes = rank[enc.indices.to_numpy()]
                codes = codes * len(values) + col_codes
            uniq, inverse, sizes = np.unique(codes, return_inverse=True, return_counts=True)
            quota = _allocate(sizes, sample_n)
            chosen: list[np.ndarray] = []
            for s in range(len(uniq)):
                members = np.flatnonzero(inverse == s)
                if quota[s]:
                    chosen.append(members[np.argsort(keys[members], kind="stable")[: quota[s]]])
            keep = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
        else:
            keep = np.sort(np.argsort(keys, kind="stable")[:sample_n])
        counts["sampled_out"] = out.num_rows - len(keep)
        out = out.take(pa.array(keep))
    counts["selected"] = out.num_rows
    log.info("selected %d of %d records (%s)", out.num_rows, records.num_rows, counts)
    return out["__row"].to_numpy(), counts


def selection_columns(stratify: Sequence[str] = ()) -> list[str]:
    """The RECORDS columns `select_rows` reads: all it needs from a large records file."""
    cols = ["record_id", "timestamp", "request_sha256"]
    for col in stratify:
        container = col.partition(".")[0]
        name = (
            col
            if col in RECORDS.names
            else container
            if container in ("attributes", "labels")
            else "attributes"
        )
        if name not in cols:
            cols.append(name)
    return cols


def selection_table(records: pa.Table, stratify: Sequence[str] = ()) -> pa.Table:
    """Just what `select_rows` reads: the id, time and hash columns, and each stratify column
    as a plain string column named as in the spec (not the whole attributes map)."""
    cols = {c: records[c] for c in ("record_id", "timestamp", "request_sha256")}
    for col in stratify:
        cols[col] = _column(records, col)
    return pa.table(cols)


def select_records(
    records: pa.Table,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    dedupe: bool = False,
    sample_n: int | None = None,
    stratify: Sequence[str] = (),
    seed: int = 0,
) -> tuple[pa.Table, dict[str, int]]:
    """`select_rows`, returning the kept records (a RECORDS table) themselves."""
    selection = Selection(window_start, window_end, dedupe, sample_n, tuple(stratify), seed)
    rows, counts = select_rows(selection_table(records, stratify), selection)
    out = records if len(rows) == records.num_rows else records.take(pa.array(rows))
    return out.cast(RECORDS) if out.schema != RECORDS else out, counts
