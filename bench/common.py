"""What the replay benches share: the demo's logged records, the bare SDK loop they are measured
against, and the server's own count of requests in flight."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

DEMO = Path(__file__).resolve().parents[1] / "eval_sets" / "demo"
MODEL = "gpt-4o-mini-2024-07-18"


def compile_package() -> None:
    """Compile evalpipe's bytecode, as `pip install` does: a timed command then loads it rather
    than compiling ~100 modules from source. (Under `PYTHONDONTWRITEBYTECODE=1` nothing else
    writes it: an editable checkout would compile on every start, ~0.25 s of CPU, which no
    installed copy pays.)"""
    import compileall

    package = Path(__file__).resolve().parents[1] / "evalpipe"
    compileall.compile_dir(str(package), quiet=1)


def demo_records(n: int) -> list[dict[str, Any]]:
    """n logged records: the demo's (without its one malformed line), repeated with fresh ids
    and a numbered user turn when n is larger than the demo."""
    return list(iter_demo_records(n))


def demo_base() -> list[dict[str, Any]]:
    """The demo's logged records (without its one malformed line): record i of
    `iter_demo_records` is a copy of record i % len(demo_base())."""
    base = []
    for line in gzip.decompress((DEMO / "traffic.jsonl.gz").read_bytes()).splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        base += [record] if "request" in record else []
    return base


def iter_demo_records(n: int) -> Iterator[dict[str, Any]]:
    """`demo_records(n)` one at a time (a million of them need not be held at once)."""
    base = demo_base()
    for i in range(n):
        record = orjson.loads(orjson.dumps(base[i % len(base)]))
        if i >= len(base):
            record["request"]["messages"][-1]["content"] += f" (#{i})"
            record["response"]["id"] = f"chatcmpl-bench-{i}"
        yield record


def arm_bodies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The chat completions two arms of MODEL send: as logged, and at temperature 0.7."""
    return [
        {**r["request"], "model": MODEL, "temperature": t}
        for r in records
        for t in (r["request"].get("temperature"), 0.7)
    ]


async def bare_loop(root: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """Seconds a bare AsyncOpenAI loop takes to send `bodies` under one semaphore."""
    import openai

    client = openai.AsyncOpenAI(
        base_url=f"{root}/v1",
        api_key="bench",
        http_client=openai.DefaultAsyncHttpxClient(
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        ),
    )
    sem = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with sem:
            await client.chat.completions.create(**body)

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    seconds = time.perf_counter() - started
    await client.close()
    return seconds


def max_in_flight(root: str, model: str = MODEL) -> int:
    """The most requests to `model` the fake provider had in flight at once."""
    seen = httpx.get(f"{root}/_fake/traffic").json()
    return int(seen.get(model, {}).get("max_in_flight", 0))


def two_arm_spec(
    folder: Path,
    root: str,
    records: list[dict[str, Any]],
    *,
    name: str,
    limit: dict[str, Any],
    model: str = MODEL,
    **extra: Any,
) -> Path:
    """Write `records` as traffic.jsonl and an eval.yaml replaying them on two arms of `model`
    (as logged, and at temperature 0.7: a prompt-only change, so both share the model's limit)
    at the server `root`; `extra` adds top-level keys. Returns the spec's path."""
    (folder / "traffic.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n")
    arm = {"provider": "openai", "model": model, "base_url": f"{root}/v1"}
    spec = {
        "name": name,
        "traffic": {"path": "traffic.jsonl"},
        "baseline": {"name": "prod", **arm, "compare_logged": False},
        "candidates": [{"name": "warmer", **arm, "params": {"temperature": 0.7}}],
        "limits": {"default": limit},
        "store": str(folder / "store"),
        **extra,
    }
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
