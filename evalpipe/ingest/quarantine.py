"""Rejected input as rows: file, line, field, reason and the raw text (truncated, PII redacted)."""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

from evalpipe.pii import redact_pii
from evalpipe.tables import QUARANTINE

__all__ = ["RAW_CHARS", "QuarantineColumns", "raw_text"]

RAW_CHARS: Final = 2000
"""Characters of the raw line kept in a quarantine row."""


def raw_text(raw: bytes | str | None) -> str | None:
    """The first RAW_CHARS characters of a raw line, undecodable bytes replaced."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        # 4 bytes per character at most, so this slice never cuts the kept text short
        raw = raw[: RAW_CHARS * 4].decode("utf-8", errors="replace")
    return raw[:RAW_CHARS].rstrip("\r\n")


class QuarantineColumns:
    """Quarantine rows collected column-wise."""

    __slots__ = ("field", "file", "line", "raw", "reason")

    def __init__(self) -> None:
        self.file: list[str] = []
        self.line: list[int | None] = []
        self.field: list[str | None] = []
        self.reason: list[str] = []
        self.raw: list[str | None] = []

    def __len__(self) -> int:
        return len(self.file)

    def add(
        self, file: str, line: int | None, field: str | None, reason: str, raw: Any = None
    ) -> None:
        self.file.append(file)
        self.line.append(line)
        self.field.append(field)
        self.reason.append(reason)
        self.raw.append(raw_text(raw) if isinstance(raw, bytes | str | None) else None)

    def to_table(self, *, redact: bool = True) -> pa.Table:
        """The rows as a QUARANTINE table, with PII in `raw` redacted unless `redact` is False."""
        raw = pa.array(self.raw, pa.string())
        raw_col: pa.Array | pa.ChunkedArray = redact_pii(raw) if redact else raw
        return pa.Table.from_arrays(
            [
                pa.array(self.file, pa.string()),
                pa.array(self.line, pa.int64()),
                pa.array(self.field, pa.string()),
                pa.array(self.reason, pa.string()),
                raw_col,
            ],
            schema=QUARANTINE,
        )
