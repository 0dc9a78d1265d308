"""anthropic_messages@1: canonical request, tool blocks, cache tokens, streamed events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from evalpipe.ingest import detect_format, ingest_paths
from evalpipe.ingest.anthropic_messages import AnthropicMessages
from evalpipe.ingest.records import BadRecord, Location
from tests.ingest.helpers import write_jsonl


def _record(**response: Any) -> dict[str, Any]:
    return {
        "request": {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {
                            "type": "tool_use",
                            "id": "tu_1",
                            "name": "weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "tu_1",
                            "content": [{"type": "text", "text": "sunny"}],
                        },
                        {"type": "text", "text": "and tomorrow?"},
                    ],
                },
            ],
            "tools": [{"name": "weather", "description": "w", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["END"],
            "top_k": 5,
            "metadata": {"user_id": "u7"},
        },
        "response": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": "Sunny again."}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 5,
                "cache_read_input_tokens": 100,
                "output_tokens": 4,
            },
            **response,
        },
        "timestamp": "2025-01-01T00:00:00Z",
    }


def convert(obj: Any) -> dict[str, Any]:
    rows = AnthropicMessages().convert(obj, Location("f", 1))
    return rows[0]


def test_request_response_and_tokens(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [_record()])
    assert detect_format(path) == "anthropic_messages@1"
    row = ingest_paths(path).records.to_pylist()[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "Be brief."
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "tool", "user"]
    assert request["messages"][1]["content"] == [
        {"type": "tool_call", "id": "tu_1", "name": "weather", "arguments": {"city": "Paris"}}
    ]
    assert request["messages"][2]["content"] == [
        {"type": "tool_result", "tool_call_id": "tu_1", "content": "sunny", "is_error": False}
    ]
    assert request["tools"] == [
        {"name": "weather", "description": "w", "parameters": {"type": "object"}}
    ]
    assert request["tool_choice"] == "required"
    assert request["params"] == {
        "max_tokens": 256,
        "temperature": None,
        "top_p": None,
        "stop": ["END"],
        "seed": None,
        "extra": {"top_k": 5},
    }
    assert (row["provider"], row["record_id"], row["user_id"]) == ("anthropic", "msg_1", "u7")
    assert (row["output_text"], row["finish_reason"]) == ("Sunny again.", "stop")
    # canonical input tokens include cache reads and writes, as replay counts them
    assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"]) == (115, 100, 4)


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "refusal"),
        ("pause_turn", "other"),
    ],
)
def test_stop_reasons(stop: str, expected: str) -> None:
    assert convert(_record(stop_reason=stop))["finish_reason"] == expected


def test_tool_use_output() -> None:
    row = convert(
        _record(
            content=[{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            stop_reason="tool_use",
        )
    )
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "t", "name": "f", "arguments": {"a": 1}}
    ]


def test_error_response() -> None:
    rec = _record()
    rec["response"] = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    row = convert(rec)
    assert (row["status"], row["error_type"]) == ("error", "overloaded_error")


def test_streamed_events_are_reassembled() -> None:
    rec = _record()
    rec["response"] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_s",
                "type": "message",
                "model": "claude-x",
                "content": [],
                "usage": {"input_tokens": 7, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": " 2}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    assert AnthropicMessages.sniff(rec)
    row = convert(rec)
    assert (row["record_id"], row["output_text"], row["finish_reason"]) == (
        "msg_s",
        "Hello",
        "tool_calls",
    )
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "t1", "name": "f", "arguments": {"a": 2}}
    ]
    assert (row["input_tokens"], row["output_tokens"], row["response_model"]) == (7, 9, "claude-x")


def test_bad_role_is_named() -> None:
    rec = _record()
    rec["request"]["messages"][0]["role"] = "system"
    with pytest.raises(BadRecord) as err:
        convert(rec)
    assert err.value.field == "request.messages[0].role"


def test_server_tools_are_not_replayable() -> None:
    rec = _record()
    rec["request"]["tools"].append({"type": "web_search_20250305", "name": "web_search"})
    row = convert(rec)
    assert (row["replayable"], row["replay_issue"]) == (
        False,
        "untranslatable: web_search_20250305 tool",
    )
