"""openai_chat@1: canonical request, outputs, streaming, envelope, and bad records."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalpipe.ingest import ingest_paths
from evalpipe.ingest.openai_chat import OpenAIChat, _fast_row
from evalpipe.ingest.records import BadRecord, Location
from evalpipe.tables import RECORDS
from tests.ingest.helpers import chat_record, write_jsonl

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo" / "traffic.jsonl.gz"


def convert(obj: Any) -> dict[str, Any]:
    rows = OpenAIChat().convert(obj, Location("f.jsonl", 1, b"{}"))
    assert len(rows) == 1
    return rows[0]


def canonical(obj: Any) -> dict[str, Any]:
    request: dict[str, Any] = orjson.loads(convert(obj)["request"])
    return request


def test_plain_record_becomes_a_canonical_row(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl", [chat_record(1, metadata={"session_id": "s1", "tenant": "acme"})]
    )
    result = ingest_paths(path)
    assert result.records.schema.equals(RECORDS)
    row = result.records.to_pylist()[0]
    assert row["record_id"] == "chatcmpl-1"
    assert row["source_format"] == "openai_chat@1"
    assert (row["source_file"], row["source_line"]) == (str(path), 1)
    assert row["provider"] == "openai"
    assert (row["model"], row["response_model"]) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert row["system_fingerprint"] == "fp_1"
    assert row["output_text"] == "hello"
    assert row["output_tool_calls"] is None
    assert row["finish_reason"] == "stop"
    assert (row["input_tokens"], row["output_tokens"]) == (10, 2)
    assert (row["cached_input_tokens"], row["reasoning_tokens"]) == (4, 1)
    assert row["latency_ms"] == 120.5
    assert row["timestamp"].isoformat() == "2024-10-24T00:00:01+00:00"
    assert row["status"] == "ok"
    assert row["session_id"] == "s1"
    assert dict(row["attributes"]) == {"session_id": "s1", "tenant": "acme"}
    assert row["replayable"] is True and row["replay_issue"] is None
    assert orjson.loads(row["request_raw"])["model"] == "gpt-4o-mini"
    assert orjson.loads(row["response_raw"])["id"] == "chatcmpl-1"
    assert result.counts["ingested"] == 1 and result.counts["quarantined"] == 0


def test_canonical_request_shape_and_sorted_key_sha() -> None:
    row = convert(chat_record(0))
    request = orjson.loads(row["request"])
    assert request == {
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "question 0"}]}],
        "tools": None,
        "tool_choice": None,
        "response_format": None,
        "params": {"max_tokens": 100, "temperature": 0.2, "top_p": None, "stop": [], "seed": None},
    }
    sorted_json = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    assert row["request"] == sorted_json.decode()
    assert row["request_sha256"] == hashlib.sha256(sorted_json).hexdigest()


def test_same_request_in_other_key_order_hashes_the_same() -> None:
    a = chat_record(0)
    b = chat_record(0)
    b["request"] = dict(reversed(list(b["request"].items())))
    assert convert(a)["request_sha256"] == convert(b)["request_sha256"]


def test_metadata_request_id_wins_over_response_id() -> None:
    row = convert(chat_record(3, metadata={"request_id": "req_3", "user_id": "u9", "n": 2}))
    assert row["record_id"] == "req_3"
    assert row["user_id"] == "u9"
    assert dict(row["attributes"]) == {"request_id": "req_3", "user_id": "u9", "n": "2"}


def test_params_stop_seed_and_unknown_params_go_to_extra() -> None:
    rec = chat_record(0)
    rec["request"].update(
        max_completion_tokens=55,
        stop="END",
        seed=7,
        top_p=0.9,
        logprobs=True,
        n=1,
        stream=True,
        user="u1",
    )
    params = canonical(rec)["params"]
    assert params == {
        "max_tokens": 55,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "extra": {"logprobs": True, "n": 1},
    }
    assert convert(rec)["user_id"] == "u1"


def test_json_schema_response_format_is_normalised() -> None:
    rec = chat_record(0)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    rec["request"]["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }
    assert canonical(rec)["response_format"] == {
        "type": "json_schema",
        "name": "thing",
        "schema": schema,
        "strict": True,
    }
    rec["request"]["response_format"] = {"type": "json_object"}
    assert canonical(rec)["response_format"] == {"type": "json_object"}
    rec["request"]["response_format"] = {"type": "text"}
    assert canonical(rec)["response_format"] is None


def test_tools_tool_calls_and_tool_results() -> None:
    rec = chat_record(0)
    rec["request"].update(
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    rec["request"]["messages"] += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "and this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]
    request = canonical(rec)
    assert request["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert request["tool_choice"] == {"name": "get_weather"}
    assert request["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_call",
                "id": "call_1",
                "name": "get_weather",
                "arguments": {"city": "Paris"},
            }
        ],
    }
    assert request["messages"][2] == {
        "role": "tool",
        "content": [
            {"type": "tool_result", "tool_call_id": "call_1", "content": "sunny", "is_error": False}
        ],
    }
    assert request["messages"][3]["content"][1] == {
        "type": "image",
        "url": "data:image/png;base64,AAAA",
        "media_type": "image/png",
    }


def test_response_tool_calls_and_finish_reasons() -> None:
    rec = chat_record(0)
    choice = rec["response"]["choices"][0]
    choice["message"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "not json"}},
        ],
    }
    choice["finish_reason"] = "tool_calls"
    row = convert(rec)
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "c1", "name": "f", "arguments": {"x": 1}},
        {"id": "c2", "name": "g", "arguments": "not json"},
    ]
    assert (row["finish_reason"], row["output_text"]) == ("tool_calls", "")
    for raw, expected in [
        ("length", "length"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
        ("weird", "other"),
    ]:
        choice["finish_reason"] = raw
        assert convert(rec)["finish_reason"] == expected


def test_refusal_is_its_own_finish_reason() -> None:
    rec = chat_record(0)
    rec["response"]["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "refusal": "I can't help with that.",
    }
    row = convert(rec)
    assert (row["finish_reason"], row["output_text"]) == ("refusal", "I can't help with that.")


def test_error_response_is_an_error_row() -> None:
    rec = chat_record(0)
    rec["response"] = {"error": {"type": "invalid_request_error", "message": "bad"}}
    row = convert(rec)
    assert (row["status"], row["error_type"], row["finish_reason"]) == (
        "error",
        "invalid_request_error",
        "error",
    )


def test_streamed_chunks_are_reassembled() -> None:
    chunks = [
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_s",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
        },
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}],
        },
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}
                        ]
                    },
                }
            ],
        },
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 2}"}}]},
                    "finish_reason": "tool_calls",
                }
            ],
        },
        {
            "id": "chatcmpl-s",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 7},
        },
    ]
    rec = chat_record(0, metadata={})
    rec["response"] = chunks
    rec["ttft_ms"] = 40.0
    assert OpenAIChat.sniff(rec)
    row = convert(rec)
    assert row["record_id"] == "chatcmpl-s"
    assert row["output_text"] == "Hello"
    assert orjson.loads(row["output_tool_calls"]) == [
        {"id": "c1", "name": "f", "arguments": {"a": 2}}
    ]
    assert (row["finish_reason"], row["input_tokens"], row["output_tokens"]) == ("tool_calls", 5, 7)
    assert (row["response_model"], row["system_fingerprint"], row["ttft_ms"]) == (
        "gpt-4o-2024-08-06",
        "fp_s",
        40.0,
    )


def test_bare_proxy_record() -> None:
    rec = chat_record(2)
    bare = {**rec["request"], **rec["response"], "latency_ms": 5, "metadata": {"tenant": "x"}}
    assert OpenAIChat.sniff(bare)
    row = convert(bare)
    assert row["output_text"] == "hello"
    assert orjson.loads(row["request"])["messages"][0]["content"][0]["text"] == "question 2"
    assert "choices" not in orjson.loads(row["request_raw"])
    assert row["latency_ms"] == 5.0


def test_request_without_response() -> None:
    rec = chat_record(0)
    del rec["response"]
    row = convert(rec)
    assert row.get("output_text") is None and row.get("status") is None
    assert row["record_id"] == "req_0"


def test_audio_input_is_not_replayable() -> None:
    rec = chat_record(0)
    rec["request"]["messages"].append(
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA"}}]}
    )
    row = convert(rec)
    assert row.get("replayable") is False
    assert row["replay_issue"] == "untranslatable: input_audio content"


def test_truncated_flag_is_not_replayable() -> None:
    row = convert(chat_record(0, truncated=True))
    assert (row["replayable"], row["replay_issue"]) == (False, "truncated")


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (lambda r: r["request"].pop("messages"), "request.messages", "missing required field"),
        (lambda r: r["request"].update(messages="hi"), "request.messages", "expected a list"),
        (
            lambda r: r["request"]["messages"].append({"role": "wizard", "content": "x"}),
            "request.messages[2].role",
            "unknown role 'wizard'",
        ),
        (
            lambda r: r["request"]["messages"].append({"role": "user", "content": 5}),
            "request.messages[2].content",
            "expected a list",
        ),
        (lambda r: r.update(timestamp="yesterday"), "timestamp", "not a timestamp"),
        (
            lambda r: r["response"]["usage"].update(prompt_tokens="ten"),
            "response.usage.prompt_tokens",
            "expected an integer",
        ),
        (lambda r: r.update(metadata=[1, 2]), "metadata", "expected an object"),
        (lambda r: r.update(latency_ms="fast"), "latency_ms", "expected a number"),
    ],
)
def test_bad_fields_are_named(mutate: Any, field: str, reason: str) -> None:
    rec = chat_record(0)
    mutate(rec)
    with pytest.raises(BadRecord) as err:
        convert(rec)
    assert err.value.field == field
    assert err.value.reason.startswith(reason)


def test_sniff() -> None:
    assert OpenAIChat.sniff(chat_record(0))
    assert not OpenAIChat.sniff({"custom_id": "x", "method": "POST", "body": {}})
    assert not OpenAIChat.sniff([1, 2])
    anthropic = {
        "request": {"model": "claude", "system": "s", "max_tokens": 5, "messages": []},
    }
    assert not OpenAIChat.sniff(anthropic)


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.copy(obj)
    out[path[0]] = _set(obj[path[0]], path[1:], value)
    return out


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            out += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            out += _paths(inner, (*prefix, i))
    return out


def _general(obj: Any) -> dict[str, Any] | None:
    try:
        row = OpenAIChat().convert_general(obj)[0]
    except BadRecord:
        return None
    return {k: v for k, v in row.items() if v is not None}


_leaves = (
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats(-1e6, 1e6) | st.text(max_size=6)
)
_values = st.recursive(
    _leaves,
    lambda i: st.lists(i, max_size=3) | st.dictionaries(st.text(max_size=6), i, max_size=3),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_path_agrees_with_the_general_path(data: st.DataObject) -> None:
    obj: Any = chat_record(1, metadata={"request_id": "r", "session_id": "s", "feature": "f"})
    obj["request"]["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "n", "schema": {}, "strict": True},
    }
    for _ in range(data.draw(st.integers(0, 2))):
        obj = _set(obj, data.draw(st.sampled_from(_paths(obj))), data.draw(_values))
    if not isinstance(obj, dict):
        return
    fast = _fast_row(obj)
    if fast is not None:
        assert {k: v for k, v in fast.items() if v is not None} == _general(obj)


@pytest.mark.skipif(not DEMO.exists(), reason=f"demo traffic not generated yet ({DEMO})")
def test_fast_path_takes_the_demo_traffic_and_agrees() -> None:
    import gzip

    taken = 0
    with gzip.open(DEMO, "rb") as fh:
        for line in fh:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            fast = _fast_row(obj)
            if fast is not None:
                taken += 1
                assert {k: v for k, v in fast.items() if v is not None} == _general(obj)
    assert taken >= 1000
