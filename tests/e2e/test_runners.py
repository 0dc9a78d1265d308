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
