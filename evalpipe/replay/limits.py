"""Concurrency, request/token rate limits and the spend budget of replay and judges."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Final

__all__ = ["Budget", "EndpointLimits", "RateLimiter", "endpoint_limits"]


class RateLimiter:
    """Requests/minute and tokens/minute as sliding windows (either may be None = unlimited).

    Any `period` (60 s) holds at most `rpm` starts and `tpm` estimated tokens: a start waits
    until the oldest start of the window leaves it. (A token bucket that starts full and refills
    meanwhile lets almost 2 × rpm start in the first minute.) The window is kept a little longer
    than the period, so that a server counting arrivals sees the same bound despite network jitter.
    """

    SLACK_S: Final = 0.25
    """Extra seconds each start stays in the window."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        *,
        period_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rpm, self._tpm = rpm, tpm
        self._period = period_s + self.SLACK_S
        self._clock = clock
        self._starts: deque[tuple[float, int]] = deque()  # (when, tokens) inside the window
        self._tokens = 0
        self._lock = asyncio.Lock()

    @property
    def unlimited(self) -> bool:
        return not self._rpm and not self._tpm

    def _expire(self, now: float) -> None:
        while self._starts and self._starts[0][0] <= now - self._period:
            self._tokens -= self._starts.popleft()[1]

    def _wait_s(self, now: float, tokens: int) -> float:
        """Seconds until a start of `tokens` fits the window (0: it fits now)."""
        count, used, wait = len(self._starts), self._tokens, 0.0
        for when, spent in self._starts:
            fits_rpm = not self._rpm or count < self._rpm
            fits_tpm = not self._tpm or used + tokens <= self._tpm
            if fits_rpm and fits_tpm:
                break
            count, used = count - 1, used - spent
            wait = when + self._period - now
        return max(wait, 0.0)

    async def acquire(self, tokens: int) -> None:
        """Wait until one more start of `tokens` (capped at tpm) fits the window, and record it."""
        if self.unlimited:
            return
        tokens = min(max(int(tokens), 0), self._tpm or 0)
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                self._expire(now)
                wait = self._wait_s(now, tokens)
                if wait <= 0:
                    self._starts.append((now, tokens))
                    self._tokens += tokens
                    return
                await asyncio.sleep(wait)


class EndpointLimits:
    """What one provider + base URL + model allows a run: requests in flight and their rate; and
    whether anything answers there, decided once by the run's first request."""

    def __init__(self, concurrency: int | None, rpm: int | None, tpm: int | None) -> None:
        self.concurrency = asyncio.Semaphore(concurrency or 32)
        self.rate = RateLimiter(rpm, tpm)
        self._contacted = False
        self._contact_lock = asyncio.Lock()

    async def first_contact(self, check: Callable[[], Awaitable[None]]) -> None:
        """Run `check` before the first request to the endpoint (once; again if it raised)."""
        if self._contacted:
            return
        async with self._contact_lock:
            if not self._contacted:
                await check()
                self._contacted = True


_MAX_RUNS: Final = 8
_registry: OrderedDict[tuple[Hashable, ...], dict[tuple[Hashable, ...], EndpointLimits]] = (
    OrderedDict()
)
_registry_lock = threading.Lock()


def endpoint_limits(
    run_key: str,
    *,
    provider: str,
    host: str,
    model: str,
    concurrency: int | None,
    rpm: int | None,
    tpm: int | None,
) -> EndpointLimits:
    """The run's one set of limiters for an endpoint, shared by every partition and judge.

    Call from the event loop the requests run on (`loop.run_async`'s): the limiters belong to
    it. Only the last few runs of a process keep theirs.
    """
    run = (run_key, id(asyncio.get_running_loop()))
    key = (provider, host, model, concurrency, rpm, tpm)
    with _registry_lock:
        endpoints = _registry.get(run)
        if endpoints is None:
            endpoints = _registry[run] = {}
            while len(_registry) > _MAX_RUNS:
                _registry.popitem(last=False)
        limits = endpoints.get(key)
        if limits is None:
            limits = endpoints[key] = EndpointLimits(concurrency, rpm, tpm)
        return limits


class Budget:
    """Spend reserved before a request is sent, so concurrency cannot overshoot the cap."""

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0) -> None:
        self.limit = limit_usd
        self.spent = spent_usd
        self._reserved = 0.0
        # partitions replaying in threads (Prefect's default task runner) share one budget
        self._lock = threading.Lock()

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent + self._reserved >= self.limit

    async def acquire(self, usd: float) -> bool:
        """Reserve `usd`, waiting while requests in flight may still give some of theirs back.

        Reservations are pessimistic (output at max_tokens), so a request that does not fit now
        often fits once those in flight are settled at their real cost. False only when it does
        not fit with nothing in flight. Polls, because partitions replaying in other threads
        settle on other event loops.
        """
        pause = 0.002
        while True:
            with self._lock:
                if self.limit is None or self.spent + self._reserved + usd <= self.limit:
                    self._reserved += usd
                    return True
                if self._reserved <= 1e-12:
                    return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    def settle(self, reserved: float, actual: float) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            self.spent += actual
