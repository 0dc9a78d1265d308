"""Reader: worker processes give the same records, quarantine and counts as one process."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalpipe.ingest import ingest_paths, ingest_to_parquet, reader
from tests.ingest.helpers import OTEL_CHAT, chat_record, otel_span, otlp_document, write_jsonl


def test_workers_match_a_single_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "_CHUNK_LINES", 200)  # several chunks from a small file
    items: list[object] = [chat_record(i) for i in range(1200)]
    items[10] = b"{torn"
    items[700] = chat_record(7)  # a duplicate request_id in another chunk
    path = write_jsonl(tmp_path / "t.jsonl.gz", items, gz=True)
    one = ingest_paths(path, workers=1)
    out = ingest_to_parquet(path, tmp_path / "out", workers=2, batch_rows=500)
    two = pa.concat_tables(pq.read_table(p) for p in out.parts)
    assert two.equals(one.records)
    assert out.counts == one.counts
    key = ["file", "line", "field", "reason"]
    assert out.quarantine.select(key).equals(one.quarantine.select(key))
    assert one.quarantine["reason"][1].as_py() == "duplicate record_id"


def test_workers_count_skipped_spans_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "_CHUNK_LINES", 50)
    chat = otel_span("a", {**OTEL_CHAT, "gen_ai.input.messages": '[{"role": "user", "parts": []}]'})
    http = otel_span("b", {"http.method": "POST"}, name="POST")
    path = write_jsonl(
        tmp_path / "spans.jsonl",
        [otlp_document(chat | {"spanId": f"s{i}"}, http) for i in range(120)],
    )
    one = ingest_paths(path, workers=1)
    out = ingest_to_parquet(path, tmp_path / "out", workers=2)
    assert out.counts == one.counts and one.counts["skipped"] == 120
    assert out.skipped_by_reason == one.skipped_by_reason == {"not a GenAI span": 120}
