"""files: streaming lines with bounded memory, gzip, blank lines, JSON documents, torn files."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from evalpipe.errors import InputError
from evalpipe.ingest import files
from evalpipe.ingest.files import BadLine, iter_items, iter_lines, list_files


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"a": 2}\r\n{"a": 3}')  # CRLF and no final newline
    assert [(n, v) for n, _, v in iter_items(path)] == [(1, {"a": 1}), (4, {"a": 2}), (5, {"a": 3})]


def test_lines_split_across_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_BLOCK", 7)
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(
        gzip.compress(b"".join(orjson.dumps({"i": i, "pad": "x" * i}) + b"\n" for i in range(30)))
    )
    assert [v["i"] for _, _, v in iter_items(path)] == list(range(30))


def test_overlong_line_is_cut_without_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(files, "_BLOCK", 256)
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + b"x" * 5000 + b'"}\n{"a": 2}\n')
    items = list(iter_lines(path))
    assert [(n, cut) for n, _, cut in items] == [(1, False), (2, True), (3, False)]
    assert len(items[1][1]) <= 8192


def test_json_array_and_pretty_object(tmp_path: Path) -> None:
    arr = tmp_path / "a.json"
    arr.write_bytes(orjson.dumps([{"i": 1}, {"i": 2}], option=orjson.OPT_INDENT_2))
    assert [(n, v) for n, _, v in iter_items(arr)] == [(1, {"i": 1}), (2, {"i": 2})]
    obj = tmp_path / "o.json"
    obj.write_bytes(orjson.dumps({"resourceSpans": []}, option=orjson.OPT_INDENT_2))
    assert [v for _, _, v in iter_items(obj)] == [{"resourceSpans": []}]


def test_jsonl_whose_first_line_is_torn_is_still_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(b'{"a": \n{"a": 2}\n')
    values = [v for _, _, v in iter_items(path)]
    assert isinstance(values[0], BadLine) and values[1] == {"a": 2}


def test_torn_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(2000)))
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    items = list(iter_items(path))
    good = [v for _, _, v in items if not isinstance(v, BadLine)]
    assert len(good) > 10
    assert isinstance(items[-1][2], BadLine)
    assert "ends early" in items[-1][2].reason


def test_list_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        list_files(tmp_path / "missing")
    with pytest.raises(InputError, match="no log files"):
        list_files(tmp_path)
    with pytest.raises(InputError, match="matches no file"):
        list_files(str(tmp_path / "*.jsonl"))
