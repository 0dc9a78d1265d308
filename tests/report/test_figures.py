"""Gate rows in reader's units: pp, ×ratios, flipped error rate, win rate against ½."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from evalpipe.report.figures import flagged_slices, metric_view, slice_rows
from evalpipe.tables import GATE, from_rows

_SOURCES = {"pass_rate": "rule", "ratio": "latency", "win_rate": "pairwise", "mean": "pointwise"}


def _row(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "candidate": "c",
        "metric": "valid_json",
        "kind": "pass_rate",
        "source": _SOURCES[kw.get("kind", "pass_rate")],
        "flagged": False,
        "gated": True,
        "critical": False,
        "n": 100,
        "margin": 0.02,
        "verdict": "GO",
    }
    return base | kw


def test_view_reads_the_source_the_gate_wrote() -> None:
    # a pointwise judge named like a diff metric: its name and kind alone said "diff"
    view = metric_view(
        _row(
            metric="diff.tone",
            kind="mean",
            estimate=-0.1,
            ci_low=-0.2,
            ci_high=0.0,
            margin=0.25,
            baseline=4.1,
            candidate_value=4.0,
        )
    )
    assert view.source == "pointwise" and view.allowed == "≥ −0.25"


def test_slices_shown_are_those_the_gate_flagged() -> None:
    # q < 0.1 and worse than the margin, yet not flagged by the gate (its rule decides)
    gate = _gate(
        [
            _row(
                slice_col="tenant",
                slice_value="a",
                verdict=None,
                estimate=-0.05,
                q_value=0.02,
                flagged=False,
            )
        ]
    )
    assert slice_rows(gate) == []


def test_pass_rate_in_pp() -> None:
    v = metric_view(
        _row(
            baseline=0.991,
            candidate_value=0.914,
            estimate=-0.077,
            ci_low=-0.103,
            ci_high=-0.051,
            verdict="NO-GO",
        )
    )
    assert (v.baseline, v.candidate, v.change) == ("99.1%", "91.4%", "−7.7 pp")
    assert v.ci == "−10.3 to −5.1 pp"
    assert v.allowed == "≥ −2.0 pp"
    assert metric_view(_row(critical=True, margin=0.005)).allowed == (
        "≥ −0.5 pp, no significant drop"
    )
    assert v.bar is not None and v.bar.colour == "#cf222e"
    # The red zone lies left of the bound, which lies left of no change.
    assert v.bar.bad_x == 0 and v.bar.bound is not None and v.bar.bound < v.bar.neutral


def test_error_rate_reads_as_candidate_minus_baseline() -> None:
    # The gate orients Δ so that negative is worse: baseline rate − candidate rate.
    v = metric_view(
        _row(
            metric="error_rate",
            source="error_rate",
            baseline=0.005,
            candidate_value=0.012,
            estimate=-0.007,
            ci_low=-0.011,
            ci_high=-0.003,
            margin=0.01,
        )
    )
    assert (v.baseline, v.candidate, v.change) == ("0.5%", "1.2%", "+0.7 pp")
    assert v.ci == "+0.3 to +1.1 pp"
    assert v.allowed == "≤ +1.0 pp"
    assert v.bar is not None and v.bar.bound is not None and v.bar.bound > v.bar.neutral
    assert v.bar.bad_x == v.bar.bound  # the red zone is on the right


def test_ratio_and_win_rate() -> None:
    lat = metric_view(
        _row(
            metric="latency_p95",
            kind="ratio",
            gated=False,
            verdict=None,
            margin=None,
            baseline=800.0,
            candidate_value=984.0,
            estimate=1.23,
            ci_low=1.1,
            ci_high=1.31,
        )
    )
    assert (lat.baseline, lat.candidate, lat.change, lat.ci) == (
        "800 ms",
        "984 ms",
        "×1.23",
        "×1.10 to ×1.31",
    )
    assert lat.allowed == "not gated" and lat.verdict is None
    win = metric_view(
        _row(
            metric="helpfulness",
            kind="win_rate",
            margin=0.05,
            baseline=0.5,
            candidate_value=0.479,
            estimate=-0.021,
            ci_low=-0.049,
            ci_high=0.007,
        )
    )
    assert (win.candidate, win.change, win.allowed) == ("47.9% wins", "−2.1 pp", "win rate ≥ 45.0%")


def test_diff_rows_have_no_interval() -> None:
    v = metric_view(
        _row(
            metric="diff.length_ratio",
            kind="mean",
            source="diff",
            gated=False,
            verdict=None,
            margin=None,
            baseline=None,
            candidate_value=1.62,
            estimate=None,
        )
    )
    assert (v.baseline, v.candidate, v.change, v.bar) == ("—", "×1.62", "—", None)


def _gate(rows: list[dict[str, Any]]) -> pa.Table:
    return from_rows(rows, GATE)


def test_flagged_slices_and_simpson() -> None:
    gate = _gate(
        [
            _row(estimate=0.01, ci_low=-0.01, ci_high=0.03),
            # flagged: q < 0.1 and worse than the margin
            _row(
                slice_col="tenant",
                slice_value="a",
                verdict=None,
                estimate=-0.05,
                q_value=0.02,
                flagged=True,
            ),
            # worse than the margin but not significant
            _row(slice_col="tenant", slice_value="b", verdict=None, estimate=-0.05, q_value=0.5),
            # significant but within the margin
            _row(slice_col="tenant", slice_value="c", verdict=None, estimate=-0.01, q_value=0.01),
            # a gated slice that is NO-GO
            _row(
                slice_col="feature", slice_value="x", verdict="NO-GO", estimate=-0.05, q_value=0.5
            ),
            # ratios: worse means above 1 + margin
            _row(
                metric="latency_p95",
                kind="ratio",
                margin=0.2,
                slice_col="tenant",
                slice_value="a",
                verdict=None,
                estimate=1.3,
                q_value=0.01,
                flagged=True,
            ),
        ]
    )
    rows = slice_rows(gate)
    assert [(r["metric"], r["slice_value"], r["flagged"]) for r in rows] == [
        ("valid_json", "a", True),
        ("valid_json", "x", False),
        ("latency_p95", "a", True),
    ]
    views = flagged_slices(gate)
    assert views[0].simpson is not None and "tenant=a" in views[0].simpson
    assert views[0].total_verdict == "GO"
    by_slice = {(v.view.metric, v.view.slice): v for v in views}
    assert by_slice[("valid_json", "feature=x")].view.flag == "NO-GO (gated slice)"
    assert by_slice[("latency_p95", "tenant=a")].simpson is None  # no total row to compare


def test_no_slices() -> None:
    assert flagged_slices(_gate([_row()])) == []


def test_gated_slices_unproven_for_want_of_records_are_not_of_concern() -> None:
    small = {"slice_col": "eval_set", "slice_value": "edge", "verdict": "NOT-PROVEN", "n": 28}
    gate = _gate(
        [
            _row(estimate=0.0, ci_low=-0.005, ci_high=0.005),
            # no change, CI wider than the margin: only too small
            _row(**small, estimate=0.0, ci_low=-0.12, ci_high=0.12, q_value=1.0),
            _row(**small, metric="no_refusal", estimate=0.01, ci_low=-0.1, ci_high=0.12),
            # leans worse: of concern though NOT-PROVEN
            _row(**small, metric="concise", estimate=-0.03, ci_low=-0.15, ci_high=0.09),
            # a ratio leans worse above 1
            _row(**small, metric="latency_p95", kind="ratio", margin=0.2, estimate=1.1),
            _row(**small, metric="cost", kind="ratio", margin=0.2, estimate=0.9),
        ]
    )
    concern = {v.view.metric: v.concern for v in flagged_slices(gate)}
    assert concern == {
        "valid_json": False,
        "no_refusal": False,
        "concise": True,
        "latency_p95": True,
        "cost": False,
    }
