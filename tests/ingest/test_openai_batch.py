"""openai_batch@1: the real navirag batch files, and input/output/error joins on custom_id."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest

from evalpipe.ingest import detect_format, ingest_paths
from tests.ingest.helpers import write_jsonl
from tests.shared import DATA as SHARED_DATA
from tests.shared import absent

DATA = SHARED_DATA / "openai_batch"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=absent(DATA, "real OpenAI batch files"))


@needs_data
def test_real_batch_matches_its_readme() -> None:
    result = ingest_paths(DATA)
    t = result.records
    assert (t.num_rows, result.quarantine.num_rows) == (65, 0)
    assert pc.sum(t["input_tokens"]).as_py() == 36_501
    assert pc.sum(t["output_tokens"]).as_py() == 11_980
    assert pc.sum(t["cached_input_tokens"]).as_py() == 0
    assert t["response_model"].unique().to_pylist() == ["gpt-4o-2024-08-06"]
    assert t["model"].unique().to_pylist() == ["gpt-4o"]
    assert t["system_fingerprint"].unique().to_pylist() == ["fp_a7d06e42a7"]
    assert t["finish_reason"].unique().to_pylist() == ["stop"]
    assert pc.sum(pc.utf8_length(t["output_text"])).as_py() == 36_740
    assert t["record_id"].to_pylist() == [f"request-{i}" for i in range(65)]
    assert set(t["replayable"].to_pylist()) == {True}
    request = orjson.loads(t["request"][0].as_py())
    assert request["system"] == "You are expert for embodied robot navigation."
    assert request["params"]["max_tokens"] == 1000
    assert request["params"]["temperature"] == 0
    assert t["timestamp"][0].as_py().year == 2024
    assert t["source_format"].unique().to_pylist() == ["openai_batch@1"]


@needs_data
def test_real_files_alone() -> None:
    inputs = ingest_paths(DATA / "navirag_gpt-4o_batch_input.jsonl").records
    assert inputs.num_rows == 65 and inputs["output_text"].null_count == 65
    outputs = ingest_paths(DATA / "navirag_gpt-4o_batch_output.jsonl").records
    assert outputs.num_rows == 65
    assert outputs["replay_issue"].unique().to_pylist() == ["no_content_captured"]
    assert outputs["request"].null_count == 65
    assert detect_format(DATA / "navirag_gpt-4o_batch_output.jsonl") == "openai_batch@1"


def _input(i: int) -> dict[str, object]:
    return {
        "custom_id": f"c{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]},
    }


def test_error_file_and_output_join_in_any_order(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "input.jsonl", [_input(i) for i in range(4)])
    body = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1729730156,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    write_jsonl(
        tmp_path / "output.jsonl",
        [
            {
                "id": "b1",
                "custom_id": "c1",
                "response": {"status_code": 200, "request_id": "r1", "body": body},
                "error": None,
            },
        ],
    )
    write_jsonl(
        tmp_path / "errors.jsonl",
        [
            {
                "id": "b2",
                "custom_id": "c2",
                "response": {
                    "status_code": 400,
                    "request_id": "r2",
                    "body": {
                        "error": {
                            "message": "bad",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                },
                "error": None,
            },
            {
                "id": "b3",
                "custom_id": "c3",
                "response": None,
                "error": {"code": "batch_expired", "message": "expired"},
            },
        ],
    )
    result = ingest_paths(tmp_path)
    rows = {r["record_id"]: r for r in result.records.to_pylist()}
    assert list(rows) == ["c0", "c1", "c2", "c3"]
    assert rows["c0"]["status"] is None and rows["c0"]["replayable"] is True
    assert (rows["c1"]["status"], rows["c1"]["output_text"], rows["c1"]["input_tokens"]) == (
        "ok",
        "ok",
        3,
    )
    assert dict(rows["c1"]["attributes"]) == {"batch_request_id": "b1", "request_id": "r1"}
    assert rows["c1"]["source_file"].endswith("input.jsonl")
    assert (rows["c2"]["status"], rows["c2"]["error_type"]) == ("error", "invalid_request_error")
    assert (rows["c3"]["status"], rows["c3"]["error_type"]) == ("error", "batch_expired")
    assert orjson.loads(rows["c2"]["request"])["messages"][0]["content"][0]["text"] == "q2"


def test_duplicate_custom_id_and_bad_body(tmp_path: Path) -> None:
    bad = _input(9)
    bad["body"] = {"model": "m", "messages": [{"role": "robot", "content": "x"}]}
    path = write_jsonl(
        tmp_path / "input.jsonl",
        [
            _input(0),
            _input(0),
            bad,
            {"custom_id": "z", "url": "/v1/embeddings", "body": {"input": "x"}},
        ],
    )
    result = ingest_paths(path, format="openai_batch")
    assert result.records["record_id"].to_pylist() == ["c0"]
    q = result.quarantine.to_pylist()
    assert [(r["line"], r["field"], r["reason"]) for r in q] == [
        (2, "custom_id", "duplicate record_id"),
        (3, "body.messages[0].role", "unknown role 'robot'"),
        (4, "url", "unsupported endpoint '/v1/embeddings'"),
    ]
