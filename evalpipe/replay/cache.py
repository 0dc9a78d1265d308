"""Content-addressed cache of provider answers, shared by all runs (ARCHITECTURE.md, cache).

One small JSON file per key under ``cache/<2 hex>/<key>.json``, written atomically, so any number of
workers (threads, processes, Dask/Ray) can share it with no lock. Entries are written by a
background thread (a file's creation costs about 80 µs, which the event loop sending requests
should not pay); `get` sees entries still waiting, and `flush` waits until all are on disk.

With a remote store (`evalpipe.store.remote`), the writer also pushes each batch it wrote there
(concurrent puts), and `flush` waits for that too; a key missing here is looked up there (and
kept here).

Runs sharing the cache at once pay once for a request they both ask (`ResponseCache.claim`): the
first to miss claims the key, the others wait for its answer. Within a process the claim is a set
in memory (always on: partitions on threads, several runs of one process). Across processes it is
a file `<key>.claim` created exclusively, used when other processes may be replaying into this
cache: `EVALPIPE_CACHE_CLAIMS=1` in the environment (the task runners set it for their workers), or
another live process registered in `.active/` (every replaying process registers there). A
claim whose process died (same host) or that is older than `CLAIM_LEASE_S` is taken over, so a
killed run never blocks the next. A process that starts replaying while another already is may
still pay for a request the other sent in the second before it saw the newcomer (the registry is
read at most once a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import queue
import socket
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
        self._dirs: set[str] = set()
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

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.mode != "read_write":
            return None
        with self._lock:
            waiting = self._pending.get(key)
        if waiting is not None:
            return waiting
        p = self._path(key)
        try:
            data: dict[str, Any] = orjson.loads(p.read_bytes())
        except FileNotFoundError:
            return None if self.remote is None else self._from_remote(key)
        except orjson.JSONDecodeError:
            log.warning("ignoring a corrupt cache entry %s", p)
            return None
        return data

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
                    if not os.path.exists(self._path(key)):
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
        return f"{self.root}/{key[:2]}/{key}.claim"

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
        try:
            self._store(str(self.root), f"{os.getpid()}.{threading.get_ident()}", key, body)
        except OSError:
            log.warning("could not keep cache entry %s", key, exc_info=True)
        return data

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Store `value` under `key` (written to disk by the background writer)."""
        if self.mode == "off":
            return
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
        root, tag = str(self.root), f"{os.getpid()}.{threading.get_ident()}"
        while True:
            try:
                keys = [self._queue.get(timeout=5.0)]
            except queue.Empty:
                with self._lock:
                    if not self._pending and self._queue.empty():
                        self._writer = None
                        return
                continue
            while len(keys) < 256:  # whatever else is waiting: one pass, one wake-up
                try:
                    keys.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            written = [(key, self._pending.get(key)) for key in keys]
            bodies: dict[str, bytes] = {}
            for key, value in written:
                try:
                    if value is not None:
                        bodies[key] = self._write(root, tag, key, value)
                except OSError:
                    log.warning("could not write cache entry %s", key, exc_info=True)
            if self.remote is not None and bodies:
                self._push(bodies)
            with self._idle:
                for key, value in written:
                    if value is not None and self._pending.get(key) is value:  # (not if put again)
                        del self._pending[key]
                if not self._pending:
                    self._idle.notify_all()
            for key, _ in written:  # on disk (or failed): whoever waits for it reads the file
                self.unclaim(key)

    def _push(self, bodies: dict[str, bytes]) -> None:
        """The batch just written here, to the remote store (still `pending` meanwhile)."""
        assert self.remote is not None
        try:
            self.remote.cache_put(bodies)
        except StoreError as exc:  # kept here; a run on another machine would pay again
            log.warning("%s", exc)

    def _write(self, root: str, tag: str, key: str, value: dict[str, Any]) -> bytes:
        body = orjson.dumps(value)
        self._store(root, tag, key, body)
        return body

    def _store(self, root: str, tag: str, key: str, body: bytes) -> None:
        folder = f"{root}/{key[:2]}"
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        # A writer-unique temp name then an atomic rename: readers never see half an entry.
        path, tmp = f"{folder}/{key}.json", f"{folder}/.{key}.{tag}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = memoryview(body)
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)


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
