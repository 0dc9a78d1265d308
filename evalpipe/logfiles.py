"""Which log files a traffic path means: one file, every log file under a folder, or a glob.

One rule for ingest (which reads them) and the spec hash (which fingerprints them), so a run is
reused only while the files ingest would read are unchanged.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Final

from evalpipe.errors import InputError

__all__ = ["LOG_SUFFIXES", "list_files"]

LOG_SUFFIXES: Final = (
    ".jsonl",
    ".json",
    ".ndjson",
    ".jsonl.gz",
    ".json.gz",
    ".ndjson.gz",
    ".parquet",
)
"""Names a folder's log files end with (a file or a glob named outright is read whatever its name)."""


def list_files(path: str | Path) -> list[Path]:
    """The input files a path means: a file, every input file under a folder, or a glob.

    Raises:
        InputError: nothing exists there, or a folder holds no input file.
    """
    text = str(path)
    p = Path(text)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(
            f
            for f in p.rglob("*")
            if f.is_file()
            and not any(part.startswith(".") for part in f.relative_to(p).parts)
            and f.name.lower().endswith(LOG_SUFFIXES)
        )
        if not files:
            raise InputError(
                text,
                "the folder holds no log files",
                "Expected .jsonl, .jsonl.gz, .json or .parquet.",
            )
        return files
    if glob.has_magic(text):
        files = sorted(Path(f) for f in glob.glob(text, recursive=True) if Path(f).is_file())
        if files:
            return files
        raise InputError(text, "the pattern matches no file")
    raise InputError(text, "no such file or folder", "Check the path (`traffic.path` in a spec).")
