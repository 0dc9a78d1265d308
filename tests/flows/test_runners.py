"""The shadow flow on Dask and Ray task runners: the same tables and verdict as the default
runner's, and one budget for the whole run however many worker processes replay it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.cli import worst_exit
from evalpipe.flows import run_in_process
from evalpipe.flows.runners import task_runner
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"

VOLATILE = {
    "responses": ["run_id", "started_at", "latency_ms", "ttft_ms"],
    "scores": ["run_id"],
    "gate": ["run_id", "q_value"],
}
"""Columns that differ between two runs of the same spec: the run's id and its timings. (Gate
rows of the latency metrics compare timings; a q-value is adjusted over all of a candidate's
metrics, latency's p-values among them.)"""


def _spec(folder: Path, *, n: int, **fields: Any) -> Path:
    """The demo spec on `n` sampled records (no judge unless given), its store in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO / "traffic.jsonl.gz", folder)
    spec = yaml.safe_load((DEMO / "eval.yaml").read_text())
    spec.pop("eval_sets", None)  # the traffic alone (the edge cases live beside the demo)
    spec.update({"store": str(folder / "store"), "judges": [], **fields})
    spec["traffic"]["sample"] = {"n": n}
    (folder / "eval.yaml").write_text(yaml.safe_dump(spec))
    return folder / "eval.yaml"


@pytest.fixture(scope="module")
def dask_address(fake_provider: str) -> Iterator[str]:
    """One local Dask cluster of 4 worker processes for the module (a few seconds to start)."""
    distributed = pytest.importorskip("distributed", reason="the [dask] extra is not installed")
    pytest.importorskip("prefect_dask", reason="the [dask] extra is not installed")
    with distributed.LocalCluster(
        n_workers=4, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def _flow_run(spec_path: Path, runner: Any) -> Run:
    from evalpipe.flows import shadow_eval

    state = shadow_eval.with_options(task_runner=runner)(str(spec_path), return_state=True)
    run = open_run(load_spec(spec_path), str(state.result()["run_id"]))
    _flow_runs[run.run_id] = state.state_details.flow_run_id
    return run


_flow_runs: dict[str, Any] = {}
"""Each run's Prefect flow run id, by run id (`_flow_run`)."""


def _task_runs(run: Run) -> dict[str, int]:
    """Task runs Prefect recorded in the run's flow run, by task name (a mapped task's runs are
    named `<task>-<n>`) → how many."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[_flow_runs[run.run_id]]))
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=flow_run)
    out: dict[str, int] = {}
    for task_run in runs:
        name = task_run.name.rsplit("-", 1)[0]
        out[name] = out.get(name, 0) + 1
    return out


def _assert_partitioned_on_the_runner(run: Run) -> None:
    """Replay and score ran as one task per partition (3), each stage finished once in the
    flow; the judge's anchor set was judged once, with partition 0."""
    tasks = _task_runs(run)
    assert tasks["replay-partition"] == 3
    assert tasks["score-partition"] == 3
    assert tasks["finish-score"] == 1
    assert "score" not in tasks  # the whole stage as one task
    anchors = {
        p: pc.sum(pc.equal(pq.read_table(p, columns=["arm"])["arm"], "anchor")).as_py() or 0
        for p in sorted(run.scores_dir.glob("part-*.parquet"))
    }
    assert len(anchors) == 3
    first, *rest = anchors.values()
    assert first > 0 and rest == [0, 0]


def _tables(run: Run) -> dict[str, pa.Table]:
    """The run's tables without their volatile columns, in a stable row order."""
    responses = run.read_responses().drop_columns(VOLATILE["responses"])
    return {
        "records": run.read_records(),
        "responses": responses.sort_by([("arm", "ascending"), ("record_id", "ascending")]),
        "scores": run.read_scores().drop_columns(VOLATILE["scores"]),
        "gate": _untimed(run.read_gate()).drop_columns(VOLATILE["gate"]),
    }


def _untimed(gate: pa.Table) -> pa.Table:
    """The gate's rows but latency's, whose figures are timings."""
    assert pc.sum(pc.equal(gate["source"], "latency")).as_py()
    return gate.filter(pc.not_equal(gate["source"], "latency"))


