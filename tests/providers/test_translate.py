"""Canonical request → OpenAI chat and → Anthropic Messages (FORMATS.md translation table)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from evalpipe.providers.translate import (
    Untranslatable,
    apply_arm_overrides,
    to_anthropic,
    to_openai,
    translate,
)

SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}

REQUEST = {
    "system": "Be brief.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
            ],
        },
        {
            "role": "tool",
            "content": [{"type": "tool_result", "tool_call_id": "c1", "content": "12C"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]},
    ],
    "tools": [{"name": "weather", "description": "Forecast", "parameters": {"type": "object"}}],
    "tool_choice": {"name": "weather"},
    "response_format": None,
    "params": {"max_tokens": 100, "temperature": 0.2, "stop": ["END"]},
}


def test_openai_shape() -> None:
    kw = to_openai(REQUEST, model="gpt-4o-mini")
    assert kw["messages"][0] == {"role": "system", "content": "Be brief."}
    call = kw["messages"][2]["tool_calls"][0]
    assert call["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert kw["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "12C"}
    assert kw["tools"][0]["function"]["name"] == "weather"
    assert kw["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    # max_tokens is deprecated on chat completions (reasoning models refuse it)
    assert (kw["max_completion_tokens"], kw["temperature"], kw["stop"]) == (100, 0.2, ["END"])


def test_anthropic_shape() -> None:
    kw = to_anthropic(REQUEST, model="claude-haiku-4-5")
    assert kw["system"] == "Be brief."
    assert [m["role"] for m in kw["messages"]] == ["user", "assistant", "user"]
    assert kw["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "c1",
        "name": "weather",
        "input": {"city": "Paris"},
    }
    # the tool result and the next user text merge into one user turn
    blocks = kw["messages"][2]["content"]
    assert blocks[0]["type"] == "tool_result" and blocks[0]["tool_use_id"] == "c1"
    assert blocks[1] == {"type": "text", "text": "And tomorrow?"}
    assert kw["tools"][0]["input_schema"] == {"type": "object"}
    assert kw["tool_choice"] == {"type": "tool", "name": "weather"}
    assert kw["stop_sequences"] == ["END"] and kw["max_tokens"] == 100


def test_structured_output_both_ways() -> None:
    req = {
        "system": None,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "response_format": {"type": "json_schema", "name": "r", "schema": SCHEMA, "strict": True},
        "params": {},
    }
    o = to_openai(req, model="m")
    assert o["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": SCHEMA, "strict": True},
    }
    a = to_anthropic(req, model="m", default_max_tokens=321)
    assert a["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert a["max_tokens"] == 321
    assert a["messages"] == [{"role": "user", "content": "hi"}]


def test_untranslatable_requests_are_refused() -> None:
    req = {"messages": [{"role": "user", "content": "x"}], "params": {"extra": {"n": 3}}}
    with pytest.raises(Untranslatable, match="n > 1"):
        to_anthropic(req, model="m")


def test_unknown_params_are_never_sent_and_say_why() -> None:
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "params": {"extra": {"logit_bias": {"1": 2}, "maxRetries": 3, "top_k": 5}},
    }
    out = translate(req, api="openai_chat", model="m")
    assert out.kwargs["logit_bias"] == {"1": 2} and "extra_body" not in out.kwargs
    assert "maxRetries" not in out.kwargs and "top_k" not in out.kwargs
    assert out.not_replayed == [
        ("maxRetries", "framework setting"),
        ("top_k", "no equivalent on OpenAI chat completions"),
    ]
    claude = translate(req, api="anthropic_messages", model="m")
    assert "logit_bias" not in claude.kwargs and "maxRetries" not in claude.kwargs
    assert ("logit_bias", "no equivalent on Anthropic Messages") in claude.not_replayed
    assert claude.not_replayed_json() is not None
    assert orjson.loads(claude.not_replayed_json() or "[]")[0] == {
        "param": "maxRetries",
        "reason": "framework setting",
    }
    assert translate(REQUEST, api="openai_chat", model="m").not_replayed_json() is None


def test_arm_overrides() -> None:
    out = apply_arm_overrides(
        REQUEST, params={"temperature": 0, "reasoning_effort": "low"}, system_append="v7"
    )
    assert out["system"] == "Be brief.\n\nv7"
    assert out["params"]["overrides"] == {"temperature": 0, "reasoning_effort": "low"}
    assert REQUEST["params"]["temperature"] == 0.2  # the input is not changed
    kw = to_openai(out, model="m")
    assert (kw["temperature"], kw["reasoning_effort"]) == (0, "low")


def test_an_override_wins_over_every_logged_spelling() -> None:
    req = {
        "messages": [{"role": "user", "content": "x"}],
        "params": {"max_tokens": 900, "extra": {"maxTokens": 900, "reasoningEffort": "high"}},
    }
    out = apply_arm_overrides(req, params={"max_tokens": 50, "reasoning_effort": "low"})
    sent = translate(out, api="openai_chat", model="m")
    assert (sent.kwargs["max_completion_tokens"], sent.kwargs["reasoning_effort"]) == (50, "low")
    assert sent.not_replayed == []  # superseded, not lost


def test_tool_names_the_apis_reject_are_sanitised_and_restored() -> None:
    from evalpipe.providers.translate import api_tool_name, restore_tool_names

    req = {
        "messages": [{"role": "user", "content": "play"}],
        "tools": [{"name": "spotify.play", "parameters": {"type": "object"}}],
        "tool_choice": {"name": "spotify.play"},
    }
    o = to_openai(req, model="m")
    assert o["tools"][0]["function"]["name"] == "spotify_play"
    assert o["tool_choice"]["function"]["name"] == "spotify_play"
    a = to_anthropic(req, model="m")
    assert a["tools"][0]["name"] == "spotify_play" and a["tool_choice"]["name"] == "spotify_play"
    assert api_tool_name("ok_name-1") == "ok_name-1"
    back = restore_tool_names('[{"id": "c", "name": "spotify_play", "arguments": {}}]', req)
    assert back is not None and '"name":"spotify.play"' in back


def test_parallel_tool_calls_translate_across_providers() -> None:
    # OpenAI's `parallel_tool_calls` is Anthropic's `disable_parallel_tool_use`, inverted
    req = {**REQUEST, "tool_choice": "auto", "params": {"parallel_tool_calls": False}}
    assert to_openai(req, model="m", same_provider=False)["parallel_tool_calls"] is False
    a = to_anthropic(req, model="m", same_provider=False)
    assert a["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "extra_body" not in a
    # without a logged tool_choice Anthropic still needs one to carry the flag
    a = to_anthropic({**req, "tool_choice": None}, model="m")
    assert a["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    # no tools: neither API accepts the flag, so it is not sent
    bare = {**req, "messages": req["messages"][:1], "tools": None, "tool_choice": None}
    assert "parallel_tool_calls" not in to_openai(bare, model="m")
    assert "tool_choice" not in to_anthropic(bare, model="m")


def _msg(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "content": list(parts)}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


RESULT_ONLY = {
    # a trace that starts with a tool result: the call that asked for it is not in the trace
    "system": "Be brief.",
    "messages": [
        _msg("tool", {"type": "tool_result", "tool_call_id": "c0", "content": "42"}),
        _msg("user", _text("Thanks. And the total?")),
    ],
    "params": {},
}


@pytest.mark.parametrize("api", ["openai_chat", "anthropic_messages"])
def test_an_orphaned_tool_result_is_dropped_and_said_so(api: str) -> None:
    out = translate(RESULT_ONLY, api=api, model="m")  # type: ignore[arg-type]
    sent = orjson.dumps(out.kwargs["messages"]).decode()
    assert "c0" not in sent and "42" not in sent
    assert out.not_replayed == [("tool_result", "no tool call before it (dropped)")]


@pytest.mark.parametrize("api", ["openai_chat", "anthropic_messages"])
def test_a_tool_call_without_its_result_is_untranslatable(api: str) -> None:
    req = {
        "messages": [
            _msg("user", _text("Weather?")),
            _msg("assistant", {"type": "tool_call", "id": "c1", "name": "w", "arguments": {}}),
            _msg("user", _text("Hello?")),
        ],
        "tools": [{"name": "w", "parameters": {"type": "object"}}],
    }
    with pytest.raises(Untranslatable, match="tool call without its result"):
        translate(req, api=api, model="m")  # type: ignore[arg-type]


def test_no_message_left_once_the_system_prompt_moves_is_untranslatable_on_anthropic() -> None:
    req = {"system": "You are a router.", "messages": [], "params": {}}
    assert translate(req, api="openai_chat", model="m").kwargs["messages"] == [
        {"role": "system", "content": "You are a router."}
    ]
    with pytest.raises(Untranslatable, match="no message left"):
        translate(req, api="anthropic_messages", model="m")


def test_tool_results_open_their_turn_and_ids_fit_anthropic() -> None:
    req = {
        "messages": [
            _msg("user", _text("Weather?")),
            _msg(
                "assistant", {"type": "tool_call", "id": "call:1", "name": "w", "arguments": "{}"}
            ),
            _msg("user", _text("Quick please")),
            _msg("tool", {"type": "tool_result", "tool_call_id": "call:1", "content": "sunny"}),
        ],
        "tools": [{"name": "w", "parameters": {"properties": {}}}],
    }
    claude = translate(req, api="anthropic_messages", model="m").kwargs
    last = claude["messages"][-1]["content"]
    assert [b["type"] for b in last] == ["tool_result", "text"]
    assert last[0]["tool_use_id"] == claude["messages"][1]["content"][0]["id"] == "call_1"
    assert claude["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    chat = translate(req, api="openai_chat", model="m").kwargs
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "tool", "user"]


def test_tool_calls_without_tool_definitions_are_untranslatable_on_anthropic() -> None:
    req = {
        "messages": [
            _msg("user", _text("Weather?")),
            _msg("assistant", {"type": "tool_call", "id": "c1", "name": "w", "arguments": {}}),
            _msg("tool", {"type": "tool_result", "tool_call_id": "c1", "content": "sunny"}),
        ],
    }
    assert translate(req, api="openai_chat", model="m").kwargs["messages"][2]["role"] == "tool"
    with pytest.raises(Untranslatable, match="no tools"):
        translate(req, api="anthropic_messages", model="m")


def test_a_string_stream_flag_is_never_sent() -> None:
    req = {
        "messages": [_msg("user", _text("hi"))],
        "params": {"extra": {"stream": "false", "stream_options": "null"}},
    }
    for api in ("openai_chat", "openai_compatible", "anthropic_messages"):
        out = translate(req, api=api, model="m")  # type: ignore[arg-type]
        assert "stream" not in out.kwargs and out.not_replayed == []
    streamed = {**req, "params": {"extra": {"stream": True}}}
    assert translate(streamed, api="openai_chat", model="m").not_replayed == [
        ("stream", "replay setting")
    ]


def test_tools_that_collide_once_renamed_are_untranslatable() -> None:
    req = {
        "messages": [_msg("user", _text("play"))],
        "tools": [{"name": "spotify.play"}, {"name": "spotify_play"}],
    }
    with pytest.raises(Untranslatable, match="share a name"):
        translate(req, api="openai_chat", model="m")
