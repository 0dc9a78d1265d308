"""Ingest throughput: `ingest_to_parquet` vs a plain `orjson.loads` loop over the same file.

Generates N records of the demo's shape (openai_chat@1, about 2 KB each, gzip) into a temporary
folder, then times, in this process: the reference (gzip + orjson.loads per line), and evalpipe's
ingest writing Parquet part files. Prints one JSON line:
{seconds, reference_seconds, ratio, records, quarantined, bytes_gz, bytes_raw, peak_rss_mb, ...}.

    python bench/ingest.py               # 1,000,000 records
    python bench/ingest.py --records 100000 --workers 2
    python bench/ingest.py --keep /tmp/traffic-1m.jsonl.gz   # generate once, reuse after
    python bench/ingest.py --keep /tmp/traffic-1m.jsonl.gz --mode run --dedupe \
        --sample 200000 --stratify attributes.feature          # a run's ingest, with selection

`seconds` is `ingest_to_parquet` (records written as Parquet parts as they are made, so memory
stays bounded); `--mode run` times `ingest_selected` into one records.parquet as a run's ingest
does; `--mode table` times `ingest_paths`, which holds every record in memory.
"""

from __future__ import annotations

import argparse
import gzip
import random
import resource
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

_WORDS = [
    "order",
    "refund",
    "shipping",
    "account",
    "password",
    "invoice",
    "charged",
    "twice",
    "subscription",
    "cancel",
    "upgrade",
    "plan",
    "billing",
    "error",
    "login",
    "export",
    "report",
    "crash",
    "delivery",
    "tracking",
    "address",
    "warranty",
    "broken",
    "replace",
    "discount",
    "coupon",
    "payment",
    "card",
    "declined",
    "api",
    "limit",
    "timeout",
    "support",
    "team",
    "member",
    "urgent",
    "please",
    "help",
    "thanks",
    "really",
    "frustrated",
    "week",
    "month",
    "again",
    "still",
    "waiting",
    "update",
    "app",
    "version",
]
_SYSTEM = (
    "You are the support assistant of an online store and software company. Answer the customer "
    "politely and concisely, in at most five sentences. Never ask for passwords or full card "
    "numbers. If the customer is angry, acknowledge it first. Escalate legal threats, security "
    "incidents and repeated billing errors to a human agent, and say that you did."
)
_SCHEMA = orjson.loads(
    (Path(__file__).resolve().parents[1] / "eval_sets" / "demo" / "triage.schema.json").read_bytes()
)
_TENANTS = ("acme", "globex", "initech", "hooli", "wayne", "wonka")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _record(i: int, rng: random.Random) -> dict[str, Any]:
    feature = ("answer", "triage", "summarize")[i % 3]
    user = " ".join(_sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(3, 6)))
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 400,
        "messages": [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": user},
        ],
    }
    if feature == "triage":
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "ticket_triage", "strict": True, "schema": _SCHEMA},
        }
        answer = orjson.dumps(
            {
                "category": "billing",
                "priority": "high",
                "sentiment": "negative",
                "needs_human": False,
                "summary": _sentence(rng, 12),
            }
        ).decode()
    else:
        answer = " ".join(_sentence(rng, rng.randint(8, 14)) for _ in range(rng.randint(3, 5)))
    return {
        "request": request,
        "response": {
            "id": f"chatcmpl-{i:024d}",
            "object": "chat.completion",
            "created": 1793492354 + i,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_765c6e794e",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 120 + i % 50,
                "completion_tokens": 60 + i % 40,
                "total_tokens": 180 + i % 90,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        },
        "latency_ms": round(rng.uniform(300, 1500), 1),
        "timestamp": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i // 60) % 60:02d}.000Z",
        "metadata": {
            "feature": feature,
            "tenant": _TENANTS[i % len(_TENANTS)],
            "session_id": f"s_{i // 4:07d}",
            "user_id": f"u_{i % 5000:05d}",
            "prompt_version": "support-v6",
            "request_id": f"req_{i:08d}",
        },
    }


