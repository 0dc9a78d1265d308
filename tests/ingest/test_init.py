"""ingest_paths / ingest_to_parquet / detect_format: files, folders, errors, counts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import evalpipe
from evalpipe.errors import InputError, NoUsableRecordsError
from evalpipe.ingest import detect_format, ingest_paths, ingest_to_parquet
from evalpipe.tables import QUARANTINE, RECORDS
from tests.ingest.helpers import chat_record, write_jsonl

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo" / "traffic.jsonl.gz"


def test_front_door_exports_the_stage_functions() -> None:
    assert evalpipe.ingest_paths is ingest_paths
    assert evalpipe.select_records is not None


def test_gzip_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl.gz", [chat_record(i) for i in range(5)], gz=True)
    result = ingest_paths(path)
    assert result.records.num_rows == 5
    assert result.records["source_line"].to_pylist() == [1, 2, 3, 4, 5]
    assert result.records["source_format"].unique().to_pylist() == ["openai_chat@1"]
    assert detect_format(path) == "openai_chat@1"


def test_json_array_positions_are_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(
        orjson.dumps([chat_record(0), {"nope": 1}, chat_record(2)], option=orjson.OPT_INDENT_2)
    )
    result = ingest_paths(path)
    assert result.records["source_line"].to_pylist() == [1, 3]
    assert result.quarantine["line"].to_pylist() == [2]


def test_folder_reads_every_log_file_and_skips_hidden(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [chat_record(0)])
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "b.jsonl.gz", [chat_record(1)], gz=True)
    write_jsonl(tmp_path / ".hidden.jsonl", [chat_record(2)])
    (tmp_path / "notes.txt").write_text("not a log")
    result = ingest_paths(tmp_path)
    assert sorted(result.records["record_id"].to_pylist()) == ["req_0", "req_1"]
    assert result.counts["files"] == 2
    assert detect_format(tmp_path) == "openai_chat@1"


def test_glob(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [chat_record(0)])
    write_jsonl(tmp_path / "b.jsonl", [chat_record(1)])
    assert ingest_paths(str(tmp_path / "*.jsonl")).records.num_rows == 2


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        ingest_paths(tmp_path / "nope.jsonl")
    assert err.value.path.endswith("nope.jsonl")
    assert not isinstance(err.value, NoUsableRecordsError)


def test_nothing_usable_raises_with_the_first_problem(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [b"{oops", b"[1,2"])
    with pytest.raises(NoUsableRecordsError) as err:
        ingest_paths(path)
    assert "2 quarantined" in err.value.problem
    assert "line 1" in err.value.fix


def test_unknown_format_name(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [chat_record(0)])
    with pytest.raises(InputError, match="unknown format"):
        ingest_paths(path, format="carrier_pigeon")
    with pytest.raises(InputError, match="no version"):
        ingest_paths(path, format="openai_chat@9")
    assert ingest_paths(path, format="openai_chat@1").records.num_rows == 1


def test_bad_lines_are_quarantined_and_redacted(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [chat_record(0), b'{"request": {"messages": "mail bob@example.com"', chat_record(1)],
    )
    result = ingest_paths(path)
    assert result.records.num_rows == 2
    assert result.quarantine.schema.equals(QUARANTINE)
    row = result.quarantine.to_pylist()[0]
    assert (row["file"], row["line"], row["field"]) == (str(path), 2, None)
    assert row["reason"].startswith("not valid JSON")
    assert "[EMAIL]" in row["raw"] and "bob@" not in row["raw"]
    raw = ingest_paths(path, redact_quarantine=False).quarantine["raw"][0].as_py()
    assert "bob@example.com" in raw
    assert result.counts == {"files": 1, "read": 3, "ingested": 2, "quarantined": 1, "skipped": 0}


def test_quarantined_raw_is_truncated(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [chat_record(0), b'{"x": "' + b"a" * 10_000])
    raw = ingest_paths(path).quarantine["raw"][0].as_py()
    assert len(raw) == 2000


def test_ingest_to_parquet_writes_parts(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [chat_record(i) for i in range(25)] + [b"bad"])
    out = ingest_to_parquet(path, tmp_path / "out", part_rows=10, batch_rows=5)
    assert [p.name for p in out.parts] == [f"part-{i:05d}.parquet" for i in range(3)]
    table = pa.concat_tables(pq.read_table(p) for p in out.parts)
    assert table.schema.equals(RECORDS)
    assert table["record_id"].to_pylist() == [f"req_{i}" for i in range(25)]
    assert out.quarantine.num_rows == 1
    assert not list((tmp_path / "out").glob(".*"))


@pytest.mark.skipif(not DEMO.exists(), reason=f"demo traffic not generated yet ({DEMO})")
def test_demo_traffic_ingests_with_its_one_malformed_line() -> None:
    result = ingest_paths(DEMO)
    assert result.records.num_rows >= 1000
    assert result.quarantine.num_rows == 1
    ids = result.records["record_id"]
    assert pc.count_distinct(ids).as_py() == len(ids)
