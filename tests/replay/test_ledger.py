"""The run's ledger: rpm counted across processes (each with a limiter of its own would let N ×
rpm through), and reservations a crashed attempt left dropped before the next one."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from evalpipe.replay.ledger import LedgerBudget, SharedRateLimiter, clear_reservations

RPM = 4
PERIOD_S = 1.0  # a "minute" of one second, so the test takes a few


def _starts(ledger: str, n: int, out: multiprocessing.Queue[list[float]]) -> None:
    limiter = SharedRateLimiter(Path(ledger), "openai m", RPM, None, period_s=PERIOD_S)

    async def go() -> list[float]:
        seen = []
        for _ in range(n):
            await limiter.acquire(10)
            seen.append(time.time())
        return seen

    out.put(asyncio.run(go()))


def test_three_processes_share_one_rpm_window(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[float]] = ctx.Queue()
    procs = [
        ctx.Process(target=_starts, args=(str(tmp_path / "l.sqlite"), 4, out)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    starts = sorted(t for _ in procs for t in out.get(timeout=60))
    for p in procs:
        p.join(timeout=10)
    assert len(starts) == 12
    # no window of PERIOD_S holds more than RPM starts (12 starts at 4 per second: ≥ 2 s)
    most = max(sum(1 for t in starts if s <= t < s + PERIOD_S) for s in starts)
    assert most == RPM
    assert starts[-1] - starts[0] >= 2 * PERIOD_S


async def test_a_reservation_left_by_a_crash_is_dropped_before_the_next_attempt(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    crashed = LedgerBudget(path, 1.0)
    assert await crashed.acquire(0.9)  # never settled: its process died
    crashed.close()

    clear_reservations(path, 0.0)
    budget = LedgerBudget(path, 1.0)
    assert await budget.acquire(0.5)
    budget.settle(0.5, 0.4)
    assert budget.spent == pytest.approx(0.4)
    assert not await budget.acquire(0.7)  # 0.4 spent + 0.7 > 1.0, nothing in flight
    assert await budget.acquire(0.6)
