"""Money and time: cost per request, latency percentiles and the projected month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from evalpipe.report.html import money_text, money_view
from evalpipe.report.money import money
from evalpipe.tables import RECORDS, RESPONSES, from_rows

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _run() -> tuple[object, object]:
    stamps = [T0, T0 + timedelta(hours=6), T0 + timedelta(days=1, hours=6), T0 + timedelta(days=2)]
    tenants = ["acme", "acme", "acme", "globex"]
    records = from_rows(
        [
            {"record_id": f"r{i}", "timestamp": t, "attributes": [("tenant", tenant)]}
            for i, (t, tenant) in enumerate(zip(stamps, tenants, strict=True))
        ],
        RECORDS,
    )
    rows = []
    for i in range(4):
        rows.append(
            {
                "record_id": f"r{i}",
                "arm": "baseline",
                "repeat": 0,
                "status": "ok",
                "cost_usd": 0.01,
                "latency_ms": 100.0 * (i + 1),
            }
        )
        ok = i != 3
        rows.append(
            {
                "record_id": f"r{i}",
                "arm": "cheap",
                "repeat": 0,
                "status": "ok" if ok else "error",
                "cost_usd": 0.004 if ok else None,
                "latency_ms": 50.0 * (i + 1),
                "ttft_ms": 20.0,
            }
        )
    return records, from_rows(rows, RESPONSES)


def test_month_is_requests_per_day_times_thirty_times_mean_cost() -> None:
    records, responses = _run()
    m = money(records, responses, arms=["baseline", "cheap"], slice_columns=["tenant"])
    assert m.days == pytest.approx(2.0) and m.per_day == pytest.approx(2.0)
    base, cheap = m.arm("baseline"), m.arm("cheap")
    assert base is not None and cheap is not None
    assert base.cost_per_request == pytest.approx(0.01)
    assert base.monthly == pytest.approx(0.01 * 2 * 30)
    assert cheap.answered == 3 and cheap.monthly == pytest.approx(0.004 * 2 * 30)
    assert base.latency[0] == pytest.approx(250.0) and base.ttft is None
    assert cheap.ttft == (pytest.approx(20.0),) * 3


def test_sampled_out_requests_count_towards_the_volume() -> None:
    records, responses = _run()
    m = money(records, responses, arms=["baseline"], slice_columns=[], extra_logged=4)
    assert m.logged == 8 and m.per_day == pytest.approx(4.0)


def test_breakdowns_by_slice_and_hour_add_up_to_the_total() -> None:
    records, responses = _run()
    m = money(records, responses, arms=["baseline", "cheap"], slice_columns=["tenant"])
    by = {b.dimension: b for b in m.breakdowns}
    assert set(by) == {"tenant", "hour of day (UTC)"}
    tenant = {r.value: r for r in by["tenant"].rows}
    assert tenant["acme"].records == 3 and tenant["acme"].share == pytest.approx(0.75)
    assert tenant["acme"].monthly["baseline"] == pytest.approx(0.01 * 2 * 0.75 * 30)
    assert tenant["globex"].monthly["cheap"] is None  # its one request failed: no cost known
    for b in by.values():
        total = sum(r.monthly["baseline"] or 0 for r in b.rows)
        assert total == pytest.approx(0.6)
    assert [r.value for r in by["hour of day (UTC)"].rows] == ["00:00–01:00", "06:00–07:00"]


def test_the_card_says_what_the_switch_saves_in_dollars() -> None:
    records, responses = _run()
    m = money(records, responses, arms=["baseline", "cheap"], slice_columns=[])
    text = money_text(m, "cheap")
    assert text == (
        "At the logged volume (~2 requests a day), switching would save $0.36 a month "
        "($0.24 instead of $0.60)."
    )
    view = money_view(m, ["cheap"], {"baseline": "baseline"})
    assert [r.delta for r in view.rows] == ["", "−$0.36"] and view.rows[1].saves
    assert view.ttft_measured and view.rows[0].ttft == ["—"] * 3


def test_no_projection_without_a_window() -> None:
    records, responses = _run()
    one = records.slice(0, 1)
    m = money(one, responses, arms=["baseline"], slice_columns=["tenant"])
    assert m.per_day is None and m.breakdowns == [] and m.arms[0].monthly is None
    assert money_text(m, "baseline") is None
    assert "No monthly projection" in money_view(m, [], {}).basis


def test_latency_percentiles_are_drawn_per_arm_on_one_axis_in_ms() -> None:
    records, responses = _run()
    m = money(records, responses, arms=["baseline", "cheap"], slice_columns=[])
    view = money_view(m, ["cheap"], {"baseline": "baseline"})
    latency, ttft = view.strips  # TTFT too: the cheap arm streamed
    assert "p50, p95 and p99" in latency.title and "milliseconds" in latency.axis
    assert [r.label for r in latency.rows] == ["baseline", "cheap"]
    assert all(latency.x0 <= r.p50 <= r.p95 <= r.p99 <= latency.x1 for r in latency.rows)
    assert latency.ticks[0][1] == "0"
    assert [r.label for r in ttft.rows] == ["cheap"] and "first token" in ttft.title
