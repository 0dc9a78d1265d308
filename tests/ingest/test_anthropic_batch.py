"""anthropic_batch@1: results joined with the request file on custom_id."""

from __future__ import annotations

from pathlib import Path

from evalpipe.ingest import detect_format, ingest_paths
from tests.ingest.helpers import anthropic_message, write_jsonl


def test_results_join_requests(tmp_path: Path) -> None:
    message = anthropic_message()
    write_jsonl(
        tmp_path / "results.jsonl",
        [
            {"custom_id": "a", "result": {"type": "succeeded", "message": message}},
            {
                "custom_id": "b",
                "result": {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "invalid_request_error", "message": "x"},
                    },
                },
            },
            {"custom_id": "c", "result": {"type": "expired"}},
            {"custom_id": "d", "result": {"type": "weird"}},
        ],
    )
    write_jsonl(
        tmp_path / "requests.jsonl",
        [
            {
                "custom_id": k,
                "params": {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": k}],
                },
            }
            for k in "abc"
        ],
    )
    assert detect_format(tmp_path) == "anthropic_batch@1"
    result = ingest_paths(tmp_path)
    rows = {r["record_id"]: r for r in result.records.to_pylist()}
    assert sorted(rows) == ["a", "b", "c"]
    assert (rows["a"]["output_text"], rows["a"]["status"], rows["a"]["model"]) == (
        "hi",
        "ok",
        "claude-haiku-4-5",
    )
    assert rows["a"]["source_file"].endswith("requests.jsonl") and rows["a"]["replayable"] is True
    assert (rows["b"]["status"], rows["b"]["error_type"]) == ("error", "invalid_request_error")
    assert rows["c"]["error_type"] == "expired"
    assert result.quarantine.to_pylist()[0]["field"] == "result.type"


def test_results_alone_are_not_replayable(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "results.jsonl", [{"custom_id": "c", "result": {"type": "canceled"}}]
    )
    row = ingest_paths(path).records.to_pylist()[0]
    assert (row["replayable"], row["replay_issue"], row["provider"]) == (
        False,
        "no_content_captured",
        "anthropic",
    )
