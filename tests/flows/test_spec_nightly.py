"""The spec's nightly keys: schedule, traffic.window.last, dated paths, alerts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from evalpipe.errors import SpecError
from evalpipe.spec import load_spec, parse_duration
from tests.flows.nights import nightly_spec


@pytest.mark.parametrize(("text", "hours"), [("24h", 24), ("7d", 168), ("1d12h", 36), ("90m", 1.5)])
def test_durations(text: str, hours: float) -> None:
    assert parse_duration(text) == timedelta(hours=hours)


@pytest.mark.parametrize("text", ["", "24", "h", "0h", "1w", "-3h"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="24h"):
        parse_duration(text)


def test_an_unparseable_cron_is_one_clear_line(tmp_path: Path) -> None:
    path = nightly_spec(tmp_path, schedule={"cron": "0 3 * *"})
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "schedule.cron" in str(err.value) and "is not a cron expression" in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = nightly_spec(tmp_path, schedule={"cron": "0 3 * * *", "timezone": "Mars/Olympus"})
    with pytest.raises(SpecError, match=r"schedule\.timezone"):
        load_spec(path)


def test_window_last_excludes_start_and_end(tmp_path: Path) -> None:
    traffic = {"path": "traffic.jsonl.gz", "window": {"last": "24h", "start": "2026-11-01"}}
    with pytest.raises(SpecError, match="either `last` or `start`/`end`"):
        load_spec(nightly_spec(tmp_path, traffic=traffic))


def test_a_dated_path_pattern_loads_before_its_files_exist(tmp_path: Path) -> None:
    traffic = {"path": "logs/{date:%Y-%m-%d}/*.jsonl.gz"}
    assert load_spec(nightly_spec(tmp_path, traffic=traffic)).traffic.path.startswith("logs/{")


def test_a_path_pattern_naming_anything_but_date_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="Only \\{date\\} may be named"):
        load_spec(nightly_spec(tmp_path, traffic={"path": "logs/{day}/*.jsonl"}))
