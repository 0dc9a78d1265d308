"""otel_genai@1: OTLP JSON spans in the three content conventions, and spans to skip."""

from __future__ import annotations

from pathlib import Path

import orjson

from evalpipe.ingest import detect_format, ingest_paths
from tests.ingest.helpers import (
    OTEL_CHAT,
    otel_span,
    otlp_attribute,
    otlp_document,
    write_jsonl,
)


def test_current_semconv_attributes(tmp_path: Path) -> None:
    attrs = {
        **OTEL_CHAT,
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
    http = otel_span("00f067aa0ba902b8", {"http.method": "POST"}, name="POST /v1/chat")
    path = write_jsonl(
        tmp_path / "spans.jsonl", [otlp_document(otel_span("00f067aa0ba902b7", attrs), http)]
    )
    assert detect_format(path) == "otel_genai@1"
    result = ingest_paths(path)
    assert result.records.num_rows == 1 and result.quarantine.num_rows == 0
    assert result.skipped_by_reason == {"not a GenAI span": 1}
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
    attrs = {k: v for k, v in OTEL_CHAT.items() if k != "gen_ai.provider.name"}
    attrs["gen_ai.system"] = "openai"
    attrs["gen_ai.usage.prompt_tokens"] = attrs.pop("gen_ai.usage.input_tokens")
    events = [
        {"name": "gen_ai.system.message", "attributes": [otlp_attribute("content", "Sys")]},
        {"name": "gen_ai.user.message", "attributes": [otlp_attribute("content", "Hello")]},
        {
            "name": "gen_ai.choice",
            "attributes": [
                otlp_attribute("index", 0),
                otlp_attribute("finish_reason", "stop"),
                otlp_attribute("message", '{"content": "Hi!"}'),
            ],
        },
    ]
    path = write_jsonl(
        tmp_path / "spans.jsonl", [otlp_document(otel_span("a1", attrs, events=events))]
    )
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
        **OTEL_CHAT,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "S",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Q",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "A",
        "gen_ai.completion.0.finish_reason": "length",
    }
    path = tmp_path / "trace.json"  # one pretty-printed OTLP document
    path.write_bytes(
        orjson.dumps(otlp_document(otel_span("b1", attrs)), option=orjson.OPT_INDENT_2)
    )
    row = ingest_paths(path).records.to_pylist()[0]
    request = orjson.loads(row["request"])
    assert (request["system"], request["messages"][0]["content"][0]["text"]) == ("S", "Q")
    assert (row["output_text"], row["finish_reason"]) == ("A", "length")


def test_no_content_is_kept_but_not_replayable(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [otlp_document(otel_span("c1", OTEL_CHAT), otel_span("c2", OTEL_CHAT, status=2))],
    )
    rows = ingest_paths(path).records.to_pylist()
    assert [(r["replayable"], r["replay_issue"]) for r in rows] == [
        (False, "no_content_captured")
    ] * 2
    assert rows[0]["request_sha256"] is None  # not deduplicated together
    assert (rows[1]["status"], rows[1]["finish_reason"]) == ("error", "error")


def test_one_bad_span_costs_only_itself(tmp_path: Path) -> None:
    bad = {**OTEL_CHAT, "gen_ai.usage.input_tokens": -3}
    path = write_jsonl(
        tmp_path / "s.jsonl", [otlp_document(otel_span("d1", OTEL_CHAT), otel_span("d2", bad))]
    )
    result = ingest_paths(path)
    assert result.records["record_id"].to_pylist() == ["d1"]
    q = result.quarantine.to_pylist()[0]
    assert q["field"] == "resourceSpans[0].scopeSpans[0].spans[1].gen_ai.usage.input_tokens"
    assert q["line"] == 1


def _messages(value: object) -> str:
    return orjson.dumps(value).decode()


USER_PARTS = [{"role": "user", "parts": [{"type": "text", "content": "Where is my order?"}]}]
ANSWER = {
    "role": "assistant",
    "parts": [{"type": "text", "content": "It ships today."}],
    "finish_reason": "stop",
}


def test_nonstandard_operation_with_messages_is_a_model_call(tmp_path: Path) -> None:
    attrs = {
        **OTEL_CHAT,
        "gen_ai.operation.name": "llm_call",
        "gen_ai.input.messages": _messages(USER_PARTS),
        "gen_ai.output.messages": _messages([ANSWER]),
    }
    path = write_jsonl(tmp_path / "s.jsonl", [otlp_document(otel_span("e1", attrs, name="llm"))])
    result = ingest_paths(path)
    assert result.quarantine.num_rows == 0 and result.counts["skipped"] == 0
    row = result.records.to_pylist()[0]
    assert (row["record_id"], row["output_text"], row["finish_reason"]) == (
        "e1",
        "It ships today.",
        "stop",
    )
    assert (row["replayable"], row["replay_issue"]) == (True, None)


