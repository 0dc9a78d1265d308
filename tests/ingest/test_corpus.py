"""The corpus of framework-shaped exports: each file ingests to the counts its README states."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from evalpipe.ingest import ingest_paths

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(p for p in CORPUS.iterdir() if p.name != "README.md")


def _table() -> dict[str, list[str]]:
    """The first table of the README: file name → its other cells."""
    rows: dict[str, list[str]] = {}
    for line in (CORPUS / "README.md").read_text().splitlines():
        if not line.startswith("| `"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def _counted(n: int, by_reason: dict[str, int]) -> str:
    """``2 (not a generation 1, repeated observation id 1)``, most frequent reason first."""
    reasons = sorted(by_reason.items(), key=lambda item: (-item[1], item[0]))
    return f"{n}" + (f" ({', '.join(f'{r} {k}' for r, k in reasons)})" if reasons else "")


def test_every_file_has_a_row() -> None:
    assert sorted(_table()) == [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_ingests_to_its_counts(path: Path) -> None:
    result = ingest_paths(path)
    issues = Counter(i for i in result.records["replay_issue"].to_pylist() if i is not None)
    got = [
        result.formats[str(path)],
        str(result.counts["ingested"]),
        str(result.counts["quarantined"]),
        _counted(result.counts["skipped"], result.skipped_by_reason),
        _counted(sum(issues.values()), dict(issues)),
    ]
    assert got == _table()[path.name], result.quarantine.to_pylist()
