"""Content-addressed cache of provider answers, shared by all runs (ARCHITECTURE.md, cache).

One small JSON file per key under ``cache/<2 hex>/<key>.json``, written atomically, so any number of
workers (threads, processes, Dask/Ray) can share it with no lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
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

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.mode != "read_write":
            return None
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
        if self.mode == "off":
            return
        p = self._path(key)
        if p.parent not in self._dirs:
            p.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(p.parent)
        # A writer-unique temp name then an atomic rename: readers never see half an entry.
        tmp = p.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(value))
        os.replace(tmp, p)
