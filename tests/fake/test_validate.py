"""The fake provider refuses what the real APIs refuse, with their error shapes.

Each known-bad request below is one the real API answered with a 400 `invalid_request_error`
(the messages are quoted from those answers, as users reported them); the fake must say the same,
through the real SDKs. A parameter table that drifts from the APIs fails here.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from .conftest import SYSTEM

ASK = [{"role": "user", "content": "Where is order #48213?"}]
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup_order", "arguments": '{"order_id": "48213"}'},
}
TOOL = {"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}


def _openai_error(oai: openai.OpenAI, **body: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": ASK, **body}
    extra = {k: body.pop(k) for k in list(body) if k not in ("model", "messages")}
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(**body, extra_body=extra)
    assert isinstance(info.value.body, dict)
    assert set(info.value.body) == {"message", "type", "param", "code"}
    assert info.value.body["type"] == "invalid_request_error"
    return info.value.body


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        ({"top_k": 3}, "Unrecognized request argument supplied: top_k", None, None),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "Unrecognized request argument supplied: thinking",
            None,
            None,
        ),
        (
            {"max_tokens": 300.5},
            "Invalid type for 'max_tokens': expected an integer, but got a decimal number instead.",
            "max_tokens",
            "invalid_type",
        ),
        (
            {"temperature": "0.7"},
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
            "temperature",
            "invalid_type",
        ),
        (
            {"stream": "false"},
            "Invalid type for 'stream': expected a boolean, but got a string instead.",
            "stream",
            "invalid_type",
        ),
        (
            {"temperature": 3},
            "Invalid 'temperature': integer above maximum value. Expected a value <= 2, but got "
            "3 instead.",
            "temperature",
            "integer_above_max_value",
        ),
        (
            {"messages": []},
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
            "an empty array instead.",
            "messages",
            "empty_array",
        ),
        (
            {"messages": [*ASK, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]},
            "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
            "message with 'tool_calls'.",
            "messages.[1].role",
            None,
        ),
        (
            {
                "messages": [*ASK, {"role": "assistant", "tool_calls": [CALL]}, *ASK],
                "tools": [TOOL],
            },
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response "
            "messages: call_1",
            "messages.[1].role",
            None,
        ),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "spotify.play", "parameters": {}}}
                ]
            },
            "Invalid 'tools[0].function.name': string does not match pattern. Expected a string "
            "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            "tools[0].function.name",
            "invalid_value",
        ),
        (
            {"tool_choice": "auto"},
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
            "specified.",
            "tool_choice",
            None,
        ),
    ],
)
def test_openai_refuses_what_the_api_refuses(
    oai: openai.OpenAI, body: dict[str, Any], message: str, param: str | None, code: str | None
) -> None:
    assert _openai_error(oai, **body) == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_openai_takes_its_own_parameters(oai: openai.OpenAI) -> None:
    out = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": SYSTEM},
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
        ],
        tools=[TOOL],  # type: ignore[list-item]
        parallel_tool_calls=False,
        max_completion_tokens=200,
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop=["END"],
        reasoning_effort="low",
        verbosity="low",
        logprobs=False,
        frequency_penalty=0,
        presence_penalty=0,
        service_tier="auto",
    )
    assert out.choices[0].message.content


def _anthropic_error(claude: anthropic.Anthropic, **body: Any) -> str:
    body = {"model": "claude-haiku-4-5", "max_tokens": 200, "messages": ASK, **body}
    extra = {k: body.pop(k) for k in list(body) if k not in ("model", "max_tokens", "messages")}
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(**body, extra_body=extra)
    error = info.value.body
    assert isinstance(error, dict) and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    return str(error["error"]["message"])


_TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "lookup_order", "input": {}}
_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "shipped"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"response_format": {"type": "json_object"}},
            "response_format: Extra inputs are not permitted",
        ),
        (
            {"context_management": {"edits": []}},
            "context_management: Extra inputs are not permitted",
        ),
        ({"stream": "false"}, "stream: Input should be a valid boolean"),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list"),
        ({"messages": []}, "messages: at least one message is required"),
        (
            {"tools": [{"name": "assist.HassTurnOn", "input_schema": {"type": "object"}}]},
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        ),
        (
            {"messages": [{"role": "user", "content": [_RESULT]}]},
            "messages.0.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
            "toolu_1. Each `tool_result` block must have a corresponding `tool_use` block in "
            "the previous message.",
        ),
        (
            {
                "messages": [*ASK, {"role": "assistant", "content": [_TOOL_USE]}, *ASK],
                "tools": [{"name": "lookup_order", "input_schema": {"type": "object"}}],
            },
            "messages.2: `tool_use` ids were found without `tool_result` blocks immediately "
            "after: toolu_1. Each `tool_use` block must have a corresponding `tool_result` "
            "block in the next message.",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "content": [{**_TOOL_USE, "id": "call:1"}]},
                    {"role": "user", "content": [{**_RESULT, "tool_use_id": "call:1"}]},
                ]
            },
            "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "content": [_TOOL_USE]},
                    {"role": "user", "content": [{"type": "text", "text": "and?"}, _RESULT]},
                ],
                "tools": [{"name": "lookup_order", "input_schema": {"type": "object"}}],
            },
            "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message. "
            "Messages following `tool_use` blocks must begin with a matching number of "
            "`tool_result` blocks.",
        ),
        (
            {
                "messages": [
                    *ASK,
                    {"role": "assistant", "content": [_TOOL_USE]},
                    {"role": "user", "content": [_RESULT]},
                ]
            },
            "Requests which include tool_use or tool_result blocks must define tools.",
        ),
        ({"output_config": {"effort": "minimal"}}, "output_config.effort: Input should be"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 1024},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
    ],
)
def test_anthropic_refuses_what_the_api_refuses(
    claude: anthropic.Anthropic, body: dict[str, Any], message: str
) -> None:
    assert _anthropic_error(claude, **body).startswith(message)


def test_anthropic_takes_its_own_parameters(claude: anthropic.Anthropic) -> None:
    msg = claude.messages.create(
        model="claude-haiku-4-5",
        system=SYSTEM,
        messages=[
            *ASK,  # type: ignore[list-item]
            {"role": "assistant", "content": [_TOOL_USE]},  # type: ignore[list-item]
            {"role": "user", "content": [_RESULT]},  # type: ignore[list-item]
        ],
        max_tokens=2048,
        stop_sequences=["END"],
        tools=[{"name": "lookup_order", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 1024},
        output_config={"effort": "low"},
        service_tier="auto",
    )
    assert msg.content