def generate(path: Path, n: int, seed: int = 0) -> tuple[int, int]:
    """Write n records (gzip JSON Lines); returns (raw bytes, gzip bytes)."""
    rng = random.Random(seed)
    raw = 0
    comp = zlib.compressobj(5, zlib.DEFLATED, 31)  # 31: gzip container
    with path.open("wb") as fh:
        lines: list[bytes] = []
        for i in range(n):
            lines.append(orjson.dumps(_record(i, rng)) + b"\n")
            if len(lines) == 2000:
                block = b"".join(lines)
                raw += len(block)
                fh.write(comp.compress(block))
                lines = []
        block = b"".join(lines)
        raw += len(block)
        fh.write(comp.compress(block))
        fh.write(comp.flush())
    return raw, path.stat().st_size


def reference(path: Path) -> tuple[float, int, int]:
    """Seconds of a plain gzip + orjson.loads loop, the records it parsed, and their bytes."""
    started = time.perf_counter()
    n = size = 0
    loads = orjson.loads
    with gzip.open(path, "rb") as fh:
        for line in fh:
            loads(line)
            n += 1
            size += len(line)
    return time.perf_counter() - started, n, size


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or of its largest child), in MB."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=None, help="ingest worker processes")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the input file here")
    parser.add_argument(
        "--mode",
        choices=("parts", "run", "table"),
        default="parts",
        help="parts: ingest_to_parquet (default); run: ingest_selected into one records.parquet "
        "as a run's ingest does; table: ingest_paths, every record held in memory",
    )
    parser.add_argument("--dedupe", action="store_true", help="run mode: drop repeated requests")
    parser.add_argument("--sample", type=int, default=None, help="run mode: keep this many")
    parser.add_argument("--stratify", action="append", default=[], help="run mode: sample over")
    args = parser.parse_args()

    from evalpipe.ingest import Selection, ingest_paths, ingest_selected, ingest_to_parquet

    with tempfile.TemporaryDirectory(prefix="evalpipe-bench-") as tmp:
        path = args.keep or Path(tmp) / "traffic.jsonl.gz"
        t0 = time.perf_counter()
        if args.keep is None or not args.keep.exists():
            generate(path, args.records)
        gz_bytes = path.stat().st_size
        generate_s = time.perf_counter() - t0
        rss_before = _peak_rss_mb()

        ref_s, ref_n, raw_bytes = reference(path)

        started = time.perf_counter()
        extra = {"workers": args.workers} if args.workers else {}
        selected = None
        if args.mode == "run":
            selection = Selection(
                dedupe=args.dedupe, sample_n=args.sample, stratify=tuple(args.stratify), seed=7
            )
            out_path = Path(tmp) / "records.parquet"
            result = ingest_selected(path, out_path, selection=selection, row_group_size=1000)
            selected, files = result.records, [out_path]
        elif args.mode == "table":
            result = ingest_paths(path, workers=args.workers)
            files = []
        else:
            result = ingest_to_parquet(path, Path(tmp) / "records", **extra)
            files = result.parts
        seconds = time.perf_counter() - started
        out_bytes = sum(p.stat().st_size for p in files)

    print(
        orjson.dumps(
            {
                "bench": "ingest",
                "mode": args.mode,
                "seconds": round(seconds, 2),
                "reference_seconds": round(ref_s, 2),
                "ratio": round(seconds / ref_s, 2),
                "records": result.counts["ingested"],
                "reference_records": ref_n,
                "quarantined": result.counts["quarantined"],
                "records_per_second": round(result.counts["ingested"] / seconds),
                "bytes_raw": raw_bytes,
                "bytes_gz": gz_bytes,
                "parquet_bytes": out_bytes,
                "files_written": len(files),
                "selected": selected,
                "workers": args.workers,
                "peak_rss_mb": round(_peak_rss_mb(), 1),
                "peak_rss_worker_mb": round(_peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
                "peak_rss_before_mb": round(rss_before, 1),
                "generate_seconds": round(generate_s, 2),
            }
        ).decode()
    )


if __name__ == "__main__":
    main()
