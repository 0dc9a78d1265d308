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
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run

DEMO = Path(__file__).resolve().parents[1] / "eval_sets" / "demo"
MODEL = "gpt-4o-mini-2024-07-18"


def _logged(n: int) -> list[dict[str, Any]]:
    """n logged records: the demo's, repeated with fresh ids and a numbered user turn."""
    base = []
    for line in gzip.open(DEMO / "traffic.jsonl.gz").read().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the demo's one malformed line
        base += [record] if "request" in record else []
    out = []
    for i in range(n):
        record = orjson.loads(orjson.dumps(base[i % len(base)]))
        record["request"]["messages"][-1]["content"] += f" (#{i})"
        record["response"]["id"] = f"chatcmpl-bench-{i}"
        out.append(record)
    return out


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


async def _bare_loop(root: str, records: list[dict[str, Any]], concurrency: int) -> float:
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"{root}/v1",
        api_key="bench",
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        ),
    )
    sem = asyncio.Semaphore(concurrency)
    bodies = [
        {**r["request"], "model": MODEL, "temperature": t}
        for r in records
        for t in (r["request"].get("temperature"), 0.7)
    ]

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            await client.chat.completions.create(**body)

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    seconds = time.perf_counter() - started
    await client.close()
    return seconds


def _max_in_flight(root: str) -> int:
    seen = httpx.get(f"{root}/_fake/traffic").json()
    return int(seen.get(MODEL, {}).get("max_in_flight", 0))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    records = _logged(args.records)
    with tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp:
        with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
            reference = asyncio.run(_bare_loop(root, records, args.concurrency))
            reference_peak = _max_in_flight(root)
        with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
            run = open_run(load_spec(_spec(Path(tmp), root, records, args.concurrency)))
            pipeline.ingest_run(run)
            parts = pipeline.partitions(run)
            started = time.perf_counter()
            IN_PROCESS.replay_partitions(run, parts)
            IN_PROCESS.finish_replay(run)
            seconds = time.perf_counter() - started
            peak = _max_in_flight(root)
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
