"""Rule checks: the full rule suite over 1,000,000 responses in Parquet, against DuckDB alone.

Prints one JSON line: `seconds` of reading the Parquet file and running every rule check type
(all but judges and custom python) through `score_rules` into the long scores table (best of
`--repeat`), `reference_seconds` of DuckDB running five bare checks (json_valid, two
regexp_matches, length, contains) over the same file in the same run (best of `--repeat`),
their `ratio`, the sizes, `per_check` seconds of one pass per check type (alone: each pays
for what the full run shares, e.g. the words of ROUGE and BLEU), `cpu_seconds` (process CPU
time of the best run, every thread) and the 1-minute `load_average` before and after the
timed runs: on a shared machine, seconds well above cpu_seconds / 2 mean other work ran.

The responses are demo-shaped: 40% are the JSON feature (a triage object, 5% of them broken),
the rest prose replies of 100-600 characters; `--reference-share` of the rows carry a reference
answer (default 0.1: golden eval sets are a slice of traffic) and 10% make tool calls with a
reference call to match.

    python bench/score_rules.py [--n 1000000] [--repeat 3] [--reference-share 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "shipping", "account", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 300},
    },
    "required": ["category", "priority", "summary"],
    "additionalProperties": False,
}
WORDS = [
    "your",
    "order",
    "refund",
    "shipping",
    "account",
    "billing",
    "invoice",
    "the",
    "a",
    "to",
    "of",
    "we",
    "have",
    "been",
    "issued",
    "tracking",
    "number",
    "today",
    "tomorrow",
    "card",
    "days",
    "please",
    "thank",
    "you",
    "for",
    "waiting",
    "support",
    "team",
    "address",
    "update",
    "password",
    "reset",
    "email",
    "confirm",
    "delivery",
    "package",
    "carrier",
    "week",
]
TOOLS = orjson.dumps(
    {
        "tools": [
            {
                "name": "lookup_order",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "integer"}},
                    "required": ["order_id"],
                },
            }
        ]
    }
).decode()


def _sentences(rng: np.random.Generator, k: int, low: int, high: int) -> list[str]:
    return [
        " ".join(rng.choice(WORDS, size=int(rng.integers(low, high)))).capitalize() + "."
        for _ in range(k)
    ]


def make_frame(n: int, reference_share: float, seed: int = 0) -> pa.Table:
    """A scoring frame of n responses (responses joined to their records' columns)."""
    rng = np.random.default_rng(seed)
    pool = _sentences(rng, 4000, 15, 100)
    prose_idx = rng.integers(0, len(pool), n)
    texts = pa.array(pool).take(pa.array(prose_idx))
    is_json = rng.random(n) < 0.4
    cats = np.array(["billing", "shipping", "account", "other"])
    json_pool = [
        orjson.dumps(
            {"category": str(cats[i % 4]), "priority": int(i % 5) + 1, "summary": pool[i][:200]}
        ).decode()
        for i in range(4000)
    ]
    json_pool[::20] = [t[:-2] for t in json_pool[::20]]  # 5% broken
    json_texts = pa.array(json_pool).take(pa.array(rng.integers(0, 4000, n)))
    texts = pc.if_else(pa.array(is_json), json_texts, texts)
    has_ref = rng.random(n) < reference_share
    ref_texts = pa.array(pool).take(
        pa.array(np.where(rng.random(n) < 0.5, prose_idx, rng.integers(0, len(pool), n)))
    )
    reference = pc.if_else(pa.array(has_ref & ~is_json), ref_texts, pa.scalar(None, pa.string()))
    calls = rng.random(n) < 0.1
    call_json = pa.array(
        [
            orjson.dumps(
                [{"id": "c", "name": "lookup_order", "arguments": {"order_id": i}}]
            ).decode()
            for i in range(100)
        ]
    ).take(pa.array(rng.integers(0, 100, n)))
    ref_call = pa.array(
        [orjson.dumps([{"lookup_order": {"order_id": [i]}}]).decode() for i in range(100)]
    ).take(pa.array(rng.integers(0, 100, n)))
    reference = pc.if_else(pa.array(calls), ref_call, reference)
    feature = np.where(is_json, "triage", "answer")
    attrs = pa.MapArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)),
        pa.array(["feature"] * n),
        pa.array(feature),
    )
    status = np.where(rng.random(n) < 0.01, "error", "ok")
    return pa.table(
        {
            "record_id": pa.array([f"r{i:07d}" for i in range(n)]),
            "arm": pa.array(np.where(rng.random(n) < 0.5, "baseline", "cand")),
            "repeat": pa.array(np.zeros(n, np.int32)),
            "output_text": pc.if_else(
                pa.array(status == "ok"), texts, pa.scalar(None, pa.string())
            ),
            "output_tool_calls": pc.if_else(
                pa.array(calls), call_json, pa.scalar(None, pa.string())
            ),
            "finish_reason": pa.array(np.where(rng.random(n) < 0.02, "length", "stop")),
            "output_tokens": pa.array(rng.integers(5, 400, n)),
            "latency_ms": pa.array(rng.lognormal(6.5, 0.5, n)),
            "cost_usd": pa.array(rng.random(n) * 0.002),
            "status": pa.array(status),
            "request": pc.if_else(pa.array(calls), pa.scalar(TOOLS), pa.scalar("{}")),
            "attributes": attrs,
            "reference": reference,
        }
    )


