"""otel_genai@1: OTLP JSON spans in the three content conventions, and spans to skip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from evalpipe.ingest import detect_format, ingest_paths
from tests.ingest.helpers import write_jsonl


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [{"stringValue": x} for x in value]}}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def _span(
    span_id: str,
    attrs: dict[str, Any],
    *,
    events: list[Any] | None = None,
    name: str = "chat gpt-4o",
    status: int = 1,
) -> dict[str, Any]:
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": "1729730156000000000",
        "endTimeUnixNano": "1729730156750000000",
        "attributes": [_kv(k, v) for k, v in attrs.items()],
        "events": events or [],
        "status": {"code": status},
    }


def _doc(*spans: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_kv("service.name", "support-bot")]},
                "scopeSpans": [{"scope": {"name": "openai"}, "spans": list(spans)}],
            }
        ]
    }


BASE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 20,
    "gen_ai.usage.output_tokens": 5,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 100,
    "gen_ai.conversation.id": "conv_1",
}


def test_current_semconv_attributes(tmp_path: Path) -> None:
    attrs = {
        **BASE,
        "gen_ai.system_instructions": orjson.dumps(
            [{"type": "text", "content": "Be brief."}]
        ).decode(),
        "gen_ai.input.messages": orjson.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "weather?"}]}]
        ).decode(),
        "gen_ai.output.messages": orjson.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "c1",
                            "name": "w",
                            "arguments": {"city": "Paris"},
                        }
                    ],
                    "finish_reason": "tool_call",
                }
            ]
        ).decode(),
    }
    http = _span("00f067aa0ba902b8", {"http.method": "POST"}, name="POST /v1/chat")
    path = write_jsonl(tmp_path / "spans.jsonl", [_doc(_span("00f067aa0ba902b7", attrs), http)])
    assert detect_format(path) == "otel_genai@1"
    result = ingest_paths(path)
    assert result.records.num_rows == 1 and result.quarantine.num_rows == 0
    row = result.records.to_pylist()[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "Be brief."
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]}
    ]
    assert request["params"]["temperature"] == 0.2 and request["params"]["max_tokens"] == 100
    assert (row["record_id"], row["provider"], row["model"], row["response_model"]) == (
        "00f067aa0ba902b7",
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "c1", "name": "w", "arguments": {"city": "Paris"}}
    ]
    assert (row["finish_reason"], row["input_tokens"], row["output_tokens"]) == (
        "tool_calls",
        20,
        5,
    )
    assert row["latency_ms"] == 750.0
    assert row["timestamp"].isoformat() == "2024-10-24T00:35:56+00:00"
    assert row["session_id"] == "conv_1"
    attrs_out = dict(row["attributes"])
    assert attrs_out["service.name"] == "support-bot"
    assert "gen_ai.input.messages" not in attrs_out
    assert row["replayable"] is True


def test_older_events_and_system_attribute(tmp_path: Path) -> None:
    attrs = {k: v for k, v in BASE.items() if k != "gen_ai.provider.name"}
    attrs["gen_ai.system"] = "openai"
    attrs["gen_ai.usage.prompt_tokens"] = attrs.pop("gen_ai.usage.input_tokens")
    events = [
        {"name": "gen_ai.system.message", "attributes": [_kv("content", "Sys")]},
        {"name": "gen_ai.user.message", "attributes": [_kv("content", "Hello")]},
        {
            "name": "gen_ai.choice",
            "attributes": [
                _kv("index", 0),
                _kv("finish_reason", "stop"),
                _kv("message", '{"content": "Hi!"}'),
            ],
        },
    ]
    path = write_jsonl(tmp_path / "spans.jsonl", [_doc(_span("a1", attrs, events=events))])
    row = ingest_paths(path).records.to_pylist()[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "Sys"
    assert request["messages"][0]["content"][0]["text"] == "Hello"
    assert (row["output_text"], row["finish_reason"], row["provider"], row["input_tokens"]) == (
        "Hi!",
        "stop",
        "openai",
        20,
    )


def test_indexed_prompt_attributes(tmp_path: Path) -> None:
    attrs = {
        **BASE,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "S",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Q",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "A",
        "gen_ai.completion.0.finish_reason": "length",
    }
    path = tmp_path / "trace.json"  # one pretty-printed OTLP document
    path.write_bytes(orjson.dumps(_doc(_span("b1", attrs)), option=orjson.OPT_INDENT_2))
    row = ingest_paths(path).records.to_pylist()[0]
    request = orjson.loads(row["request"])
    assert (request["system"], request["messages"][0]["content"][0]["text"]) == ("S", "Q")
    assert (row["output_text"], row["finish_reason"]) == ("A", "length")


def test_no_content_is_kept_but_not_replayable(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "s.jsonl", [_doc(_span("c1", BASE), _span("c2", BASE, status=2))])
    rows = ingest_paths(path).records.to_pylist()
    assert [(r["replayable"], r["replay_issue"]) for r in rows] == [
        (False, "no_content_captured")
    ] * 2
    assert rows[0]["request_sha256"] is None  # not deduplicated together
    assert (rows[1]["status"], rows[1]["finish_reason"]) == ("error", "error")


def test_one_bad_span_costs_only_itself(tmp_path: Path) -> None:
    bad = {**BASE, "gen_ai.usage.input_tokens": -3}
    path = write_jsonl(tmp_path / "s.jsonl", [_doc(_span("d1", BASE), _span("d2", bad))])
    result = ingest_paths(path)
    assert result.records["record_id"].to_pylist() == ["d1"]
    q = result.quarantine.to_pylist()[0]
    assert q["field"] == "resourceSpans[0].scopeSpans[0].spans[1].gen_ai.usage.input_tokens"
    assert q["line"] == 1
