"""Fallback chains, replayed as production runs them, end to end through the in-process flow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.cli import _print_run_facts
from evalpipe.fake import serving
from evalpipe.flows import run_in_process
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run, read_table

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    with serving(latency_ms=5.0, jitter=0.0) as url:
        yield url


def _run(tmp_path: Path, root: str, fallback: list[dict[str, Any]]) -> Run:
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    spec = {
        "name": "fallback",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "traffic.jsonl.gz", "sample": {"n": 40}},
        "baseline": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": f"{root}/v1",
            "compare_logged": False,
        },
        "candidates": [
            {
                "name": "cand",
                "provider": "openai",
                "model": "fake-down",
                "base_url": f"{root}/v1",
                "fallback": fallback,
            }
        ],
        "checks": [{"name": "no_refusal", "type": "not_refusal"}],
        "limits": {"default": {"concurrency": 8, "max_retries": 1, "breaker_pause_s": 0.01}},
        "gate": {"min_n": 5},
        "report": {"out": str(tmp_path / "reports")},
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    run = open_run(load_spec(tmp_path / "eval.yaml"), None)
    pipeline.ingest_run(run)
    run_in_process(run)
    return run


def test_a_down_primary_falls_back_and_the_gate_scores_what_users_get(
    root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(
        tmp_path, root, [{"provider": "anthropic", "model": "claude-haiku-4-5", "base_url": root}]
    )
    responses = read_table(run.path("responses"))
    cand = responses.filter(pc.equal(responses["arm"], "cand"))
    assert cand.num_rows == 40
    assert set(cand["status"].to_pylist()) == {"ok"}
    assert set(cand["fallback_used"].to_pylist()) == {True}
    assert set(cand["response_model"].to_pylist()) == {"claude-haiku-4-5"}
    assert set(cand["model"].to_pylist()) == {"fake-down"}  # the configuration's primary
    manifest = run.manifest()
    assert manifest["fallbacks"] == {"cand": {"claude-haiku-4-5": 40}}
    assert manifest["candidates"]["cand"]["verdict"] != "INVALID"  # no infrastructure errors
    assert manifest["throughput"]["cand"]["breaker"] == "down"
    _print_run_facts(manifest)
    assert "Answered by a fallback: cand: 40 by claude-haiku-4-5." in capsys.readouterr().out
    page = Path(manifest["report"]).read_text()
    assert "anthropic/claude-haiku-4-5 (fired 40×)" in page


def test_a_fallback_fires_only_on_the_failure_classes_it_names(root: str, tmp_path: Path) -> None:
    fallback = [
        {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "base_url": f"{root}/v1",
            "on": ["rate_limit"],
        }
    ]
    run = _run(tmp_path, root, fallback)
    responses = read_table(run.path("responses"))
    cand = responses.filter(pc.equal(responses["arm"], "cand"))
    assert set(cand["status"].to_pylist()) == {"error"}
    assert set(cand["fallback_used"].to_pylist()) == {False}
    assert run.manifest()["fallbacks"] == {}