def test_output_messages_as_an_object(tmp_path: Path) -> None:
    wrapped = {**OTEL_CHAT, "gen_ai.input.messages": _messages({"messages": USER_PARTS})}
    wrapped["gen_ai.output.messages"] = _messages({"messages": [ANSWER]})
    single = {**OTEL_CHAT, "gen_ai.input.messages": _messages(USER_PARTS)}
    single["gen_ai.output.messages"] = _messages(ANSWER)
    doc = otlp_document(otel_span("f1", wrapped), otel_span("f2", single))
    result = ingest_paths(write_jsonl(tmp_path / "s.jsonl", [doc]))
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    rows = result.records.to_pylist()
    assert [r["output_text"] for r in rows] == ["It ships today."] * 2
    assert [orjson.loads(r["request"])["messages"][0]["role"] for r in rows] == ["user"] * 2


def test_every_span_is_ingested_quarantined_or_skipped_with_a_reason(tmp_path: Path) -> None:
    content = {**OTEL_CHAT, "gen_ai.input.messages": _messages(USER_PARTS)}
    tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"}
    agent = {**OTEL_CHAT, "gen_ai.operation.name": "invoke_agent"}
    embed = {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3"}
    bad = {**content, "gen_ai.usage.input_tokens": -1}
    spans = [
        otel_span("g1", content),
        otel_span("g2", tool, name="execute_tool lookup_order"),
        otel_span("g3", agent, name="invoke_agent support"),
        otel_span("g4", embed, name="embeddings text-embedding-3"),
        otel_span("g5", {"http.request.method": "POST"}, name="POST /v1/chat/completions"),
        otel_span("g6", bad),
        "not a span",
    ]
    result = ingest_paths(write_jsonl(tmp_path / "s.jsonl", [otlp_document(*spans)]))
    assert (result.counts["ingested"], result.counts["quarantined"], result.counts["skipped"]) == (
        1,
        2,
        4,
    )
    assert result.skipped_by_reason == {"not a model call": 3, "not a GenAI span": 1}


def test_prompt_logged_as_flat_text_is_kept_but_not_replayable(tmp_path: Path) -> None:
    # openlit joins the messages into one "role: content" text on the gen_ai.content.prompt event
    events = [
        {
            "name": "gen_ai.content.prompt",
            "attributes": [otlp_attribute("gen_ai.prompt", "system: Be brief.\nuser: Hi there")],
        },
        {
            "name": "gen_ai.content.completion",
            "attributes": [otlp_attribute("gen_ai.completion", "Hello!")],
        },
    ]
    attrs = {**OTEL_CHAT, "gen_ai.prompt": "system: Be brief.\nuser: Hi there"}
    attrs["gen_ai.completion"] = "Hello!"
    doc = otlp_document(otel_span("h1", attrs, events=events))
    result = ingest_paths(write_jsonl(tmp_path / "s.jsonl", [doc]))
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    row = result.records.to_pylist()[0]
    assert (row["replayable"], row["replay_issue"]) == (
        False,
        "untranslatable: prompt logged as flat text",
    )
    assert row["output_text"] == "Hello!"


def test_request_attributes_that_mean_unset_do_not_cost_the_span(tmp_path: Path) -> None:
    # openlit logs what was not sent as seed "" and max_tokens -1, and stop_sequences []
    attrs = {
        **OTEL_CHAT,
        "gen_ai.input.messages": _messages(USER_PARTS),
        "gen_ai.request.seed": "",
        "gen_ai.request.max_tokens": -1,
        "gen_ai.request.stop_sequences": [],
        "gen_ai.request.temperature": "0.4",
        "gen_ai.request.choice.count": 1,
    }
    result = ingest_paths(
        write_jsonl(tmp_path / "s.jsonl", [otlp_document(otel_span("i1", attrs))])
    )
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    params = orjson.loads(result.records["request"][0].as_py())["params"]
    assert (params["seed"], params["max_tokens"], params["temperature"], params["stop"]) == (
        None,
        None,
        0.4,
        [],
    )
    assert params["extra"] == {"max_tokens": -1, "choice.count": 1}


def test_system_instructions_alone_are_content(tmp_path: Path) -> None:
    attrs = {
        **OTEL_CHAT,
        "gen_ai.system_instructions": _messages([{"type": "text", "content": "S"}]),
    }
    result = ingest_paths(
        write_jsonl(tmp_path / "s.jsonl", [otlp_document(otel_span("j1", attrs))])
    )
    row = result.records.to_pylist()[0]
    assert (row["replayable"], row["replay_issue"]) == (True, None)
    assert row["request_sha256"] is not None
