"""select_records: window, dedupe, seeded stratified sample, deterministic under reordering."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.ingest import ingest_paths, select_records
from evalpipe.tables import RECORDS
from tests.ingest.helpers import chat_record, write_jsonl


def _log(tmp_path: Path) -> Path:
    """200 chat records: 50 distinct questions, features a (3/4) and b, over 20 days."""
    recs = [
        chat_record(
            i,
            content=f"q{i % 50}",
            metadata={"request_id": f"r{i}", "feature": "a" if i % 4 else "b"},
            timestamp=f"2024-10-{1 + i % 20:02d}T12:00:00Z",
        )
        for i in range(200)
    ]
    return write_jsonl(tmp_path / "t.jsonl", recs)


@pytest.fixture
def records(tmp_path: Path) -> pa.Table:
    return ingest_paths(_log(tmp_path)).records


def test_no_options_keeps_everything(records: pa.Table) -> None:
    out, counts = select_records(records)
    assert out.equals(records)
    assert counts == {
        "out_of_window": 0,
        "duplicates_dropped": 0,
        "sampled_out": 0,
        "selected": 200,
    }


def test_window_is_start_inclusive_end_exclusive(records: pa.Table) -> None:
    out, counts = select_records(
        records,
        window_start=datetime(2024, 10, 5, 12, tzinfo=UTC),
        window_end=datetime(2024, 10, 7, 12),  # naive means UTC
    )
    days = set(pc.day(out["timestamp"]).to_pylist())
    assert days == {5, 6}
    assert counts["out_of_window"] == 200 - out.num_rows


def test_dedupe_keeps_the_first_of_each_request(records: pa.Table) -> None:
    out, counts = select_records(records, dedupe=True)
    assert out.num_rows == 50
    assert counts["duplicates_dropped"] == 150
    assert out["record_id"].to_pylist()[:3] == ["r0", "r1", "r2"]


def test_sample_is_seeded_and_order_independent(records: pa.Table) -> None:
    a, counts = select_records(records, sample_n=30, seed=3)
    assert a.num_rows == 30 and counts["sampled_out"] == 170
    shuffled = records.take(pa.array(list(range(199, -1, -1))))
    b, _ = select_records(shuffled, sample_n=30, seed=3)
    assert set(a["record_id"].to_pylist()) == set(b["record_id"].to_pylist())
    c, _ = select_records(records, sample_n=30, seed=4)
    assert set(a["record_id"].to_pylist()) != set(c["record_id"].to_pylist())
    assert a.schema.equals(RECORDS)


def test_stratified_sample_is_proportional(records: pa.Table) -> None:
    out, _ = select_records(records, sample_n=40, stratify=["feature"], seed=1)
    features = pc.map_lookup(out["attributes"], "feature", "first").to_pylist()
    assert features.count("b") == 10 and features.count("a") == 30
    out2, _ = select_records(records, sample_n=40, stratify=["attributes.feature", "model"], seed=1)
    assert out2.num_rows == 40


def test_sample_larger_than_input_keeps_all(records: pa.Table) -> None:
    out, counts = select_records(records, sample_n=1000)
    assert out.num_rows == 200 and counts["sampled_out"] == 0


def test_records_without_a_request_hash_are_never_duplicates(records: pa.Table) -> None:
    index = RECORDS.get_field_index("request_sha256")
    nulls = pa.nulls(records.num_rows, pa.string())
    blank = records.set_column(index, RECORDS.field(index), nulls)
    out, counts = select_records(blank, dedupe=True)
    assert out.num_rows == 200 and counts["duplicates_dropped"] == 0


def test_ingest_selected_writes_what_select_records_keeps(tmp_path: Path) -> None:
    """The bounded path (parts on disk, narrow selection, rows copied part by part) keeps the same
    records, in the same order, as selecting over the whole table in memory."""
    import pyarrow.parquet as pq

    from evalpipe.ingest import Selection, ingest_selected

    path = _log(tmp_path)
    selection = {
        "window_start": datetime(2024, 10, 3, tzinfo=UTC),
        "dedupe": True,
        "sample_n": 25,
        "stratify": ["attributes.feature"],
        "seed": 3,
    }
    expected, expected_counts = select_records(ingest_paths(path).records, **selection)
    dest = tmp_path / "out" / "records.parquet"
    # parts of 30 rows and row groups of 7: selected rows straddle both boundaries
    got = ingest_selected(
        path, dest, selection=Selection(**selection), row_group_size=7, part_rows=30
    )
    table = pq.read_table(dest)
    assert got.records == table.num_rows == expected.num_rows == 25
    assert table["record_id"].to_pylist() == expected["record_id"].to_pylist()
    assert table.equals(expected.select(table.column_names))
    assert {k: got.counts[k] for k in expected_counts} == expected_counts
    meta = pq.ParquetFile(dest).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [7, 7, 7, 4]
    assert not list(dest.parent.glob(".*parts*"))  # the scratch parts are gone
