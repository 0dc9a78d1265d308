"""The budget: reservations never cross the cap; a request waits for spend in flight to settle."""

from __future__ import annotations

import asyncio
import time

from evalpipe.replay.limits import AdaptiveConcurrency, Breaker, Budget, RateLimiter


def test_acquire_within_the_cap_and_refuses_past_it_with_nothing_in_flight() -> None:
    budget = Budget(1.0)
    assert asyncio.run(budget.acquire(0.6))
    budget.settle(0.6, 0.5)  # the answer cost less than reserved
    assert asyncio.run(budget.acquire(0.5))
    budget.settle(0.5, 0.5)
    assert budget.spent == 1.0
    assert not asyncio.run(budget.acquire(0.01))  # nothing in flight: refused at once


def test_acquire_waits_for_a_pessimistic_reservation_to_settle() -> None:
    async def scenario() -> tuple[bool, float]:
        budget = Budget(1.0)
        assert await budget.acquire(0.8)  # in flight, reserved at its worst case

        async def answer() -> None:
            await asyncio.sleep(0.05)
            budget.settle(0.8, 0.2)  # it cost 0.2

        settling = asyncio.create_task(answer())
        fits = await budget.acquire(0.7)  # 0.8 + 0.7 > 1 now; 0.2 + 0.7 fits once settled
        await settling
        return fits, budget.spent

    fits, spent = asyncio.run(scenario())
    assert fits and spent == 0.2


def test_no_limit_always_admits() -> None:
    budget = Budget(None)
    assert all(asyncio.run(budget.acquire(1e6)) for _ in range(3))


def _starts(limiter: RateLimiter, tokens: list[int]) -> list[float]:
    """When each acquire returned (monotonic seconds from the first call)."""

    async def scenario() -> list[float]:
        t0 = time.monotonic()
        out = []
        for n in tokens:
            await limiter.acquire(n)
            out.append(time.monotonic() - t0)
        return out

    return asyncio.run(scenario())


def test_rate_limiter_never_lets_a_window_hold_more_than_rpm_starts() -> None:
    # a 0.4-s period stands in for the minute (the same code; tests/test_pipeline_limits.py
    # checks real minutes at a server)
    starts = _starts(RateLimiter(5, None, period_s=0.4), [1] * 12)
    window = 0.4 + RateLimiter.SLACK_S
    for i, t in enumerate(starts):
        assert sum(1 for s in starts[i:] if s - t < window) <= 5
    assert starts[4] < 0.1  # the first five at once: the window starts empty, not throttled
    assert starts[5] >= window - 0.01


def test_rate_limiter_holds_tpm_over_the_window() -> None:
    limiter = RateLimiter(None, 100, period_s=0.3)
    tokens = [40, 40, 40, 10, 90, 5]
    starts = _starts(limiter, tokens)
    window = 0.3 + RateLimiter.SLACK_S
    for i, t in enumerate(starts):
        in_window = [n for s, n in zip(starts[i:], tokens[i:], strict=True) if s - t < window]
        assert sum(in_window) <= 100
    assert starts[1] < 0.05 and starts[2] >= window - 0.01  # 80 fit, the third 40 waits


def test_rate_limiter_caps_one_request_larger_than_tpm() -> None:
    starts = _starts(RateLimiter(None, 50, period_s=0.2), [500])
    assert starts[0] < 0.05  # alone it would never fit: it counts as the whole window


def test_adaptive_window_halves_once_per_generation_and_grows_by_one_per_window() -> None:
    async def scenario() -> None:
        window = AdaptiveConcurrency(16, 2)
        assert window.limit == 16
        starts = [await window.acquire() for _ in range(16)]
        for started in starts[:8]:  # eight 429s of one generation cut once
            window.release(started, "congested")
        assert window.limit == 8
        for started in starts[8:]:
            window.release(started, "ok")
        assert window.limit == 9  # 8 successes: one window, +1 (after a cut, no more doubling)
        for _ in range(5):  # later generations cut again, down to the floor
            window.release(await window.acquire(), "congested")
        assert window.limit == 2 == window.low

    asyncio.run(scenario())


