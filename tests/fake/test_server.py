"""The fake provider over HTTP, driven by the real OpenAI and Anthropic SDKs."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest

from evalpipe.fake import serving

from .conftest import SYSTEM

ORDER = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Where is order #48213?"},
]
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "include_history": {"type": "boolean"},
        "max_events": {"type": "integer", "minimum": 1, "maximum": 20},
    },
    "required": ["order_id", "include_history", "max_events"],
    "additionalProperties": False,
}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Find an order",
            "parameters": TOOL_SCHEMA,
        },
    }
]


def test_chat_completion_looks_like_openai(oai: openai.OpenAI) -> None:
    out = oai.chat.completions.create(model="gpt-4o-mini", messages=ORDER, max_tokens=600)
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", out.id)
    assert out.object == "chat.completion" and abs(out.created - time.time()) < 60
    assert out.model == "gpt-4o-mini-2024-07-18"  # the alias answers as its snapshot
    assert out.system_fingerprint and out.system_fingerprint.startswith("fp_")
    choice = out.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.refusal is None and not choice.message.tool_calls
    text = choice.message.content or ""
    assert "48213" in text and 300 <= len(text) <= 700
    usage = out.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert abs(usage.completion_tokens - len(text) / 4) <= 2
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0
    again = oai.chat.completions.create(model="gpt-4o-mini", messages=ORDER, max_tokens=600)
    assert (again.id, again.choices[0].message.content) == (out.id, text)


def test_streaming_with_usage_matches_the_plain_answer(oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model="gpt-4o-mini-2024-07-18", messages=ORDER)
    stream = oai.chat.completions.create(
        model="gpt-4o-mini-2024-07-18",
        messages=ORDER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" and c.id == plain.id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert all(c.usage is None for c in chunks[:-1])


def test_max_tokens_truncates_with_finish_length(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    out = oai.chat.completions.create(model="gpt-4o-mini", messages=ORDER, max_completion_tokens=10)
    assert out.choices[0].finish_reason == "length"
    assert len(out.choices[0].message.content or "") == 40
    msg = claude.messages.create(
        model="claude-haiku-4-5", system=SYSTEM, messages=ORDER[1:], max_tokens=10
    )
    assert msg.stop_reason == "max_tokens" and len(msg.content[0].text) == 40


def test_anthropic_message_looks_like_anthropic(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(
        model="claude-haiku-4-5", system=SYSTEM, messages=ORDER[1:], max_tokens=600
    )
    assert re.fullmatch(r"msg_01[A-Za-z0-9]{22}", msg.id)
    assert msg.type == "message" and msg.role == "assistant" and msg.model == "claude-haiku-4-5"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.content[0].type == "text" and "48213" in msg.content[0].text
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    assert msg.usage.cache_read_input_tokens == 0 and msg.usage.cache_creation_input_tokens == 0
    with claude.messages.stream(
        model="claude-haiku-4-5", system=SYSTEM, messages=ORDER[1:], max_tokens=600
    ) as stream:
        streamed = stream.get_final_message()
    assert [b.model_dump(include={"type", "text"}) for b in streamed.content] == [
        b.model_dump(include={"type", "text"}) for b in msg.content
    ]
    assert streamed.usage.output_tokens == msg.usage.output_tokens


def test_stop_sequence_ends_the_text(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(
        model="fake-baseline", messages=ORDER[1:], max_tokens=600, stop_sequences=["order #"]
    )
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "order #"
    assert "48213" not in msg.content[0].text


def test_tool_calls_have_arguments_that_fit_the_schema(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    ask = [{"role": "user", "content": "Can you look up order #48213 for me?"}]
    out = oai.chat.completions.create(model="gpt-4o-mini", messages=ask, tools=OPENAI_TOOLS)
    assert out.choices[0].finish_reason == "tool_calls"
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup_order"
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, TOOL_SCHEMA)
    assert args["order_id"] == "48213"
    msg = claude.messages.create(
        model="claude-haiku-4-5",
        messages=ask,
        max_tokens=300,
        tools=[
            {"name": "lookup_order", "description": "Find an order", "input_schema": TOOL_SCHEMA}
        ],
    )
    assert msg.stop_reason == "tool_use"
    block = msg.content[0]
    assert block.type == "tool_use" and block.input == args  # same content, same arguments
    result = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'},
    ]
    after = oai.chat.completions.create(model="gpt-4o-mini", messages=result, tools=OPENAI_TOOLS)
    assert after.choices[0].finish_reason == "stop" and after.choices[0].message.content


def test_streamed_tool_call(oai: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "Please look up order #777123."}]
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini", messages=ask, tools=OPENAI_TOOLS, stream=True
        )
    )
    deltas = [d for c in chunks for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "lookup_order"
    arguments = "".join((d.function.arguments or "") for d in deltas if d.function)
    jsonschema.validate(json.loads(arguments), TOOL_SCHEMA)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_unknown_model_is_404_in_each_providers_shape(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="gpt-9-turbo", messages=ORDER)
    assert info.value.body == {
        "message": "The model `gpt-9-turbo` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }
    with pytest.raises(anthropic.NotFoundError) as ainfo:
        claude.messages.create(model="claude-imaginary-9", messages=ORDER[1:], max_tokens=5)
    assert isinstance(ainfo.value.body, dict)
    assert ainfo.value.body["type"] == "error"
    assert ainfo.value.body["error"]["type"] == "not_found_error"
    assert "claude-imaginary-9" in ainfo.value.body["error"]["message"]


def test_bad_or_missing_key_is_401(fake_root: str) -> None:
    bad = openai.OpenAI(base_url=f"{fake_root}/v1", api_key="bad-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o-mini", messages=ORDER)
    bad_claude = anthropic.Anthropic(base_url=fake_root, api_key="bad-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad_claude.messages.create(model="claude-haiku-4-5", messages=ORDER[1:], max_tokens=5)
    body = {"model": "gpt-4o-mini", "messages": ORDER}
    missing = httpx.post(f"{fake_root}/v1/chat/completions", json=body)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.post(f"{fake_root}/v1/messages", json={**body, "max_tokens": 5})
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", b"{not json"),
        ("/v1/chat/completions", b'{"model": "gpt-4o-mini"}'),
        ("/v1/chat/completions", b'{"model": "gpt-4o-mini", "messages": [{"role": "x"}]}'),
        (
            "/v1/messages",
            b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}',
        ),
        ("/v1/messages", b"[]"),
        ("/v1/messages", b'{"model": "fake-good", "max_tokens": 5, "messages": [], "tools": 3}'),
        (
            "/v1/chat/completions",
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], '
            b'"response_format": {"type": "json_schema", "json_schema": {"schema": '
            b'{"type": "object", "properties": 5}}}}',
        ),
    ],
)
def test_malformed_body_is_400(fake_root: str, path: str, body: bytes) -> None:
    headers = {"authorization": "Bearer k", "x-api-key": "k", "content-type": "application/json"}
    response = httpx.post(f"{fake_root}{path}", content=body, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_flaky_recovers_through_sdk_retries(fake_root: str) -> None:
    client = openai.OpenAI(base_url=f"{fake_root}/v1", api_key="k", max_retries=2)
    retries = []
    for i in range(40):
        ask = [{"role": "user", "content": f"Where is my parcel? Order #{9000 + i}."}]
        raw = client.chat.completions.with_raw_response.create(model="fake-flaky-v2", messages=ask)
        assert raw.parse().choices[0].message.content
        retries.append(raw.retries_taken)
    assert set(retries) == {0, 1} and 4 <= sum(retries) <= 14  # ~20% fail once, then answer
    no_retry = openai.OpenAI(base_url=f"{fake_root}/v1", api_key="k", max_retries=0)
    statuses = set()
    for i in range(40):
        ask = [{"role": "user", "content": f"Second pass, order #{7000 + i}."}]
        try:
            no_retry.chat.completions.create(model="fake-flaky", messages=ask)
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            statuses.add(exc.status_code)
    assert statuses == {429, 503}


def test_models_and_health(fake_root: str) -> None:
    models = httpx.get(f"{fake_root}/v1/models", headers={"authorization": "Bearer k"}).json()
    ids = {m["id"] for m in models["data"]}
    assert {"gpt-4o-mini-2024-07-18", "claude-haiku-4-5", "gpt-4.1-2025-04-14", "fake-slow"} <= ids
    assert httpx.get(f"{fake_root}/v1/models/gpt-4o-mini").json()["id"] == "gpt-4o-mini"
    assert httpx.get(f"{fake_root}/v1/models/gpt-9").status_code == 404
    health = httpx.get(f"{fake_root}/health").json()
    assert health["status"] == "ok" and health["requests"] > 0


def test_subprocess_server_starts_answers_and_stops() -> None:
    with serving(latency_ms=0, subprocess=True) as root:
        client = openai.OpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
        out = client.chat.completions.create(model="gpt-4o-mini", messages=ORDER)
        assert out.model == "gpt-4o-mini-2024-07-18"
        client.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{root}/health")


def test_thread_server_stops_on_exit() -> None:
    with serving(port=0, latency_ms=0) as root:
        assert httpx.get(f"{root}/health").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{root}/health")
