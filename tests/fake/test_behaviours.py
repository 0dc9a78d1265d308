"""Behaviours by model name: same content ⇒ same answer on both APIs; the rates the demo relies on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from statistics import mean
from typing import Any

import anthropic
import jsonschema
import openai
import pytest

from evalpipe.fake import BEHAVIOURS, MODELS, Conversation, answer, resolve_model

from .conftest import SYSTEM, TRIAGE_SCHEMA, tickets

FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "ticket_triage", "strict": True, "schema": TRIAGE_SCHEMA},
}


async def _gather(calls: list[Callable[[], Awaitable[str]]], concurrency: int = 32) -> list[str]:
    sem = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[str]]) -> str:
        async with sem:
            return await call()

    return await asyncio.gather(*(one(c) for c in calls))


def _openai_call(
    client: openai.AsyncOpenAI, model: str, text: str, **extra: Any
) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        out = await client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            max_tokens=600,
            **extra,
        )
        return out.choices[0].message.content or ""

    return call


def _anthropic_call(
    client: anthropic.AsyncAnthropic, model: str, text: str, **extra: Any
) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        out = await client.messages.create(
            model=model,
            system=SYSTEM,
            messages=[{"role": "user", "content": text}],
            max_tokens=600,
            **extra,
        )
        return "".join(b.text for b in out.content if b.type == "text")

    return call


@contextlib.asynccontextmanager
async def _clients(root: str) -> AsyncIterator[tuple[openai.AsyncOpenAI, anthropic.AsyncAnthropic]]:
    oai = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="k", max_retries=2)
    claude = anthropic.AsyncAnthropic(base_url=root, api_key="k", max_retries=2)
    try:
        yield oai, claude
    finally:
        await oai.close()
        await claude.close()


async def test_structured_output_is_identical_across_apis_and_valid(fake_root: str) -> None:
    texts = tickets(30, seed=3)
    schema_format = {"format": {"type": "json_schema", "schema": TRIAGE_SCHEMA}}
    async with _clients(fake_root) as (oai, claude):
        baseline = await _gather(
            [_openai_call(oai, "gpt-4o-mini", t, response_format=FORMAT) for t in texts]
        )
        good = await _gather(
            [
                _anthropic_call(claude, "claude-haiku-4-5", t, output_config=schema_format)
                for t in texts
            ]
        )
        baseline_via_anthropic = await _gather(
            [
                _anthropic_call(claude, "fake-baseline", t, output_config=schema_format)
                for t in texts
            ]
        )
    assert good == baseline == baseline_via_anthropic
    for text in baseline:
        jsonschema.validate(json.loads(text), TRIAGE_SCHEMA)
    categories = {json.loads(t)["category"] for t in baseline}
    assert {"billing", "account", "shipping", "technical"} <= categories


async def test_free_text_is_the_same_on_both_apis(fake_root: str) -> None:
    texts = tickets(12, seed=4)
    async with _clients(fake_root) as (oai, claude):
        via_openai = await _gather([_openai_call(oai, "fake-good", t) for t in texts])
        via_anthropic = await _gather(
            [_anthropic_call(claude, "claude-haiku-4-5", t) for t in texts]
        )
    assert via_openai == via_anthropic


async def test_regressed_breaks_about_8_percent_of_json(fake_root: str) -> None:
    texts = tickets(300, seed=5)
    # extra_body skips the SDK's recursive transform of the schema (half its CPU per call here).
    async with _clients(fake_root) as (oai, _):
        outs = await _gather(
            [
                _openai_call(
                    oai, "gpt-4.1-mini-2025-04-14", t, extra_body={"response_format": FORMAT}
                )
                for t in texts
            ]
        )
    broken = []
    for out in outs:
        try:
            jsonschema.validate(json.loads(out), TRIAGE_SCHEMA)
        except json.JSONDecodeError:
            broken.append(out)
    assert 0.04 <= len(broken) / len(outs) <= 0.12
    assert any(b.startswith("Sure!") for b in broken)  # prose around the JSON
    assert any(b.endswith(",}") for b in broken)  # a trailing comma
    assert any(not b.rstrip().endswith("}") for b in broken)  # truncated


async def test_regressed_is_about_60_percent_longer_and_good_rewords_a_quarter(
    fake_root: str,
) -> None:
    texts = tickets(60, seed=6)
    async with _clients(fake_root) as (oai, claude):
        baseline = await _gather([_openai_call(oai, "gpt-4o-mini", t) for t in texts])
        regressed = await _gather([_openai_call(oai, "gpt-4.1-mini", t) for t in texts])
        good = await _gather([_anthropic_call(claude, "claude-haiku-4-5", t) for t in texts])
    assert all(300 <= len(b) <= 700 for b in baseline)
    ratio = mean(len(r) / len(b) for r, b in zip(regressed, baseline, strict=True))
    assert 1.45 <= ratio <= 1.75
    reworded = [(g, b) for g, b in zip(good, baseline, strict=True) if g != b]
    assert 0.15 <= len(reworded) / len(texts) <= 0.35
    assert all(0.9 <= len(g) / len(b) <= 1.1 for g, b in reworded)


async def test_refuser_collapse_and_unknown_names(fake_root: str) -> None:
    texts = tickets(40, seed=7)
    async with _clients(fake_root) as (oai, _):
        refused = await _gather([_openai_call(oai, "fake-refuser", t) for t in texts])
        collapsed = await _gather([_openai_call(oai, "fake-collapse-x", t) for t in texts[:10]])
        with pytest.raises(openai.NotFoundError):
            await _openai_call(oai, "fake-nonsense", "hi")()
    rate = sum(r == "I'm sorry, but I can't help with that." for r in refused) / len(refused)
    assert 0.15 <= rate <= 0.45
    assert len(set(collapsed)) == 1


async def test_structured_refusal_uses_the_refusal_field(fake_root: str) -> None:
    refusals = 0
    async with _clients(fake_root) as (oai, _):
        for text in tickets(12, seed=8):
            out = await oai.chat.completions.create(
                model="fake-refuser",
                messages=[{"role": "user", "content": text}],
                response_format=FORMAT,
            )
            message = out.choices[0].message
            if message.refusal:
                refusals += 1
                assert message.content is None
    assert refusals > 0


def test_model_table() -> None:
    assert resolve_model("gpt-4o-mini") == (BEHAVIOURS["baseline"], "gpt-4o-mini-2024-07-18")
    assert resolve_model("claude-haiku-4-5") == (BEHAVIOURS["good"], "claude-haiku-4-5")
    assert resolve_model("gpt-4.1-mini-2025-04-14")[0].name == "regressed"
    assert resolve_model("claude-sonnet-4-5")[0].name == "judge"
    assert resolve_model("fake-slow")[0].latency_factor == 10
    assert resolve_model("fake-regressed-v2") == (BEHAVIOURS["regressed"], "fake-regressed-v2")
    assert resolve_model("gpt-5") is None and resolve_model("fake-") is None
    assert all(resolve_model(name) is not None for name in MODELS)


def test_answer_depends_on_content_not_layout() -> None:
    split = Conversation.build(
        " You are   helpful. ", [("user", "Where is"), ("user", "my order #5521?"), ("user", "")]
    )
    joined = Conversation.build("You are helpful.", [("user", "Where is my order #5521?")])
    assert split == joined
    assert answer("baseline", split) == answer("baseline", joined)
    longer = Conversation.build("You are helpful.", [("user", "Where is my order #5522?")])
    assert answer("baseline", longer).text != answer("baseline", joined).text


SCHEMAS: list[dict[str, Any]] = [
    TRIAGE_SCHEMA,
    {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "maxLength": 8},
            "items": {
                "type": "array",
                "minItems": 2,
                "maxItems": 4,
                "items": {"$ref": "#/$defs/item"},
            },
            "refund": {
                "anyOf": [{"type": "null"}, {"type": "number", "minimum": 0, "maximum": 50}]
            },
            "tags": {
                "type": "array",
                "items": {"enum": ["late", "damaged", "vip"]},
                "uniqueItems": True,
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "contact": {"type": ["string", "null"], "format": "email"},
            "when": {"type": "string", "format": "date-time"},
        },
        "required": ["order_id", "items", "refund", "tags", "confidence", "contact", "when"],
        "additionalProperties": False,
        "$defs": {
            "item": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "minLength": 3},
                    "qty": {"type": "integer", "minimum": 1, "maximum": 9},
                    "kind": {"const": "line"},
                },
                "required": ["sku", "qty", "kind"],
                "additionalProperties": False,
            }
        },
    },
    {"type": "array", "items": {"type": "boolean"}, "minItems": 1},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}]},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_structured_answers_conform_to_the_schema(schema: dict[str, Any]) -> None:
    for behaviour in ("baseline", "good"):
        for text in tickets(25, seed=9):
            conv = Conversation.build(SYSTEM, [("user", text)], schema=schema)
            jsonschema.validate(json.loads(answer(behaviour, conv).text), schema)


def test_a_drift_alias_changes_snapshot_and_quality_from_its_night_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evalpipe.fake.behaviours import DRIFT_BREAK_RATE, NIGHT_ENV

    name = "gpt-4o-mini-2024-07-18@drift-2026-11-12"
    monkeypatch.setenv(NIGHT_ENV, "2026-11-11")
    assert resolve_model(name) == (BEHAVIOURS["baseline"], "gpt-4o-mini-2024-07-18")
    monkeypatch.setenv(NIGHT_ENV, "2026-11-12")
    assert resolve_model(name) == (BEHAVIOURS["drifted"], "gpt-4o-mini-2024-07-18-rev2")
    assert resolve_model("nope@drift-2026-11-12") is None
    broken = 0
    for text in tickets(2000):
        conv = Conversation.build(SYSTEM, [("user", text)], schema=TRIAGE_SCHEMA)
        text = answer("drifted", conv).text
        try:
            json.loads(text)
        except ValueError:
            broken += 1
        assert json.loads(answer("baseline", conv).text)
    assert abs(broken / 2000 - DRIFT_BREAK_RATE) < 0.015
