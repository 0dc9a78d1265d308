"""Content-addressed cache of provider answers, shared by all runs (ARCHITECTURE.md, cache).

One small JSON file per key under ``cache/<2 hex>/<key>.json``, written atomically, so any number of
workers (threads, processes, Dask/Ray) can share it with no lock. Entries are written by a
background thread (a file's creation costs about 80 µs, which the event loop sending requests
should not pay); `get` sees entries still waiting, and `flush` waits until all are on disk.

With a remote store (`evalpipe.store.remote`), the writer also pushes each batch it wrote there
(concurrent puts), and `flush` waits for that too; a key missing here is looked up there (and
kept here).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from evalpipe.errors import StoreError

if TYPE_CHECKING:
    from evalpipe.store.remote import Remote

__all__ = ["ResponseCache", "request_key"]

log = logging.getLogger(__name__)

CacheMode = Literal["read_write", "write_only", "off"]


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
