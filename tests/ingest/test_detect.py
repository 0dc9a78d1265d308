"""detect_format: each format sniffed from its first records; folders; the unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalpipe.errors import InputError
from evalpipe.ingest import FORMAT_NAMES, detect_format, ingest_paths
from evalpipe.ingest.detect import detect_value
from tests.ingest.helpers import chat_record, write_jsonl

SAMPLES: dict[str, Any] = {
    "openai_chat@1": chat_record(0),
    "openai_responses@1": {
        "request": {"model": "m", "input": "hi"},
        "response": {"object": "response", "output": []},
    },
    "openai_batch@1": {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {},
    },
    "anthropic_messages@1": {
        "request": {"model": "c", "system": "s", "max_tokens": 5, "messages": []},
        "response": {"type": "message", "content": []},
    },
    "anthropic_batch@1": {"custom_id": "a", "result": {"type": "succeeded", "message": {}}},
    "otel_genai@1": {"resourceSpans": []},
    "langfuse@1": {"id": "o", "type": "GENERATION", "traceId": "t", "input": "x"},
    "bfcl@1": {"id": "simple_0", "question": [[]], "function": []},
    "canonical@1": {"record_id": "r", "request_sha256": "s", "request": "{}"},
}


def test_every_format_has_a_sample() -> None:
    assert set(SAMPLES) == set(FORMAT_NAMES)


@pytest.mark.parametrize(("name", "sample"), SAMPLES.items())
def test_each_format_is_recognised(name: str, sample: Any) -> None:
    assert detect_value(sample) == name


def test_majority_of_the_first_records_decides(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl", [b"garbage", SAMPLES["bfcl@1"], chat_record(1), chat_record(2)]
    )
    assert detect_format(path) == "openai_chat@1"


def test_folder_of_mixed_formats(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "a.jsonl", [chat_record(0)])
    write_jsonl(tmp_path / "b.jsonl", [SAMPLES["anthropic_batch@1"]])
    assert detect_format(tmp_path) == "mixed"


def test_unknown_file_is_an_input_error_for_detect_and_quarantine_for_ingest(
    tmp_path: Path,
) -> None:
    path = write_jsonl(tmp_path / "u.jsonl", [{"hello": "world"}, b"{bad"])
    with pytest.raises(InputError, match="cannot detect"):
        detect_format(path)
    write_jsonl(tmp_path / "good.jsonl", [chat_record(0)])
    result = ingest_paths(tmp_path)
    assert result.records.num_rows == 1
    rows = result.quarantine.to_pylist()
    assert {r["file"] for r in rows} == {str(path)}
    assert sorted(r["reason"][:15] for r in rows) == ["not valid JSON:", "record of no kn"]
