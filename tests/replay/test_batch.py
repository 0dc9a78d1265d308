"""`transport: batch`: OpenAI Batch and Anthropic Message Batches through the real SDKs against
the fake provider — the same answers and cache as online replay at half the price, resumable
after a kill without paying twice, per-request failures as error rows, within the budget."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe import pipeline
from evalpipe.errors import ProviderError, SpecError
from evalpipe.fake import serving
from evalpipe.fake.batches import MAX_REQUESTS_ENV
from evalpipe.replay.batch import split_batches
from evalpipe.replay.cache import ResponseCache
from evalpipe.replay.engine import replay_records
from evalpipe.spec import Spec, load_spec, spec_from_dict
from evalpipe.store import open_run, read_table
from evalpipe.tables import RECORDS, RESPONSES, from_rows

from .specs import demo_traffic_spec

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"
POLL_S = 0.02
MODELS = ("gpt-4o-mini-2024-07-18", "claude-haiku-4-5")
_ANSWER = ("output_text", "output_tool_calls", "finish_reason", "response_model")
_TOKENS = ("input_tokens", "output_tokens", "cached_input_tokens")


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    """A fake of this module's own (its counts are ours); a batch ends at its second poll."""
    with serving(latency_ms=2.0, jitter=0.0, batch_polls=2) as url:
        yield url


def _records(n: int) -> pa.Table:
    rows = []
    for i in range(n):
        req = {
            "system": "You are a helpful support assistant.",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": f"Where is order #{7000 + i}?"}],
                }
            ],
            "params": {"max_tokens": 300},
        }
        rows.append(
            {
                "record_id": f"r{i:03d}",
                "request": orjson.dumps(req).decode(),
                "provider": "openai",
                "replayable": True,
            }
        )
    return from_rows(rows, RECORDS)


def _spec(
    tmp_path: Path,
    root: str,
    *,
    transport: str = "batch",
    candidates: list[dict[str, Any]] | None = None,
    baseline: dict[str, Any] | None = None,
    **extra: Any,
) -> Spec:
    (tmp_path / "t.jsonl").write_text("{}\n")
    data = {
        "name": "t",
        "traffic": {"path": "t.jsonl"},
        "baseline": {
            "provider": "openai",
            "model": MODELS[0],
            "base_url": f"{root}/v1",
            **(baseline or {}),
        },
        "candidates": candidates
        or [{"name": "cand", "provider": "anthropic", "model": MODELS[1], "base_url": root}],
        "replay": {"transport": transport, "batch_poll_seconds": POLL_S},
        "limits": {"default": {"concurrency": 8, "max_retries": 2}},
        **extra,
    }
    return spec_from_dict(data, spec_dir=tmp_path)


def _batches(root: str) -> dict[str, Any]:
    report: dict[str, Any] = httpx.get(f"{root}/_fake/batches").json()
    return report


def _online_requests(root: str) -> int:
    seen = httpx.get(f"{root}/_fake/traffic").json()
    return sum(seen.get(m, {}).get("requests", 0) for m in MODELS)


def _rows(table: pa.Table) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["arm"], r["record_id"]): r for r in table.to_pylist()}


def test_batch_answers_equal_online_at_half_the_cost(root: str, tmp_path: Path) -> None:
    records = _records(12)
    online = replay_records(records, _spec(tmp_path, root, transport="online"), run_id="on")
    before = _batches(root)
    sent_online = _online_requests(root)
    batched = replay_records(
        records, _spec(tmp_path, root), run_id="batch", responses_dir=tmp_path / "resp"
    )
    after = _batches(root)

    assert batched.schema.equals(RESPONSES) and batched.num_rows == 24
    assert _online_requests(root) == sent_online  # nothing sent online
    assert after["created"]["openai"] == before["created"]["openai"] + 1
    assert after["created"]["anthropic"] == before["created"]["anthropic"] + 1
    for model in MODELS:
        assert after["lines"][model] - before["lines"].get(model, 0) == 12
    # nothing left at the provider once answered: the OpenAI batch's input and output files,
    # the Anthropic batch itself
    assert after["files_stored"] == before["files_stored"]
    assert after["deleted"]["files"] == before["deleted"]["files"] + 2
    assert after["deleted"]["batches"] == before["deleted"]["batches"] + 1
    a, b = _rows(online), _rows(batched)
    assert a.keys() == b.keys()
    for key, on in a.items():
        got = b[key]
        assert got["status"] == on["status"] == "ok"
        assert [got[c] for c in _ANSWER + _TOKENS] == [on[c] for c in _ANSWER + _TOKENS]
        assert got["cost_usd"] == pytest.approx(on["cost_usd"] / 2)
        assert got["cost_usd"] > 0 and got["latency_ms"] is None and on["latency_ms"] > 0
        assert got["attempts"] == 1 and not got["cache_hit"]
    # compacted like online replay's partitions: no journal or batch file left behind
    names = sorted(p.name for p in (tmp_path / "resp").iterdir())
    assert names == ["part-baseline-r0-p00000.parquet", "part-cand-r0-p00000.parquet"]


