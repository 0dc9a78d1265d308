"""Auto-detection of a file's format by sniffing its first records."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Final

from evalpipe.errors import InputError
from evalpipe.ingest.files import BadLine, is_parquet, iter_items, list_files
from evalpipe.ingest.formats import ADAPTERS

__all__ = ["SNIFF_RECORDS", "detect_file", "detect_format", "detect_value"]

log = logging.getLogger(__name__)

SNIFF_RECORDS: Final = 20
"""Parsed records looked at per file."""


def detect_value(obj: Any) -> str | None:
    """Versioned name of the first adapter that recognises one parsed record, or None."""
    for cls in ADAPTERS.values():
        try:
            if cls.sniff(obj):
                return f"{cls.name}@{cls.version}"
        except Exception:  # a sniffer must never stop detection
            log.debug("sniffer %s failed", cls.name, exc_info=True)
    return None


def detect_file(path: Path) -> str:
    """The versioned format name of one file (`InputError` when it cannot be told)."""
    if is_parquet(path):
        return _detect_parquet(path)
    votes: Counter[str] = Counter()
    seen = 0
    items = iter_items(path)
    try:
        for _, _, value in items:
            if isinstance(value, BadLine):
                continue
            seen += 1
            name = detect_value(value)
            if name is not None:
                votes[name] += 1
            if seen >= SNIFF_RECORDS:
                break
    finally:
        items.close()
    if not votes:
        what = "no parseable record" if seen == 0 else f"{seen} records of no known format"
        raise InputError(
            str(path),
            f"cannot detect the format ({what})",
            "Pass --format (traffic.format in the spec); `evalpipe ingest --help` lists them.",
        )
    # first-listed adapter wins a tie, as in detect_value
    order = {f"{cls.name}@{cls.version}": i for i, cls in enumerate(ADAPTERS.values())}
    return max(votes, key=lambda name: (votes[name], -order[name]))


def _detect_parquet(path: Path) -> str:
    import pyarrow.parquet as pq

    try:
        names = set(pq.read_schema(path).names)
    except Exception as exc:
        raise InputError(str(path), f"not a readable Parquet file ({exc})") from exc
    for cls in ADAPTERS.values():
        columns = getattr(cls, "parquet_columns", None)
        if columns and set(columns) <= names:
            return f"{cls.name}@{cls.version}"
    raise InputError(
        str(path),
        "cannot detect the format of this Parquet file",
        "Expected records.parquet (canonical) or a Langfuse export; pass --format.",
    )


def detect_format(path: Path) -> str:
    """The versioned format name (``openai_chat@1``) of a file, sniffed from its first records.

    For a folder or glob, every file is sniffed; the answer is their format when they agree and
    ``mixed`` when they do not (ingestion detects per file either way).

    Raises:
        InputError: the path is missing, or a file's format cannot be recognised.
    """
    names = {detect_file(f) for f in list_files(path)}
    return names.pop() if len(names) == 1 else "mixed"
