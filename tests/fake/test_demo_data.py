"""The demo set: reproducible, realistic, one torn line, and logged answers the baseline gives."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from evalpipe.fake import openai_response

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_generate", DEMO / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return gzip.decompress((DEMO / "traffic.jsonl.gz").read_bytes()).splitlines()


@pytest.fixture(scope="module")
def records(lines: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def test_generator_rewrites_the_same_bytes(generator: ModuleType) -> None:
    data, features, _ = generator.build()
    assert data == (DEMO / "traffic.jsonl.gz").read_bytes()
    assert len(data) < 1_500_000
    assert sum(features.values()) == 1200


def test_exactly_one_torn_line_in_the_middle(lines: list[bytes]) -> None:
    bad = []
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
        except json.JSONDecodeError:
            bad.append(number)
    assert bad == [577]
    assert lines[576].startswith(b'{"request":')  # a record cut off, not garbage


def test_volume_features_tenants_and_sessions(records: list[dict[str, Any]]) -> None:
    meta = [r["metadata"] for r in records]
    assert len(records) == 1200
    assert Counter(m["feature"] for m in meta) == {"triage": 500, "answer": 450, "summarize": 250}
    tenants = Counter(m["tenant"] for m in meta)
    assert set(tenants) >= {
        "acme",
        "globex",
        "initech",
        "umbrella",
        "hooli",
        "stark",
        "wayne",
        "wonka",
    }
    assert max(tenants.values()) > 2.5 * min(tenants.values())  # uneven
    assert len({m["session_id"] for m in meta}) >= 350
    assert len({m["user_id"] for m in meta}) < len(
        {m["session_id"] for m in meta}
    )  # returning users
    assert {m["prompt_version"] for m in meta} == {"support-v6"}
    ids = [r["response"]["id"] for r in records]
    assert len(set(ids)) == len(ids)  # the response id is the record id
    assert any("@example.com" in json.dumps(r["request"]) for r in records)  # PII, as in real logs


def test_times_latencies_and_created(records: list[dict[str, Any]]) -> None:
    for r in records:
        t = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        assert datetime(2026, 11, 1, tzinfo=UTC) <= t < datetime(2026, 11, 8, tzinfo=UTC)
        assert r["response"]["created"] == int(t.timestamp())
        assert 400 <= r["latency_ms"] <= 2500
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps)


def test_later_turns_carry_the_earlier_ones(records: list[dict[str, Any]]) -> None:
    turns: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["metadata"]["feature"] == "answer":
            turns[r["metadata"]["session_id"]].append(r)
    assert max(len(t) for t in turns.values()) == 4
    for session in turns.values():
        for earlier, later in itertools.pairwise(session):
            history = later["request"]["messages"]
            assert history[: len(earlier["request"]["messages"])] == earlier["request"]["messages"]
            logged = earlier["response"]["choices"][0]["message"]["content"]
            assert history[len(earlier["request"]["messages"])]["content"] == logged


def test_triage_schema_is_valid_and_answers_conform(records: list[dict[str, Any]]) -> None:
    triage = [r for r in records if r["metadata"]["feature"] == "triage"]
    fmt = triage[0]["request"]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    categories = Counter()
    for r in triage:
        answer = json.loads(r["response"]["choices"][0]["message"]["content"])
        validator.validate(answer)
        categories[answer["category"]] += 1
    assert set(categories) == {"billing", "account", "shipping", "technical", "other"}


def test_logged_responses_are_what_the_baseline_answers(records: list[dict[str, Any]]) -> None:
    for r in records:
        replayed = openai_response(r["request"], created=r["response"]["created"])
        assert replayed == r["response"]
    texts = [
        r["response"]["choices"][0]["message"]["content"]
        for r in records
        if r["metadata"]["feature"] != "triage"
    ]
    assert all(250 <= len(t) <= 750 for t in texts)  # about 300 to 700 characters


def test_eval_yaml_loads() -> None:
    from evalpipe.spec import load_spec

    spec = load_spec(DEMO / "eval.yaml")
    assert spec.name == "demo-support-assistant"
    assert [c.name for c in spec.candidates] == ["claude-haiku", "gpt-4.1-mini"]
