"""The catalog's nights tables: written and read back from a real DuckDB file."""

from __future__ import annotations

from pathlib import Path

from evalpipe.store import Night, read_night_metrics, read_nights, record_night


def _night(day: str, status: str = "ok") -> Night:
    return Night(
        series="s1",
        spec_name="spec",
        night=day,
        run_id=f"run-{day}",
        status=status,
        as_of=f"{day}T03:00:00+00:00",
        records=40,
        snapshots={"baseline": {"models": ["m"], "fingerprints": ["fp_1"]}},
        verdicts={"cand": "GO"},
        findings=[{"key": "drift:ok", "event": False, "text": "t"}],
        alerted={},
        alert_status="none",
    )


def test_nights_round_trip_oldest_first_and_a_rerun_night_replaces_its_row(tmp_path: Path) -> None:
    metric = {"arm": "baseline", "metric": "ok", "n": 40, "mean": 0.9, "var": 0.002}
    record_night(tmp_path, _night("2026-11-03"), [metric])
    record_night(tmp_path, _night("2026-11-02", "skipped: no traffic"), [])
    record_night(tmp_path, _night("2026-11-03", "failed: provider"), [metric, metric])
    nights = read_nights(tmp_path, series="s1")
    assert [(n.night, n.status) for n in nights] == [
        ("2026-11-02", "skipped: no traffic"),
        ("2026-11-03", "failed: provider"),
    ]
    assert nights[1].snapshots == {"baseline": {"models": ["m"], "fingerprints": ["fp_1"]}}
    assert nights[1].findings[0]["key"] == "drift:ok"
    rows = read_night_metrics(tmp_path, "s1")
    assert len(rows) == 2 and rows[0]["night"] == "2026-11-03" and rows[0]["mean"] == 0.9


def test_no_catalog_means_no_nights(tmp_path: Path) -> None:
    assert read_nights(tmp_path) == [] and read_night_metrics(tmp_path, "s1") == []
