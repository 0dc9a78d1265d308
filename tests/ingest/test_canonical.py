"""canonical@1: records.parquet read back as it stands."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from evalpipe.ingest import detect_format, ingest_paths
from tests.ingest.helpers import chat_record, write_jsonl


def test_records_parquet_round_trips(tmp_path: Path) -> None:
    first = ingest_paths(
        write_jsonl(tmp_path / "t.jsonl", [chat_record(i) for i in range(5)])
    ).records
    pq.write_table(first, tmp_path / "records.parquet")
    assert detect_format(tmp_path / "records.parquet") == "canonical@1"
    again = ingest_paths(tmp_path / "records.parquet")
    assert again.records.equals(first)
    assert again.counts["read"] == 5


def test_duplicate_ids_across_files_are_quarantined(tmp_path: Path) -> None:
    first = ingest_paths(
        write_jsonl(tmp_path / "t.jsonl", [chat_record(i) for i in range(3)])
    ).records
    (tmp_path / "out").mkdir()
    pq.write_table(first, tmp_path / "out" / "a.parquet")
    pq.write_table(first.slice(1), tmp_path / "out" / "b.parquet")
    result = ingest_paths(tmp_path / "out")
    assert result.records.num_rows == 3
    assert result.quarantine["reason"].to_pylist() == ["duplicate record_id"] * 2
