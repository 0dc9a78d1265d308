"""The spend cap holds for the whole run when its partitions replay at the same time, and what it
buys is complete pairs: a record is replayed on every arm or on none."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.spec import load_spec
from evalpipe.store import open_run, read_table

DEMO = Path(__file__).resolve().parent.parent / "eval_sets" / "demo"
BUDGET = 0.05  # a fraction of what the 480 requests would cost


def test_concurrent_partitions_share_one_budget(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    spec = yaml.safe_load((DEMO / "eval.yaml").read_text())
    del spec["eval_sets"]  # the traffic alone (the edge cases live beside the demo's folder)
    spec.update(store=str(tmp_path / "store"), budget_usd=BUDGET, judges=[])
    spec["traffic"]["sample"] = {"n": 160}
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 40)  # 4 partitions

    run = open_run(load_spec(tmp_path / "eval.yaml"), None)
    pipeline.ingest_run(run)
    parts = pipeline.partitions(run)
    assert len(parts) == 4
    with ThreadPoolExecutor(len(parts)) as pool:  # as Prefect's thread task runner runs them
        list(pool.map(lambda p: pipeline.replay_run(run, p), parts))
    pipeline.finish_replay(run)

    responses = read_table(run.path("responses"))
    replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
    spent = pc.sum(replayed["cost_usd"]).as_py()
    status = set(replayed["status"].to_pylist())
    # the cap binds (some requests skipped) and holds over all four partitions together
    assert {"ok", "skipped"} <= status
    assert spent <= BUDGET
    assert run.manifest()["cost_usd"]["replay"] <= BUDGET
    # every record answered on all three arms or skipped on all three: no unpaired spend
    arms_per_record: dict[str, set[str]] = {}
    for row in replayed.select(["record_id", "status"]).to_pylist():
        arms_per_record.setdefault(row["record_id"], set()).add(row["status"])
    assert all(len(s) == 1 for s in arms_per_record.values())
    paired = sum(s == {"ok"} for s in arms_per_record.values())
    assert 10 <= paired < 160
