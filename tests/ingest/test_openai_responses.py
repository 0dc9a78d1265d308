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


# --- streamed recordings: the list of server-sent events ---------------------------------------


def _events(rid: str, *, completed: bool = True) -> list[dict[str, Any]]:
    """A streamed Responses recording: a text answer and a function call, event by event."""
    done = _record(rid, "weather?")["response"]
    message = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
    }
    call = {
        "id": "fc_1",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    done["output"] = [message, call]
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**message, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
        *(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": piece,
            }
            for piece in ("Let ", "me ", "check.")
        ),
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**call, "status": "in_progress", "arguments": ""},
        },
        *(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_1",
                "output_index": 1,
                "delta": piece,
            }
            for piece in ('{"city"', ': "Paris"}')
        ),
    ]
    if completed:
        events.append({"type": "response.completed", "response": done})
    for n, event in enumerate(events):
        event["sequence_number"] = n
    return events


def test_streamed_events_are_read_from_the_completed_event(tmp_path: Path) -> None:
    rec = _record("resp_s", "weather?")
    rec["response"] = _events("resp_s")
    result = ingest_paths(write_jsonl(tmp_path / "r.jsonl", [rec]))
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    row = result.records.to_pylist()[0]
    assert (row["record_id"], row["output_text"], row["finish_reason"]) == (
        "resp_s",
        "Let me check.",
        "tool_calls",
    )
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert (row["input_tokens"], row["output_tokens"], row["status"]) == (12, 5, "ok")
    assert orjson.loads(row["response_raw"]) == rec["response"]  # the events, untouched


def test_streamed_events_without_completed_are_rebuilt_from_the_deltas() -> None:
    rec = _record("resp_d", "weather?")
    rec["response"] = _events("resp_d", completed=False)
    row = OpenAIResponses().convert(rec, Location("f", 1))[0]
    assert (row["record_id"], row["output_text"]) == ("resp_d", "Let me check.")
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert row["input_tokens"] is None  # usage comes with response.completed only
    assert row["response_model"] == "gpt-4.1-mini-2025-04-14"


def test_streamed_failure_is_an_error_row() -> None:
    rec = _record("resp_f", "x")
    failed = {**rec["response"], "status": "failed", "output": []}
    failed["error"] = {"code": "server_error", "message": "boom"}
    rec["response"] = [
        {"type": "response.created", "sequence_number": 0, "response": rec["response"]},
        {"type": "response.failed", "sequence_number": 1, "response": failed},
    ]
    row = OpenAIResponses().convert(rec, Location("f", 1))[0]
    assert (row["status"], row["error_type"], row["finish_reason"]) == (
        "error",
        "server_error",
        "error",
    )


def test_bare_event_list_is_kept_but_not_replayable(tmp_path: Path) -> None:
    result = ingest_paths(write_jsonl(tmp_path / "r.jsonl", [_events("resp_b")]))
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    row = result.records.to_pylist()[0]
    assert (row["record_id"], row["output_text"]) == ("resp_b", "Let me check.")
    assert (row["replayable"], row["replay_issue"]) == (False, "no_content_captured")
    assert (row["model"], row["response_model"]) == (None, "gpt-4.1-mini-2025-04-14")


def test_streamed_events_recorded_as_sse_event_and_data() -> None:
    rec = _record("resp_e", "weather?")
    rec["response"] = [
        {"event": event["type"], "data": orjson.dumps(event).decode()}
        for event in _events("resp_e")
    ]
    row = OpenAIResponses().convert(rec, Location("f", 1))[0]
    assert (row["record_id"], row["output_text"], row["input_tokens"]) == (
        "resp_e",
        "Let me check.",
        12,
    )
