"""Replay stage against a bare SDK loop, at the same concurrency, against one local server.

N logged requests (the demo's traffic, repeated to N) × 2 arms of one model, a fake provider in
its own process answering every request in exactly `--latency-ms`. Times, in this process:

- the reference: a bare `AsyncOpenAI` loop sending the same 2 × N chat completions under one
  semaphore of `--concurrency`;
- evalpipe's replay stage of a run (partitions of 1,000 records side by side in threads, as a run
  does; journal, cache writes and Parquet included; ingest done before timing).

Prints one JSON line: `seconds`, `reference_seconds`, `ratio`, `requests`, `max_in_flight` and
`reference_max_in_flight` (the most requests in flight the server saw for each; the ratio counts
only when both are ≤ `concurrency`, `ratio_counts`), `partitions`, and peak RSS: `peak_rss_mb` of
the process that replays (the reference runs in a child process of the same bench run, so that
its 2 × N request bodies and tasks are not counted as evalpipe's; `reference_peak_rss_mb`).

    python bench/replay.py [--records 3000] [--concurrency 16] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import arm_bodies, bare_loop, demo_records, max_in_flight, two_arm_spec
from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run


def _spec(folder: Path, root: str, records: list[dict[str, Any]], concurrency: int) -> Path:
    return two_arm_spec(
        folder, root, records, name="bench-replay", limit={"concurrency": concurrency}
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--reference-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.reference_only:
        _reference(args)
        return
    with tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp:
        child = [sys.executable, __file__, "--reference-only"]
        child += [f"--records={args.records}", f"--concurrency={args.concurrency}"]
        child += [f"--latency-ms={args.latency_ms}"]
        ref = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
        reference, reference_peak = ref["seconds"], ref["max_in_flight"]
        with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
            records = demo_records(args.records)
            spec_path = _spec(Path(tmp), root, records, args.concurrency)
            del records  # the bench's own copy, not evalpipe's
            gc.collect()
            run = open_run(load_spec(spec_path))
            pipeline.ingest_run(run)
            parts = pipeline.partitions(run)
            started = time.perf_counter()
            IN_PROCESS.replay_partitions(run, parts)
            IN_PROCESS.finish_replay(run)
            seconds = time.perf_counter() - started
            peak = max_in_flight(root)
            coverage = run.manifest()["coverage"]
    answered = sum(c["ok"] for c in coverage.values())
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "reference_seconds": round(reference, 3),
                "ratio": round(seconds / reference, 3),
                "requests": 2 * args.records,
                "answered": answered,
                "partitions": len(parts),
                "concurrency": args.concurrency,
                "max_in_flight": peak,
                "reference_max_in_flight": reference_peak,
                "ratio_counts": peak <= args.concurrency and reference_peak <= args.concurrency,
                "latency_ms": args.latency_ms,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "reference_peak_rss_mb": ref["peak_rss_mb"],
            }
        )
    )


def _reference(args: argparse.Namespace) -> None:
    """The bare loop, alone in this process: its seconds, the server's peak, its peak RSS."""
    records = demo_records(args.records)
    with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
        seconds = asyncio.run(bare_loop(root, arm_bodies(records), args.concurrency))
        peak = max_in_flight(root)
    rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({"seconds": seconds, "max_in_flight": peak, "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()
