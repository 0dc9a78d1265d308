"""Replay under real provider behaviour, through the real SDKs against the fake's misbehaving
models: 429 with Retry-After, overload, a provider that stays down, hangs, resets, a fault mix.
Every request ends as exactly one row, and the attempts the rows count are the server's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.fake import serving
from evalpipe.replay.engine import replay_records
from evalpipe.replay.limits import run_endpoints
from evalpipe.spec import spec_from_dict
from evalpipe.tables import RECORDS, from_rows


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    with serving(latency_ms=40.0, jitter=0.0) as url:
        yield url


def _records(n: int, tag: str) -> pa.Table:
    rows = []
    for i in range(n):
        request = {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": f"{tag}: order {i}?"}]}
            ],
            "params": {"max_tokens": 50},
        }
        rows.append(
            {
                "record_id": f"r{i:04d}",
                "request": orjson.dumps(request).decode(),
                "provider": "openai",
                "replayable": True,
            }
        )
    return from_rows(rows, RECORDS)


def _replay(
    root: str, tmp_path: Path, model: str, n: int, limits: dict[str, Any], provider: str = "openai"
) -> tuple[pa.Table, dict[str, Any]]:
    """Replay n records on a gpt-4o-mini baseline and `model`; the candidate's rows and the
    endpoint's run facts."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "t.jsonl").write_text("{}\n")
    run_id = f"{model}-{tmp_path.name}"
    spec = spec_from_dict(
        {
            "name": "resilience",
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "gpt-4o-mini", "base_url": f"{root}/v1"},
            "candidates": [
                {
                    "name": "cand",
                    "provider": provider,
                    "model": model,
                    "base_url": root if provider == "anthropic" else f"{root}/v1",
                }
            ],
            "limits": {"default": limits},
        },
        spec_dir=tmp_path,
    )
    out = replay_records(_records(n, run_id), spec, run_id=run_id)
    assert out.num_rows == 2 * n  # every request ends as exactly one row
    for arm in ("baseline", "cand"):
        ids = out.filter(pc.equal(out["arm"], arm))["record_id"]
        assert pc.count_distinct(ids).as_py() == n
    return out.filter(pc.equal(out["arm"], "cand")), run_endpoints(run_id)[f"{provider}/{model}"]


def _server(root: str, model: str) -> dict[str, Any]:
    traffic: dict[str, Any] = httpx.get(f"{root}/_fake/traffic").json()[model]
    return traffic


def circuit_attempts(rows: pa.Table) -> list[int]:
    return rows.filter(pc.equal(rows["error_type"], "CircuitOpen"))["attempts"].to_pylist()


def _attempts(rows: pa.Table) -> int:
    return int(pc.sum(rows["attempts"]).as_py())


def test_429s_are_retried_after_retry_after_and_adaptive_concurrency_cuts_them(
    root: str, tmp_path: Path
) -> None:
    limits = {"concurrency": 16, "max_retries": 8}
    adaptive, facts = _replay(root, tmp_path / "a", "fake-ratelimited-4-a", 40, limits)
    fixed, _ = _replay(
        root,
        tmp_path / "f",
        "fake-ratelimited-4-f",
        40,
        {**limits, "adaptive": False, "max_retries": 2},
    )
    assert adaptive["status"].to_pylist() == ["ok"] * 40
    for rows, model in ((adaptive, "fake-ratelimited-4-a"), (fixed, "fake-ratelimited-4-f")):
        server = _server(root, model)
        assert _attempts(rows) == server["requests"]  # each attempt the server saw is counted
        assert server["statuses"]["200"] == pc.sum(pc.equal(rows["status"], "ok")).as_py()
    assert facts["throttled"] == _server(root, "fake-ratelimited-4-a")["statuses"]["429"]
    assert facts["concurrency_low"] <= 4
    assert facts["throttled"] < _server(root, "fake-ratelimited-4-f")["statuses"]["429"]


