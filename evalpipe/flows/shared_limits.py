"""rpm/tpm shared by every flow replaying against one API key (`limits.<model>.shared: true`),
kept as Prefect global concurrency limits used as rate limits.

Each endpoint (provider + base URL + model) gets one limit per rate, named
`evalpipe-rpm-<provider>-<model>-<hash of host>` (and `evalpipe-tpm-…`), created on the
configured Prefect API when missing. A Prefect rate limit is a token bucket: it admits at most
`limit` slots at once and frees `slot_decay_per_second` a second. Such a bucket with capacity C
and refill r admits at most C + r × T in any T seconds, so capacity R/10 and refill (R − R/10)/60
keep every 60-s window of all flows together within R (a bucket of R refilled at R/60, as the
naive setting, would admit almost 2 × R in the first minute). Each process keeps its own sliding
window too (`limits.RateLimiter`); a start needs both.

Only imported when a spec asks for shared limits: it imports Prefect.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Final

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import rate_limit

from evalpipe.errors import EvalpipeError

__all__ = ["Bucket", "PrefectRate", "SharedLimitError", "bucket", "limit_name"]

log = logging.getLogger(__name__)

BURST_SHARE: Final = 10
"""The bucket's capacity is 1/BURST_SHARE of the per-minute limit."""


class SharedLimitError(EvalpipeError):
    """The Prefect API that keeps the shared rate limits did not take them."""


@dataclass(frozen=True)
class Bucket:
    """One Prefect rate limit: its name, capacity (`limit`) and refill per second (`decay`)."""

    name: str
    limit: int
    decay: float


def bucket(kind: str, per_minute: int, *, provider: str, host: str, model: str) -> Bucket:
    """The rate limit keeping `per_minute` (`kind`: "rpm" or "tpm") of one endpoint across flows.

    Capacity C = per_minute / BURST_SHARE (at least 1), refill (per_minute − C) / 60 a second (at
    least 1/60): at most per_minute in any 60 s (with per_minute ≥ 2).
    """
    capacity = max(1, per_minute // BURST_SHARE)
    return Bucket(
        limit_name(kind, provider=provider, host=host, model=model),
        capacity,
        max(per_minute - capacity, 1) / 60.0,
    )


def limit_name(kind: str, *, provider: str, host: str, model: str) -> str:
    """`evalpipe-<kind>-<provider>-<model>-<8 hex of the host>`, in the characters Prefect takes."""
    digest = hashlib.sha256(host.encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{provider}-{model}")
    return f"evalpipe-{kind}-{safe}-{digest}"


class PrefectRate:
    """The endpoint's rpm and tpm buckets on the Prefect API (None: that rate is not limited).

    `acquire` takes one rpm slot and min(tokens, the tpm bucket's capacity) tpm slots, waiting as
    long as the API asks. The buckets are created (or set to this spec's values) before the first
    start, once per process and run.
    """

    def __init__(self, rpm: Bucket | None, tpm: Bucket | None) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._ready = False
        self._lock = asyncio.Lock()

    async def _ensure(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            async with get_client() as client:
                for b in (self.rpm, self.tpm):
                    if b is None:
                        continue
                    try:
                        try:
                            await client.upsert_global_concurrency_limit_by_name(
                                b.name, b.limit, b.decay
                            )
                        except Exception:  # another flow created it meanwhile (409, or 500
                            # from a SQLite server's unique constraint): it exists now
                            await asyncio.sleep(0.1)
                            await client.upsert_global_concurrency_limit_by_name(
                                b.name, b.limit, b.decay
                            )
                    except Exception as exc:
                        raise SharedLimitError(
                            f"limits.shared: the Prefect API did not take the rate limit "
                            f"{b.name!r} ({type(exc).__name__}: {exc}); check PREFECT_API_URL, "
                            "or set shared: false"
                        ) from exc
                    log.info(
                        "shared rate limit %s: %d slots, %.3g freed a second",
                        b.name,
                        b.limit,
                        b.decay,
                    )
            self._ready = True

    async def acquire(self, tokens: int) -> None:
        """Wait until the shared buckets admit one start of `tokens` estimated tokens."""
        await self._ensure()
        try:
            if self.rpm is not None:
                await rate_limit(self.rpm.name, occupy=1, strict=True)
            if self.tpm is not None and tokens > 0:
                await rate_limit(self.tpm.name, occupy=min(tokens, self.tpm.limit), strict=True)
        except Exception as exc:
            raise SharedLimitError(
                f"limits.shared: the Prefect API did not grant a slot of the shared rate limit "
                f"({type(exc).__name__}: {exc})"
            ) from exc
