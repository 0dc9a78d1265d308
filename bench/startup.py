"""Start-up cost and end-to-end speed of `evalpipe run`, against the fake provider.

Prints one JSON line:

- `seconds`: wall time of `evalpipe run` on 10 records × 2 arms (the whole command, Python's
  start included; median of `--repeat`), `stage_seconds`: the sum of the stage timings its
  manifest records, and `overhead_seconds` = the difference (goal ≤ 2 s);
- `help_seconds`: median wall time of `evalpipe --help` (goal ≤ 0.3 s);
- `e2e_seconds`: `evalpipe run` on 1,000 records × 2 arms of one model at `--latency-ms` (fixed)
  and concurrency 64, the whole command; `reference_seconds`: a bare `AsyncOpenAI` loop sending
  the same 2,000 requests with one semaphore of 64 (the loop alone, timed inside this process:
  its imports and Python's start are not counted); `ratio` = e2e / reference (goal ≤ 1.3),
  medians over `--e2e-repeat` pairs run in turn;
  `max_in_flight` / `reference_max_in_flight`: the most requests in flight that the server saw
  for each (the ratio counts only when both are ≤ 64).

No Prefect API is configured, so the runs are in-process (no Prefect server). The fake provider
runs in its own process, started before timing, as a real provider would be. evalpipe's bytecode
is compiled first, as an install has it (`bench.common.compile_package`).

    python bench/startup.py [--repeat 5] [--latency-ms 200] [--records 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    arm_bodies,
    bare_loop,
    compile_package,
    demo_records,
    max_in_flight,
    two_arm_spec,
)
from evalpipe.fake import serving

CONCURRENCY = 64


def _spec(folder: Path, root: str, n: int) -> Path:
    return two_arm_spec(
        folder,
        root,
        demo_records(n),
        name=f"bench-{n}",
        limit={"concurrency": CONCURRENCY},
        checks=[{"name": "no_refusal", "type": "not_refusal"}],
        gate={"min_n": 5},
        report={"out": str(folder / "reports")},
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    return env


def _timed_run(spec: Path) -> tuple[float, float]:
    """(wall seconds of `evalpipe run`, sum of its stage timings)."""
    store = spec.parent / "store"
    subprocess.run(["rm", "-rf", str(store), str(spec.parent / "reports")], check=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "evalpipe.cli", "run", str(spec)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=spec.parent,
    )
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1, 2, 3):
        raise SystemExit(f"evalpipe run failed ({proc.returncode}): {proc.stderr}")
    manifest = json.loads(next((store / "runs").glob("*/manifest.json")).read_text())
    return seconds, sum(manifest["timings"].values())


def _help_seconds(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "evalpipe.cli", "--help"], capture_output=True, env=_env()
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--e2e-repeat", type=int, default=3)
    args = parser.parse_args()

    compile_package()
    with tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        small.mkdir()
        large.mkdir()
        with serving(latency_ms=20.0, jitter=0.0, subprocess=True) as root:
            spec = _spec(small, root, 10)
            _timed_run(spec)  # warm-up: bytecode and the page cache
            runs = [_timed_run(spec) for _ in range(args.repeat)]
        seconds = statistics.median(s for s, _ in runs)
        stages = statistics.median(t for _, t in runs)
        overhead = statistics.median(s - t for s, t in runs)
        help_s = _help_seconds(args.repeat)

        bodies = arm_bodies(demo_records(args.records))
        pairs, peaks = [], []
        for _ in range(args.e2e_repeat):  # in turn, so that a drift of the machine hits both
            with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
                reference = asyncio.run(bare_loop(root, bodies, CONCURRENCY))
                reference_peak = max_in_flight(root)
            with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
                e2e, e2e_stages = _timed_run(_spec(large, root, args.records))
                peaks.append((max_in_flight(root), reference_peak))
            pairs.append((e2e, e2e_stages, reference))
        e2e = statistics.median(p[0] for p in pairs)
        e2e_stages = statistics.median(p[1] for p in pairs)
        reference = statistics.median(p[2] for p in pairs)
        ratio = statistics.median(p[0] / p[2] for p in pairs)
        peak, reference_peak = max(p[0] for p in peaks), max(p[1] for p in peaks)

    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "stage_seconds": round(stages, 3),
                "overhead_seconds": round(overhead, 3),
                "help_seconds": round(help_s, 3),
                "e2e_seconds": round(e2e, 3),
                "e2e_stage_seconds": round(e2e_stages, 3),
                "reference_seconds": round(reference, 3),
                "ratio": round(ratio, 3),
                "max_in_flight": peak,
                "reference_max_in_flight": reference_peak,
                "concurrency": CONCURRENCY,
                "ratio_counts": peak <= CONCURRENCY and reference_peak <= CONCURRENCY,
                "records": args.records,
                "arms": 2,
                "latency_ms": args.latency_ms,
                "repeat": args.repeat,
                "e2e_repeat": args.e2e_repeat,
            }
        )
    )


if __name__ == "__main__":
    main()
