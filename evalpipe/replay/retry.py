"""One request's attempts: each through the endpoint's breaker, adaptive window and rate limits.

The SDKs' own retry does not fit replay (checked in openai 3.63 and anthropic 2.17,
`_base_client._calculate_retry_timeout` and `_should_retry`): it honours `retry-after-ms` and
`retry-after` but not `x-ratelimit-reset-*`, gives up at once on a `retry-after` over two minutes,
backs off by 0.5 s × 2ⁿ less up to 25% (not full jitter), and above all retries inside one call:
its retries hold a place of the concurrency while they sleep, are not counted by the rpm/tpm
window, and the adaptive window never sees their 429s. So the clients send each attempt once
(`max_retries=0`) and this loop retries.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Final

from evalpipe.providers.calls import CIRCUIT_OPEN, INVALID_BODY, CallOutcome
from evalpipe.providers.endpoint import INVALID_BODY_RETRIES, Endpoint
from evalpipe.replay.limits import EndpointLimits, Signal

__all__ = ["BACKOFF_BASE_S", "BACKOFF_CAP_S", "MAX_SERVER_WAIT_S", "send_with_retries", "signal"]

BACKOFF_BASE_S: Final = 0.5
"""First retry's backoff ceiling; doubles per retry (full jitter: a uniform draw below it)."""
BACKOFF_CAP_S: Final = 30.0
"""Largest backoff ceiling."""
MAX_SERVER_WAIT_S: Final = 120.0
"""Longest wait a server may ask for (`retry-after`, a limit's reset); longer ends the request."""

_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
_OVERLOAD_STATUS: Final = frozenset({503, 529})


def signal(outcome: CallOutcome) -> Signal:
    """What an attempt's outcome says about the provider (see `limits.Signal`)."""
    if outcome.status == "ok":
        return "ok"
    status = outcome.http_status
    if status == 429:
        return "throttled"
    if status in _OVERLOAD_STATUS:
        return "congested"
    if outcome.error_type == INVALID_BODY or status is None or status >= 500:
        return "failed"
    if status in _RETRYABLE_STATUS:
        return "failed"
    return "neutral"


def _backoff_s(retry: int) -> float:
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**retry))


def _down(limits: EndpointLimits) -> CallOutcome:
    """The row of a request never sent: the breaker found the provider down."""
    return CallOutcome(
        status="error",
        error_origin="infrastructure",
        error_type=CIRCUIT_OPEN,
        error_message=f"not sent: {limits.breaker.reason}",
        attempts=0,
    )


async def send_with_retries(
    endpoint: Endpoint, kwargs: dict[str, Any], limits: EndpointLimits, tokens: float
) -> CallOutcome:
    """Send `kwargs` until answered, a terminal failure, or the retry cap.

    Each attempt waits for the breaker, a place in the adaptive window and the rpm/tpm window,
    in that order; between attempts it holds none of them. The wait before a retry is what the
    server asked for (`retry-after-ms`, `retry-after`, `x-ratelimit-reset-*`, up to
    MAX_SERVER_WAIT_S, plus up to 20% jitter), else full-jitter exponential backoff.

    Raises:
        FatalProviderError: the provider refused the endpoint (auth, unknown model).
    """
    stats = limits.stats
    window = limits.concurrency
    attempts = invalid = 0
    saw_429 = False
    outcome: CallOutcome | None = None
    stats.requests += 1
    stats.tokens += tokens
    while True:
        probe = await limits.breaker.admit()
        if probe is None:
            if outcome is None:
                return _down(limits)
            outcome.error_message = f"{outcome.error_message}; not retried: {limits.breaker.reason}"
            break
        granted = await window.acquire()
        if not probe and limits.breaker.state != "closed":
            window.release(granted, "neutral")  # it opened while this one waited
            continue
        sig: Signal = "neutral"
        try:
            await limits.rate.acquire(int(tokens))
            now = time.monotonic()
            if stats.first_start is None:
                stats.first_start = now
            outcome = await endpoint.send(kwargs)
            sig = signal(outcome)
        finally:
            window.release(granted, sig)
        stats.last_end = time.monotonic()
        attempts += 1
        stats.attempts += 1
        detail = f"{outcome.http_status or ''} {outcome.error_type or ''}".strip()
        # 429s and overloads are the adaptive window's to answer while it can still shrink
        shrinkable = window.adaptive and window.limit > window.floor
        pushback = sig in ("throttled", "congested")
        breaker_sig: Signal = "neutral" if pushback and shrinkable else sig
        limits.breaker.record(breaker_sig, probe=bool(probe), detail=detail)
        if sig == "ok":
            stats.answered += 1
            stats.latency_s += (outcome.latency_ms or 0.0) / 1000
        elif outcome.http_status == 429:
            stats.throttled += 1
            if not saw_429:
                saw_429 = True
                stats.throttled_requests += 1
        elif sig == "congested":
            stats.overloaded += 1
        elif sig == "failed":
            stats.failed_attempts += 1
        if sig not in ("throttled", "congested", "failed"):
            break
        if outcome.error_type == INVALID_BODY:  # its own cap, whatever max_retries says
            invalid += 1
            if invalid > INVALID_BODY_RETRIES:
                break
        elif attempts - invalid > limits.max_retries:
            break
        wait = outcome.retry_after_s
        if wait is not None and wait > MAX_SERVER_WAIT_S:
            outcome.error_message = (
                f"{outcome.error_message} (the server asked to wait {wait:.0f} s; not retried)"
            )
            break
        wait = wait * random.uniform(1.0, 1.2) if wait else _backoff_s(attempts - 1)
        stats.retries += 1
        await asyncio.sleep(wait)
    assert outcome is not None
    outcome.attempts = attempts
    return outcome
