"""Stable hashes for the fake provider's deterministic choices (never Python's salted `hash`)."""

from __future__ import annotations

import hashlib
import string
from typing import Final

__all__ = ["alnum", "draw", "mix", "stable_hash"]

_ALNUM: Final = string.ascii_letters + string.digits


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of the parts' string forms, the same in every process and run."""
    data = "\x1f".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def mix(seed: int, *parts: object) -> int:
    """A new seed derived from a seed and some parts."""
    return stable_hash(seed, *parts)


def draw(key: str, purpose: str) -> float:
    """A uniform number in [0, 1) for one purpose of one request."""
    return stable_hash(key, purpose) / 2**64


def alnum(*parts: object, length: int) -> str:
    """A deterministic string of ASCII letters and digits (for ids)."""
    data = "\x1f".join(map(str, parts)).encode()
    raw = hashlib.blake2b(data, digest_size=32).digest()
    n = int.from_bytes(raw, "big")
    out = []
    for _ in range(length):
        n, r = divmod(n, len(_ALNUM))
        out.append(_ALNUM[r])
    return "".join(out)
