"""Input files: which ones a path means, and their items streamed with bounded memory.

JSON Lines (``.jsonl``, ``.jsonl.gz``, and ``.json`` files that are really JSON Lines) are read in
blocks and split on newlines, so memory is one block plus the longest line, and a line longer than
`MAX_LINE_BYTES` is skipped without ever being held whole. A ``.json`` file holding one array (or
one pretty-printed object) is parsed whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, Final

import orjson

from evalpipe.errors import InputError
from evalpipe.logfiles import list_files

__all__ = [
    "MAX_LINE_BYTES",
    "BadLine",
    "Item",
    "is_parquet",
    "iter_items",
    "iter_lines",
    "line_item",
    "list_files",
]

MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""Longest line read; a longer one is quarantined (only its start is kept)."""

_BLOCK: Final = 1 << 20


class BadLine:
    """A line that is not a JSON value: why, and its first bytes."""

    __slots__ = ("raw", "reason")

    def __init__(self, reason: str, raw: bytes) -> None:
        self.reason, self.raw = reason, raw


Item = tuple[int, bytes | None, Any]
"""(1-based line or array position, raw bytes when line-based, parsed value or BadLine)."""


def is_parquet(path: Path) -> bool:
    if path.name.lower().endswith(".parquet"):
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def _blocks(path: Path) -> Iterator[bytes]:
    """The file's bytes in blocks, gunzipped when gzip (several members too).

    A torn or corrupt gzip yields what decompressed, then a newline (to end a torn last line)
    and raises `_Truncated`.
    """
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(str(path), f"cannot be read ({exc.strerror or exc})") from exc
    with fh:
        head = fh.read(2)
        fh.seek(0)
        if head != b"\x1f\x8b":
            while block := fh.read(_BLOCK):
                yield block
            return
        inflate = zlib.decompressobj(31)  # 31: gzip container
        in_member = False
        while True:
            data = fh.read(_BLOCK)
            if not data:
                if in_member:
                    yield b"\n"
                    raise _Truncated("compressed data ends early")
                return
            while data:
                if not in_member:
                    inflate = zlib.decompressobj(31)
                    in_member = True
                try:
                    out = inflate.decompress(data)
                except zlib.error as exc:
                    yield b"\n"
                    raise _Truncated(str(exc)) from exc
                if out:
                    yield out
                if inflate.eof:
                    in_member = False
                    data = inflate.unused_data
                else:
                    data = b""


class _Truncated(Exception):
    pass


def iter_lines(path: Path) -> Generator[tuple[int, bytes, bool]]:
    """(line number, bytes without the newline, whether it was cut at MAX_LINE_BYTES).

    Blank lines are skipped (but counted). A torn file (bad gzip) ends with a final
    ``(line, b"", True)`` marker carrying no bytes.
    """
    line_no = 0
    pending: list[bytes] = []
    pending_len = 0
    overlong = False
    try:
        for block in _blocks(path):
            start = 0
            while True:
                nl = block.find(b"\n", start)
                if nl < 0:
                    rest = block[start:]
                    if rest and not overlong:
                        pending.append(rest)
                        pending_len += len(rest)
                        if pending_len > MAX_LINE_BYTES:
                            overlong = True
                            head = b"".join(pending)[:8192]
                            pending, pending_len = [head], len(head)
                    break
                piece = block[start:nl]
                start = nl + 1
                line_no += 1
                if overlong:
                    yield line_no, pending[0], True
                    pending, pending_len, overlong = [], 0, False
                    continue
                if pending:
                    piece = b"".join([*pending, piece])
                    pending, pending_len = [], 0
                if len(piece) > MAX_LINE_BYTES:
                    yield line_no, piece[:8192], True
                    continue
                if piece.strip():
                    yield line_no, piece, False
    except _Truncated:
        yield line_no + 1, b"", True
        return
    if overlong:
        yield line_no + 1, pending[0], True
    elif pending:
        tail = b"".join(pending)
        if tail.strip():
            yield line_no + 1, tail, False


def _looks_whole(path: Path) -> bool:
    """Whether a ``.json`` file is one JSON document (an array, or an object over many lines)."""
    lines = iter_lines(path)
    try:
        for _, line, cut in lines:
            if cut:
                return False
            first = line.lstrip()[:1]
            if first == b"[":
                return True
            if first != b"{":
                return False
            try:
                orjson.loads(line)
            except orjson.JSONDecodeError:
                return True
            return False
        return False
    finally:
        lines.close()


def _whole(path: Path) -> Any:
    """The parsed document, or None when it is not one JSON document."""
    try:
        return orjson.loads(b"".join(_blocks(path)))
    except (orjson.JSONDecodeError, _Truncated):
        return None


def iter_items(path: Path) -> Generator[Item]:
    """Parsed items of a JSON / JSON Lines file; an unparseable line is a `BadLine` item.

    A ``.json`` file holding one document yields its array elements (position = line) or the
    object itself; anything else is read as JSON Lines.
    """
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".json") and _looks_whole(path):
        value = _whole(path)
        if isinstance(value, list):
            for i, element in enumerate(value, start=1):
                yield i, None, element
            return
        if value is not None:
            yield 1, None, value
            return
    for line_no, line, cut in iter_lines(path):
        yield line_no, line, line_item(line, cut)


def line_item(line: bytes, cut: bool) -> Any:
    """The parsed value of one line from `iter_lines`, or a `BadLine` saying why not."""
    if cut:
        reason = (
            "file ends early (torn or corrupt compressed data)"
            if not line
            else f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB"
        )
        return BadLine(reason, line)
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return BadLine(_json_reason(line, exc), line)


def _json_reason(line: bytes, exc: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"not valid UTF-8 (byte {err.start})"
    return f"not valid JSON: {exc}"
