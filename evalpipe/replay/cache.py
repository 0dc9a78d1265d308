"""Content-addressed cache of provider answers, shared by all runs (ARCHITECTURE.md, cache).

One small JSON file per key under ``cache/<2 hex>/<key>.json``, written atomically, so any number of
workers (threads, processes, Dask/Ray) can share it with no lock. Entries are written by a
background thread (a file's creation costs about 80 µs, which the event loop sending requests
should not pay); `get` sees entries still waiting, and `flush` waits until all are on disk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any, Literal

import orjson

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

    def __init__(self, root: Path, mode: CacheMode = "read_write") -> None:
        self.root, self.mode = root, mode
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
            return None
        except orjson.JSONDecodeError:
            log.warning("ignoring a corrupt cache entry %s", p)
            return None
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
            for key, value in written:
                try:
                    if value is not None:
                        self._write(root, tag, key, value)
                except OSError:
                    log.warning("could not write cache entry %s", key, exc_info=True)
            with self._idle:
                for key, value in written:
                    if value is not None and self._pending.get(key) is value:  # (not if put again)
                        del self._pending[key]
                if not self._pending:
                    self._idle.notify_all()

    def _write(self, root: str, tag: str, key: str, value: dict[str, Any]) -> None:
        folder = f"{root}/{key[:2]}"
        if folder not in self._dirs:
            os.makedirs(folder, exist_ok=True)
            self._dirs.add(folder)
        # A writer-unique temp name then an atomic rename: readers never see half an entry.
        path, tmp = f"{folder}/{key}.json", f"{folder}/.{key}.{tag}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = memoryview(orjson.dumps(value))
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
