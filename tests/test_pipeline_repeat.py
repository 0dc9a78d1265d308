"""A repeat run of one spec pays for nothing it already has: the replay and the sampled judge
calls come from the cache; only the judge's anchor set is asked again (judge drift is checked
with every run, by design: `score.judges.anchors`)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows import run_in_process
from evalpipe.replay.engine import Progress
from evalpipe.score.judges.anchors import load_anchors
from evalpipe.spec import Spec, load_spec
from evalpipe.store import open_run, read_table

DEMO = Path(__file__).resolve().parent.parent / "eval_sets" / "demo"
BASELINE, CANDIDATE, JUDGE = "gpt-4o-mini-2024-07-18", "claude-haiku-4-5", "gpt-4.1-2025-04-14"


@pytest.fixture
def server() -> Iterator[str]:
    with serving(latency_ms=1.0, jitter=0.0) as root:
        yield root


def _requests(root: str) -> dict[str, int]:
    report = httpx.get(f"{root}/_fake/traffic").json()
    return {model: seen["requests"] for model, seen in report.items()}


def _spec(server: str, tmp_path: Path) -> Spec:
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    spec_doc = {
        "name": "repeat",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "traffic.jsonl.gz", "sample": {"n": 60}},
        "baseline": {"provider": "openai", "model": BASELINE, "base_url": f"{server}/v1"},
        "candidates": [
            {"name": "haiku", "provider": "anthropic", "model": CANDIDATE, "base_url": server}
        ],
        "checks": [{"name": "no_refusal", "type": "not_refusal"}],
        "judges": [
            {
                "name": "helpfulness",
                "type": "pairwise",
                "provider": "openai",
                "model": JUDGE,
                "base_url": f"{server}/v1",
                "sample": 20,
            }
        ],
        "gate": {"min_n": 5},
        "report": {"out": str(tmp_path / "reports")},
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec_doc))
    return load_spec(tmp_path / "eval.yaml")


def test_a_repeat_run_sends_only_the_judge_anchors(server: str, tmp_path: Path) -> None:
    spec = _spec(server, tmp_path)
    anchors, _source = load_anchors(spec.judges[0], spec)  # type: ignore[misc]
    per_run = 2 * len(anchors)  # a pairwise anchor is judged in both orders

    first = open_run(spec, None)
    run_in_process(first)
    sent = _requests(server)
    assert sent[BASELINE] > 0 and sent[CANDIDATE] > 0
    judged = _judged(first.path("scores"))
    assert sent[JUDGE] == 2 * len(judged) + per_run > per_run

    second = open_run(spec, None)
    run_in_process(second)
    again = {m: n - sent.get(m, 0) for m, n in _requests(server).items()}
    assert again == {BASELINE: 0, CANDIDATE: 0, JUDGE: per_run}
    assert _judged(second.path("scores")) == judged  # the same verdicts, from the cache


def test_judge_progress_shows_the_stage_total_from_the_start(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions announce their judge calls before any is scored: the first judge event of
    the stage already carries the whole total, which the partitions' own counts then confirm
    (it used to be the first partition's pairs alone: `judge helpfulness: 2/2` of 1,000)."""
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 20)
    spec = _spec(server, tmp_path)
    run = open_run(spec, None)
    events: list[Progress] = []
    with pipeline.progress_sink(events.append):
        run_in_process(run)
    judge = [e for e in events if e.stage == "judge"]
    assert len({e.part for e in judge}) > 1
    totals: dict[int, int] = {}  # as a view sums them: per partition, its latest total
    seen_at_first_answer = None
    done: dict[int, int] = {}
    for e in judge:
        totals[e.part], done[e.part] = e.total, e.done
        if e.done and seen_at_first_answer is None:
            seen_at_first_answer = sum(totals.values())
    judged = len(_judged(run.path("scores")))
    assert seen_at_first_answer == judged  # the whole stage's total (every sampled pair is ok)
    assert sum(done.values()) == sum(totals.values()) == judged


def _judged(path: Path) -> dict[tuple[str, str], float | None]:
    """(arm, record_id) → value of the sampled judge's rows."""
    scores = read_table(path)
    judge = scores.filter(pc.equal(scores["kind"], "judge"))
    return {
        (arm, record): value
        for arm, record, value in zip(
            judge["arm"].to_pylist(),
            judge["record_id"].to_pylist(),
            judge["value"].to_pylist(),
            strict=True,
        )
    }
