"""Concurrency, request/token rate limits and the spend budget of replay and judges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

__all__ = [
    "AdaptiveConcurrency",
    "Breaker",
    "Budget",
    "EndpointLimits",
    "EndpointStats",
    "RateLimiter",
    "close_clients",
    "endpoint_limits",
    "run_endpoints",
    "share_limits",
]


log = logging.getLogger(__name__)


class Rate(Protocol):
    """Requests/minute and tokens/minute of an endpoint: `RateLimiter` in one process, or
    `ledger.SharedRateLimiter` across the processes replaying a run."""

    @property
    def unlimited(self) -> bool: ...

    async def acquire(self, tokens: int) -> None: ...


class RateLimiter:
    """Requests/minute and tokens/minute as sliding windows (either may be None = unlimited).

    Any `period` (60 s) holds at most `rpm` starts and `tpm` estimated tokens: a start waits
    until the oldest start of the window leaves it. (A token bucket that starts full and refills
    meanwhile lets almost 2 × rpm start in the first minute.) The window is kept a little longer
    than the period, so that a server counting arrivals sees the same bound despite network jitter.
    """

    SLACK_S: Final = 1.0
    """Extra seconds each start stays in the window: the most a request may lag between its
    admission here and its arrival at the server (seen: 0.25 s let 606 of rpm 600 arrive within
    60 s on a loaded 2-core machine). Costs an rpm-bound run 1/61 of its rate."""

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
        self.shared: Callable[[int], Awaitable[None]] | None = None
        """Also waits for this (the flows' shared limits, `limits.shared`) once the window has
        room; the start is recorded when both admitted it."""

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
                    if self.shared is not None:
                        # holding the lock, nothing enters the window meanwhile: it still fits
                        await self.shared(tokens)
                        now = self._clock()
                    self._starts.append((now, tokens))
                    self._tokens += tokens
                    return
                await asyncio.sleep(wait)


Signal = Literal["ok", "throttled", "congested", "failed", "neutral"]
"""What one attempt says about the provider: answered; 429 (a rate limit: the request waits out
what the server asked for; the window shrinks only when the 429s are the window's doing);
503/529 (overloaded: the window shrinks); another transient failure (5xx, connection, timeout,
unreadable body); neither (a 4xx on the request)."""


class AdaptiveConcurrency:
    """Requests in flight, adapted to what the provider takes (AIMD, as TCP's congestion window).

    Grows by one per window of answers (an epoch: as many answers as the window holds), between
    `floor` and `ceiling`; above `INITIAL` it starts there and doubles per epoch until the first
    cut (slow start), so that a run started at a high ceiling does not open with a storm.

    It halves on an overload (503/529), once per generation (the answers of requests started
    before the last cut do not cut again). A 429 cuts only when it says the window is too large:
    some providers answer a share of requests 429 whatever the load (and the request waits out
    its Retry-After anyway). Cutting on each of those would take the window to its floor (with
    10% random 429s, TCP's one cut per round trip still left 1-5 in flight). So the window learns
    `background`, the share of 429s that does not depend on it: after a cut for 429s it measures
    an epoch at the smaller window. No more 429s than the background allows: the cut was right.
    Still too many: it halves again and measures; when that second cut did not lower the share
    (a two-proportion z-test; and the share is at most MAX_BACKGROUND), the 429s are not the window's doing — the share
    becomes the background and the second cut is undone. Then an epoch cuts only when its 429s
    exceed the background (its upper confidence bound) by three standard deviations, judged
    over at least MEASURE_MIN answers, at once when they do; each epoch that does not cut
    refines the background.

    FIFO; `adaptive=False` is a plain semaphore of `ceiling`.
    """

    INITIAL: Final = 64
    """Starting window when the ceiling is higher (doubles per epoch of answers)."""
    MEASURE_MIN: Final = 32
    """Fewest answers an epoch measuring the 429 share after a cut counts."""
    MAX_BACKGROUND: Final = 0.25
    """Largest share of 429s taken as the provider's background: more always cuts."""

    def __init__(self, ceiling: int, floor: int = 1, *, adaptive: bool = True) -> None:
        self.ceiling, self.floor, self.adaptive = ceiling, min(floor, ceiling), adaptive
        self.limit = float(min(ceiling, max(self.floor, self.INITIAL)) if adaptive else ceiling)
        self.low = self.limit
        """Smallest window so far."""
        self.in_flight = 0
        self.max_in_flight = 0
        self.background = 0.0
        """Share of attempts answered 429 whatever the window (learned; see the class)."""
        self._threshold = float(ceiling)  # slow start below it
        self._answers = 0  # this epoch's answers (ok or 429)
        self._throttled = 0  # this epoch's 429s
        self._last_cut = -math.inf
        self._uncut = self.limit  # the window before the last cut
        self._measuring = False  # this epoch measures the 429 share after a cut
        self._seen = (0, 0)  # the 429s and answers the background was learned from
        self._chain: tuple[int, int] | None = None  # 429s / answers the last measuring epoch saw
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> float:
        """Wait for a place in the window; returns when it was granted (monotonic seconds)."""
        if self.in_flight < int(self.limit) and not self._waiters:
            self._enter()
            return time.monotonic()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.in_flight -= 1  # granted, then cancelled: give the place on
                self._wake()
            else:
                self._waiters.remove(waiter)
            raise
        return time.monotonic()

    def release(self, started: float, signal: Signal) -> None:
        """Leave the window, adapting it to `signal` (`started`: what `acquire` returned)."""
        self.in_flight -= 1
        if self.adaptive:
            self._adapt(started, signal)
        self._wake()

    def allowance(self, answers: int) -> float:
        """429s an epoch of `answers` may hold without cutting: the background's mean plus three
        standard deviations (none while the background is 0)."""
        bg = self.background
        if bg > 0:  # its upper confidence bound: it was learned from a few epochs
            bg = min(1.0, bg + math.sqrt(bg * (1.0 - bg) / self._seen[1]))
        return bg * answers + 3.0 * math.sqrt(answers * bg * (1.0 - bg))

    def _adapt(self, started: float, signal: Signal) -> None:
        if signal == "congested":
            if started >= self._last_cut:
                self._cut()
                self._measuring, self._chain = False, None
            return
        if signal not in ("ok", "throttled"):
            return
        fresh = started >= self._last_cut
        if signal == "throttled" and not fresh:
            return  # the generation before the last cut: that cut answered it
        if self._measuring and not fresh:
            return  # a measuring epoch counts only the smaller window's requests
        self._answers += 1
        epoch = int(self.limit)
        if self._measuring or self.background > 0:
            epoch = max(epoch, self.MEASURE_MIN)  # 429 shares judged on enough answers
        if signal == "throttled":
            self._throttled += 1
            if self._measuring:
                if self._throttled > self.MAX_BACKGROUND * epoch:  # clearly still too many
                    self._chain = (self._throttled, self._answers)
                    self._cut()
                    return
            elif self._throttled > self.allowance(epoch):
                self._cut()
                self._measuring, self._chain = True, None
                return
        if self._answers >= epoch:
            self._end_epoch(epoch)

    def _end_epoch(self, epoch: int) -> None:
        share = self._throttled / self._answers
        if self._measuring:
            if self._throttled > self.allowance(epoch):
                chain, self._chain = self._chain, (self._throttled, self._answers)
                if (
                    chain is not None
                    and share <= self.MAX_BACKGROUND
                    and not _lower(self._chain, chain)
                ):
                    # halving again did not lower the share: these 429s are not the window's
                    self._seen = (chain[0] + self._throttled, chain[1] + self._answers)
                    self.background = self._seen[0] / self._seen[1]
                    self.limit = self._threshold = self._uncut
                    self._measuring, self._chain = False, None
                else:
                    self._cut()
                    return
            else:
                self._measuring, self._chain = False, None  # the cut was right
        elif self.background > 0:  # every epoch that did not cut refines the background
            self._seen = (self._seen[0] + self._throttled, self._seen[1] + self._answers)
            self.background = self._seen[0] / self._seen[1]
        self._answers = self._throttled = 0
        grown = self.limit * 2 if self.limit < self._threshold else self.limit + 1
        self.limit = min(float(self.ceiling), grown)

    def _cut(self) -> None:
        """Halve the window; a new generation and epoch start."""
        self._uncut = self.limit
        self.limit = max(float(self.floor), self.limit / 2)
        self._threshold = self.limit
        self._last_cut = time.monotonic()
        self._answers = self._throttled = 0
        self.low = min(self.low, self.limit)

    def _enter(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._enter()
                waiter.set_result(None)


def _lower(after: tuple[int, int], before: tuple[int, int]) -> bool:
    """Whether the share of 429s `after` (429s, answers) is significantly lower than `before`
    (a one-sided two-proportion z-test at z > 2)."""
    (k2, n2), (k1, n1) = after, before
    pooled = (k1 + k2) / (n1 + n2)
    if pooled <= 0.0 or pooled >= 1.0:
        return False
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    return (k1 / n1 - k2 / n2) / se > 2.0


BreakerState = Literal["closed", "open", "probing", "down"]


class Breaker:
    """Pauses an endpoint whose provider keeps failing, probes it, and resumes or gives up.

    Opens after `CONSECUTIVE` failed attempts in a row, or more than half of the last `WINDOW`;
    while open no attempt is sent. After a pause one attempt probes: an answer closes it, a failure
    opens it again for twice the pause. After `PROBES` failed probes the provider is down: the
    endpoint's remaining requests end as error rows at once.
    """

    CONSECUTIVE: Final = 20
    WINDOW: Final = 100
    PROBES: Final = 5

    def __init__(self, pause_s: float = 1.0) -> None:
        self.pause_s = pause_s
        self.state: BreakerState = "closed"
        self.opened = 0
        """Times it opened."""
        self.reason = ""
        """Why it opened last (or why the provider is down)."""
        self._recent: deque[bool] = deque(maxlen=self.WINDOW)
        self._failing = 0
        self._probes_failed = 0
        self._reopen_at = 0.0
        self._down_since = 0.0
        self._changed = asyncio.Event()

    async def admit(self) -> bool | None:
        """Wait while open. True: send a probe; False: send as usual; None: the provider is down."""
        while True:
            if self.state == "closed":
                return False
            if self.state == "down":
                return None
            changed = self._changed
            if self.state == "open":
                wait = self._reopen_at - time.monotonic()
                if wait <= 0:
                    self._set("probing")
                    return True
            else:
                wait = 3600.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=wait)

    def record(self, signal: Signal, *, probe: bool, detail: str = "") -> None:
        """Count one attempt's signal (`probe`: admitted as the breaker's probe)."""
        failed = signal in ("throttled", "congested", "failed")
        if probe:
            if failed:
                self._probes_failed += 1
                if self._probes_failed >= self.PROBES:
                    waited = time.monotonic() - self._down_since
                    self.reason = (
                        f"the provider kept failing: {self._probes_failed} probes over {waited:.0f} s"
                        f" after the pause failed too (last: {detail})"
                    )
                    self._set("down")
                else:
                    self._open(self.pause_s * 2**self._probes_failed)
            else:
                self._probes_failed = 0
                self._recent.clear()
                self._failing = 0
                self._set("closed")
            return
        if self.state != "closed" or signal == "neutral":
            return
        self._recent.append(failed)
        self._failing = self._failing + 1 if failed else 0
        full = len(self._recent) == self.WINDOW
        if self._failing >= self.CONSECUTIVE or (full and sum(self._recent) * 2 > self.WINDOW):
            self.opened += 1
            self._down_since = time.monotonic()
            self.reason = (
                f"{self._failing} failed attempts in a row"
                if self._failing >= self.CONSECUTIVE
                else f"{sum(self._recent)} of the last {self.WINDOW} attempts failed"
            ) + (f" (last: {detail})" if detail else "")
            self._open(self.pause_s)

    def _open(self, pause: float) -> None:
        self._reopen_at = time.monotonic() + pause
        self._set("open")

    def _set(self, state: BreakerState) -> None:
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()


@dataclass
class EndpointStats:
    """What the requests to one endpoint met, for progress, run facts and the manifest."""

    requests: int = 0
    """Requests sent (cache hits not included)."""
    attempts: int = 0
    retries: int = 0
    throttled: int = 0
    """Attempts answered 429."""
    throttled_requests: int = 0
    """Requests with at least one 429."""
    overloaded: int = 0
    """Attempts answered 503 or 529."""
    failed_attempts: int = 0
    """Other transient failures (5xx, connection, timeout, unreadable body)."""
    latency_s: float = 0.0
    """Sum of the answered attempts' latencies."""
    answered: int = 0
    tokens: float = 0.0
    """Sum of the requests' estimated tokens (as the tpm limiter counts them)."""
    first_start: float | None = None
    """When the first attempt started (monotonic seconds)."""
    last_end: float | None = None
    """When the last attempt ended (monotonic seconds)."""

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        del row["first_start"], row["last_end"]
        return row


class EndpointLimits:
    """What one provider + base URL + model allows a run: requests in flight (adaptive) and their
    rate; its breaker; whether anything answers there, decided once by the run's first request;
    and what its requests met so far."""

    def __init__(
        self,
        concurrency: int | None,
        rpm: int | None,
        tpm: int | None,
        *,
        floor: int | None = None,
        adaptive: bool = True,
        pause_s: float = 1.0,
        max_retries: int = 6,
    ) -> None:
        self.concurrency = AdaptiveConcurrency(concurrency or 32, floor or 1, adaptive=adaptive)
        self.rate: Rate = RateLimiter(rpm, tpm)
        self.rpm, self.tpm = rpm, tpm
        self.breaker = Breaker(pause_s)
        self.max_retries = max_retries
        self.stats = EndpointStats()
        self.clients: dict[Hashable, Any] = {}
        """SDK clients of the endpoint, shared by the run's partitions (`Endpoint.share`)."""
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

    def facts(self) -> dict[str, Any]:
        """Stats, window, breaker and throughput against its ceiling (for the manifest)."""
        s = self.stats
        latency = s.latency_s / s.answered if s.answered else None
        per_request = s.tokens / s.requests if s.requests else None
        ceilings = {
            "concurrency": self.concurrency.ceiling / latency if latency else None,
            "rpm": self.rpm / 60 if self.rpm else None,
            "tpm": self.tpm / 60 / per_request if self.tpm and per_request else None,
        }
        known = {k: v for k, v in ceilings.items() if v is not None}
        bound = min(known, key=lambda k: known[k]) if known else None
        span = (s.last_end or 0) - (s.first_start or 0)
        return {
            **s.row(),
            "achieved_rps": s.requests / span if span > 0 else None,
            "ceiling_rps": known[bound] if bound else None,
            "bound_by": bound,
            "mean_latency_s": latency,
            "concurrency_ceiling": self.concurrency.ceiling,
            "concurrency_now": int(self.concurrency.limit),
            "concurrency_low": int(self.concurrency.low),
            "background_429_share": round(self.concurrency.background, 4),
            "max_in_flight": self.concurrency.max_in_flight,
            "breaker": self.breaker.state,
            "breaker_opened": self.breaker.opened,
            "breaker_reason": self.breaker.reason or None,
        }


_MAX_RUNS: Final = 8
_registry: OrderedDict[tuple[Hashable, ...], dict[tuple[Hashable, ...], EndpointLimits]] = (
    OrderedDict()
)
_registry_lock = threading.Lock()


class _SharedThenLedger:
    """The flows' shared limits (Prefect), then the run's ledger across its processes."""

    def __init__(self, shared: Callable[[int], Awaitable[None]], ledger: Rate) -> None:
        self._shared, self._ledger = shared, ledger

    @property
    def unlimited(self) -> bool:
        return self._ledger.unlimited

    async def acquire(self, tokens: int) -> None:
        await self._shared(tokens)
        await self._ledger.acquire(tokens)


_warned_unshared: set[str] = set()
"""Runs already told that `limits.shared` has no Prefect API to share through."""


SharedGates = Callable[..., "Callable[[int], Awaitable[None]] | None"]
"""Given the endpoint (`provider`, `host`, `model`, `rpm`, `tpm`, keywords), the wait every flow
on one API key shares for it (`limits.shared`), or None when there is nothing to share through."""

_shared_gates: SharedGates | None = None


def use_shared_gates(gates: SharedGates) -> None:
    """Where `limits.shared` endpoints get their shared wait from: the flows layer hands over its
    Prefect rate limits (`evalpipe.flows.wiring`), so that replay never imports the flows."""
    global _shared_gates
    _shared_gates = gates


def _shared_gate(
    run_key: str, *, provider: str, host: str, model: str, rpm: int | None, tpm: int | None
) -> Callable[[int], Awaitable[None]] | None:
    """The rate limits every flow shares for this endpoint (`limits.shared`); None (after one
    warning per run) when there is nothing to share them through."""
    gate = None
    if _shared_gates is not None:
        gate = _shared_gates(provider=provider, host=host, model=model, rpm=rpm, tpm=tpm)
    if gate is None and run_key not in _warned_unshared:
        _warned_unshared.add(run_key)
        log.warning(
            "limits.shared: no Prefect API is configured (PREFECT_API_URL); rpm/tpm are "
            "kept by this run alone"
        )
    return gate


_shared: dict[str, Path] = {}
"""Runs whose rpm/tpm are shared across processes: run key → its ledger (`share_limits`)."""


def share_limits(run_key: str, ledger: Path) -> None:
    """Count the rpm/tpm of run `run_key`'s endpoints in `ledger`, with every other process
    replaying it (call before its first request in this process)."""
    with _registry_lock:
        _shared[run_key] = ledger


def endpoint_limits(
    run_key: str,
    *,
    provider: str,
    host: str,
    model: str,
    concurrency: int | None,
    rpm: int | None,
    tpm: int | None,
    floor: int | None = None,
    adaptive: bool = True,
    pause_s: float = 1.0,
    max_retries: int = 6,
    shared: bool = False,
) -> EndpointLimits:
    """The run's one set of limiters for an endpoint, shared by every partition and judge.

    `shared`: rpm and tpm are also kept across flows, by Prefect rate limits (`shared_limits`)
    when a Prefect API is configured.

    Call from the event loop the requests run on (`loop.run_async`'s): the limiters belong to
    it. Only the last few runs of a process keep theirs.
    """
    run = (run_key, id(asyncio.get_running_loop()))
    key = (
        provider,
        host,
        model,
        concurrency,
        rpm,
        tpm,
        floor,
        adaptive,
        pause_s,
        max_retries,
        shared,
    )
    with _registry_lock:
        endpoints = _registry.get(run)
        if endpoints is None:
            endpoints = _registry[run] = {}
            while len(_registry) > _MAX_RUNS:
                _registry.popitem(last=False)
        limits = endpoints.get(key)
        if limits is None:
            limits = endpoints[key] = EndpointLimits(
                concurrency,
                rpm,
                tpm,
                floor=floor,
                adaptive=adaptive,
                pause_s=pause_s,
                max_retries=max_retries,
            )
            ledger = _shared.get(run_key)
            if ledger is not None and (rpm or tpm):
                from evalpipe.replay.ledger import SharedRateLimiter

                limits.rate = SharedRateLimiter(ledger, f"{provider} {host} {model}", rpm, tpm)
            if shared and (rpm or tpm):
                gate = _shared_gate(
                    run_key, provider=provider, host=host, model=model, rpm=rpm, tpm=tpm
                )
                if gate is not None and isinstance(limits.rate, RateLimiter):
                    limits.rate.shared = gate
                elif gate is not None:
                    limits.rate = _SharedThenLedger(gate, limits.rate)
        return limits


async def close_clients(run_key: str) -> None:
    """Close the SDK clients the run's partitions shared (call on the requests' loop, after
    replay); a later stage that needs one opens it again."""
    with _registry_lock:
        runs = [endpoints for (key, _), endpoints in _registry.items() if key == run_key]
    for endpoints in runs:
        for limits in endpoints.values():
            clients, limits.clients = list(limits.clients.values()), {}
            for client, _ in clients:
                await client.close()


def run_endpoints(run_key: str) -> dict[str, dict[str, Any]]:
    """Facts of every endpoint of the run `run_key` so far, by `provider/model` (for the
    manifest and the run facts); empty when the run's limiters are gone."""
    out: dict[str, dict[str, Any]] = {}
    with _registry_lock:
        runs = [endpoints for (key, _), endpoints in _registry.items() if key == run_key]
    for endpoints in runs:
        for key, limits in endpoints.items():
            name = f"{key[0]}/{key[2]}"
            if limits.stats.attempts or name not in out:
                out[name] = limits.facts()
    return out


class Budget:
    """Spend reserved before a request is sent, so concurrency cannot overshoot the cap."""

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0) -> None:
        self.limit = limit_usd
        self.spent = spent_usd
        self._reserved = 0.0
        self._held = 0.0
        # partitions replaying in threads (Prefect's default task runner) share one budget
        self._lock = threading.Lock()

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent + self._reserved >= self.limit

    async def acquire(self, usd: float) -> bool:
        """Reserve `usd`, waiting while requests in flight may still give some of theirs back.

        Reservations are pessimistic (output at max_tokens), so a request that does not fit now
        often fits once those in flight are settled at their real cost. False only when it does
        not fit with nothing in flight but held reservations (see `hold`), which are not waited
        for. Polls, because partitions replaying in other threads settle on other event loops.
        """
        pause = 0.002
        while True:
            with self._lock:
                if self.limit is None or self.spent + self._reserved + usd <= self.limit:
                    self._reserved += usd
                    return True
                if self._reserved - self._held <= 1e-12:
                    return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    def hold(self, usd: float) -> None:
        """Mark `usd` of the reservations as held until a batch ends (`transport: batch`):
        `acquire` does not wait for them, since they settle only after everything is bought."""
        with self._lock:
            self._held += usd

    def settle(self, reserved: float, actual: float, *, held: bool = False) -> None:
        """Replace a reservation by the actual spend; `held`: one marked by `hold`."""
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            if held:
                self._held = max(0.0, self._held - reserved)
            self.spent += actual

    def close(self) -> None:
        """Let go of what it holds once the stage is done (nothing here; a ledger's file)."""
