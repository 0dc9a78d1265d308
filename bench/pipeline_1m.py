"""A large run in bounded memory: wall time and peak RSS of each stage, N = 10k, 100k, 1M.

N logged records (the demo's, repeated with fresh ids: bench.common.iter_demo_records) are
replayed against a baseline and 2 candidates of the fake provider at `--latency-ms` (1 ms, no
jitter) with concurrency `--concurrency`, then scored (5 checks, 3 diffs, a pairwise judge on a
sample of 500), gated and reported: the demo's spec on N records.

- cache cold: each stage (ingest, replay, score, gate, report) in its own Python process, so its
  peak RSS (`ru_maxrss` of that process) is its own; `seconds` its wall time inside the process,
  `per_1k_records` = seconds per 1,000 records (cost growth with N: linear or better);
- cache warm: a second run of the same spec, whole, in one `evalpipe run` process (replay
  answered from the cache: `requests_sent` counts what reached the fake, per model — only the
  judge's anchor set, which every run asks anew); its peak RSS (`ru_maxrss` of the `evalpipe run`
  process) is the end-to-end figure (goal ≤ 2 GB), with the stage timings its manifest records.

`--transport batch`: the cold replay sends each partition's uncached requests as one batch per
arm through the fake's batch APIs (OpenAI Batch, Anthropic Message Batches), as a nightly of this
size would; the answers go into the same cache, so the warm run is the same either way.

The fake provider runs in a process of its own (not counted). Prints one JSON line.

`--tile-from RUN_DIR` (a finished run of the same spec on fewer records, e.g. this bench's 100k
or `evalpipe run` on 20k): sizes larger than it are not replayed; each record gets the responses
its twin in RUN_DIR got (same demo record, so the same request but for its numbered turn), written
as replay writes them, and replay's finisher runs. For when replaying N × 3 requests takes longer
than there is time for: ingest, score, gate and report are measured on the full N; the replay
and warm figures are then absent (`"replay": "tiled"`): tiled responses are written as part
files, not through the response cache, so a warm `evalpipe run` would replay N × 3 requests again.
Eval-set cases (the demo's `demo_edge_cases`) get the responses of the same case in RUN_DIR.

`--keep` keeps each size's folder (its `folder` in the output), e.g. a 10k run as a later
`--tile-from`.

    python bench/pipeline_1m.py [--n 10000 100000 1000000] [--latency-ms 1] [--concurrency 256]
        [--transport online|batch] [--tile-from RUN_DIR] [--keep] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEMO, iter_demo_records
from evalpipe.fake import serving

STAGES = ("ingest", "replay", "score", "gate", "report")
GOAL_BYTES = 2 * 1024**3

_STAGE = """
import json, resource, sys, time
from evalpipe import pipeline
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run

spec_path, run_id, stage = sys.argv[1:4]
spec = load_spec(spec_path)
run = open_run(spec, None if run_id == "-" else run_id)
started = time.perf_counter()
if stage == "ingest":
    pipeline.ingest_run(run)
elif stage == "replay":
    IN_PROCESS.replay_partitions(run, pipeline.partitions(run))
    IN_PROCESS.finish_replay(run)
elif stage == "score":
    pipeline.score_run(run)
elif stage == "gate":
    pipeline.gate_run(run)
else:
    pipeline.report_run(run, pipeline.load_gate(run))
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"run_id": run.run_id, "seconds": seconds, "peak_rss_bytes": rss}))
"""


_WARM = """
import atexit, resource, sys
out = sys.argv.pop(1)
def _peak():
    with open(out, "w") as fh:
        fh.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
