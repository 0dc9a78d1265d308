"""Diffs: every diff of 100,000 baseline/candidate pairs, against rapidfuzz's ratio alone.

Prints one JSON line: `seconds` of `score_diffs` with all five diffs (exact, similarity,
json_structure, length_ratio, tool_calls) on the pairs (best of `--repeat`),
`reference_seconds` of `rapidfuzz.process.cpdist` with `fuzz.ratio` over the same text pairs
(the similarity diff's bare cost, best of `--repeat`), their `ratio`, and the sizes.

The pairs are demo-shaped: 40% JSON objects, the rest prose of 100-600 characters; the
candidate rewrites half of the answers and keeps the rest; 10% make tool calls.

    python bench/score_diffs.py [--n 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.score_rules import make_frame


def make_pairs(n: int) -> pa.Table:
    """Responses of the baseline and one candidate on n records (tables.RESPONSES columns)."""
    from evalpipe.tables import RESPONSES, conform

    base = make_frame(n, 0.0, seed=1)
    cand = make_frame(n, 0.0, seed=2)
    keep = pa.array(np.random.default_rng(3).random(n) < 0.5)
    cand = cand.set_column(
        cand.schema.get_field_index("output_text"),
        "output_text",
        pc.if_else(keep, base["output_text"], cand["output_text"]),
    )
    tables = []
    for arm, t in (("baseline", base), ("cand", cand)):
        t = t.set_column(t.schema.get_field_index("arm"), "arm", pa.repeat(pa.scalar(arm), n))
        t = t.set_column(
            t.schema.get_field_index("status"), "status", pa.repeat(pa.scalar("ok"), n)
        )
        tables.append(conform(t, RESPONSES))
    return pa.concat_tables(tables)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from rapidfuzz import fuzz
    from rapidfuzz.process import cpdist

    from evalpipe.score.diffs import DIFFS, score_diffs

    responses = make_pairs(args.n)
    score_diffs(responses.slice(0, 1000), list(DIFFS), run_id="warm")
    seconds, rows = [], 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        rows = score_diffs(responses, list(DIFFS), run_id="bench").num_rows
        seconds.append(time.perf_counter() - started)
    texts = pc.fill_null(responses["output_text"], "").to_pylist()
    a, b = texts[: args.n], texts[args.n :]
    reference = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        cpdist(b, a, scorer=fuzz.ratio, workers=1)
        reference.append(time.perf_counter() - started)
    best, ref = min(seconds), min(reference)
    print(
        json.dumps(
            {
                "seconds": round(best, 3),
                "reference_seconds": round(ref, 3),
                "ratio": round(best / ref, 2),
                "pairs": args.n,
                "diffs": len(DIFFS),
                "score_rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
