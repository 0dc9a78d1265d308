"""`limits.shared`: a nightly and a CI gate replaying against one model share its rpm through a
Prefect rate limit (each with only its own window would send twice as much)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.fake import serving
from evalpipe.flows.shared_limits import bucket
from evalpipe.replay.engine import replay_records
from evalpipe.spec import spec_from_dict
from evalpipe.tables import RECORDS, from_rows

RPM = 600
"""Shared bucket: 60 slots, 9 freed a second (see `shared_limits.bucket`)."""
PER_RUN = 60
TOLERANCE = 3
"""Starts beyond the bucket's bound a window may show: the decay's rounding to whole slots on
the Prefect server, and the few ms between a slot's grant and the request's arrival."""


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    with serving(latency_ms=20.0, jitter=0.0) as url:
        yield url


def _records(n: int, tag: str) -> pa.Table:
    rows = [
        {
            "record_id": f"r{i:04d}",
            "request": orjson.dumps(
                {
                    "messages": [
                        {"role": "user", "content": [{"type": "text", "text": f"{tag} {i}"}]}
                    ],
                    "params": {"max_tokens": 20},
                }
            ).decode(),
            "provider": "openai",
            "replayable": True,
        }
        for i in range(n)
    ]
    return from_rows(rows, RECORDS)


def _run(
    root: str, tmp_path: Path, name: str, model: str, limit: dict[str, Any], n: int = PER_RUN
) -> pa.Table:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.jsonl").write_text("{}\n")
    spec = spec_from_dict(
        {
            "name": name,
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "gpt-4o-mini", "base_url": f"{root}/v1"},
            "candidates": [
                {"name": "cand", "provider": "openai", "model": model, "base_url": f"{root}/v1"}
            ],
            "limits": {model: limit},
        },
        spec_dir=folder,
    )
    run_id = f"{name}-{model}-{tmp_path.name}"
    rows = replay_records(_records(n, run_id), spec, run_id=run_id)
    return rows.filter(pc.equal(rows["arm"], "cand"))


def _together(root: str, tmp_path: Path, model: str, limit: dict[str, Any]) -> list[float]:
    """A nightly and a gate replaying `model` at once (two threads); the server's arrivals."""
    out: dict[str, pa.Table] = {}
    errors: list[BaseException] = []

    def go(name: str) -> None:
        try:
            out[name] = _run(root, tmp_path, name, model, limit)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(n,)) for n in ("nightly", "gate")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for rows in out.values():
        assert rows.num_rows == PER_RUN
        assert pc.all(pc.equal(rows["status"], "ok")).as_py()
    arrivals: list[float] = httpx.get(f"{root}/_fake/traffic").json()[model]["arrivals_s"]
    assert len(arrivals) == 2 * PER_RUN
    return sorted(arrivals)


def _most_in(arrivals: list[float], seconds: float) -> int:
    """Most arrivals in any window of `seconds`."""
    return max(sum(1 for t in arrivals if s <= t < s + seconds) for s in arrivals)


def _bound(seconds: float) -> float:
    b = bucket("rpm", RPM, provider="openai", host="h", model="m")
    return b.limit + b.decay * seconds + TOLERANCE


def test_a_nightly_and_a_gate_share_one_rpm_through_prefect(
    prefect_harness: None, root: str, tmp_path: Path
) -> None:
    arrivals = _together(root, tmp_path, "fake-good", {"rpm": RPM, "shared": True})
    # the bucket's bound in every window: 120 starts need (120 − 60) / 9 ≈ 6.7 s
    for seconds in (1.0, 2.0, 4.0):
        assert _most_in(arrivals, seconds) <= _bound(seconds)
    assert arrivals[-1] - arrivals[0] >= (2 * PER_RUN - _bound(0)) / 9

    # without sharing, each run keeps only its own window (60 of 600 a minute): both at once
    alone = _together(root, tmp_path, "fake-collapse", {"rpm": RPM})
    assert _most_in(alone, 1.0) > _bound(1.0)

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        names = [
            gcl.name
            for gcl in client.read_global_concurrency_limits(limit=200)
            if gcl.name.startswith("evalpipe-rpm-openai-fake-good-")
        ]
        assert len(names) == 1
        gcl = client.read_global_concurrency_limit_by_name(names[0])
    assert (gcl.limit, gcl.slot_decay_per_second) == (60, 9.0)
    assert not any("collapse" in n for n in names)


def test_shared_without_a_prefect_api_warns_and_keeps_the_run_s_own_window(
    root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: None}), caplog.at_level(logging.WARNING):
        rows = _run(root, tmp_path, "nightly", "fake-baseline", {"rpm": 30, "shared": True}, n=10)
    assert pc.all(pc.equal(rows["status"], "ok")).as_py()
    warned = [r for r in caplog.records if "limits.shared" in r.getMessage()]
    assert len(warned) == 1
    assert "no Prefect API" in warned[0].getMessage()
    assert httpx.get(f"{root}/_fake/traffic").json()["fake-baseline"]["requests"] == 10


def test_buckets_keep_a_minute_within_the_limit_and_names_suit_prefect() -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    b = bucket("tpm", 200_000, provider="openai", host="api.example.com", model="org/m:1")
    # capacity + a minute's refill is the limit itself
    assert (b.limit, b.limit + b.decay * 60) == (20_000, 200_000)
    GlobalConcurrencyLimitCreate(name=b.name, limit=b.limit, slot_decay_per_second=b.decay)
    assert b.name.startswith("evalpipe-tpm-openai-org-m-1-")
    other = bucket("tpm", 200_000, provider="openai", host="other.example.com", model="org/m:1")
    assert other.name != b.name
