"""Canary mode through the pipeline: logged cohorts, no replay, a step decision from the gate."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.compute as pc
import yaml

from evalpipe.pipeline import finish_replay, gate_run, ingest_run, replay_run, score_run
from evalpipe.spec import load_spec
from evalpipe.store import open_run, read_table


def _log(path: Path, *, broken_share: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    lines = []
    for i in range(3000):
        user = f"u{rng.randrange(900)}"
        variant = "B" if int(user[1:]) % 2 else "A"
        ok = not (variant == "B" and rng.random() < broken_share)
        content = '{"category": "billing"}' if ok else 'Sure! {"category": '
        when = start + timedelta(seconds=i * 60)
        lines.append(
            {
                "request": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"ticket {i}"}],
                },
                "response": {
                    "id": f"chatcmpl-{i}",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
                },
                "latency_ms": 500 + rng.random() * 300,
                "timestamp": when.isoformat().replace("+00:00", "Z"),
                "metadata": {"variant": variant, "user_id": user, "feature": "triage"},
            }
        )
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def _spec(tmp_path: Path) -> Path:
    spec = {
        "name": "canary",
        "mode": "canary",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "canary.jsonl"},
        "checks": [{"name": "valid_json", "type": "json_valid", "critical": True}],
        "diffs": [],
        "gate": {
            "arm_column": "attributes.variant",
            "control": "A",
            "treatment": "B",
            "unit": "user_id",
            "ramp": [
                {"weight": 0.5, "until": "2026-11-02T00:00:00Z"},
                {"weight": 0.5, "until": "2026-11-04T00:00:00Z"},
            ],
        },
    }
    p = tmp_path / "eval.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def _run(tmp_path: Path):
    spec = load_spec(_spec(tmp_path))
    run = open_run(spec)
    ingest_run(run)
    assert replay_run(run) == 0
    finish_replay(run)
    score_run(run)
    return run, gate_run(run)


def test_canary_rolls_back_a_cohort_that_breaks_json(tmp_path: Path) -> None:
    _log(tmp_path / "canary.jsonl", broken_share=0.10)
    run, result = _run(tmp_path)
    responses = read_table(run.path("responses"))
    assert set(responses["arm"].to_pylist()) == {"logged"}
    assert result.verdict == "NO-GO", result.candidates[0].reason
    assert "valid_json" in result.candidates[0].reason


def test_canary_promotes_an_equal_cohort(tmp_path: Path) -> None:
    _log(tmp_path / "canary.jsonl", broken_share=0.0)
    run, result = _run(tmp_path)
    scores = run.read_scores()
    assert pc.all(scores["passed"]).as_py()
    assert result.verdict in ("GO", "NOT-PROVEN"), result.candidates[0].reason
    assert result.verdict != "NO-GO"
