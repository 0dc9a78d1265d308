"""Adaptive concurrency against a server that answers 429 above its capacity.

N logged records × 2 arms of the fake's `ratelimited-<capacity>` model (429 with retry-after-ms
above `capacity` requests in flight), replayed at `concurrency` (default 256) through a run's
replay stage. A thread samples the server's requests in flight every 0.1 s. Prints one JSON line:
`seconds`, `converged_s` (from when on the server never had more than `bound` in flight),
`max_in_flight_after_30s`, the share of requests that saw a 429 (the engine's count, and the 429s
the server sent), the rows' statuses.

    python bench/replay_aimd.py [--records 3000] [--concurrency 256] [--capacity 32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import demo_records, two_arm_spec
from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run


def _spec(folder: Path, root: str, records: list[dict[str, Any]], model: str, args: Any) -> Path:
    limit = {"concurrency": args.concurrency, "max_retries": 10}
    return two_arm_spec(folder, root, records, name="bench-aimd", limit=limit, model=model)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--capacity", type=int, default=32)
    parser.add_argument("--bound", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    model = f"fake-ratelimited-{args.capacity}"

    records = demo_records(args.records)
    samples: list[tuple[float, int]] = []
    with (
        tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp,
        serving(latency_ms=args.latency_ms, jitter=0.0, subprocess=True) as root,
    ):
        run = open_run(load_spec(_spec(Path(tmp), root, records, model, args)))
        pipeline.ingest_run(run)
        parts = pipeline.partitions(run)
        stop = threading.Event()

        def sample() -> None:
            with httpx.Client() as http:
                while not stop.is_set():
                    seen = http.get(f"{root}/_fake/traffic").json().get(model, {})
                    samples.append((time.perf_counter(), int(seen.get("in_flight", 0))))
                    stop.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        started = time.perf_counter()
        sampler.start()
        IN_PROCESS.replay_partitions(run, parts)
        IN_PROCESS.finish_replay(run)
        seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        server = httpx.get(f"{root}/_fake/traffic").json()[model]
        manifest = run.manifest()
        responses = run.read_responses()
    over = [t - started for t, n in samples if n > args.bound]
    converged = over[-1] if over else 0.0
    after_30 = [n for t, n in samples if t - started >= 30.0]
    facts = next(iter((manifest.get("throughput") or {}).values()), {})
    rows = [r for r in responses.to_pylist() if r["arm"] != "logged"]
    requests = 2 * args.records
    print(
        json.dumps(
            {
                "seconds": round(seconds, 3),
                "requests": requests,
                "concurrency": args.concurrency,
                "capacity": args.capacity,
                "server_max_in_flight": server["max_in_flight"],
                "converged_s": round(converged, 2),
                "max_in_flight_after_30s": max(after_30) if after_30 else None,
                "requests_that_saw_429": facts.get("throttled_requests"),
                "share_that_saw_429": round((facts.get("throttled_requests") or 0) / requests, 4),
                "server_429s": server["statuses"].get("429", 0),
                "window_low": facts.get("concurrency_low"),
                "window_end": facts.get("concurrency_now"),
                "ok_rows": sum(r["status"] == "ok" for r in rows),
                "rows": len(rows),
            }
        )
    )


if __name__ == "__main__":
    main()