def test_batch_and_online_share_one_cache_both_ways(root: str, tmp_path: Path) -> None:
    records = _records(8)
    cache = ResponseCache(tmp_path / "cache")
    batched = replay_records(records, _spec(tmp_path, root), run_id="a", cache=cache)
    cache.flush()
    sent_online, before = _online_requests(root), _batches(root)
    online = replay_records(
        records, _spec(tmp_path, root, transport="online"), run_id="b", cache=cache
    )
    assert _online_requests(root) == sent_online  # every answer from the batch's cache entries
    assert all(online["cache_hit"].to_pylist())
    a, b = _rows(batched), _rows(online)
    for key, row in a.items():
        assert [b[key][c] for c in (*_ANSWER, "cost_usd")] == [
            row[c] for c in (*_ANSWER, "cost_usd")
        ]

    # and the other way: answers bought online are not submitted to a batch again
    other = ResponseCache(tmp_path / "cache2")
    fresh = _records(14).slice(8)  # records r008..r013: no cache entries yet
    replay_records(fresh, _spec(tmp_path, root, transport="online"), run_id="c", cache=other)
    other.flush()
    before = _batches(root)
    again = replay_records(fresh, _spec(tmp_path, root), run_id="d", cache=other)
    assert _batches(root)["created"] == before["created"]  # no batch submitted
    assert all(again["cache_hit"].to_pylist())


