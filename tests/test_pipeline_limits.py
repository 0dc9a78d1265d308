"""The limits a spec sets hold for the whole run, counted where they matter: at the server.

Partitions replay side by side (threads in process, or Prefect's thread-pool task runner); each
used to build its own semaphore and rate bucket, so concurrency 4 over 3 partitions put 12
requests in flight per model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows import run_in_process
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run, read_table

DEMO = Path(__file__).resolve().parent.parent / "eval_sets" / "demo"
OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
ANTHROPIC_MODEL = "claude-haiku-4-5"


@pytest.fixture
def server() -> Iterator[str]:
    """A fake provider of the test's own (its counts are this test's alone), fixed latency."""
    with serving(latency_ms=40.0, jitter=0.0) as root:
        yield root


def traffic(root: str) -> dict[str, Any]:
    """Per model: requests, most in flight at once, arrival seconds — as the server saw them."""
    report: dict[str, Any] = httpx.get(f"{root}/_fake/traffic").json()
    return report


def most_in_any_window(arrivals: list[float], window_s: float) -> int:
    """The most arrivals inside any half-open window of `window_s` seconds."""
    times = sorted(arrivals)
    most, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


def _arm(root: str, name: str, provider: str, model: str, **extra: Any) -> dict[str, Any]:
    base_url = root if provider == "anthropic" else f"{root}/v1"
    return {"name": name, "provider": provider, "model": model, "base_url": base_url, **extra}


def _run(
    tmp_path: Path,
    root: str,
    *,
    candidate: dict[str, Any],
    records: int,
    limits: dict[str, Any],
) -> Run:
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    spec = {
        "name": "limits",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "traffic.jsonl.gz", "sample": {"n": records}},
        "baseline": {**_arm(root, "prod", "openai", OPENAI_MODEL), "compare_logged": False},
        "candidates": [candidate],
        "checks": [{"name": "no_refusal", "type": "not_refusal"}],
        "limits": limits,
        "gate": {"min_n": 5},
        "report": {"out": str(tmp_path / "reports")},
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    return open_run(load_spec(tmp_path / "eval.yaml"), None)


def _assert_complete(run: Run, arms: set[str], records: int) -> None:
    responses = read_table(run.path("responses"))
    replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
    assert replayed.num_rows == records * len(arms)
    assert set(replayed["arm"].to_pylist()) == arms
    assert set(replayed["status"].to_pylist()) == {"ok"}
    for arm in arms:
        ids = replayed.filter(pc.equal(replayed["arm"], arm))["record_id"]
        assert pc.count_distinct(ids).as_py() == records  # one row per record per arm


CANDIDATES = {
    # a prompt-only change: both arms send to one model, and share its limit (no logged request
    # has temperature 0.35: none of the arm's requests equals the baseline's, which one answer
    # from the cache would serve)
    "one model": (
        {
            "name": "warmer",
            "provider": "openai",
            "model": OPENAI_MODEL,
            "params": {"temperature": 0.35},
        },
        {OPENAI_MODEL: 4},
    ),
    "two models": (
        {"name": "haiku", "provider": "anthropic", "model": ANTHROPIC_MODEL},
        {OPENAI_MODEL: 4, ANTHROPIC_MODEL: 4},
    ),
}


@pytest.mark.parametrize("case", sorted(CANDIDATES))
def test_concurrency_holds_across_partitions_in_process(
    case: str, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate, expected_peak = CANDIDATES[case]
    provider, model = candidate["provider"], candidate["model"]
    cand = _arm(server, candidate["name"], provider, model, params=candidate.get("params", {}))
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 50)
    run = _run(
        tmp_path, server, candidate=cand, records=150, limits={"default": {"concurrency": 4}}
    )
    pipeline.ingest_run(run)
    assert len(pipeline.partitions(run)) == 3
    run_in_process(run)

    seen = traffic(server)
    assert {m: seen[m]["max_in_flight"] for m in seen} == expected_peak
    _assert_complete(run, {"baseline", candidate["name"]}, 150)


def test_concurrency_holds_across_prefect_task_runs(
    server: str, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalpipe.flows import shadow_eval

    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 40)
    cand = _arm(server, "haiku", "anthropic", ANTHROPIC_MODEL)
    run = _run(
        tmp_path, server, candidate=cand, records=120, limits={"default": {"concurrency": 3}}
    )
    state = shadow_eval(str(tmp_path / "eval.yaml"), run_id=run.run_id)
    assert state["run_id"] == run.run_id
    assert len(pipeline.partitions(run)) == 3

    seen = traffic(server)
    assert {m: seen[m]["max_in_flight"] for m in seen} == {OPENAI_MODEL: 3, ANTHROPIC_MODEL: 3}
    _assert_complete(run, {"baseline", "haiku"}, 120)


def test_no_60_second_window_holds_more_than_rpm_starts(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real minutes (about 61 s): 30 requests to one model at rpm 20 over 3 partitions.

    The full bucket that refilled meanwhile started all 30 within the first 30 s.
    """
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 5)
    cand = _arm(server, "warmer", "openai", OPENAI_MODEL, params={"temperature": 0.35})
    run = _run(
        tmp_path,
        server,
        candidate=cand,
        records=15,
        limits={"default": {"concurrency": 16}, OPENAI_MODEL: {"rpm": 20}},
    )
    pipeline.ingest_run(run)
    assert len(pipeline.partitions(run)) == 3
    run_in_process(run)

    arrivals = traffic(server)[OPENAI_MODEL]["arrivals_s"]
    assert len(arrivals) == 30
    assert most_in_any_window(arrivals, 60.0) == 20
    _assert_complete(run, {"baseline", "warmer"}, 15)


def test_most_in_any_window_counts_half_open_windows() -> None:
    assert most_in_any_window([0.0, 0.5, 1.0, 1.5], 1.0) == 2
    assert most_in_any_window([0.0, 0.1, 0.2, 5.0], 1.0) == 3
    assert most_in_any_window([], 1.0) == 0
