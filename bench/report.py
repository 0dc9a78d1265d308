"""Report writing: `write_report` for a 10,000-record run against writing the same bytes.

Prints one JSON line: `seconds` of `write_report` (index.html, summary.md, verdict.json,
junit.xml; best of `--repeat`), `reference_seconds` of writing the same four files' bytes
(best of `--repeat`), their `ratio`, and the sizes. The run (three candidates, slices, a
pairwise judge) is built and gated before timing starts.

    python bench/report.py [--n 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalpipe.report import write_report
from tests.report.synth import make_run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    run = make_run(args.n, n_judge=min(2000, args.n))
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
                "bytes": {name: len(data) for name, data in blobs.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
