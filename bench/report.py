"""Report writing: `write_report` for a 100,000-record run against writing the same bytes, and a
trends page over 90 nights.

Prints two JSON lines. `report`: `seconds` of `write_report` (index.html, summary.md,
verdict.json, junit.xml; best of `--repeat`), `reference_seconds` of writing the same four
files' bytes (best of `--repeat`), their `ratio`, the sizes and the goals (≤ 2 s, ≤ 3 MB). The
run (3 candidates; 11 metrics: 3 checks, a pairwise judge, error rate, latency p50/p95, cost and
3 diffs; 20 slices: 3 features × 17 tenants) is built and gated before timing starts. `trends`:
`write_trends` over `--nights` simulated nights (goal ≤ 1 s) against writing its bytes.

    python bench/report.py [--n 100000] [--tenants 17] [--nights 90] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalpipe.report import write_report, write_trends
from tests.report.nights import SPEC, make_nights
from tests.report.synth import make_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=17)
    parser.add_argument("--nights", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    run = make_run(args.n, n_judge=min(2000, args.n), tenants=args.tenants)
    kwargs = {
        "gate": run.gate,
        "spec": run.spec,
        "records": run.records,
        "responses": run.responses,
        "scores": run.scores,
        "manifest": run.manifest,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_report(root / "warm-up", **kwargs)  # template compilation, imports
        seconds = []
        for i in range(args.repeat):
            started = time.perf_counter()
            paths = write_report(root / f"run-{i}", **kwargs)
            seconds.append(time.perf_counter() - started)
        blobs = {p.name: p.read_bytes() for p in paths}
        reference = []
        for i in range(args.repeat):
            out = root / f"ref-{i}"
            started = time.perf_counter()
            out.mkdir()
            for name, data in blobs.items():
                (out / name).write_bytes(data)
            reference.append(time.perf_counter() - started)
    best, ref = min(seconds), min(reference)
    print(
        json.dumps(
            {
                "bench": "report",
                "seconds": round(best, 4),
                "reference_seconds": round(ref, 6),
                "ratio": round(best / ref, 1) if ref > 0 else None,
                "records": run.records.num_rows,
                "responses": run.responses.num_rows,
                "scores": run.scores.num_rows,
                "gate_rows": run.gate.table.num_rows,
                "candidates": len(run.gate.candidates),
                "metrics": len(set(run.gate.table["metric"].to_pylist())),
                "slices": len(
                    {
                        (c, v)
                        for c, v in zip(
                            run.gate.table["slice_col"].to_pylist(),
                            run.gate.table["slice_value"].to_pylist(),
                            strict=True,
                        )
                        if c is not None
                    }
                ),
                "bytes": {name: len(data) for name, data in blobs.items()},
                "total_bytes": sum(len(data) for data in blobs.values()),
                "goal_seconds": 2.0,
                "goal_bytes": 3_000_000,
            }
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_nights(root / "store", args.nights)
        write_trends(root / "store", SPEC, root / "warm-up")
        seconds = []
        for i in range(args.repeat):
            started = time.perf_counter()
            page = write_trends(root / "store", SPEC, root / f"out-{i}")
            seconds.append(time.perf_counter() - started)
        assert page is not None
        data = page.read_bytes()
        reference = []
        for i in range(args.repeat):
            started = time.perf_counter()
            (root / f"ref-{i}.html").write_bytes(data)
            reference.append(time.perf_counter() - started)
    best, ref = min(seconds), min(reference)
    print(
        json.dumps(
            {
                "bench": "trends",
                "seconds": round(best, 4),
                "reference_seconds": round(ref, 6),
                "ratio": round(best / ref, 1) if ref > 0 else None,
                "nights": args.nights,
                "bytes": len(data),
                "goal_seconds": 1.0,
            }
        )
    )


if __name__ == "__main__":
    main()
