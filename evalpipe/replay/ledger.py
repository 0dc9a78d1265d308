"""A run's spend budget and request/token rates shared by every process that replays it.

Partitions on Dask or Ray workers run in other processes, each with its own limiters: were each
to hold the whole budget or rpm, N workers would spend N × the cap. Instead they all reserve from
one ledger in the run folder, ``ledger.sqlite``: every reservation, settlement and request start
is one SQLite ``BEGIN IMMEDIATE`` transaction (one writer at a time, across processes).

SQLite's locking (and its WAL's shared memory) holds on one machine's local file system: the
ledger is shared by the workers of one machine. Workers on several machines sharing the store
over a network file system are not covered (Prefect global concurrency limits would be the
mechanism there; not wired in).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Final

from evalpipe.replay.limits import Budget, RateLimiter

__all__ = ["LEDGER_FILE", "LedgerBudget", "SharedRateLimiter", "clear_reservations"]

LEDGER_FILE: Final = "ledger.sqlite"

STALE_S: Final = 300.0
"""A reservation nobody settles for this long is taken as lost (a worker that died holding it):
a request that does not fit then is refused instead of waiting for it forever."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS budget (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    spent REAL NOT NULL, reserved REAL NOT NULL, held REAL NOT NULL, changed REAL NOT NULL);
CREATE TABLE IF NOT EXISTS starts (endpoint TEXT NOT NULL, at REAL NOT NULL, tokens INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS starts_at ON starts (endpoint, at);
"""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(_SCHEMA)
    return con


class _Tx:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an error) on a connection."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, kind: object, *_: object) -> None:
        self.con.execute("ROLLBACK" if kind else "COMMIT")


def clear_reservations(path: Path, spent_usd: float) -> None:
    """Before a stage's partitions start: drop reservations a crashed earlier attempt left, and
    create the ledger (spent = `spent_usd`) when it does not exist yet. (Request starts stay:
    the rate windows of a resumed run count the minute before it too.)"""
    con = _connect(path)
    try:
        with _Tx(con) as tx:
            tx.execute(
                "INSERT INTO budget VALUES (0, ?, 0, 0, ?) "
                "ON CONFLICT (id) DO UPDATE SET reserved = 0, held = 0",
                (spent_usd, time.time()),
            )
    finally:
        con.close()


class LedgerBudget(Budget):
    """`Budget` whose spend and reservations live in the run's ledger, shared by all processes.

    `spent` is the whole run's spend as last seen by this process (updated by each of its
    transactions).
    """

    def __init__(self, path: Path, limit_usd: float | None, spent_usd: float = 0.0) -> None:
        super().__init__(limit_usd, spent_usd)
        self.path = path
        self._con = _connect(path)
        with self._lock, _Tx(self._con) as tx:
            tx.execute(
                "INSERT INTO budget VALUES (0, ?, 0, 0, ?) ON CONFLICT (id) DO NOTHING",
                (spent_usd, time.time()),
            )
            self.spent, self._reserved = tx.execute("SELECT spent, reserved FROM budget").fetchone()

    def _try(self, usd: float) -> bool | None:
        """One attempt: True reserved; None does not fit yet (others hold reservations);
        False does not fit with nothing (live, not held) in flight."""
        with self._lock, _Tx(self._con) as tx:
            spent, reserved, held, changed = tx.execute(
                "SELECT spent, reserved, held, changed FROM budget"
            ).fetchone()
            fits = self.limit is None or spent + reserved + usd <= self.limit
            if fits:
                tx.execute(
                    "UPDATE budget SET reserved = reserved + ?, changed = ?", (usd, time.time())
                )
                reserved += usd
            self.spent, self._reserved = spent, reserved
        if fits:
            return True
        if reserved - held <= 1e-12 or time.time() - changed > STALE_S:
            return False
        return None

    async def acquire(self, usd: float) -> bool:
        """Reserve `usd` from the run's ledger, waiting while requests in flight anywhere may
        still give some of theirs back (see `Budget.acquire`)."""
        if self.limit is None:
            return True
        pause = 0.002
        while True:
            got = self._try(usd)
            if got is not None:
                return got
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    def hold(self, usd: float) -> None:
        """Mark `usd` of the reservations as held until a batch ends (see `Budget.hold`)."""
        if self.limit is None:
            return
        with self._lock, _Tx(self._con) as tx:
            tx.execute("UPDATE budget SET held = held + ?, changed = ?", (usd, time.time()))

    def settle(self, reserved: float, actual: float, *, held: bool = False) -> None:
        if self.limit is None and not actual:
            return
        with self._lock, _Tx(self._con) as tx:
            tx.execute(
                "UPDATE budget SET reserved = max(0, reserved - ?), spent = spent + ?, "
                "held = CASE WHEN ? THEN max(0, held - ?) ELSE held END, changed = ?",
                (reserved, actual, held, reserved, time.time()),
            )
            self.spent, self._reserved = tx.execute("SELECT spent, reserved FROM budget").fetchone()

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent + self._reserved >= self.limit

    def close(self) -> None:
        with self._lock:
            self._con.close()


class SharedRateLimiter:
    """`RateLimiter`'s sliding windows (rpm, tpm over 60 s) kept in the run's ledger, so that
    every process replaying the run counts the same starts of an endpoint."""

    SLACK_S: Final = RateLimiter.SLACK_S

    def __init__(
        self, path: Path, endpoint: str, rpm: int | None, tpm: int | None, period_s: float = 60.0
    ) -> None:
        self.endpoint, self._rpm, self._tpm = endpoint, rpm, tpm
        self._period = period_s + self.SLACK_S
        self._con = _connect(path)
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return not self._rpm and not self._tpm

    def _try(self, tokens: int) -> float:
        """Record a start of `tokens` if it fits the window now (0.0), else the seconds to wait."""
        now = time.time()
        with self._thread_lock, _Tx(self._con) as tx:
            tx.execute(
                "DELETE FROM starts WHERE endpoint = ? AND at <= ?",
                (self.endpoint, now - self._period),
            )
            count, used = tx.execute(
                "SELECT count(*), coalesce(sum(tokens), 0) FROM starts WHERE endpoint = ?",
                (self.endpoint,),
            ).fetchone()
            wait = 0.0
            if self._rpm and count >= self._rpm:  # until enough of the oldest starts leave
                (at,) = tx.execute(
                    "SELECT at FROM starts WHERE endpoint = ? ORDER BY at LIMIT 1 OFFSET ?",
                    (self.endpoint, count - self._rpm),
                ).fetchone()
                wait = max(wait, at + self._period - now)
            if self._tpm and used + tokens > self._tpm:
                row = tx.execute(
                    "SELECT at FROM (SELECT at, sum(tokens) OVER (ORDER BY at) AS gone "
                    "FROM starts WHERE endpoint = ?) WHERE ? - gone + ? <= ? ORDER BY at LIMIT 1",
                    (self.endpoint, used, tokens, self._tpm),
                ).fetchone()
                wait = max(wait, (row[0] if row else now) + self._period - now)
            if wait <= 0:
                tx.execute("INSERT INTO starts VALUES (?, ?, ?)", (self.endpoint, now, tokens))
        return max(wait, 0.0)

    async def acquire(self, tokens: int) -> None:
        """Wait until one more start of `tokens` (capped at tpm) fits the run's window."""
        if self.unlimited:
            return
        tokens = min(max(int(tokens), 0), self._tpm or 0)
        async with self._lock:  # this process's requests: first come, first served
            while True:
                wait = self._try(tokens)
                if wait <= 0:
                    return
                await asyncio.sleep(min(wait, 1.0))  # others' starts may leave meanwhile