def test_sparse_random_429s_are_waited_out_without_collapsing_the_window(
    root: str, tmp_path: Path
) -> None:
    # 10% of attempts answered 429 whatever the load: cutting on each (or once per round trip)
    # took the window to its floor; the window learns them as background instead
    rows, facts = _replay(root, tmp_path, "fake-sporadic", 300, {"concurrency": 16})
    server = _server(root, "fake-sporadic")
    assert rows["status"].to_pylist() == ["ok"] * 300  # each 429 waited out and retried
    assert facts["throttled"] == server["statuses"]["429"] > 10
    assert 0.03 <= facts["background_429_share"] <= 0.25
    assert facts["concurrency_low"] >= 4
    assert facts["concurrency_now"] >= 8


def test_anthropic_529_overload_is_retried_and_adapted_to(root: str, tmp_path: Path) -> None:
    rows, facts = _replay(
        root, tmp_path, "fake-overloaded-3", 40, {"concurrency": 12}, provider="anthropic"
    )
    assert rows["status"].to_pylist() == ["ok"] * 40
    assert facts["overloaded"] == _server(root, "fake-overloaded-3")["statuses"]["529"] > 0
    assert facts["concurrency_low"] <= 6


@pytest.mark.parametrize(("model", "error"), [("fake-down", 503), ("fake-throttled", 429)])
def test_a_provider_that_stays_down_opens_the_breaker_and_ends_the_arm(
    root: str, tmp_path: Path, model: str, error: int
) -> None:
    limits = {"concurrency": 4, "max_retries": 2, "breaker_pause_s": 0.02}
    rows, facts = _replay(root, tmp_path, model, 80, limits)
    assert set(rows["status"].to_pylist()) == {"error"}
    types = rows["error_type"].to_pylist()
    assert types.count("CircuitOpen") > 40  # never sent once the provider was found down
    sent = [r for r in rows.to_pylist() if r["error_type"] != "CircuitOpen"]
    assert {r["http_status"] for r in sent} == {error}
    assert all(r["attempts"] > 0 for r in sent) and set(circuit_attempts(rows)) == {0}
    assert _attempts(rows) == _server(root, model)["requests"]
    assert facts["breaker"] == "down"
    assert facts["breaker_opened"] == 1
    assert "probes" in facts["breaker_reason"]
    circuit = rows.filter(pc.equal(rows["error_type"], "CircuitOpen"))
    assert circuit["error_origin"].to_pylist()[0] == "infrastructure"
    assert "probes" in circuit["error_message"].to_pylist()[0]


@pytest.mark.parametrize("model", ["fake-hang", "fake-reset"])
def test_hangs_past_the_timeout_and_resets_are_retried(
    root: str, tmp_path: Path, model: str
) -> None:
    rows, facts = _replay(
        root, tmp_path, model, 30, {"timeout_s": 1.5, "concurrency": 30, "max_retries": 6}
    )
    assert rows["status"].to_pylist() == ["ok"] * 30
    attempts = rows["attempts"].to_pylist()
    # every hang or reset was retried and answered; a slow machine may time out a retry too
    assert 1 in attempts and 2 in attempts
    assert sum(a - 1 for a in attempts) == facts["failed_attempts"]
    assert _attempts(rows) == _server(root, model)["requests"]


def test_a_fault_mix_ends_every_request_as_one_row_counted_by_the_server(
    root: str, tmp_path: Path
) -> None:
    rows, facts = _replay(
        # (a timeout of 1.5 s: a hang is never answered, and a loaded machine's server may take
        # more than 0.5 s to even read a request, which it would then not count)
        root,
        tmp_path,
        "fake-faulty",
        150,
        {"timeout_s": 1.5, "concurrency": 32, "max_retries": 6},
    )
    server = _server(root, "fake-faulty")
    assert _attempts(rows) == server["requests"] == facts["attempts"]
    assert facts["retries"] == server["requests"] - 150
    assert {"200", "429", "500"} <= set(server["statuses"])
    ok = rows.filter(pc.equal(rows["status"], "ok"))
    assert ok.num_rows >= 148
    assert facts["bound_by"] == "concurrency" and facts["achieved_rps"] > 0
