"""The budget: reservations never cross the cap; a request waits for spend in flight to settle."""

from __future__ import annotations

import asyncio

from evalpipe.replay.limits import Budget


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
