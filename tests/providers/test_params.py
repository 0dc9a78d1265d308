"""The parameter model: one table per API, the logged spellings, coercion and cross-API mapping."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from evalpipe.providers.params import (
    ABSENT,
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_COMPATIBLE,
    OPENAI_RESPONSES,
    PARAMS,
    Api,
    Impossible,
    NotReplayed,
    Untranslatable,
    coerce,
    params_for,
    read_params,
)

# --- the tables against the SDKs' request types ------------------------------------------------

# Declared by the SDKs' request types but sent as HTTP headers (anthropic resources/messages.py).
_HEADERS = {"user_profile_id", "workspace_id"}


def _declared(create: Any) -> set[str]:
    """The body parameters an SDK method declares (its keyword arguments)."""
    skip = {"self", "extra_headers", "extra_query", "extra_body", "timeout"}
    return set(inspect.signature(create).parameters) - skip


def test_chat_table_is_what_the_openai_sdk_declares() -> None:
    from openai.resources.chat.completions import AsyncCompletions

    assert set(OPENAI_CHAT) == _declared(AsyncCompletions.create)


def test_responses_table_is_what_the_openai_sdk_declares() -> None:
    from openai.resources.responses import AsyncResponses

    assert set(OPENAI_RESPONSES) == _declared(AsyncResponses.create)


def test_messages_table_is_what_the_anthropic_sdk_declares() -> None:
    from anthropic.resources.messages import AsyncMessages

    assert set(ANTHROPIC_MESSAGES) == _declared(AsyncMessages.create) - _HEADERS


def test_openai_compatible_is_a_subset_of_chat() -> None:
    assert set(OPENAI_COMPATIBLE) < set(OPENAI_CHAT)
    assert all(OPENAI_COMPATIBLE[k] == OPENAI_CHAT[k] for k in OPENAI_COMPATIBLE)


# --- coercion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "schema", "expected"),
    [
        ("false", OPENAI_CHAT["logprobs"], False),
        ("True", OPENAI_CHAT["logprobs"], True),
        ("0.7", OPENAI_CHAT["temperature"], 0.7),
        ("300", OPENAI_CHAT["max_completion_tokens"], 300),
        (300.0, OPENAI_CHAT["max_completion_tokens"], 300),
        ("null", OPENAI_CHAT["temperature"], ABSENT),
        ("", OPENAI_CHAT["temperature"], ABSENT),
        (None, OPENAI_CHAT["temperature"], ABSENT),
        ("END", ANTHROPIC_MESSAGES["stop_sequences"], ["END"]),
        ('["a", "b"]', ANTHROPIC_MESSAGES["stop_sequences"], ["a", "b"]),
        ('{"effort": "low"}', OPENAI_RESPONSES["reasoning"], {"effort": "low"}),
        ("END", OPENAI_CHAT["stop"], "END"),
    ],
)
def test_values_are_coerced_where_the_meaning_is_certain(
    value: Any, schema: dict[str, Any], expected: Any
) -> None:
    got = coerce(value, schema)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("value", "schema"),
    [
        ("hot", OPENAI_CHAT["temperature"]),
        ("0.5", OPENAI_CHAT["max_completion_tokens"]),
        (True, OPENAI_CHAT["temperature"]),
        ("yes", OPENAI_CHAT["logprobs"]),
        ("nan", OPENAI_CHAT["temperature"]),
        (3, OPENAI_CHAT["user"]),
    ],
)
def test_values_whose_meaning_is_not_certain_are_refused(
    value: Any, schema: dict[str, Any]
) -> None:
    with pytest.raises(Impossible):
        coerce(value, schema)


# --- reading the logged params -------------------------------------------------------------------


def test_framework_metadata_and_impossible_values_are_dropped_with_a_reason() -> None:
    # modelParameters as Langfuse records them from LangChain, Vercel AI SDK and Google ADK apps
    logged = {
        "max_tokens": -1,
        "temperature": None,
        "extra": {
            "temperature": "hot",
            "maxRetries": 2,
            "http_options": {"timeout": 30},
            "response_mime_type": "application/json",
            "stream": "false",
            "store": True,
            "topP": "0.9",
            "frequencyPenalty": "0",
            "reasoning": '{"effort": "low", "summary": "auto"}',
            "context_window": "",
        },
    }
    read = read_params(logged)
    assert read.values == {
        "top_p": 0.9,
        "frequency_penalty": 0.0,
        "reasoning_effort": "low",
        "reasoning.summary": "auto",
    }
    assert read.lost == [
        NotReplayed("max_tokens", "impossible value"),
        NotReplayed("temperature", "impossible value"),
        NotReplayed("maxRetries", "framework setting"),
        NotReplayed("http_options", "framework setting"),
        NotReplayed("response_mime_type", "framework setting"),
        NotReplayed("store", "replay setting"),
    ]  # `stream: "false"` is the default: nothing lost; an empty value means not set


def test_a_limit_logged_as_infinity_is_no_limit() -> None:
    # LangChain.js logs an unset maxTokens as Infinity; Langfuse keeps it as a string
    read = read_params({"max_tokens": 400, "extra": {"max_tokens": "Infinity"}})
    assert read == ({"max_tokens": 400}, [])


def test_spellings_of_one_concept_conflict_only_when_they_differ() -> None:
    read = read_params({"max_tokens": 300, "extra": {"maxTokens": "300", "max_output_tokens": 50}})
    assert read.values == {"max_tokens": 300}
    assert read.lost == [NotReplayed("max_output_tokens", "conflicts with max_tokens")]


# --- one API's share ---------------------------------------------------------------------------


def test_each_api_gets_its_own_spelling() -> None:
    values = {"max_tokens": 300, "stop": ["END"], "reasoning_effort": "high", "verbosity": "low"}
    assert params_for(values, "openai_chat").sent == {
        "max_completion_tokens": 300,
        "stop": ["END"],
        "reasoning_effort": "high",
        "verbosity": "low",
    }
    responses = params_for(values, "openai_responses")
    assert responses.sent == {
        "max_output_tokens": 300,
        "reasoning": {"effort": "high"},
        "text": {"verbosity": "low"},
    }
    assert responses.lost == [NotReplayed("stop", "no equivalent on OpenAI Responses")]
    claude = params_for(values, "anthropic_messages")
    assert claude.sent == {
        "max_tokens": 300,
        "stop_sequences": ["END"],
        "output_config": {"effort": "high"},
    }
    assert claude.lost == [NotReplayed("verbosity", "no equivalent on Anthropic Messages")]
    assert params_for(values, "openai_compatible").sent["max_tokens"] == 300


API_PAIRS = [(a, b) for a in PARAMS for b in PARAMS if a != b]


@pytest.mark.parametrize(("source", "target"), API_PAIRS)
def test_cross_api_mapping_round_trips(source: Api, target: Api) -> None:
    # sent to one API, logged, read back, sent to another, logged, read back: every value both
    # APIs can express survives; the others are listed as lost on the way
    values = {"max_tokens": 512, "stop": ["END"], "reasoning_effort": "medium", "seed": 7}
    values |= {"verbosity": "high", "top_p": 0.5, "parallel_tool_calls": False}
    there = params_for(values, source)
    back = read_params({"extra": there.sent}).values
    assert back == {k: v for k, v in values.items() if k not in {n.param for n in there.lost}}
    onward = params_for(back, target)
    final = read_params({"extra": onward.sent}).values
    assert final == {k: v for k, v in back.items() if k not in {n.param for n in onward.lost}}


def test_thinking_budgets_map_to_anthropic_thinking() -> None:
    google = read_params({"extra": {"thinking_config": {"thinking_budget": 2048}}})
    assert google.values == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert params_for(google.values, "anthropic_messages").sent == {
        "thinking": {"type": "enabled", "budget_tokens": 2048}
    }
    assert params_for(google.values, "openai_chat").lost == [
        NotReplayed("thinking", "no equivalent on OpenAI chat completions")
    ]
    adk = read_params({"extra": {"thinkingConfig": '{"thinkingBudget": -1}'}})
    assert adk.values == {"thinking": {"type": "adaptive"}}
    off = read_params({"extra": {"thinking_config": {"thinking_budget": 0}}})
    assert off.values == {"thinking": {"type": "disabled"}}


def test_a_value_the_target_does_not_take_is_listed() -> None:
    plan = params_for({"reasoning_effort": "minimal"}, "anthropic_messages")
    assert plan.sent == {}
    assert plan.lost == [NotReplayed("reasoning_effort", "not accepted by Anthropic Messages")]


def test_a_number_outside_the_targets_range_is_untranslatable() -> None:
    # chat takes max_tokens from 1; Responses' max_output_tokens starts at 16
    assert params_for({"max_tokens": 5}, "openai_chat").sent == {"max_completion_tokens": 5}
    with pytest.raises(Untranslatable, match="max_tokens"):
        params_for({"max_tokens": 5}, "openai_responses")


def test_temperature_above_one_is_never_sent_to_anthropic() -> None:
    # with an SDK that sends temperature (range 0..1) the request is untranslatable; with
    # anthropic 2.x, which sends no sampling parameters, temperature is listed as not sent
    if "temperature" in ANTHROPIC_MESSAGES:
        with pytest.raises(Untranslatable, match="temperature"):
            params_for({"temperature": 1.5}, "anthropic_messages")
    else:
        plan = params_for({"temperature": 1.5}, "anthropic_messages")
        assert plan.sent == {}
        assert plan.lost == [NotReplayed("temperature", "no equivalent on Anthropic Messages")]
    assert params_for({"temperature": 1.5}, "openai_chat").sent == {"temperature": 1.5}


def test_n_above_one_is_untranslatable_and_defaults_cost_nothing() -> None:
    with pytest.raises(Untranslatable, match="n > 1"):
        params_for({"n": 2}, "openai_chat")
    assert params_for({"n": 1, "logprobs": False}, "anthropic_messages") == ({}, [])
