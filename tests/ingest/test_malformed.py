"""The malformed-input corpus: every bad record is quarantined with file, line, field and reason,
and every good record around it is ingested."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest

from evalpipe.errors import NoUsableRecordsError
from evalpipe.ingest import files, ingest_paths
from tests.ingest.helpers import anthropic_message, chat_record

GOOD = object()


def _with(**changes: Any) -> bytes:
    record = chat_record(900)
    for path, value in changes.items():
        target: Any = record
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return orjson.dumps(record)


_DELETE = object()

# (line bytes, expected field or GOOD, reason prefix)
CORPUS: list[tuple[bytes, Any, str]] = [
    (orjson.dumps(chat_record(1)), GOOD, ""),
    (orjson.dumps(chat_record(2))[:-40], None, "not valid JSON"),  # truncated
    (
        b'{"request": {"model": "gpt-4o", "messages": [{"role": "us\xff\xfeer"}]}}',
        None,
        "not valid UTF-8",
    ),
    (orjson.dumps(chat_record(3)), GOOD, ""),
    (_with(request__messages={"role": "user"}), "request.messages", "expected a list"),
    (_with(request__max_tokens="100"), "request.max_tokens", "expected an integer"),
    (_with(response__usage__prompt_tokens=-5), "response.usage.prompt_tokens", "out of range"),
    (_with(latency_ms=[1]), "latency_ms", "expected a number"),
    (_with(timestamp="last tuesday"), "timestamp", "not a timestamp"),
    (
        _with(request__messages__1__content=None, request__messages__1__role=None),
        "request.messages[1].role",
        "missing role",
    ),
    (_with(request__messages=_DELETE), "request.messages", "missing required field"),
    (_with(request=_DELETE, response=_DELETE), "request.messages", "missing required field"),
    (
        _with(request__messages__1__role="narrator"),
        "request.messages[1].role",
        "unknown role 'narrator'",
    ),
    (b'{"request": {"model": "m", "messages": [], "temperature": NaN}}', None, "not valid JSON"),
    (b"[1, 2, 3]", None, "expected an object"),
    (b'"just a string"', None, "expected an object"),
    (b"null", None, "expected an object"),
    (orjson.dumps(chat_record(1)), "record_id", "duplicate record_id"),  # duplicate id
    (
        orjson.dumps({"custom_id": "x", "result": {"type": "succeeded", "message": {}}}),
        None,
        "this record is anthropic_batch@1, the file openai_chat@1: split the file by format",
    ),
    (orjson.dumps(chat_record(4)), GOOD, ""),
]


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_corpus_line_by_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "corpus.jsonl", [line for line, _, _ in CORPUS])
    result = ingest_paths(path, format="auto")
    assert result.records["source_format"].unique().to_pylist() == ["openai_chat@1"]
    good = [i + 1 for i, (_, field, _) in enumerate(CORPUS) if field is GOOD]
    assert result.records["source_line"].to_pylist() == good
    expected = [
        (i + 1, field, reason) for i, (_, field, reason) in enumerate(CORPUS) if field is not GOOD
    ]
    got = result.quarantine.to_pylist()
    assert [(r["line"], r["field"]) for r in got] == [(line, field) for line, field, _ in expected]
    for row, (_, _, reason) in zip(got, expected, strict=True):
        assert row["reason"].startswith(reason), (row, reason)
        assert row["file"] == str(path)
        assert row["raw"]
    assert result.counts == {
        "files": 1,
        "read": len(CORPUS),
        "ingested": len(good),
        "quarantined": len(expected),
        "skipped": 0,
    }


def test_a_50_mb_line_is_quarantined_with_bounded_memory(tmp_path: Path) -> None:
    huge = (
        b'{"request": {"messages": [{"role": "user", "content": "'
        + b"x" * (50 * 1024 * 1024)
        + b'"}]}}'
    )
    path = _write(
        tmp_path / "big.jsonl", [orjson.dumps(chat_record(1)), huge, orjson.dumps(chat_record(2))]
    )
    result = ingest_paths(path)
    assert result.records["source_line"].to_pylist() == [1, 3]
    row = result.quarantine.to_pylist()[0]
    assert (row["line"], row["field"]) == (2, None)
    assert row["reason"] == f"line longer than {files.MAX_LINE_BYTES // 2**20} MiB"
    assert len(row["raw"]) == 2000


def test_empty_files_are_reported_and_the_rest_ingested(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "blank.jsonl").write_bytes(b"\n\n  \n")
    (tmp_path / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    _write(tmp_path / "good.jsonl", [orjson.dumps(chat_record(1))])
    result = ingest_paths(tmp_path)
    assert result.records.num_rows == 1
    assert sorted(Path(r["file"]).name for r in result.quarantine.to_pylist()) == [
        "blank.jsonl",
        "empty.jsonl",
        "empty.jsonl.gz",
    ]
    assert set(result.quarantine["reason"].to_pylist()) == {"empty file"}


def test_only_empty_files_means_no_usable_records(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(NoUsableRecordsError):
        ingest_paths(tmp_path)


def test_mixed_formats_in_a_folder_each_file_its_own(tmp_path: Path) -> None:
    _write(tmp_path / "chat.jsonl", [orjson.dumps(chat_record(1))])
    _write(
        tmp_path / "batch.jsonl",
        [
            orjson.dumps(
                {
                    "custom_id": "c",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"messages": [{"role": "user", "content": "x"}]},
                }
            )
        ],
    )
    result = ingest_paths(tmp_path)
    assert sorted(pc.unique(result.records["source_format"]).to_pylist()) == [
        "openai_batch@1",
        "openai_chat@1",
    ]


def test_forced_format_quarantines_what_does_not_fit(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl", [orjson.dumps(chat_record(1)), orjson.dumps(chat_record(2))]
    )
    with pytest.raises(NoUsableRecordsError):
        ingest_paths(path, format="anthropic_batch")


_ANTHROPIC = {
    "request": {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Where is my parcel?"}],
    },
    "response": anthropic_message("It ships today.", id="msg_01"),
}
_LANGFUSE = {
    "id": "obs-1",
    "type": "GENERATION",
    "traceId": "t-1",
    "model": "gpt-4o",
    "input": [{"role": "user", "content": "hi"}],
    "output": {"role": "assistant", "content": "hello"},
    "startTime": "2026-11-01T00:00:00Z",
}


@pytest.mark.parametrize("workers", [1, 2])
def test_mixed_formats_in_one_file_each_record_its_own(tmp_path: Path, workers: int) -> None:
    lines = [orjson.dumps(chat_record(i)) for i in range(4)]
    lines[2:2] = [orjson.dumps(_ANTHROPIC), orjson.dumps(_LANGFUSE)]
    path = _write(tmp_path / "t.jsonl", lines)
    result = ingest_paths(path, workers=workers)
    rows = {r["source_line"]: r for r in result.records.to_pylist()}
    # the Anthropic record is read as one, not as an empty OpenAI answer
    assert rows[3]["source_format"] == "anthropic_messages@1"
    assert (rows[3]["provider"], rows[3]["output_text"]) == ("anthropic", "It ships today.")
    assert [rows[n]["source_format"] for n in (1, 2, 5, 6)] == ["openai_chat@1"] * 4
    assert result.records_by_format == {"openai_chat@1": 4, "anthropic_messages@1": 1}
    # a record of a format read as a whole file (Langfuse joins traces) is quarantined, saying so
    (bad,) = result.quarantine.to_pylist()
    assert bad["line"] == 4
    assert bad["reason"] == (
        "this record is langfuse@1, the file openai_chat@1: split the file by format, "
        "or pass --format"
    )


def test_a_forced_format_reads_every_record_as_that_format(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [orjson.dumps(chat_record(1)), orjson.dumps(_ANTHROPIC)])
    result = ingest_paths(path, format="openai_chat")
    assert set(result.records["source_format"].to_pylist()) == {"openai_chat@1"}