def test_mixed_arms_batch_one_arm_and_send_only_the_uncached(root: str, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    records = _records(10)
    # the first 4 records are answered (online) and cached on both arms
    replay_records(
        records.slice(0, 4), _spec(tmp_path, root, transport="online"), run_id="a", cache=cache
    )
    cache.flush()
    spec = _spec(
        tmp_path,
        root,
        transport="online",
        candidates=[
            {
                "name": "cand",
                "provider": "anthropic",
                "model": MODELS[1],
                "base_url": root,
                "transport": "batch",
            }
        ],
    )
    sent_online, before = _online_requests(root), _batches(root)
    out = replay_records(records, spec, run_id="b", cache=cache)
    after = _batches(root)
    assert after["created"]["openai"] == before["created"]["openai"]  # the baseline: online
    assert after["created"]["anthropic"] == before["created"]["anthropic"] + 1
    assert after["lines"][MODELS[1]] - before["lines"].get(MODELS[1], 0) == 6  # not the cached 4
    assert _online_requests(root) - sent_online == 6  # the baseline's 6 uncached
    assert set(out["status"].to_pylist()) == {"ok"}
    cand = out.filter(pc.equal(out["arm"], "cand")).sort_by("record_id")
    assert cand["cache_hit"].to_pylist() == [True] * 4 + [False] * 6
    assert cand["latency_ms"].null_count == 6


def test_per_request_failures_in_a_batch_are_error_rows(root: str, tmp_path: Path) -> None:
    candidates = [  # the provider is down: every request fails (503 OpenAI, 529 Anthropic)
        {"name": "down", "provider": "openai", "model": "fake-down", "base_url": f"{root}/v1"},
        {"name": "over", "provider": "anthropic", "model": "fake-down", "base_url": root},
        # a quota that never comes back: the batch ends with its requests expired
        {"name": "quota", "provider": "anthropic", "model": "fake-throttled", "base_url": root},
    ]
    records = _records(6)
    rows = _rows(replay_records(records, _spec(tmp_path, root, candidates=candidates), run_id="e"))
    no_retries = {"default": {"concurrency": 8, "max_retries": 0}}
    online = _rows(
        replay_records(
            records,
            _spec(tmp_path, root, transport="online", candidates=candidates[:2], limits=no_retries),
            run_id="o",
        )
    )
    fields = ("status", "http_status", "error_type", "error_origin")
    for rid in records["record_id"].to_pylist():
        assert rows[("baseline", rid)]["status"] == "ok"
        down, over = rows[("down", rid)], rows[("over", rid)]
        assert [down[f] for f in fields] == ["error", 503, "InternalServerError", "infrastructure"]
        assert [over[f] for f in fields] == ["error", 529, "OverloadedError", "infrastructure"]
        for arm in ("down", "over"):  # the row an online failure makes
            assert [rows[(arm, rid)][f] for f in fields] == [online[(arm, rid)][f] for f in fields]
            assert rows[(arm, rid)]["attempts"] == 1 and not rows[(arm, rid)]["cost_usd"]
            assert rows[(arm, rid)]["error_message"]
        quota = rows[("quota", rid)]
        assert [quota[f] for f in fields] == ["error", None, "BatchExpired", "infrastructure"]
        assert quota["attempts"] == 1


def test_a_request_the_batch_failed_goes_to_its_fallback_online(root: str, tmp_path: Path) -> None:
    fallback = [{"provider": "anthropic", "model": MODELS[1], "base_url": root}]
    candidates = [
        {
            "name": "cand",
            "provider": "openai",
            "model": "fake-down",
            "base_url": f"{root}/v1",
            "fallback": fallback,
        }
    ]
    sent_online = _online_requests(root)
    out = replay_records(_records(5), _spec(tmp_path, root, candidates=candidates), run_id="f")
    cand = out.filter(pc.equal(out["arm"], "cand"))
    assert set(cand["status"].to_pylist()) == {"ok"}
    assert set(cand["fallback_used"].to_pylist()) == {True}
    assert set(cand["response_model"].to_pylist()) == {MODELS[1]}
    assert _online_requests(root) - sent_online == 5  # the fallbacks, online; the rest batched


def test_the_budget_buys_whole_pairs_before_submitting(root: str, tmp_path: Path) -> None:
    before = _batches(root)
    spec = _spec(tmp_path, root, budget_usd=0.002)
    out = replay_records(_records(40), spec, run_id="budget")
    after = _batches(root)
    status = out["status"].to_pylist()
    assert "skipped" in status and "ok" in status
    skipped = out.filter(pc.equal(out["status"], "skipped"))
    assert set(skipped["error_type"].to_pylist()) == {"BudgetExhausted"}
    assert pc.sum(out["cost_usd"]).as_py() <= 0.002
    by_record: dict[str, set[str]] = {}
    for r in out.select(["record_id", "status"]).to_pylist():
        by_record.setdefault(r["record_id"], set()).add(r["status"])
    assert all(len(v) == 1 for v in by_record.values())  # answered on both arms or neither
    answered = status.count("ok") // 2
    for model in MODELS:  # only what was bought went into the batches
        assert after["lines"][model] - before["lines"].get(model, 0) == answered
    # at batch prices the same budget buys about twice the pairs online replay buys
    online = replay_records(
        _records(40), _spec(tmp_path, root, transport="online", budget_usd=0.002), run_id="o"
    )
    assert answered >= 1.6 * (online["status"].to_pylist().count("ok") // 2)


def test_batches_split_at_the_request_and_byte_limits() -> None:
    assert split_batches([10] * 7, 3, 1000) == [(0, 3), (3, 6), (6, 7)]
    assert split_batches([40, 40, 40, 10, 90], 10, 100) == [(0, 2), (2, 4), (4, 5)]
    assert split_batches([500, 10], 10, 100) == [(0, 1), (1, 2)]  # too large: alone
    assert split_batches([], 3, 100) == []
    sizes = [7, 1, 30, 2, 9, 9, 40, 1, 1, 5]
    ranges = split_batches(sizes, 4, 40)
    assert [i for a, b in ranges for i in range(a, b)] == list(range(len(sizes)))  # all, in order
    assert all(b - a <= 4 and sum(sizes[a:b]) <= 40 for a, b in ranges)


def test_more_requests_than_a_batch_takes_go_as_several_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fake fails an OpenAI batch file, and refuses an Anthropic batch, above 5 requests
    monkeypatch.setenv(MAX_REQUESTS_ENV, "5")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with serving(latency_ms=2.0, jitter=0.0, batch_polls=2) as limited:
        records = _records(12)
        with pytest.raises(ProviderError, match=r"at most 5 items.*batch_max_requests"):
            replay_records(records, _spec(tmp_path / "a", limited), run_id="one")  # one batch
        openai_only = _spec(
            tmp_path / "a",
            limited,
            candidates=[
                {
                    "name": "cand",
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "base_url": f"{limited}/v1",
                }
            ],
        )
        too_big = replay_records(records, openai_only, run_id="two")
        assert set(too_big["status"].to_pylist()) == {"error"}  # the file failed validation
        assert set(too_big["error_type"].to_pylist()) == {"BatchFailed"}
        assert "at most 5" in too_big["error_message"][0].as_py()

        spec = _spec(
            tmp_path / "b",
            limited,
            replay={"transport": "batch", "batch_poll_seconds": POLL_S, "batch_max_requests": 5},
        )
        before = _batches(limited)
        split = replay_records(records, spec, run_id="split", responses_dir=tmp_path / "resp")
        after = _batches(limited)
    assert split.num_rows == 24 and set(split["status"].to_pylist()) == {"ok"}
    created = {k: after["created"][k] - before["created"][k] for k in ("openai", "anthropic")}
    assert created == {"openai": 3, "anthropic": 3}  # 5 + 5 + 2 requests per arm
    assert (
        len(set(zip(split["arm"].to_pylist(), split["record_id"].to_pylist(), strict=True))) == 24
    )
    assert not list((tmp_path / "resp").glob("batch-*.json"))


def test_streaming_cannot_be_batched(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="stream"):
        _spec(tmp_path, "http://127.0.0.1:9", replay={"stream": True, "transport": "batch"})


# --- kill -9 while a batch runs, then resume ----------------------------------------------------

_CHILD = """
import sys
from evalpipe import pipeline
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run

run = open_run(load_spec(sys.argv[1]), sys.argv[2])
IN_PROCESS.replay_partitions(run, pipeline.partitions(run))
"""
N = 20


def _traffic_spec(folder: Path, root: str) -> Path:
    return demo_traffic_spec(
        folder,
        root,
        name="batch-kill",
        n=N,
        models=MODELS,
        replay={"transport": "batch", "batch_poll_seconds": 0.05},
    )


def test_a_killed_replay_polls_the_same_batches_and_pays_nothing_twice(tmp_path: Path) -> None:
    with serving(latency_ms=2.0, jitter=0.0, batch_polls=40) as root:
        spec_path = _traffic_spec(tmp_path / "run", root)
        run = open_run(load_spec(spec_path))
        pipeline.ingest_run(run)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(spec_path), run.run_id],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        journaled: list[Path] = []
        while len(journaled) < 2:  # both arms' batches submitted and journaled
            assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.01)
            journaled = sorted(run.dir.rglob("batch-*.json"))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        ids = sorted(
            b["batch_id"] for p in journaled for b in orjson.loads(p.read_bytes())["batches"]
        )
        killed = _batches(root)
        assert sorted(killed["batches"]) == ids
        assert set(killed["batches"].values()) <= {"in_progress", "validating"}  # still running

        # an answer journaled before the kill (as when a kill comes while results are read):
        # the resumed run keeps it and does not emit that request's row twice
        state = next(p for p in journaled if p.name.startswith("batch-baseline"))
        kept = next(iter(orjson.loads(state.read_bytes())["batches"][0]["sent"].values()))[0]
        journal = state.with_name(state.name.replace("batch-", "journal-")).with_suffix(".jsonl")
        row = {"run_id": run.run_id, "record_id": kept, "arm": "baseline", "repeat": 0}
        journal.write_bytes(
            orjson.dumps({**row, "status": "ok", "output_text": "JOURNALED"}) + b"\n"
        )

        from evalpipe.flows.wiring import IN_PROCESS

        resumed = open_run(load_spec(spec_path), run.run_id)
        IN_PROCESS.replay_partitions(resumed, pipeline.partitions(resumed))
        IN_PROCESS.finish_replay(resumed)
        seen = _batches(root)
        assert seen["created"] == {"openai": 1, "anthropic": 1}  # nothing submitted again
        assert seen["uploads"] == 1
        assert sorted(seen["batches"]) == ids
        assert all(seen["polls"][i] >= 40 for i in ids)  # the resumed run polled them to the end
        assert seen["lines"] == {MODELS[0]: N, MODELS[1]: N}  # each request ran once
        assert seen["files_stored"] == 0 and seen["deleted"]["batches"] == 1  # cleaned up
        assert _online_requests(root) == 0
        responses = read_table(resumed.path("responses"))
        replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
        assert replayed.num_rows == 2 * N
        assert set(replayed["status"].to_pylist()) == {"ok"}
        pairs = zip(replayed["arm"].to_pylist(), replayed["record_id"].to_pylist(), strict=True)
        assert len(set(pairs)) == 2 * N  # no row twice
        texts = {
            r["record_id"]: r["output_text"] for r in replayed.to_pylist() if r["arm"] == "baseline"
        }
        assert texts[kept] == "JOURNALED"
        assert not list(resumed.dir.rglob("batch-*.json"))
        assert pc.sum(replayed["cost_usd"]).as_py() > 0
