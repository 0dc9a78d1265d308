"""Gate throughput: 100,000 paired records × 10 gated metrics × 20 slices, bootstrap included.

Prints one JSON line: `seconds` of `gate_scores` (one candidate), `reference_seconds` of a plain
DuckDB aggregation of the same scores (per metric × slice × arm means: what a gate without
statistics would cost), their `ratio`, and the sizes. Target: seconds ≤ 10 on 2 cores.

    python bench/gate.py [--n 100000] [--b 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gate"))

from synth import Arm, Check, make_run

from evalpipe.gate import gate_scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--b", type=int, default=2000)
    args = parser.parse_args()

    features = tuple(f"f{i}" for i in range(10))
    checks = [Check(f"check_{i}", 0.9 + 0.01 * i, None, i == 0) for i in range(7)]
    checks[1].where_feature = "f1"
    run = make_run(
        args.n,
        checks=checks,
        candidates={"cand": Arm(regress={"check_2": 0.03}, latency_factor=1.1)},
        features=features,
        extra_slices=10,
        session_size=4,
        judge=args.n,
        gate={
            "cluster": "session_id",
            "slices": ["feature", "bucket"],
            "gated_slices": ["feature"],
            "latency_p95_ratio_max": 1.5,
            "cost_ratio_max": 1.2,
        },
    )
    gated = len(checks) + 1 + 1 + 2  # checks, judge, error_rate, latency_p95, cost

    started = time.perf_counter()
    result = gate_scores(
        run.scores, run.responses, run.records, run.spec, run_id="bench", bootstrap_b=args.b
    )
    seconds = time.perf_counter() - started

    started = time.perf_counter()
    con = duckdb.connect()
    con.register("scores", run.scores)
    con.register("records", run.records)
    con.sql(
        """
        SELECT s.metric, s.arm, r.attributes['feature'] AS feature, r.attributes['bucket'] AS bucket,
               avg(s.value) AS mean, count(s.value) AS n
        FROM scores s JOIN records r USING (record_id)
        GROUP BY GROUPING SETS ((s.metric, s.arm), (s.metric, s.arm, feature),
                                (s.metric, s.arm, bucket))
        ORDER BY ALL
        """
    ).to_arrow_table()
    reference = time.perf_counter() - started

    print(
        json.dumps(
            {
                "bench": "gate",
                "seconds": round(seconds, 3),
                "reference_seconds": round(reference, 3),
                "ratio": round(seconds / reference, 2),
                "pairs": args.n,
                "gated_metrics": gated,
                "slices": 20,
                "bootstrap_b": args.b,
                "score_rows": run.scores.num_rows,
                "gate_rows": result.table.num_rows,
                "verdict": result.verdict,
            }
        )
    )


if __name__ == "__main__":
    main()
