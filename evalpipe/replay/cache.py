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
        self._dirs: set[Path] = set()
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
        with self._lock:
            self._pending[key] = value
            if self._writer is None:  # (the writer clears it, under the lock, as it stops)
                self._writer = threading.Thread(
                    target=self._write_all, name="evalpipe-cache-writer", daemon=True
                )
                self._writer.start()
        self._queue.put(key)

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
                key = self._queue.get(timeout=5.0)
            except queue.Empty:
                with self._lock:
                    if not self._pending:
                        self._writer = None
                        return
                continue
            with self._lock:
                value = self._pending.get(key)
            try:
                if value is not None:
                    self._write(key, value)
            except OSError:
                log.warning("could not write cache entry %s", key, exc_info=True)
            finally:
                with self._idle:
                    self._pending.pop(key, None)
                    if not self._pending:
                        self._idle.notify_all()

    def _write(self, key: str, value: dict[str, Any]) -> None:
        p = self._path(key)
        if p.parent not in self._dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(p.parent)
        # A writer-unique temp name then an atomic rename: readers never see half an entry.
        tmp = p.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(value))
        os.replace(tmp, p)
