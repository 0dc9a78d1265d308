"""The forest plot above the fold and what would settle a NOT-PROVEN candidate."""

from __future__ import annotations

from evalpipe.report.charts import nice_ticks
from evalpipe.report.forest import forest_panels
from evalpipe.report.html import need_text

from .conftest import HandRun


def test_forest_has_a_row_per_gated_metric_on_a_titled_axis_with_units(run: HandRun) -> None:
    panels = forest_panels(run.gate.table, "good")
    assert len(panels) == 1  # valid_json and helpfulness share percentage points
    p = panels[0]
    assert [r.label for r in p.rows] == ["valid_json", "helpfulness"]
    assert "good" in p.title and "95% CI" in p.title
    assert "percentage points" in p.axis and "better" in p.axis
    assert any(label == "0" for _, label in p.ticks)
    assert p.x0 <= p.zero <= p.x1


def test_forest_places_the_margin_on_the_bad_side(run: HandRun) -> None:
    row = forest_panels(run.gate.table, "good")[0].rows[0]  # valid_json: margin 2 pp
    assert row.bound is not None and row.bound < row.lo  # −2 pp sits left of the interval
    assert row.bad_width > 0 and row.bad_x + row.bad_width == row.bound  # shaded left of it
    assert row.icon == "✓" and "95% CI" in row.title


def test_ratios_get_their_own_panel(run: HandRun) -> None:
    units = [p.axis for p in forest_panels(run.gate.table, "bad")]
    assert any("percentage points" in a for a in units)
    assert len(units) == len(set(units))


def test_not_proven_says_how_many_more_records_and_what_they_cost(run: HandRun) -> None:
    text = need_text(run.gate.table, "unsure", 0.0075)
    assert text is not None
    assert "about 800 more records (1,200 in all, 400 now)" in text
    assert "$6.00" in text and "valid_json" in text


def test_a_decided_candidate_needs_nothing(run: HandRun) -> None:
    assert need_text(run.gate.table, "good", 0.01) is None


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(-8.3, 2.1) == [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0]
    assert nice_ticks(0.91, 1.12) == [0.95, 1.0, 1.05, 1.1]
