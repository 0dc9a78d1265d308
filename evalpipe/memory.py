"""Giving memory a stage freed back to the system, so that the next stage of the same process
does not start on top of it."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

import pyarrow as pa

__all__ = ["release_freed_memory"]


@cache
def _malloc_trim() -> ctypes._NamedFuncPointer | None:
    """glibc's `malloc_trim` (None elsewhere: other C libraries return freed memory themselves,
    or offer no such call)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return what Arrow's memory pool and the C heap hold freed to the system.

    Both keep freed memory for reuse, and neither gives it back on its own soon: after ingesting
    10,000 records, ~100 MB sat in Arrow's pool (mimalloc) and ~60 MB in glibc's heap, resident
    through the whole replay that followed in the same process. Costs a few milliseconds.
    """
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
