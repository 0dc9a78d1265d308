"""`replay.stream: true` streams through both SDKs and records the time to first token."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.flows import run_in_process
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run, read_table

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    with serving(latency_ms=60.0, jitter=0.0) as url:
        yield url


def _run(tmp_path: Path, root: str, *, stream: bool, model: str) -> Run:
    folder = tmp_path / ("streamed" if stream else "whole")
    folder.mkdir()
    shutil.copy(DEMO / "traffic.jsonl.gz", folder)
    spec = {
        "name": "stream",
        "store": str(folder / "store"),
        "traffic": {"path": "traffic.jsonl.gz", "sample": {"n": 30}},
        "baseline": {
            "provider": "openai",
            "model": model,
            "base_url": f"{root}/v1",
            "compare_logged": False,
        },
        "candidates": [
            {
                "name": "haiku",
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": root,
            }
        ],
        "replay": {"stream": stream},
        "checks": [{"name": "no_refusal", "type": "not_refusal"}],
        "gate": {"min_n": 5, "ttft_p95_ratio_max": 1.5},
        "report": {"out": str(folder / "reports")},
    }
    (folder / "eval.yaml").write_text(yaml.safe_dump(spec))
    run = open_run(load_spec(folder / "eval.yaml"), None)
    pipeline.ingest_run(run)
    run_in_process(run)
    return run


def test_streamed_replay_records_ttft_gates_it_and_gives_the_same_answers(
    root: str, tmp_path: Path
) -> None:
    run = _run(tmp_path, root, stream=True, model="gpt-4o-mini")
    streamed = read_table(run.path("responses"))
    gate = read_table(run.path("gate.parquet")).to_pylist()
    ttft = [r for r in gate if r["metric"] == "ttft_p95" and r["slice_col"] is None]
    assert len(ttft) == 1 and ttft[0]["gated"] and ttft[0]["kind"] == "ratio"
    assert ttft[0]["estimate"] > 0
    whole = read_table(
        _run(tmp_path, root, stream=False, model="gpt-4o-mini-2024-07-18").path("responses")
    )
    for arm in ("baseline", "haiku"):
        s = streamed.filter(pc.equal(streamed["arm"], arm)).sort_by("record_id").to_pylist()
        w = whole.filter(pc.equal(whole["arm"], arm)).sort_by("record_id").to_pylist()
        assert len(s) == len(w) == 30
        for a, b in zip(s, w, strict=True):
            assert a["status"] == b["status"] == "ok"
            assert a["output_text"] == b["output_text"]
            assert a["output_tool_calls"] == b["output_tool_calls"]
            assert a["finish_reason"] == b["finish_reason"]
            assert (a["input_tokens"], a["output_tokens"]) == (
                b["input_tokens"],
                b["output_tokens"],
            )
            assert 0 < a["ttft_ms"] < a["latency_ms"]
            assert b["ttft_ms"] is None
    seen = httpx.get(f"{root}/_fake/traffic").json()
    assert seen["gpt-4o-mini"]["requests"] == 30  # one streamed attempt each


def test_requests_production_streamed_are_replayed_streamed(root: str, tmp_path: Path) -> None:
    import orjson

    lines = []
    for i in range(6):
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Where is my order {i}?"}],
            **({"stream": True, "stream_options": {"include_usage": True}} if i % 2 else {}),
        }
        answer = {
            "id": f"c{i}",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "It ships today."},
                    "finish_reason": "stop",
                }
            ],
        }
        lines.append(orjson.dumps({"request": body, "response": answer}).decode())
    (tmp_path / "logs.jsonl").write_text("\n".join(lines) + "\n")
    spec = {
        "name": "logged-stream",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "logs.jsonl"},
        "baseline": {"provider": "openai", "model": "gpt-4o-mini", "base_url": f"{root}/v1"},
        "candidates": [
            {
                "name": "haiku",
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": root,
            }
        ],
        "gate": {"min_n": 2},
        "report": {"out": str(tmp_path / "reports")},
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    run = open_run(load_spec(tmp_path / "eval.yaml"), None)
    pipeline.ingest_run(run)
    run_in_process(run)
    rows = read_table(run.path("responses")).to_pylist()
    replayed = [r for r in rows if r["arm"] in ("baseline", "haiku")]
    assert len(replayed) == 12 and all(r["status"] == "ok" for r in replayed)
    for r in replayed:
        streamed = int(r["record_id"][-1]) % 2 == 1 if r["record_id"][-1].isdigit() else None
        assert streamed is not None, r["record_id"]
        assert (r["ttft_ms"] is not None) == streamed, (r["arm"], r["record_id"])