atexit.register(_peak)
from evalpipe.cli import main
sys.argv[0] = "evalpipe"
main()
"""
"""`evalpipe run …` whose peak RSS (KiB) is written to the file named first, as it exits."""


def _requests(root: str) -> dict[str, int]:
    """Requests the fake has answered so far, per model."""
    with urllib.request.urlopen(f"{root}/_fake/traffic") as reply:
        return {m: seen["requests"] for m, seen in json.load(reply).items()}


def _env(fake: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env["EVALPIPE_FAKE_URL"] = fake  # `builtin:fake` resolves to the bench's server
    return env


def _spec(folder: Path, n: int, concurrency: int, transport: str = "online") -> Path:
    with (folder / "traffic.jsonl").open("wb") as f:
        for record in iter_demo_records(n):
            f.write(orjson.dumps(record) + b"\n")
    (folder / "triage.schema.json").write_bytes((DEMO / "triage.schema.json").read_bytes())
    spec = yaml.safe_load((DEMO / "eval.yaml").read_text())
    for name in spec.get("eval_sets") or []:  # (the demo's curated cases, beside the spec)
        shutil.copytree(DEMO.parent / name, folder / "eval_sets" / name)
    spec.update(
        name=f"bench-{n}",
        traffic={"path": "traffic.jsonl"},
        store=str(folder / "store"),
        limits={"default": {"concurrency": concurrency}},
    )
    if transport == "batch":  # each partition's uncached requests as one batch per arm
        spec["replay"] = {"transport": "batch", "batch_poll_seconds": 0.2}
    spec["report"]["out"] = str(folder / "reports")
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _stage(spec: Path, run_id: str, stage: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _STAGE, str(spec), run_id, stage],
        capture_output=True,
        text=True,
        env=env,
        cwd=spec.parent,
    )
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed: {proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


_TILE = """
import sys
import numpy as np, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
from pathlib import Path
from evalpipe import pipeline
from evalpipe.spec import load_spec
from evalpipe.store import open_run, write_table_atomic
from evalpipe.tables import RESPONSES

spec_path, run_id, source = sys.argv[1], sys.argv[2], Path(sys.argv[3])
run = open_run(load_spec(spec_path), run_id)
def lines(table):  # the demo record index of each traffic row (eval-set cases: -1)
    traffic = np.asarray(pc.equal(table["source_file"], table["source_file"][0]), dtype=bool)
    return np.where(traffic, np.asarray(table["source_line"], dtype=np.int64) - 1, -1)
columns = ["record_id", "source_file", "source_line"]
src = pq.read_table(source / "records.parquet", columns=columns)
src_index = lines(src)
by_index = np.empty(int(src_index.max()) + 1, dtype=np.int64)
by_index[src_index[src_index >= 0]] = np.flatnonzero(src_index >= 0)
from bench.common import demo_base
BASE, n_src = len(demo_base()), src.num_rows  # the demo's records, repeated by iter_demo_records
laps = int(np.count_nonzero(src_index >= 0)) // BASE
resp = pq.read_table(source / "responses", schema=RESPONSES)
resp = resp.filter(pc.and_(pc.not_equal(resp["arm"], "logged"), pc.equal(resp["repeat"], 0)))
arms = sorted(set(resp["arm"].to_pylist()))
by_arm = {}
for arm in arms:
    mine = resp.filter(pc.equal(resp["arm"], arm))
    rows = np.asarray(pc.index_in(mine["record_id"], value_set=src["record_id"]), dtype=np.int64)
    slot = np.full(n_src, -1, dtype=np.int64)
    slot[rows] = np.arange(len(rows))
    by_arm[arm] = (mine, slot)