def test_adaptive_window_starts_below_a_high_ceiling_and_doubles_up_to_it() -> None:
    async def scenario() -> None:
        window = AdaptiveConcurrency(256)
        assert window.limit == AdaptiveConcurrency.INITIAL
        while window.limit < 256:
            starts = [await window.acquire() for _ in range(int(window.limit))]
            for started in starts:
                window.release(started, "ok")
        assert window.limit == 256 and window.max_in_flight == 128
        fixed = AdaptiveConcurrency(256, adaptive=False)
        fixed.release(await fixed.acquire(), "congested")
        assert fixed.limit == 256

    asyncio.run(scenario())


def test_a_waiter_cancelled_after_its_grant_gives_the_place_on() -> None:
    async def scenario() -> None:
        window = AdaptiveConcurrency(1)
        first = await window.acquire()
        second = asyncio.create_task(window.acquire())
        third = asyncio.create_task(window.acquire())
        await asyncio.sleep(0)
        window.release(first, "ok")  # granted to second
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        await asyncio.wait_for(third, 1)
        assert window.in_flight == 1

    asyncio.run(scenario())


def test_breaker_opens_after_consecutive_failures_probes_and_closes_or_gives_up() -> None:
    async def scenario() -> None:
        breaker = Breaker(pause_s=0.001)
        for _ in range(Breaker.CONSECUTIVE - 1):
            breaker.record("failed", probe=False)
        breaker.record("ok", probe=False)
        assert breaker.state == "closed"  # a success breaks the run of failures
        for _ in range(Breaker.CONSECUTIVE):
            breaker.record("congested", probe=False, detail="429 RateLimitError")
        assert breaker.state == "open" and breaker.opened == 1
        assert await breaker.admit() is True  # the probe, after the pause
        breaker.record("ok", probe=True)
        assert breaker.state == "closed" and await breaker.admit() is False
        for _ in range(Breaker.CONSECUTIVE):
            breaker.record("failed", probe=False, detail="503")
        for _ in range(Breaker.PROBES):
            assert await breaker.admit() is True
            breaker.record("failed", probe=True, detail="503")
        assert breaker.state == "down" and await breaker.admit() is None
        assert "5 probes" in breaker.reason

    asyncio.run(scenario())


def test_breaker_opens_when_more_than_half_of_the_last_hundred_fail() -> None:
    breaker = Breaker()
    for i in range(Breaker.WINDOW):
        breaker.record("failed" if i % 2 else "ok", probe=False)
    assert breaker.state == "closed"  # exactly half
    breaker.record("failed", probe=False)
    breaker.record("failed", probe=False)
    assert breaker.state == "open"


def test_adaptive_window_learns_load_independent_429s_and_cuts_on_those_the_load_causes() -> None:
    async def epoch(window: AdaptiveConcurrency, answers: int, throttled: int) -> None:
        for i in range(answers):  # one at a time: each answer from a request of the new window
            window.release(await window.acquire(), "throttled" if i < throttled else "ok")

    async def scenario() -> None:
        sparse = AdaptiveConcurrency(16)
        await epoch(sparse, 1, 1)  # the first 429: nothing learned yet, it cuts
        assert sparse.limit == 8
        await epoch(sparse, 32, 3)  # 10% at half the window: halve again and measure
        assert sparse.limit == 4
        await epoch(sparse, 32, 4)  # no lower: not the window's doing; the cut is undone
        assert sparse.limit == 9 and 0.08 < sparse.background < 0.13  # (undone, then +1)
        for _ in range(10):  # 10% keeps coming: the window grows back, no cut
            await epoch(sparse, 32, 3)
        assert sparse.limit == 16 and sparse.low == 4

        pressure = AdaptiveConcurrency(16)
        await epoch(pressure, 1, 1)
        await epoch(pressure, 32, 0)  # no 429 at the smaller window: the cut was right
        assert pressure.limit == 9 and pressure.background == 0
        await epoch(pressure, 1, 1)  # so the next 429 cuts at once
        assert pressure.limit == 4.5

    asyncio.run(scenario())