def _verdict(run: Run) -> dict[str, Any]:
    """verdict.json without the run's id, times and spec hash (the specs differ in their store),
    and without the latency metrics' timings (as `_tables`)."""
    verdict: dict[str, Any] = orjson.loads(run.path("verdict.json").read_bytes())
    dropped = {"run_id", "created", "finished", "spec_hash", *VOLATILE["gate"]}

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in dropped}
        if isinstance(obj, list):
            return [strip(v) for v in obj if not _is_latency(v)]
        return obj

    return dict(strip(verdict))


def _is_latency(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("source") == "latency"


def _assert_same_run(a: Run, b: Run) -> None:
    ta, tb = _tables(a), _tables(b)
    for name in ta:
        assert ta[name].num_rows > 0, name
        differ = [c for c in ta[name].column_names if not ta[name][c].equals(tb[name][c])]
        assert differ == [], f"{name} differ"
    assert _verdict(a) == _verdict(b)
    assert a.manifest()["verdict"] == b.manifest()["verdict"]


@pytest.fixture(scope="module")
def default_run(fake_provider: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """A small run of the demo (3 partitions of 40 records, its judge on 60) on the default
    runner, in its own store."""
    folder = tmp_path_factory.mktemp("default")
    judge = yaml.safe_load((DEMO / "eval.yaml").read_text())["judges"][0]
    path = _spec(folder, n=120, judges=[dict(judge, sample=60)])
    mp = pytest.MonkeyPatch()
    mp.setattr(pipeline, "PARTITION_SIZE", 40)
    try:
        run = open_run(load_spec(path))
        run_in_process(run, reports=str(folder / "reports"))
    finally:
        mp.undo()
    assert len(pipeline.partitions(run)) == 3
    return path, run


def _same_spec_elsewhere(spec_path: Path, folder: Path) -> Path:
    """The same spec (beside it, reading the same traffic file) with its store in `folder`:
    a cold cache, every request is sent again."""
    spec = yaml.safe_load(spec_path.read_text())
    spec["store"] = str(folder / "store")
    path = spec_path.with_name(f"{folder.name}.yaml")
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_run_on_dask_equals_the_default_runners(
    default_run: tuple[Path, Run],
    dask_address: str,
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec_path, expected = default_run
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 40)
    run = _flow_run(_same_spec_elsewhere(spec_path, tmp_path), task_runner("dask", dask_address))

    manifest = run.manifest()
    assert manifest[pipeline.SHARED_LIMITS] is True
    assert manifest["partition_size"] == 40
    assert manifest["coverage"]["baseline"]["cache_hits"] == 0  # replayed, not read back
    assert _workers_that_replayed(dask_address, run.run_id) >= 2
    assert _workers_that_scored(dask_address, run.run_id) >= 2
    _assert_partitioned_on_the_runner(run)
    _assert_same_run(expected, run)


def test_a_run_on_ray_equals_the_default_runners(
    default_run: tuple[Path, Run],
    prefect_harness: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ray", reason="ray is not installed (the [ray] extra)")
    pytest.importorskip("prefect_ray", reason="prefect-ray is not installed (the [ray] extra)")
    spec_path, expected = default_run
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 40)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a local Ray: no token file in ~/.ray
    run = _flow_run(_same_spec_elsewhere(spec_path, tmp_path), task_runner("ray", workers=2))

    manifest = run.manifest()
    assert manifest[pipeline.SHARED_LIMITS] is True
    assert manifest["coverage"]["baseline"]["cache_hits"] == 0
    _assert_partitioned_on_the_runner(run)
    _assert_same_run(expected, run)


def _replayed_here(run_id: str) -> bool:
    return any(key[1] == run_id for key in pipeline._budgets)


def _workers_that_replayed(address: str, run_id: str) -> int:
    """Worker processes of the cluster that replayed partitions of `run_id` (each keeps the
    run's budget; only the driver's is dropped when replay finishes)."""
    from distributed import Client

    with Client(address) as client:
        seen = client.run(_replayed_here, run_id)
    return sum(bool(v) for v in seen.values())


def _scored_here(run_id: str) -> bool:
    return any(key[1] == run_id for key in pipeline._score_budgets)


def _workers_that_scored(address: str, run_id: str) -> int:
    """Worker processes of the cluster that scored partitions of `run_id` (each keeps the
    judges' budget, as `_workers_that_replayed`)."""
    from distributed import Client

    with Client(address) as client:
        seen = client.run(_scored_here, run_id)
    return sum(bool(v) for v in seen.values())


def test_four_dask_workers_share_one_budget_and_buy_whole_pairs(
    dask_address: str, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 records in 4 partitions on 4 worker processes, a cap worth 55 pairs at the answers'
    real cost: each worker with a budget of its own would buy up to 4 × as much."""
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 50)
    reference = open_run(load_spec(_spec(tmp_path / "reference", n=200)))
    run_in_process(reference, reports=str(tmp_path / "reports"))
    answered = reference.read_responses().filter(pc.field("arm") != "logged")
    per_pair = pc.sum(answered["cost_usd"]).as_py() / 200
    cap = round(55 * per_pair, 6)

    run = _flow_run(
        _spec(tmp_path / "capped", n=200, budget_usd=cap), task_runner("dask", dask_address)
    )
    assert len(pipeline.partitions(run)) == 4
    assert _workers_that_replayed(dask_address, run.run_id) >= 2
    replayed = run.read_responses().filter(pc.field("arm") != "logged")
    spent = pc.sum(replayed["cost_usd"]).as_py()
    assert spent <= cap
    assert run.manifest()["cost_usd"]["replay"] <= cap
    arms = {"baseline", "claude-haiku", "gpt-4.1-mini"}
    bought: dict[str, set[str]] = {}
    for row in replayed.filter(pc.field("status") != "skipped").to_pylist():
        bought.setdefault(row["record_id"], set()).add(row["arm"])
    assert all(got == arms for got in bought.values())  # every bought record on every arm
    skipped = replayed.filter(pc.field("status") == "skipped")
    assert set(skipped["error_type"].to_pylist()) == {"BudgetExhausted"}
    assert not set(skipped["record_id"].to_pylist()) & bought.keys()
    # about 55 pairs (pairs differ in cost; reservations are pessimistic, so a little of the cap
    # stays unused), far from the 4 × 55 of a budget per worker
    assert 40 <= len(bought) <= 70
    assert spent >= cap / 2


def test_four_dask_workers_share_one_budget_for_the_judges_too(
    dask_address: str, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 records scored in 4 partitions on 4 worker processes, the judge on every record, a cap
    worth replay and a quarter of the judge's calls: each worker with a judge budget of its own
    would spend up to a quarter each, all of it together."""
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 50)
    judge = yaml.safe_load((DEMO / "eval.yaml").read_text())["judges"][0]
    judge.pop("sample")
    reference = open_run(load_spec(_spec(tmp_path / "reference", n=200, judges=[judge])))
    run_in_process(reference, reports=str(tmp_path / "reports"))
    costs = reference.manifest()["cost_usd"]
    quarter = costs["judges"] / 4
    cap = round(costs["replay"] + quarter, 6)

    capped = _spec(tmp_path / "capped", n=200, judges=[judge], budget_usd=cap)
    run = _flow_run(capped, task_runner("dask", dask_address))

    assert _workers_that_scored(dask_address, run.run_id) >= 2
    spent = run.manifest()["cost_usd"]
    assert spent["replay"] == pytest.approx(costs["replay"])  # replay bought every record
    assert spent["total"] <= cap
    assert 0 < spent["judges"] <= quarter
    judged = run.read_scores().filter(pc.field("metric") == judge["name"])
    refused = pc.sum(pc.match_substring(judged["error"], "BudgetExhausted")).as_py()
    assert refused > 0


# --- several specs ---------------------------------------------------------------------------


@pytest.fixture
def own_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fake provider of the test's own (its traffic counts are this test's alone), which
    `base_url: builtin:fake` points at."""
    from evalpipe.fake import serving
    from evalpipe.providers.endpoint import FAKE_URL_ENV

    with serving(latency_ms=2.0) as root:
        monkeypatch.setenv(FAKE_URL_ENV, root)
        yield root


def _requests_seen(root: str) -> int:
    traffic: dict[str, Any] = httpx.get(f"{root}/_fake/traffic").json()
    return sum(int(m["requests"]) for m in traffic.values())


def _cli(*args: str) -> int:
    from evalpipe.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["run", *args])
    return int(exit_.value.code or 0)


def _two_specs(folder: Path, store: Path, **second: Any) -> list[Path]:
    """Two specs of the demo in `folder` (its traffic, 60 records), both in `store`: the second
    without the gpt-4.1-mini candidate, named apart, its fields updated with `second`."""
    first = _spec(folder, n=60, store=str(store))
    spec = yaml.safe_load(first.read_text())
    spec.update(name="demo-haiku-only", candidates=spec["candidates"][:1], **second)
    (folder / "haiku.yaml").write_text(yaml.safe_dump(spec))
    return [first, folder / "haiku.yaml"]


def _runs(store: Path) -> list[Run]:
    runs = []
    for folder in sorted((store / "runs").iterdir()):
        manifest = orjson.loads((folder / "manifest.json").read_bytes())
        runs.append(open_run(load_spec(manifest["spec_path"]), folder.name, store=str(store)))
    return runs


def test_specs_of_a_folder_run_in_turn_and_the_second_pays_nothing_twice(
    own_fake: str, prefect_harness: None, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    _two_specs(tmp_path / "specs", store)

    code = _cli(str(tmp_path / "specs"), "--reports", str(tmp_path / "reports"))

    first, second = sorted(_runs(store), key=lambda r: len(r.spec.candidates), reverse=True)
    sent = first.read_responses().filter(pc.field("arm") != "logged")
    assert sent.num_rows == 60 * 3
    assert not any(sent["cache_hit"].to_pylist())
    # the second run asks the baseline and claude-haiku the same requests: all from the cache
    again = second.read_responses().filter(pc.field("arm") != "logged")
    assert again.num_rows == 60 * 2 and all(again["cache_hit"].to_pylist())
    assert _requests_seen(own_fake) == 60 * 3
    codes = [int(r.manifest()["exit_code"]) for r in (first, second)]
    assert code == worst_exit(codes)


def test_specs_mapped_over_dask_workers_pay_once_and_finish_with_the_worst_exit(
    own_fake: str, dask_address: str, prefect_harness: None, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    paths = _two_specs(tmp_path / "specs", store)  # the same requests, asked on two workers

    code = _cli(
        *map(str, paths),
        "--task-runner",
        "dask",
        "--dask-address",
        dask_address,
        "--reports",
        str(tmp_path / "reports"),
    )

    runs = _runs(store)
    assert sorted(r.spec.name for r in runs) == ["demo-haiku-only", "demo-support-assistant"]
    assert all(r.complete for r in runs)
    sent = [r.read_responses().filter(pc.field("arm") != "logged") for r in runs]
    assert sorted(t.num_rows for t in sent) == [60 * 2, 60 * 3]
    assert _requests_seen(own_fake) == sum(pc.sum(pc.invert(t["cache_hit"])).as_py() for t in sent)
    # the second spec's two arms ask what the first's ask: each request is paid once, whichever
    # run's worker asked first (the other waited for its answer)
    assert _requests_seen(own_fake) == 60 * 3
    assert code == worst_exit([int(r.manifest()["exit_code"]) for r in runs])


def _servers_on_workers(address: str) -> int:
    """Processes the cluster's workers started (a temporary Prefect server each, when a task
    comes without a Prefect API to report to)."""
    from distributed import Client

    def children() -> int:
        import psutil

        return len(psutil.Process().children(recursive=True))

    with Client(address) as client:
        return sum(client.run(children).values())


def test_without_a_prefect_api_the_workers_report_to_the_runs_one_temporary_server(
    dask_address: str, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = _spec(tmp_path, n=40)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        code = _cli(
            str(spec),
            "--task-runner",
            "dask",
            "--dask-address",
            dask_address,
            "--reports",
            str(tmp_path / "reports"),
        )
        assert not os.environ.get("PREFECT_API_URL")  # the run's server is gone with it

    assert code != 4  # a verdict (40 records: INVALID, too few)
    (run,) = _runs(tmp_path / "store")
    assert run.complete and run.manifest()[pipeline.SHARED_LIMITS] is True
    assert _servers_on_workers(dask_address) == 0


def test_the_worst_exit_is_by_severity() -> None:
    assert worst_exit([0, 2, 1]) == 1  # NO-GO over NOT-PROVEN
    assert worst_exit([1, 3]) == 3
    assert worst_exit([3, 4, 0]) == 4
    assert worst_exit([0, 0]) == 0


def test_an_unknown_runner_or_a_stray_address_is_one_line(tmp_path: Path) -> None:
    from evalpipe.errors import EvalpipeError

    with pytest.raises(EvalpipeError, match="choose one of dask, ray"):
        task_runner("spark")
    spec = _spec(tmp_path, n=10)
    for args in (
        ["--task-runner", "spark"],
        ["--dask-address", "tcp://127.0.0.1:1"],
        ["--task-runner", "ray", "--dask-address", "tcp://127.0.0.1:1"],
    ):
        assert _cli(str(spec), *args) == 4
    (tmp_path / "empty").mkdir()
    assert _cli(str(tmp_path / "empty")) == 4  # a folder without specs
