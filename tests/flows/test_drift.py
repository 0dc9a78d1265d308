"""Findings across nights (pure): snapshot and verdict events, drift states, A/A floor."""

from __future__ import annotations

import numpy as np

from evalpipe.flows.drift import (
    ARM_AA,
    ARM_LOGGED_DIFF,
    NightSummary,
    findings,
    pool,
    said_change,
    to_say,
)

SNAP = {"baseline": {"models": ["m-1"], "fingerprints": ["fp_1"]}}
NEW_SNAP = {"baseline": {"models": ["m-1-rev2"], "fingerprints": ["fp_2"]}}


def _night(
    i: int, p: float, n: int = 500, snap: dict | None = None, **extra: float
) -> NightSummary:
    metrics = {("baseline", "ok"): (n, p, p * (1 - p) / n)}
    metrics[(ARM_LOGGED_DIFF, "ok")] = (n, extra.get("logged", 0.0), 0.02 / n)
    if "aa" in extra:
        metrics[(ARM_AA, "exact")] = (n, extra["aa"], 0.25 / n)
    return NightSummary(f"2026-11-{i:02d}", metrics, snap or SNAP, {"cand": "GO"})


def test_pool_weights_nights_by_their_n() -> None:
    n, mean, var = pool([(100, 0.9, 0.0009), (300, 0.8, 0.0005)])
    assert n == 400 and np.isclose(mean, 0.825)
    assert np.isclose(var, (100**2 * 0.0009 + 300**2 * 0.0005) / 400**2)


def test_a_snapshot_change_is_an_event_of_its_night_only() -> None:
    nights = [_night(1, 0.9), _night(2, 0.9), _night(3, 0.9, snap=NEW_SNAP)]
    keys = [f.key for f in findings(nights, {"ok": 0.02})]
    assert keys == ["snapshot:baseline"]
    nights.append(_night(4, 0.9, snap=NEW_SNAP))
    assert findings(nights, {"ok": 0.02}) == []


def test_a_verdict_change_is_found() -> None:
    nights = [_night(1, 0.9), _night(2, 0.9)]
    nights[1] = NightSummary(nights[1].night, nights[1].metrics, SNAP, {"cand": "NOT-PROVEN"})
    (found,) = findings(nights, {"ok": 0.02})
    assert found.key == "verdict:cand" and found.text == "candidate cand: GO → NOT-PROVEN"


def test_a_drop_past_the_margin_after_the_snapshot_change_is_found_and_noise_is_not() -> None:
    steady = [_night(i, 0.90) for i in range(1, 12)]
    assert findings(steady, {"ok": 0.02}) == []
    dropped = steady + [_night(12 + k, 0.80, snap=NEW_SNAP) for k in range(3)]
    keys = {f.key for f in findings(dropped, {"ok": 0.02})}
    assert "drift:ok" in keys


def _alerts_over(nights: list[NightSummary]) -> list[tuple[str, list[str], list[str]]]:
    """Walk the nights as the nightly flow does: (night, new keys, cleared keys) per alert."""
    before: dict[str, dict] = {}
    said: set[str] = set()
    alerts = []
    for i in range(len(nights)):
        found = findings(nights[: i + 1], {"ok": 0.02})
        states = {f.key: f.as_dict() for f in found if not f.event}
        events = [f.as_dict() for f in found if f.event]
        new, cleared = to_say(before, states, events, said)
        if new or cleared:
            alerts.append((nights[i].night, [f["key"] for f in new], [f["key"] for f in cleared]))
            if said_change({"new": new}):
                said.add(nights[i].night)
        before = states
    return alerts


def test_a_snapshot_change_and_the_drop_that_follows_it_make_one_alert() -> None:
    steady = [_night(i, 0.90) for i in range(1, 12)]
    changed = [_night(12 + k, 0.86, snap=NEW_SNAP) for k in range(10)]
    alerts = _alerts_over(steady + changed)
    assert alerts == [("2026-11-12", ["snapshot:baseline"], [])]
    # the drift was found, and is recorded as part of the change
    found = findings(steady + changed, {"ok": 0.02})
    drift = next(f for f in found if f.key == "drift:ok")
    assert drift.evidence["change"] == "2026-11-12"


def test_a_drift_without_a_snapshot_change_is_alerted_once() -> None:
    nights = [_night(i, 0.90, logged=-0.10 if i >= 4 else 0.0) for i in range(1, 15)]
    alerts = _alerts_over(nights)
    assert [new for _, new, _ in alerts] == [["logged:ok"]]


def test_the_replayed_baseline_far_from_the_logged_answers_is_found() -> None:
    nights = [_night(1, 0.9), _night(2, 0.9, logged=-0.10)]
    keys = {f.key for f in findings(nights, {"ok": 0.02})}
    assert "logged:ok" in keys


def test_a_moved_aa_noise_floor_is_found() -> None:
    nights = [_night(1, 0.9, aa=0.70), _night(2, 0.9, aa=0.70), _night(3, 0.9, aa=0.40)]
    keys = {f.key for f in findings(nights, {"ok": 0.02})}
    assert keys == {"noise:exact"}


def test_aa_nights_raise_few_false_findings_over_simulated_months() -> None:
    rng = np.random.default_rng(7)
    months, alarms = 60, 0
    for _ in range(months):
        counts = rng.binomial(400, 0.9, size=30)
        nights: list[NightSummary] = []
        seen = False
        for i, c in enumerate(counts):
            p = c / 400
            nights.append(_night(i + 1, p, n=400))
            seen = seen or any(not f.event for f in findings(nights, {"ok": 0.02}))
        alarms += seen
    assert alarms / months <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / months)
