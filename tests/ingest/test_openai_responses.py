"""openai_responses@1: canonical request, outputs, and previous_response_id chains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from evalpipe.ingest import ingest_paths
from evalpipe.ingest.openai_responses import OpenAIResponses
from evalpipe.ingest.records import Location
from tests.ingest.helpers import write_jsonl


def _record(
    rid: str, prompt: str, *, previous: str | None = None, **request: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4.1-mini", "input": prompt, **request}
    if previous:
        body["previous_response_id"] = previous
    return {
        "request": body,
        "response": {
            "id": rid,
            "object": "response",
            "created_at": 1741476542,
            "status": "completed",
            "model": "gpt-4.1-mini-2025-04-14",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": f"answer to {prompt}", "annotations": []}
                    ],
                },
            ],
            "usage": {
                "input_tokens": 12,
                "output_tokens": 5,
                "input_tokens_details": {"cached_tokens": 2},
                "output_tokens_details": {"reasoning_tokens": 3},
            },
        },
        "latency_ms": 50,
    }


def test_request_and_response(tmp_path: Path) -> None:
    rec = _record(
        "resp_1",
        "hi",
        instructions="Be brief.",
        max_output_tokens=64,
        text={
            "format": {
                "type": "json_schema",
                "name": "x",
                "schema": {"type": "object"},
                "strict": True,
            }
        },
        tools=[
            {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}}
        ],
        tool_choice={"type": "function", "name": "f"},
        reasoning={"effort": "low"},
    )
    assert OpenAIResponses.sniff(rec)
    row = ingest_paths(write_jsonl(tmp_path / "r.jsonl", [rec])).records.to_pylist()[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "Be brief."
    assert request["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert request["response_format"] == {
        "type": "json_schema",
        "name": "x",
        "schema": {"type": "object"},
        "strict": True,
    }
    assert request["tools"] == [{"name": "f", "description": "d", "parameters": {"type": "object"}}]
    assert request["tool_choice"] == {"name": "f"}
    assert request["params"]["max_tokens"] == 64
    assert request["params"]["extra"] == {"reasoning": {"effort": "low"}}
    assert (row["output_text"], row["finish_reason"], row["status"]) == (
        "answer to hi",
        "stop",
        "ok",
    )
    assert (
        row["input_tokens"],
        row["output_tokens"],
        row["cached_input_tokens"],
        row["reasoning_tokens"],
    ) == (12, 5, 2, 3)
    assert (row["record_id"], row["source_format"], row["replayable"]) == (
        "resp_1",
        "openai_responses@1",
        True,
    )


def test_function_calls_and_items() -> None:
    rec = _record("resp_2", "x")
    rec["request"]["input"] = [
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": '{"c": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    rec["response"]["output"] = [
        {"type": "function_call", "call_id": "call_2", "name": "w", "arguments": "{}"}
    ]
    row = OpenAIResponses().convert(rec, Location("f", 1))[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "Use tools."
    assert request["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_call", "id": "call_1", "name": "w", "arguments": {"c": "Paris"}}
        ],
    }
    assert request["messages"][2]["content"][0]["type"] == "tool_result"
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "call_2", "name": "w", "arguments": {}}
    ]
    assert row["finish_reason"] == "tool_calls"


def test_incomplete_and_failed() -> None:
    rec = _record("resp_3", "x")
    rec["response"]["status"] = "incomplete"
    rec["response"]["incomplete_details"] = {"reason": "max_output_tokens"}
    assert OpenAIResponses().convert(rec, Location("f", 1))[0]["finish_reason"] == "length"
    rec["response"]["status"] = "failed"
    rec["response"]["error"] = {"code": "server_error", "message": "boom"}
    row = OpenAIResponses().convert(rec, Location("f", 1))[0]
    assert (row["status"], row["error_type"]) == ("error", "server_error")


def test_chain_in_the_file_is_rebuilt_in_any_order(tmp_path: Path) -> None:
    records = [
        _record("resp_c", "third", previous="resp_b"),
        _record("resp_a", "first"),
        _record("resp_b", "second", previous="resp_a"),
        _record("resp_z", "orphan", previous="resp_missing"),
    ]
    result = ingest_paths(write_jsonl(tmp_path / "r.jsonl", records))
    rows = {r["record_id"]: r for r in result.records.to_pylist()}
    texts = [
        part.get("text")
        for m in orjson.loads(rows["resp_c"]["request"])["messages"]
        for part in m["content"]
    ]
    assert texts == ["first", "answer to first", "second", "answer to second", "third"]
    assert rows["resp_c"]["replayable"] is True
    assert (rows["resp_z"]["replayable"], rows["resp_z"]["replay_issue"]) == (
        False,
        "previous_response_id",
    )
    assert rows["resp_c"]["source_line"] == 1
