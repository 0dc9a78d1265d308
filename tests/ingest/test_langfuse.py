"""langfuse@1: observation exports (JSONL, Parquet) and API traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from evalpipe.ingest import detect_format, ingest_paths
from evalpipe.ingest.langfuse import Langfuse
from tests.ingest.helpers import (
    text_message,
    tool_call_part,
    tool_result_message,
    write_jsonl,
)


def _obs(oid: str, **extra: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "id": oid,
        "traceId": "t1",
        "type": "GENERATION",
        "name": "chat",
        "startTime": "2025-03-01T10:00:00.000Z",
        "completionStartTime": "2025-03-01T10:00:00.200Z",
        "endTime": "2025-03-01T10:00:01.000Z",
        "model": "gpt-4o-mini",
        "modelParameters": {"temperature": "0.3", "max_tokens": "200", "top_k": 3},
        "input": orjson.dumps(
            [{"role": "system", "content": "S"}, {"role": "user", "content": f"q {oid}"}]
        ).decode(),
        "output": {"role": "assistant", "content": "answer"},
        "usageDetails": {"input": 11, "output": 4, "total": 15},
        "metadata": {"tenant": "acme", "flags": [1, 2]},
        "level": "DEFAULT",
    }
    obs.update(extra)
    return obs


def test_observation_export(tmp_path: Path) -> None:
    span = _obs("o2", type="SPAN")
    path = write_jsonl(
        tmp_path / "obs.jsonl",
        [_obs("o1"), span, _obs("o1"), _obs("o3", level="ERROR", statusMessage="rate limited")],
    )
    assert detect_format(path) == "langfuse@1"
    result = ingest_paths(path)
    rows = result.records.to_pylist()
    assert [r["record_id"] for r in rows] == ["o1", "o3"]  # the SPAN and the repeated o1 skipped
    assert result.quarantine.num_rows == 0
    assert result.counts["skipped"] == 2
    assert result.skipped_by_reason == {"not a generation": 1, "repeated observation id": 1}
    row = rows[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "S"
    assert request["params"]["temperature"] == 0.3 and request["params"]["max_tokens"] == 200
    assert request["params"]["extra"] == {"top_k": 3}
    assert (row["output_text"], row["input_tokens"], row["output_tokens"]) == ("answer", 11, 4)
    assert (row["latency_ms"], row["ttft_ms"]) == (1000.0, 200.0)
    assert dict(row["attributes"])["flags"] == "[1,2]"
    assert (rows[1]["status"], rows[1]["error_type"]) == ("error", "rate limited")


def test_api_trace_with_scores(tmp_path: Path) -> None:
    trace = {
        "trace": {
            "id": "t1",
            "name": "support",
            "userId": "u1",
            "sessionId": "s1",
            "tags": ["prod"],
            "scores": [{"name": "thumbs", "value": 1}, {"name": "ok", "value": True}],
        },
        "observations": [
            _obs("o1", input={"messages": [{"role": "user", "content": "hi"}]}, output="plain text")
        ],
    }
    path = tmp_path / "traces.json"
    path.write_bytes(orjson.dumps([trace, trace]))
    rows = ingest_paths(path).records.to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["session_id"], row["user_id"], row["output_text"]) == ("s1", "u1", "plain text")
    assert dict(row["labels"]) == {"thumbs": 1.0, "ok": 1.0}
    assert dict(row["attributes"])["trace_name"] == "support"


def test_parquet_export(tmp_path: Path) -> None:
    rows = [_obs("p1"), _obs("p2", type="EVENT")]
    for r in rows:
        for key in ("output", "metadata", "modelParameters", "usageDetails"):
            r[key] = orjson.dumps(r[key]).decode()
    path = tmp_path / "observations.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert detect_format(path) == "langfuse@1"
    result = ingest_paths(path)
    assert result.records["record_id"].to_pylist() == ["p1"]
    assert result.records["output_text"][0].as_py() == "answer"
    assert result.skipped_by_reason == {"not a generation": 1}


def _request(row: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = orjson.loads(row["request"])
    return request


def _one(tmp_path: Path, obs: dict[str, Any]) -> dict[str, Any]:
    result = ingest_paths(write_jsonl(tmp_path / "obs.jsonl", [obs]))
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    rows = result.records.to_pylist()
    assert len(rows) == 1
    return rows[0]


def test_string_model_parameters_are_kept_as_logged(tmp_path: Path) -> None:
    # Langfuse keeps modelParameters as strings: OTel attributes are stringified, null is "null"
    parameters = {
        "temperature": "0.7",
        "max_tokens": "null",
        "top_p": "",
        "seed": "null",
        "stop": '["\\nObservation:"]',
        "stream": "false",
        "maxRetries": "2",
        "http_options": '{"headers": {"x-goog-api-client": "google-adk/1.2.1"}}',
        "frequency_penalty": "null",
        "choice.count": 1,
    }
    row = _one(tmp_path, _obs("s1", modelParameters=parameters))
    params = _request(row)["params"]
    assert (params["temperature"], params["max_tokens"], params["top_p"], params["seed"]) == (
        0.7,
        None,
        None,
        None,
    )
    assert params["stop"] == ["\nObservation:"]
    assert params["extra"] == {
        "stream": "false",
        "maxRetries": "2",
        "http_options": '{"headers": {"x-goog-api-client": "google-adk/1.2.1"}}',
        "choice.count": 1,
    }
    assert row["replayable"] is True


def test_parameter_that_is_not_a_number_stays_in_extra(tmp_path: Path) -> None:
    parameters = {"temperature": "hot", "max_tokens": -1, "maxTokens": "512", "topP": "0.9"}
    row = _one(tmp_path, _obs("s2", modelParameters=parameters))
    params = _request(row)["params"]
    assert (params["temperature"], params["max_tokens"], params["top_p"]) == (None, 512, 0.9)
    assert params["extra"] == {"temperature": "hot", "max_tokens": -1}


def test_responses_item_list_input(tmp_path: Path) -> None:
    items = [
        {"role": "system", "content": "Use the tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Paris?"}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
        },
        {"role": "user", "content": "And tomorrow?"},
    ]
    output = [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": "{}"},
    ]
    row = _one(tmp_path, _obs("r1", input=items, output=output))
    request = _request(row)
    assert request["system"] == "Use the tools."
    assert request["messages"] == [
        text_message("user", "Paris?"),
        {
            "role": "assistant",
            "content": [tool_call_part("call_1", "get_weather", {"city": "Paris"})],
        },
        tool_result_message("call_1", "sunny"),
        text_message("assistant", "Sunny."),
        text_message("user", "And tomorrow?"),
    ]
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "call_2", "name": "get_weather", "arguments": {}}
    ]
    assert row["replayable"] is True


def test_langgraph_js_tool_message_role_is_the_tool_name(tmp_path: Path) -> None:
    # langfuse-langchain (JS) logs a ToolMessage as {role: <tool name>, content, additional_kwargs}
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": "Where is order 42?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"name": "lookup_order", "args": {"id": 42}, "id": "call_7", "type": "tool_call"}
            ],
        },
        {"role": "lookup_order", "content": '{"status": "shipped"}', "additional_kwargs": {}},
    ]
    row = _one(tmp_path, _obs("g1", input=messages))
    request = _request(row)
    assert request["messages"][2] == tool_result_message("call_7", '{"status": "shipped"}')
    assert request["messages"][1]["content"][0]["arguments"] == {"id": 42}


def test_langchain_tool_definitions_logged_as_tool_messages(tmp_path: Path) -> None:
    # the LangChain (Python) handler appends each bound tool as {"role": "tool", "content": def}
    tool = {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
        },
    }
    messages = [
        {"role": "user", "content": "Where is order 42?"},
        {"role": "tool", "content": tool},
    ]
    request = _request(_one(tmp_path, _obs("g2", input=messages)))
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Where is order 42?"}]}
    ]
    assert request["tools"] == [
        {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
        }
    ]


def test_system_only_input_is_content(tmp_path: Path) -> None:
    # a planner call (CrewAI) sends its whole prompt as one system message
    row = _one(tmp_path, _obs("p1", input=[{"role": "system", "content": "Plan the tasks."}]))
    assert (row["replayable"], row["replay_issue"]) == (True, None)
    assert row["request_sha256"] is not None
    assert _request(row)["system"] == "Plan the tasks."


def test_vercel_finish_reason_is_read_from_model_parameters(tmp_path: Path) -> None:
    parameters = {"maxTokens": "512", "finishReason": "tool-calls", "maxRetries": "2"}
    row = _one(tmp_path, _obs("v1", modelParameters=parameters, output="calling a tool"))
    assert row["finish_reason"] == "tool_calls"


def test_langfuse_v3_observation_types_are_recognised(tmp_path: Path) -> None:
    # Langfuse v3 types beside GENERATION / SPAN / EVENT: AGENT, TOOL, CHAIN, RETRIEVER …
    rows = [_obs(f"t{i}", type=kind) for i, kind in enumerate(["AGENT", "TOOL", "CHAIN"])]
    path = write_jsonl(tmp_path / "obs.jsonl", [*rows, _obs("g1")])
    assert all(Langfuse.sniff(row) for row in rows)
    result = ingest_paths(path)
    assert result.skipped_by_reason == {"not a generation": 3}
