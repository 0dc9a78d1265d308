"""Content-addressed cache of provider answers, shared by all runs (ARCHITECTURE.md, cache).

The entries live in one SQLite file, ``cache/responses.sqlite`` (key → the answer's JSON; WAL
mode, so readers never wait for the writer and any number of threads and processes on one machine
share it). A background thread writes them, a batch per transaction: an entry costs about 8 µs
there, where a file of its own cost 65-160 µs of system time that the event loop sending requests
paid for on a machine with two cores. `get` sees entries still waiting, and `flush` waits until
all are on disk. A cache written by evalpipe before the SQLite file (``cache/<2 hex>/<key>.json``)
is still read, and what is read from it is kept in the SQLite file.

With a remote store (`evalpipe.store.remote`), the writer also pushes each batch it wrote there
(concurrent puts), and `flush` waits for that too; a key missing here is looked up there (and
kept here).

Runs sharing the cache at once pay once for a request they both ask (`ResponseCache.claim`): the
first to miss claims the key, the others wait for its answer. Within a process the claim is a set
in memory (always on: partitions on threads, several runs of one process). Across processes it is
a file ``claims/<key>.claim`` created exclusively, used when other processes may be replaying into
this cache: `EVALPIPE_CACHE_CLAIMS=1` in the environment (the task runners set it for their
workers), or another live process registered in `.active/` (every replaying process registers
there). A claim whose process died (same host) or that is older than `CLAIM_LEASE_S` is taken
over, so a killed run never blocks the next. A process that starts replaying while another
already is may still pay for a request the other sent in the second before it saw the newcomer
(the registry is read at most once a second).

A cache that cannot be read or written (a read-only folder, a full disk, a damaged file) costs
requests, never the run: a warning, then misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from evalpipe.errors import StoreError

if TYPE_CHECKING:
    from evalpipe.store.remote import Remote

__all__ = ["CLAIMS_ENV", "ResponseCache", "request_key"]

log = logging.getLogger(__name__)

CacheMode = Literal["read_write", "write_only", "off"]

CLAIMS_ENV: Final = "EVALPIPE_CACHE_CLAIMS"
"""Set to 1 where several processes replay into one cache at once (claims across processes)."""
CLAIM_LEASE_S: Final = 900.0
"""A claim older than this is taken over (its request would have timed out long before)."""
_ACTIVE_REREAD_S: Final = 1.0
_ACTIVE_MAX_AGE_S: Final = 6 * 3600.0
"""Another host's registration counts as live for this long after it was last written."""
_HOST: Final = socket.gethostname()
DB_NAME: Final = "responses.sqlite"
_BATCH: Final = 256
"""Entries per INSERT statement (two bound values each, far below SQLite's 32,766)."""
_GATHER_S: Final = 0.05
"""The writer waits this long after a wake-up for more entries: fewer, larger transactions."""
_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, body BLOB NOT NULL)"

_local_lock = threading.Lock()
_local_claims: set[tuple[str, str]] = set()
"""(cache root, key) claimed by this process: a request one of its runs or partitions is sending."""
_active_lock = threading.Lock()
_active_count: dict[str, int] = {}
"""Per cache root, the replays of this process registered in its `.active/` folder."""


