"""A run with logged traffic and a golden eval set, stage by stage through the fake provider:
the cases join the records, are scored by the reference checks, always judged, gated as their own
slice; the judge's anchors are judged with each run and compared with the previous run's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import yaml

from evalpipe import pipeline
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "eval_sets" / "demo"


def _run(folder: Path) -> Run:
    run = open_run(load_spec(folder / "eval.yaml"), None)
    pipeline.ingest_run(run)
    for part in pipeline.partitions(run):
        pipeline.replay_run(run, part)
    pipeline.finish_replay(run)
    pipeline.score_run(run)
    pipeline.gate_run(run)
    return run


def _spec(tmp_path: Path) -> Path:
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    shutil.copy(DEMO / "triage.schema.json", tmp_path)
    spec: dict[str, Any] = yaml.safe_load((DEMO / "eval.yaml").read_text())
    spec["eval_sets"] = [str(REPO / "eval_sets" / "demo_edge_cases")]  # a path
    spec["traffic"]["sample"] = {"n": 60}
    spec["judges"][0]["sample"] = 20
    spec["checks"].append(
        {
            "name": "expected_category",
            "type": "rouge_n_min",
            "value": 1.0,
            "measure": "recall",
            "where": {"feature": "triage"},
        }
    )
    spec["gate"]["min_n"] = 10
    spec.update(store=str(tmp_path / "store"))
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def test_eval_set_records_are_scored_judged_and_gated_as_their_slice(
    fake_provider: str, tmp_path: Path
) -> None:
    run = _run(_spec(tmp_path))
    manifest = run.manifest()
    assert manifest["eval_sets"] == {"demo_edge_cases": 30}
    assert manifest["counts"]["records"] == 60 + 30
    records = run.read_records()
    cases = [r for r in records["record_id"].to_pylist() if r.startswith("demo_edge_cases:")]
    assert len(cases) == 30
    page = pipeline.report_run(run, pipeline.load_gate(run), out=str(tmp_path / "reports"))
    assert "60 logged requests and 30 curated eval-set cases replayed" in page.read_text()

    scores = run.read_scores()
    ref = scores.filter(pc.equal(scores["metric"], "expected_category")).to_pylist()
    scored = {r["record_id"] for r in ref if r["value"] is not None}
    # the reference check scores the triage cases (the logged traffic has no reference)
    assert len(scored) == 12 and all(r.startswith("demo_edge_cases:") for r in scored)
    logged = [r for r in ref if r["arm"] == "baseline" and not r["record_id"].startswith("demo")]
    assert logged and {r["error"] for r in logged} == {"no reference"}

    judged = scores.filter(
        pc.and_(pc.equal(scores["kind"], "judge"), pc.equal(scores["arm"], "gpt-4.1-mini"))
    )
    ids = judged["record_id"].to_pylist()
    assert set(cases) <= set(ids) and len(ids) == 20 + 30  # the sample, and every case
    assert pc.all(pc.is_valid(judged["rationale"])).as_py()

    gate = run.read_gate().to_pylist()
    sliced = [r for r in gate if r["slice_col"] == "eval_set"]
    assert {r["slice_value"] for r in sliced} == {"demo_edge_cases"}
    decided = {(r["candidate"], r["metric"]) for r in sliced if r["verdict"] is not None}
    assert ("claude-haiku", "no_refusal") in decided and ("gpt-4.1-mini", "helpfulness") in decided
    assert {r["n"] for r in sliced if r["metric"] == "no_refusal"} <= {28, 30}

    anchors = scores.filter(pc.equal(scores["kind"], "anchor"))
    assert anchors.num_rows == 12 and pc.all(anchors["passed"]).as_py()
    assert (
        manifest["candidates"]["claude-haiku"]["secondary"]["helpfulness"]["anchors_agreement"]
        == 1.0
    )

    # the next run of the spec sets the judge's anchor answers beside this run's: unchanged
    again = _run(tmp_path)
    second = again.read_scores()
    second = second.filter(pc.equal(second["kind"], "anchor"))
    assert all(
        '"previous":' in d and '"previous":null' not in d for d in second["detail"].to_pylist()
    )
    figures = again.manifest()["candidates"]["claude-haiku"]["secondary"]["helpfulness"]
    assert figures["anchors_changed"] == 0.0
    assert not any(
        "judge changed" in r
        for r in again.manifest()["candidates"]["claude-haiku"]["invalid_reasons"]
    )