def checks(schema_path: Path) -> list[dict[str, Any]]:
    triage = {"feature": "triage"}
    return [
        {"name": "valid_json", "type": "json_valid", "where": triage, "critical": True},
        {"name": "schema_ok", "type": "json_schema", "schema": str(schema_path), "where": triage},
        {
            "name": "priority",
            "type": "json_path",
            "path": "$.priority",
            "equals": 2,
            "where": triage,
        },
        {
            "name": "category",
            "type": "json_path",
            "path": "$.category",
            "matches": "^bill",
            "where": triage,
        },
        {"name": "no_refusal", "type": "not_refusal"},
        {"name": "concise", "type": "max_chars", "value": 1200},
        {"name": "not_empty", "type": "min_chars", "value": 5},
        {"name": "no_pii", "type": "no_pii"},
        {"name": "complete", "type": "finish_reason_not"},
        {"name": "tracking", "type": "regex", "pattern": "(?i)tracking number"},
        {"name": "thanks", "type": "contains", "value": "thank", "case_sensitive": False},
        {"name": "no_sorry", "type": "not_contains", "value": "sorry"},
        {"name": "any", "type": "contains_any", "values": ["order", "refund", "account"]},
        {"name": "all", "type": "contains_all", "values": ["your", "order"]},
        {"name": "opens", "type": "starts_with", "value": "Your"},
        {"name": "equals_ref", "type": "equals"},
        {"name": "close_ref", "type": "levenshtein_max", "value": 40},
        {"name": "rouge", "type": "rouge_n_min", "value": 0.3, "n": 2},
        {"name": "bleu", "type": "bleu_min", "value": 0.2},
        {"name": "tokens", "type": "max_output_tokens", "value": 300},
        {"name": "fast", "type": "latency_ms_max", "value": 2000},
        {"name": "cheap", "type": "cost_usd_max", "value": 0.0015},
        {"name": "tools_ok", "type": "tool_call_valid"},
        {"name": "tools_f1", "type": "tool_call_f1", "value": 0.5},
        {"name": "tools_exact", "type": "tool_call_exact"},
    ]


def duckdb_reference(path: Path) -> float:
    import duckdb

    started = time.perf_counter()
    with duckdb.connect() as con:
        con.sql(
            f"""
            SELECT json_valid(output_text) AS j,
                   regexp_matches(output_text, '(?i)^\\s*(i''m sorry|i cannot)') AS r1,
                   regexp_matches(output_text, '(?i)tracking number') AS r2,
                   length(output_text) <= 1200 AS l,
                   contains(lower(output_text), 'thank') AS c
            FROM read_parquet('{path}')
            """
        ).to_arrow_table()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-share", type=float, default=0.1)
    args = parser.parse_args()

    from evalpipe.score.rules import CHECKS, score_rules
    from evalpipe.spec import spec_from_dict

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "responses.parquet"
        schema_path = Path(tmp) / "triage.schema.json"
        schema_path.write_text(json.dumps(SCHEMA))
        frame = make_frame(args.n, args.reference_share)
        pq.write_table(frame, path)
        spec = spec_from_dict(
            {
                "name": "bench",
                "traffic": {"path": str(path)},
                "baseline": {"provider": "openai", "model": "m"},
                "candidates": [{"name": "cand", "provider": "openai", "model": "n"}],
                "checks": checks(schema_path),
            }
        )
        types = {c.type for c in spec.checks}
        assert types == set(CHECKS) - {"python"}, set(CHECKS) - types

        def run() -> pa.Table:
            return score_rules(pq.read_table(path), list(spec.checks), run_id="bench", spec=spec)

        run()  # warm: imports, compiled validators
        load_before = os.getloadavg()[0]
        seconds, cpu, rows = [], [], 0
        for _ in range(args.repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            rows = run().num_rows
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        reference = [duckdb_reference(path) for _ in range(args.repeat)]
        loaded = pq.read_table(path)
        per_check = {}
        for check in spec.checks:
            started = time.perf_counter()
            score_rules(loaded, [check], run_id="bench", spec=spec)
            per_check[check.type] = round(
                per_check.get(check.type, 0) + time.perf_counter() - started, 3
            )
        best, ref = min(seconds), min(reference)
        print(
            json.dumps(
                {
                    "seconds": round(best, 3),
                    "cpu_seconds": round(min(cpu), 3),
                    "reference_seconds": round(ref, 3),
                    "ratio": round(best / ref, 2),
                    "responses": args.n,
                    "checks": len(spec.checks),
                    "score_rows": rows,
                    "reference_share": args.reference_share,
                    "parquet_mb": round(path.stat().st_size / 1e6, 1),
                    "per_check": per_check,
                    "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                }
            )
        )


if __name__ == "__main__":
    main()
