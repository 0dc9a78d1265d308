"""The same run on the default runner and on a local Dask cluster: the same verdict, and the time.

The demo's spec (baseline + 2 candidates, its checks, diffs and pairwise judge) on `--records`
logged records (the demo's, repeated with numbered turns), against the fake provider (a child
process, `--latency-ms`). Each run has a store of its own (a cold cache: every request is sent).

- `reference_seconds`: the default runner (`evalpipe run` without a Prefect API: the stages in
  this process, partitions on a thread pool).
- `seconds`: the `shadow-eval` flow with `DaskTaskRunner` on a `LocalCluster` of `--workers`
  worker processes (`--threads` each: partitions side by side), its replay and score partitions
  on the workers. The temporary Prefect
  API and the cluster start before timing (`cluster_start_seconds`).
- `ratio` = seconds / reference_seconds; `verdict_identical`: the two verdict.json equal but for
  the run id, times, spec hash (the stores differ) and the latency metrics (timings), whose
  paths are listed in `differences` (with the two values) when anything else differs.
- `dask_tasks`: per Prefect task of the Dask run (`replay-partition`, `score-partition`, …): how
  many ran, their summed run time, and the span from the first's start to the last's end.

    python bench/runners.py [--records 100000] [--workers 2] [--threads 4] [--latency-ms 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEMO, demo_records

VOLATILE = {"run_id", "created", "finished", "spec_hash", "q_value"}
"""verdict.json keys that differ between two runs of one spec (a q-value is adjusted over all a
candidate's metrics, the latency metrics' p-values among them)."""


def _spec(folder: Path, traffic: Path) -> Path:
    spec = yaml.safe_load((DEMO / "eval.yaml").read_text())
    spec.pop("eval_sets", None)  # the traffic alone (the edge cases live beside the demo)
    spec.update(traffic={"path": str(traffic)}, store=str(folder / "store"))
    spec["report"]["out"] = str(folder / "reports")
    folder.mkdir(parents=True)
    (folder / "eval.yaml").write_text(yaml.safe_dump(spec))
    return folder / "eval.yaml"


def _verdict(path: Path) -> Any:
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
        if isinstance(obj, list):
            return [
                strip(v) for v in obj if not (isinstance(v, dict) and v.get("source") == "latency")
            ]
        return obj

    return strip(orjson.loads(path.read_bytes()))


def _differences(a: Any, b: Any, at: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _differences(x, y, f"{at}[{i}]")
        ]
    return [] if a == b else [at]


def _task_runs(flow_run_id: Any) -> dict[str, dict[str, float]]:
    """The flow run's task runs as Prefect recorded them, by task (a mapped task's runs are
    named `<task>-<n>`): how many, their summed run time, and the span from the first's start
    to the last's end (seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        while page := client.read_task_runs(flow_run_filter=flow_run, limit=200, offset=len(runs)):
            runs += page
    by: dict[str, list[Any]] = {}
    for r in runs:
        by.setdefault(r.name.rsplit("-", 1)[0], []).append(r)
    out = {}
    for name, group in sorted(by.items()):
        starts = [r.start_time for r in group if r.start_time]
        ends = [r.end_time for r in group if r.end_time]
        out[name] = {
            "n": len(group),
            "run_seconds": round(sum(r.total_run_time.total_seconds() for r in group), 2),
            "span_seconds": round((max(ends) - min(starts)).total_seconds(), 2)
            if starts and ends
            else 0.0,
        }
    return out


def _at(a: Any, b: Any, path: str) -> list[Any]:
    """The two verdicts' values at a `_differences` path (`.key[i].key`)."""
    import re

    for step in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        key: Any = step[0] if step[0] else int(step[1])
        a = a.get(key) if isinstance(a, dict) else a[key] if isinstance(a, list) else None
        b = b.get(key) if isinstance(b, dict) else b[key] if isinstance(b, list) else None
    return [a, b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument(
        "--threads", type=int, default=None, help="per worker (default: THREADS_PER_WORKER)"
    )
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")

    from distributed import LocalCluster
    from prefect.testing.utilities import prefect_test_harness

    from evalpipe.fake import serving
    from evalpipe.flows import run_in_process, shadow_eval
    from evalpipe.flows.runners import THREADS_PER_WORKER, task_runner

    args.threads = args.threads or THREADS_PER_WORKER
    from evalpipe.providers.endpoint import FAKE_URL_ENV
    from evalpipe.spec import load_spec
    from evalpipe.store import open_run

    with (
        tempfile.TemporaryDirectory() as tmp,
        serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root,
    ):
        os.environ[FAKE_URL_ENV] = root
        traffic = Path(tmp) / "traffic.jsonl"
        traffic.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in demo_records(args.records)))

        spec_path = _spec(Path(tmp) / "default", traffic)
        started = time.perf_counter()
        run = open_run(load_spec(spec_path))
        run_in_process(run)
        reference = time.perf_counter() - started
        expected = _verdict(run.path("verdict.json"))

        spec_path = _spec(Path(tmp) / "dask", traffic)
        with prefect_test_harness(server_startup_timeout=120):
            started = time.perf_counter()
            with LocalCluster(
                n_workers=args.workers,
                threads_per_worker=args.threads,
                processes=True,
                dashboard_address=None,
            ) as cluster:
                cluster_start = time.perf_counter() - started
                runner = task_runner("dask", cluster.scheduler_address)
                started = time.perf_counter()
                state = shadow_eval.with_options(task_runner=runner)(
                    str(spec_path), return_state=True
                )
                seconds = time.perf_counter() - started
                tasks = _task_runs(state.state_details.flow_run_id)
        dask_run = open_run(load_spec(spec_path), str(state.result()["run_id"]))
        got = _verdict(dask_run.path("verdict.json"))
        differences = _differences(expected, got)
        print(
            json.dumps(
                {
                    "bench": "runners",
                    "records": args.records,
                    "arms": 3,
                    "workers": args.workers,
                    "threads_per_worker": args.threads,
                    "latency_ms": args.latency_ms,
                    "seconds": round(seconds, 2),
                    "reference_seconds": round(reference, 2),
                    "ratio": round(seconds / reference, 3),
                    "cluster_start_seconds": round(cluster_start, 2),
                    "verdict": run.manifest()["verdict"],
                    "dask_verdict": dask_run.manifest()["verdict"],
                    "verdict_identical": not differences,
                    "differences": {d: _at(expected, got, d) for d in differences[:20]},
                    "dask_tasks": tasks,
                    "stage_seconds": {
                        "default": run.manifest().get("timings"),
                        "dask": dask_run.manifest().get("timings"),
                    },
                }
            )
        )


if __name__ == "__main__":
    main()
