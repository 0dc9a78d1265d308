"""Concurrency, request/token rate limits and the spend budget of replay and judges."""

from __future__ import annotations

import asyncio
import threading
import time

__all__ = ["Budget", "RateLimiter"]


class RateLimiter:
    """Token buckets for requests/minute and tokens/minute (either may be None = unlimited)."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self._rpm, self._tpm = rpm, tpm
        self._req = float(rpm or 0)
        self._tok = float(tpm or 0)
        self._t = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if not self._rpm and not self._tpm:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                dt, self._t = now - self._t, now
                if self._rpm:
                    self._req = min(float(self._rpm), self._req + dt * self._rpm / 60)
                if self._tpm:
                    self._tok = min(float(self._tpm), self._tok + dt * self._tpm / 60)
                need_tok = min(tokens, self._tpm or 0)
                if (not self._rpm or self._req >= 1) and (not self._tpm or self._tok >= need_tok):
                    if self._rpm:
                        self._req -= 1
                    if self._tpm:
                        self._tok -= need_tok
                    return
                waits = []
                if self._rpm and self._req < 1:
                    waits.append((1 - self._req) * 60 / self._rpm)
                if self._tpm and self._tok < need_tok:
                    waits.append((need_tok - self._tok) * 60 / self._tpm)
                await asyncio.sleep(max(waits))


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
