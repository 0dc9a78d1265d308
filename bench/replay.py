"""Replay stage against a bare SDK loop, at the same concurrency, against one local server.

N logged requests (the demo's traffic, repeated to N) × 2 arms of one model, a fake provider in
its own process answering every request in exactly `--latency-ms`. Times, in this process:

- the reference: a bare `AsyncOpenAI` loop sending the same 2 × N chat completions under one
  semaphore of `--concurrency`;
- evalpipe's replay stage of a run (partitions of 1,000 records side by side in threads, as a run
  does; journal, cache writes and Parquet included; ingest done before timing).

Prints one JSON line: `seconds`, `reference_seconds`, `ratio`, `requests`, `max_in_flight` and
`reference_max_in_flight` (the most requests in flight the server saw for each; the ratio counts
only when both are ≤ `concurrency`, `ratio_counts`), `partitions`, and peak RSS.

    python bench/replay.py [--records 3000] [--concurrency 16] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import MODEL, arm_bodies, bare_loop, demo_records, max_in_flight
from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run


def _spec(folder: Path, root: str, records: list[dict[str, Any]], concurrency: int) -> Path:
    (folder / "traffic.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    arm = {"provider": "openai", "model": MODEL, "base_url": f"{root}/v1"}
    spec = {
        "name": "bench-replay",
        "traffic": {"path": "traffic.jsonl"},
        "baseline": {"name": "prod", **arm, "compare_logged": False},
        "candidates": [{"name": "warmer", **arm, "params": {"temperature": 0.7}}],
        "limits": {"default": {"concurrency": concurrency}},
        "store": str(folder / "store"),
    }
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    records = demo_records(args.records)
    with tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp:
        with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
            reference = asyncio.run(bare_loop(root, arm_bodies(records), args.concurrency))
            reference_peak = max_in_flight(root)
        with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
            run = open_run(load_spec(_spec(Path(tmp), root, records, args.concurrency)))
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
            }
        )
    )


if __name__ == "__main__":
    main()