def request_key(
    *, provider: str, model: str, host: str, kwargs: dict[str, Any], repeat: int, salt: str = ""
) -> str:
    """sha256 of what was actually sent (the translated request) and where."""
    body = {
        "provider": provider,
        "model": model,
        "host": host,
        "request": kwargs,
        "repeat": repeat,
        "salt": salt,
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ResponseCache:
    """Read and write cached answers by request key."""

    def __init__(
        self, root: Path, mode: CacheMode = "read_write", remote: Remote | None = None
    ) -> None:
        self.root, self.mode, self.remote = root, mode, remote
        self._db_path = str(root / DB_NAME)
        self._conns = threading.local()  # one SQLite connection per thread (and process)
        self._legacy: bool | None = None  # whether a pre-SQLite cache (<2 hex>/<key>.json) is here
        self._db_failed = False
        self._local_only: set[str] = set()  # keys being kept here that the remote already has
        self._pending: dict[str, dict[str, Any]] = {}
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._writer: threading.Thread | None = None
        self._mine: set[str] = set()  # keys this cache claimed in `_local_claims`
        self._file_claims: set[str] = set()
        self._claims_failed = False
        self._others_checked = -_ACTIVE_REREAD_S
        self._others = False

    def _legacy_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.mode != "read_write":
            return None
        with self._lock:
            waiting = self._pending.get(key)
        if waiting is not None:
            return waiting
        body = self._read(key)
        if body is None:
            body = self._from_legacy(key)
        if body is None:
            return None if self.remote is None else self._from_remote(key)
        try:
            data: dict[str, Any] = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("ignoring a corrupt cache entry %s in %s", key, self.root)
            return None
        return data

    def _has(self, key: str) -> bool:
        """Whether `key` is on disk here (a row, or a file of a pre-SQLite cache)."""
        return self._read(key) is not None or (
            self._has_legacy() and self._legacy_path(key).is_file()
        )

    # --- the SQLite file -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection | None:
        """This thread's connection to the cache file, opened (and the file made) on first use;
        None when the file cannot be opened (warned once)."""
        held: tuple[int, sqlite3.Connection] | None = getattr(self._conns, "held", None)
        if held is not None and held[0] == os.getpid():  # (not a connection inherited by fork)
            return held[1]
        if self._db_failed:
            return None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self._db_path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")  # (stays rollback where WAL cannot work)
            conn.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process
            conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            self._db_failure("open", exc)
            return None
        self._conns.held = (os.getpid(), conn)
        return conn

    def _db_failure(self, doing: str, exc: BaseException) -> None:
        if not self._db_failed:
            log.warning(
                "cannot %s the response cache %s (%s): answers are not cached, so a rerun "
                "pays for them again",
                doing,
                self._db_path,
                exc,
            )
        self._db_failed = True

    def _read(self, key: str) -> bytes | None:
        conn = self._conn()
        if conn is None:
            return None
        try:
            # (fetchall: the statement runs to its end, so no read transaction stays open)
            rows = conn.execute("SELECT body FROM entries WHERE key = ?", (key,)).fetchall()
        except sqlite3.Error as exc:
            self._db_failure("read", exc)
            return None
        return bytes(rows[0][0]) if rows else None

    def _store_many(self, bodies: dict[str, bytes]) -> None:
        """Write `bodies` in one transaction (several INSERTs of `_BATCH` rows each)."""
        conn = self._conn()
        if conn is None or not bodies:
            return
        items = list(bodies.items())
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(items), _BATCH):
                    chunk = items[start : start + _BATCH]
                    values = ",".join(["(?,?)"] * len(chunk))
                    params = [v for pair in chunk for v in pair]
                    conn.execute(f"INSERT OR REPLACE INTO entries VALUES {values}", params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._db_failure("write", exc)

    def _has_legacy(self) -> bool:
        if self._legacy is None:
            try:
                names = os.listdir(self.root)
            except OSError:
                names = []
            self._legacy = any(
                len(n) == 2 and all(c in "0123456789abcdef" for c in n) for n in names
            )
        return self._legacy

    def _from_legacy(self, key: str) -> bytes | None:
        """`key`'s file in a cache written before the SQLite file (kept in the file from now on)."""
        if not self._has_legacy():
            return None
        try:
            body = self._legacy_path(key).read_bytes()
        except OSError:
            return None
        self._keep(key, body)
        return body

    # --- claims: runs sharing the cache at once pay once -----------------------------------------

    async def claim(self, key: str) -> dict[str, Any] | None:
        """Claim `key` before buying it (None: this caller buys it and then `put`s or `unclaim`s
        it), or, when another run of this process or another process has claimed it, wait for
        that answer and return it (None if the claim ended without one: then it is ours)."""
        if self.mode != "read_write":
            return None
        delay = 0.02
        while True:
            if self._claim_local(key):
                if not self._across_processes() or self._claim_file(key):
                    if not self._has(key):
                        return None
                    self.unclaim(key)  # bought and written since the caller's miss
                    hit = self.get(key)
                    if hit is not None:
                        return hit
                    continue
                self._unclaim_local(key)  # another process has it: wait for it as well
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            hit = self.get(key)
            if hit is not None:
                return hit

    def unclaim(self, key: str) -> None:
        """Give up the claim on `key` (its request failed or was not sent)."""
        self._drop_file_claim(key)
        self._unclaim_local(key)

    def _claim_local(self, key: str) -> bool:
        with _local_lock:
            if (str(self.root), key) in _local_claims:
                return False
            _local_claims.add((str(self.root), key))
            self._mine.add(key)
            return True

    def _unclaim_local(self, key: str) -> None:
        with _local_lock:
            if key in self._mine:
                self._mine.discard(key)
                _local_claims.discard((str(self.root), key))

    def _claim_path(self, key: str) -> str:
        return f"{self.root}/claims/{key}.claim"

    def _claim_file(self, key: str) -> bool:
        """Create `<key>.claim` exclusively (taking over a dead or expired one)."""
        path = self._claim_path(key)
        for _ in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                continue
            except FileExistsError:
                if not _claim_is_dead(path):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            except OSError as exc:  # (a read-only cache, say: buy it unclaimed, never stop the run)
                if not self._claims_failed:
                    self._claims_failed = True
                    log.warning(
                        "cannot claim requests in %s (%s): a request other runs are "
                        "buying at the same time may be paid twice",
                        self.root,
                        exc,
                    )
                return True
            try:
                os.write(fd, f"{_HOST} {os.getpid()}".encode())
            finally:
                os.close(fd)
            self._file_claims.add(key)
            return True
        return False

    def _drop_file_claim(self, key: str) -> None:
        if key in self._file_claims:
            self._file_claims.discard(key)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._claim_path(key))

    def _across_processes(self) -> bool:
        """Whether other processes may be replaying into this cache now (re-read once a second)."""
        if os.environ.get(CLAIMS_ENV) == "1":
            return True
        now = time.monotonic()
        if now - self._others_checked >= _ACTIVE_REREAD_S:
            self._others_checked = now
            self._others = _others_active(self.root / ".active")
        return self._others

    def register(self) -> None:
        """Note in `.active/` that this process is replaying into the cache (until `unregister`)."""
        if self.mode == "off":
            return
        folder = self.root / ".active"
        with _active_lock:
            count = _active_count.get(str(self.root), 0)
            _active_count[str(self.root)] = count + 1
            if count == 0:
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / f"{_HOST}.{os.getpid()}").write_bytes(b"")
                except OSError:
                    log.warning("could not register in %s", folder, exc_info=True)

    def unregister(self) -> None:
        with _active_lock:
            count = _active_count.get(str(self.root), 0) - 1
            if count < 0:
                return
            _active_count[str(self.root)] = count
            if count == 0:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.root / ".active" / f"{_HOST}.{os.getpid()}")

    # --- remote ------------------------------------------------------------------------------

    def _from_remote(self, key: str) -> dict[str, Any] | None:
        """The remote store's entry of `key`, kept here too (None when it has none or cannot be
        read: a miss costs a request, never the run)."""
        assert self.remote is not None
        try:
            body = self.remote.cache_get(key)
        except StoreError as exc:
            log.warning("%s", exc)
            return None
        if body is None:
            return None
        try:
            data: dict[str, Any] = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("ignoring a corrupt remote cache entry %s", key)
            return None
        self._keep(key, body, data)
        return data

    def _keep(self, key: str, body: bytes, value: dict[str, Any] | None = None) -> None:
        """An answer read from elsewhere (the remote store, a pre-SQLite file), written here by
        the background writer and not pushed to the remote store again."""
        if value is None:
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                return  # (`get` warns about it)
        self._local_only.add(key)
        self._enqueue(key, value)

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key` (written to disk by the background writer)."""
        if self.mode == "off":
            return
        self._enqueue(key, value)

    def _enqueue(self, key: str, value: dict[str, Any]) -> None:
        self._pending[key] = value  # (one dict store: atomic under the GIL)
        self._queue.put(key)
        with self._lock:  # (the writer takes it once per batch, so it is rarely contended)
            if self._writer is None:  # (the writer clears it, under the lock, as it stops)
                self._writer = threading.Thread(
                    target=self._write_all, name="evalpipe-cache-writer", daemon=True
                )
                self._writer.start()

    def flush(self) -> None:
        """Wait until every entry put so far is on disk."""
        with self._idle:
            while self._pending:
                if self._writer is None or not self._writer.is_alive():
                    break  # nothing left to write them (the writer failed: logged)
                self._idle.wait(timeout=1.0)

    def _write_all(self) -> None:
        while True:
            try:
                keys = [self._queue.get(timeout=5.0)]
            except queue.Empty:
                with self._lock:
                    if not self._pending and self._queue.empty():
                        self._writer = None
                        return
                continue
            time.sleep(_GATHER_S)  # (others arrive meanwhile: one transaction for all of them)
            while len(keys) < 4 * _BATCH:
                try:
                    keys.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            written = [(key, self._pending.get(key)) for key in keys]
            bodies = {key: orjson.dumps(value) for key, value in written if value is not None}
            self._store_many(bodies)
            if self.remote is not None and bodies:
                pushed = {k: v for k, v in bodies.items() if k not in self._local_only}
                if pushed:
                    self._push(pushed)
                self._local_only.difference_update(bodies)
            with self._idle:
                for key, value in written:
                    if value is not None and self._pending.get(key) is value:  # (not if put again)
                        del self._pending[key]
                if not self._pending:
                    self._idle.notify_all()
            for key, _ in written:  # on disk (or failed): whoever waits for it reads it there
                self.unclaim(key)

    def _push(self, bodies: dict[str, bytes]) -> None:
        """The batch just written here, to the remote store (still `pending` meanwhile)."""
        assert self.remote is not None
        try:
            self.remote.cache_put(bodies)
        except StoreError as exc:  # kept here; a run on another machine would pay again
            log.warning("%s", exc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _claim_is_dead(path: str) -> bool:
    """Whether the claim at `path` was left by a process that died, or has outlived its lease."""
    try:
        with open(path, "rb") as fh:
            host, _, pid = fh.read(256).decode(errors="replace").partition(" ")
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return True
    except OSError:  # unreadable: its holder is alive as far as anyone can tell
        return False
    if age > CLAIM_LEASE_S:
        return True
    if host == _HOST and pid.isdigit():
        return not _pid_alive(int(pid))
    return False


def _others_active(folder: Path) -> bool:
    """Whether a process other than this one is registered live in `folder`."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return False
    me = f"{_HOST}.{os.getpid()}"
    for name in names:
        if name == me:
            continue
        host, _, pid = name.rpartition(".")
        if host == _HOST:
            if pid.isdigit() and _pid_alive(int(pid)):
                return True
            continue
        try:
            if time.time() - os.stat(folder / name).st_mtime < _ACTIVE_MAX_AGE_S:
                return True
        except FileNotFoundError:
            continue
    return False
