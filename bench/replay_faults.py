"""Replay against a server with a fault mix: every request ends as one row, counted by the server.

N logged records × 2 arms of the fake's `faulty` model (each attempt: 10% 429 with Retry-After, 5%
500, 2% no answer past the timeout, 1% a malformed 200 body, 1% cut off), through a run's replay
stage with `rpm` (default 600) and `timeout_s`. Checks, against the server's own counts:

- rows = 2 × N, one per record and arm (none lost, none duplicated);
- the attempts the rows count = the requests the server saw;
- at most `rpm` requests arrived in any 60-s window (the server's arrival times, sliding).

Prints one JSON line with `seconds`, the reference (the bare loop's seconds for the same
requests at the same concurrency, without faults), the counts and the checks.

    python bench/replay_faults.py [--records 1000] [--rpm 600] [--latency-ms 200]
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

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import arm_bodies, bare_loop, demo_records, two_arm_spec
from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run

MODEL = "fake-faulty"


def _spec(folder: Path, root: str, records: list[dict[str, Any]], args: Any) -> Path:
    limit: dict[str, Any] = {"concurrency": args.concurrency, "timeout_s": args.timeout_s}
    if args.rpm:
        limit["rpm"] = args.rpm
    return two_arm_spec(folder, root, records, name="bench-faults", limit=limit, model=MODEL)


def _most_in_window(arrivals: list[float], window_s: float = 60.0) -> int:
    """Most arrivals inside any window of `window_s` (sliding)."""
    most, first = 0, 0
    for last, at in enumerate(arrivals):
        while at - arrivals[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rpm", type=int, default=600, help="0: no rpm limit")
    parser.add_argument("--timeout-s", type=float, default=2.0)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()

    records = demo_records(args.records)
    with tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp:
        with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
            run = open_run(load_spec(_spec(Path(tmp), root, records, args)))
            pipeline.ingest_run(run)
            parts = pipeline.partitions(run)
            started = time.perf_counter()
            IN_PROCESS.replay_partitions(run, parts)
            IN_PROCESS.finish_replay(run)
            seconds = time.perf_counter() - started
            server = httpx.get(f"{root}/_fake/traffic").json()[MODEL]
            responses = run.read_responses()
            manifest = run.manifest()
        if not args.rpm:
            with serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root:
                reference: float | None = asyncio.run(
                    bare_loop(root, arm_bodies(records), args.concurrency)
                )
        else:
            reference = None
    rows = [r for r in responses.to_pylist() if r["arm"] != "logged"]
    keys = {(r["arm"], r["record_id"]) for r in rows}
    attempts = sum(r["attempts"] or 0 for r in rows)
    statuses: dict[str, int] = {}
    for r in rows:
        name = r["status"] if r["status"] == "ok" else f"error:{r['error_type']}"
        statuses[name] = statuses.get(name, 0) + 1
    arrivals = sorted(server["arrivals_s"])
    most = _most_in_window(arrivals)
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "reference_seconds": round(reference, 3) if reference else None,
                "ratio": round(seconds / reference, 3) if reference else None,
                "requests": 2 * args.records,
                "rows": len(rows),
                "one_row_per_request": len(rows) == len(keys) == 2 * args.records,
                "row_attempts": attempts,
                "server_requests": server["requests"],
                "attempts_match_server": attempts == server["requests"],
                "server_statuses": server["statuses"],
                "row_statuses": statuses,
                "rpm": args.rpm or None,
                "most_starts_in_60s": most,
                "rpm_kept": (most <= args.rpm) if args.rpm else None,
                "throughput": manifest.get("throughput"),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
