"""Progress lines say retries, 429s and a breaker that is not closed."""

from __future__ import annotations

import pytest

from evalpipe.cli import _ProgressView
from evalpipe.replay.engine import Progress


def test_plain_progress_lines_show_retries_429s_and_the_breaker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with _ProgressView() as view:
        view(Progress("replay", "cand", 1, 8, 0.0))
        view(Progress("replay", "cand", 2, 8, 0.0, retries=3, throttled=2, breaker="open"))
        view(Progress("replay", "cand", 3, 8, 0.0, retries=5, throttled=2, breaker="closed"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "replay cand: 1/8"
    assert "replay cand: 2/8 (3 retries, 2 × 429, breaker open)" in lines


def test_partitions_add_up_as_their_events_come(capsys: pytest.CaptureFixture[str]) -> None:
    """Each partition reports its own done/total; the line shows their sums (updated per
    event, a partition's newer event replacing its older)."""
    with _ProgressView() as view:
        view(Progress("replay", "cand", 1, 4, 0.0, part=0))
        view(Progress("replay", "cand", 4, 4, 0.0, part=0))
        view(Progress("replay", "cand", 4, 4, 0.0, part=1))
        view(Progress("replay", "base", 2, 2, 0.0, part=1))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["replay cand: 1/4", "replay cand: 4/4", "replay base: 2/2"]
