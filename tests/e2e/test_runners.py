"""One wiring, two runners: the Prefect flow and the in-process run write the same tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from evalpipe.flows import run_in_process
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run, read_table

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"

pytestmark = pytest.mark.e2e

# what differs between two runs of one spec by nature: ids, clocks, the cache, the log's folder
_VARYING = {"run_id", "latency_ms", "ttft_ms", "started_at", "cache_hit", "source_file"}


def _spec(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(DEMO / "traffic.jsonl.gz", folder)
    shutil.copy(DEMO / "triage.schema.json", folder)
    spec = yaml.safe_load((DEMO / "eval.yaml").read_text())
    del spec["eval_sets"]  # the traffic alone (the edge cases live beside the demo's folder)
    spec["traffic"]["sample"] = {"n": 80}
    spec["judges"][0]["sample"] = 30
    spec.update(store=str(folder / "store"), report={"out": str(folder / "reports")})
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _table(run: Run, name: str) -> pa.Table:
    table = read_table(run.path(name))
    if "metric" in table.column_names:  # measured latency is a clock too
        table = table.filter(pc.invert(pc.starts_with(table["metric"], "latency")))
    keep = [c for c in table.column_names if c not in _VARYING]
    keys = [
        k
        for k in ("candidate", "arm", "metric", "slice_col", "slice_value", "record_id", "repeat")
        if k in keep
    ]
    return table.select(keep).sort_by([(k, "ascending") for k in keys])


def test_flow_and_in_process_runs_write_the_same_tables(
    fake_provider: str, prefect_harness: None, tmp_path: Path
) -> None:
    from evalpipe.flows import shadow_eval

    flow_spec = _spec(tmp_path, "flow")
    state = shadow_eval(str(flow_spec))
    by_flow = open_run(load_spec(flow_spec), state["run_id"])

    local_spec = _spec(tmp_path, "local")
    by_hand = open_run(load_spec(local_spec), None)
    result = run_in_process(by_hand)

    assert result["verdict"] == state["verdict"]
    assert result["exit_code"] == state["exit_code"]
    assert by_hand.manifest()["candidates"] == by_flow.manifest()["candidates"]
    for name in ("records.parquet", "responses", "scores", "gate.parquet"):
        a, b = _table(by_hand, name), _table(by_flow, name)
        assert a.num_rows == b.num_rows > 0, name
        differ = [c for c in a.column_names if not a[c].equals(b[c])]
        assert differ == [], name


def test_the_flow_replays_through_batches_and_gives_a_verdict(
    fake_provider: str, prefect_harness: None, tmp_path: Path
) -> None:
    import httpx

    from evalpipe.flows import shadow_eval

    path = _spec(tmp_path, "batch")
    spec = yaml.safe_load(path.read_text())
    spec["replay"] = {
        **(spec.get("replay") or {}),
        "transport": "batch",
        "batch_poll_seconds": 0.05,
    }
    path.write_text(yaml.safe_dump(spec))
    before = httpx.get(f"{fake_provider}/_fake/batches").json()

    state = shadow_eval(str(path))

    after = httpx.get(f"{fake_provider}/_fake/batches").json()
    run = open_run(load_spec(path), state["run_id"])
    assert state["verdict"] in ("GO", "NO-GO", "NOT-PROVEN", "INVALID")
    verdicts = {name: c["verdict"] for name, c in run.manifest()["candidates"].items()}
    assert set(verdicts) == {c["name"] for c in spec["candidates"]}
    assert all(v in ("GO", "NO-GO", "NOT-PROVEN", "INVALID") for v in verdicts.values())
    # every replayed answer came back through a batch: one per arm, OpenAI and Anthropic
    providers = [spec["baseline"]["provider"]] + [c["provider"] for c in spec["candidates"]]
    for api in ("openai", "anthropic"):
        assert after["created"][api] - before["created"][api] == providers.count(api)
    responses = read_table(run.path("responses"))
    replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
    assert replayed.num_rows == 80 * len(providers)
    assert set(replayed["status"].to_pylist()) == {"ok"}
    assert replayed["latency_ms"].null_count == replayed.num_rows  # batches have no latency
    assert (run.dir / "verdict.json").exists() or list(run.dir.rglob("verdict.json"))


def test_the_flow_streams_and_falls_back_as_production_would(
    fake_provider: str, prefect_harness: None, tmp_path: Path
) -> None:
    from evalpipe.flows import shadow_eval

    path = _spec(tmp_path, "stream-fallback")
    spec = yaml.safe_load(path.read_text())
    spec["replay"] = {**(spec.get("replay") or {}), "stream": True}
    haiku, mini = spec["candidates"]
    # the second candidate's primary is down: production would answer with its fallback
    mini.update(
        model="fake-down",
        fallback=[{k: haiku[k] for k in ("provider", "model", "base_url")}],
    )
    spec["limits"] = {"default": {"max_retries": 1, "breaker_pause_s": 0.01}}
    path.write_text(yaml.safe_dump(spec))

    state = shadow_eval(str(path))

    run = open_run(load_spec(path), state["run_id"])
    responses = read_table(run.path("responses"))
    replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
    assert set(replayed["status"].to_pylist()) == {"ok"}
    # streamed: every replayed answer has its time to first token, before its last token
    ttft, total = replayed["ttft_ms"].to_pylist(), replayed["latency_ms"].to_pylist()
    assert all(t is not None and 0 < t < s for t, s in zip(ttft, total, strict=True))
    fell = replayed.filter(pc.equal(replayed["arm"], mini["name"]))
    assert fell.num_rows == 80 and set(fell["fallback_used"].to_pylist()) == {True}
    assert set(fell["response_model"].to_pylist()) == {haiku["model"]}
    manifest = run.manifest()
    assert manifest["fallbacks"] == {mini["name"]: {haiku["model"]: 80}}
    assert manifest["candidates"][mini["name"]]["verdict"] != "INVALID"
    page = Path(manifest["report"]).read_text()
    assert f"anthropic/{haiku['model']} (fired 80×)" in page