mine_records = pq.read_table(run.path("records.parquet"), columns=columns)
index = lines(mine_records)
twin = by_index[(np.maximum(index, 0) % BASE) + BASE * ((np.maximum(index, 0) // BASE) % laps)]
cases = index < 0  # an eval-set case: the same case (same id) of RUN_DIR
same = pc.index_in(mine_records["record_id"].filter(pa.array(cases)), value_set=src["record_id"])
twin[cases] = np.asarray(same, dtype=np.int64)
run.responses_dir.mkdir(parents=True, exist_ok=True)
size = pipeline.PARTITION_SIZE
for p in range(-(-len(index) // size)):
    ids = mine_records["record_id"].slice(p * size, size)
    rows = twin[p * size : (p + 1) * size]
    for arm in arms:
        table, slot = by_arm[arm]
        taken = table.take(pa.array(slot[rows]))
        taken = taken.set_column(taken.schema.get_field_index("record_id"), "record_id", ids)
        taken = taken.set_column(
            0, "run_id", pa.array([run.run_id] * taken.num_rows, pa.string())
        )
        write_table_atomic(taken, run.responses_dir / f"part-{arm}-r0-p{p:05d}.parquet")
pipeline.finish_replay(run, 0.0)
print("{}")
"""


def _tile(spec: Path, run_id: str, source: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _TILE, str(spec), run_id, str(source)],
        capture_output=True,
        text=True,
        env=env,
        cwd=spec.parent,
    )
    if proc.returncode != 0:
        raise SystemExit(f"tiling failed: {proc.stderr[-3000:]}")


def _figures(seconds: float, rss: int, n: int) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(rss / 1024**2, 1),
        "per_1k_records_s": round(seconds / (n / 1000), 4),
    }


def _records(run_dir: Path) -> int:
    return int(pq.ParquetFile(run_dir / "records.parquet").metadata.num_rows)


def _one(n: int, args: argparse.Namespace, root: str) -> dict[str, Any]:
    if args.keep:  # the run folder stays (e.g. as a later --tile-from)
        return _in(
            Path(tempfile.mkdtemp(prefix=f"evalpipe-1m-{n}-", dir=args.workdir)), n, args, root
        )
    with tempfile.TemporaryDirectory(prefix=f"evalpipe-1m-{n}-", dir=args.workdir) as tmp:
        return _in(Path(tmp), n, args, root)


def _in(folder: Path, n: int, args: argparse.Namespace, root: str) -> dict[str, Any]:
    spec = _spec(folder, n, args.concurrency, args.transport)
    env = _env(root)
    cold: dict[str, Any] = {}
    run_id = "-"
    tiled = args.tile_from is not None and n > _records(args.tile_from)
    for stage in STAGES:
        if tiled and stage == "replay":
            _tile(spec, run_id, args.tile_from, env)
            continue
        got = _stage(spec, run_id, stage, env)
        run_id = got["run_id"]
        cold[stage] = _figures(got["seconds"], got["peak_rss_bytes"], n)
    cold_total = sum(s["seconds"] for s in cold.values())
    cold_peak = max(s["peak_rss_mb"] for s in cold.values())
    if tiled:
        runs = sorted((folder / "store" / "runs").iterdir())
        manifest = json.loads((runs[-1] / "manifest.json").read_text())
        verdict = {c: v["verdict"] for c, v in (manifest.get("candidates") or {}).items()}
        return {
            "n": n,
            "folder": str(folder) if args.keep else None,
            "replay": "tiled",
            "cold": {
                "stages": cold,
                "seconds": round(cold_total, 2),
                "peak_rss_mb": cold_peak,
                "per_1k_records_s": round(cold_total / (n / 1000), 4),
            },
            "under_2gb": cold_peak <= GOAL_BYTES / 1024**2,
            "verdict": verdict,
        }

    rss_file = folder / "warm-rss.txt"
    before = _requests(root)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WARM, str(rss_file), "run", str(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
    )
    seconds = time.perf_counter() - started
    sent = {m: k - before.get(m, 0) for m, k in _requests(root).items()}
    if proc.returncode not in (0, 1, 2, 3):
        raise SystemExit(f"evalpipe run failed ({proc.returncode}): {proc.stderr[-3000:]}")
    warm_rss = int(rss_file.read_text()) * 1024  # the `evalpipe run` process's own peak
    runs = sorted((folder / "store" / "runs").iterdir())
    warm = json.loads((runs[-1] / "manifest.json").read_text())
    verdict = {c: v["verdict"] for c, v in (warm.get("candidates") or {}).items()}
    return {
        "n": n,
        "folder": str(folder) if args.keep else None,
        "cold": {
            "stages": cold,
            "seconds": round(cold_total, 2),
            "peak_rss_mb": cold_peak,
            "per_1k_records_s": round(cold_total / (n / 1000), 4),
        },
        "warm": {
            "stages": {
                s: {
                    "seconds": round(t, 2),
                    "per_1k_records_s": round(t / (n / 1000), 4),
                }
                for s, t in warm.get("timings", {}).items()
            },
            "seconds": round(seconds, 2),
            "peak_rss_mb": round(warm_rss / 1024**2, 1),
            "per_1k_records_s": round(seconds / (n / 1000), 4),
            "cache_hits": warm.get("coverage", {}),
            "requests_sent": {m: k for m, k in sent.items() if k},
        },
        "under_2gb": max(cold_peak, warm_rss / 1024**2) <= GOAL_BYTES / 1024**2,
        "verdict": verdict,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--latency-ms", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument(
        "--transport",
        choices=("online", "batch"),
        default="online",
        help="How the cold run replays (batch: the providers' batch APIs, as a nightly would).",
    )
    parser.add_argument("--workdir", default=None, help="Folder for the runs (default: /tmp).")
    parser.add_argument(
        "--keep", action="store_true", help="Keep each run's folder (printed as `folder`)."
    )
    parser.add_argument(
        "--tile-from",
        type=Path,
        default=None,
        help="A finished run folder of the same spec: larger sizes reuse its responses.",
    )
    args = parser.parse_args()
    results = []
    with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
        for n in args.n:
            results.append(_one(n, args, root))
    print(
        json.dumps(
            {
                "runs": results,
                "arms": 3,
                "latency_ms": args.latency_ms,
                "concurrency": args.concurrency,
                "transport": args.transport,
                "judge_sample": 500,
                "goal_peak_rss_mb": GOAL_BYTES / 1024**2,
            }
        )
    )


if __name__ == "__main__":
    main()
