"""The sentences: built from the numbers, in the format STATISTICS.md shows."""

from __future__ import annotations

from evalpipe.gate.numbers import signed
from evalpipe.gate.reasons import metric_sentence
from evalpipe.gate.rows import MetricRow


def _row(**kw: object) -> MetricRow:
    base: dict[str, object] = dict(
        candidate="c",
        metric="valid_json",
        kind="pass_rate",
        source="rule",
        gated=True,
        critical=False,
        slice_col=None,
        slice_value=None,
        n=1199,
        clusters=1199,
        baseline=0.991,
        candidate_value=0.914,
        estimate=-0.077,
        ci_low=-0.103,
        ci_high=-0.051,
        margin=0.02,
        p_less=1e-9,
        p_two=1e-9,
        regressed=37,
        improved=2,
        se=0.013,
        where={"feature": "triage"},
    )
    base.update(kw)
    return MetricRow(**base)  # type: ignore[arg-type]


def test_no_go_sentence_has_the_documented_shape() -> None:
    r = _row(verdict="NO-GO")
    assert metric_sentence(r, alpha=0.05, min_n=50) == (
        "NO-GO: valid_json on triage fell from 99.1% to 91.4% "
        "(−7.7 pp, 95% CI −10.3 to −5.1; 37 requests regressed, 2 improved)."
    )


def test_go_and_not_proven_sentences_name_the_margin() -> None:
    go = _row(
        verdict="GO",
        baseline=0.99,
        candidate_value=0.992,
        estimate=0.002,
        ci_low=-0.004,
        ci_high=0.008,
        regressed=1,
        improved=3,
    )
    assert metric_sentence(go, alpha=0.05, min_n=50) == (
        "GO: valid_json on triage rose from 99.0% to 99.2% (+0.2 pp, 95% CI −0.4 to +0.8; "
        "1 request regressed, 3 improved), within the 2.0 pp margin."
    )
    np_row = _row(
        verdict="NOT-PROVEN",
        n=120,
        estimate=0.0,
        ci_low=-0.03,
        ci_high=0.03,
        baseline=0.95,
        candidate_value=0.95,
        n_needed=420,
        regressed=3,
        improved=3,
    )
    text = metric_sentence(np_row, alpha=0.05, min_n=50)
    assert text.endswith(
        "the interval still crosses the 2.0 pp margin, leaning GO; need ~300 more records."
    )
    assert text.startswith(
        "NOT-PROVEN: valid_json on triage held at 95.0% (0.0 pp, 95% CI −3.0 to +3.0;"
    )


def test_ratio_and_win_rate_sentences() -> None:
    lat = _row(
        metric="latency_p95",
        kind="ratio",
        source="latency",
        where={},
        baseline=1444.0,
        candidate_value=2340.0,
        estimate=1.62,
        ci_low=1.48,
        ci_high=1.77,
        margin=0.5,
        regressed=None,
        improved=None,
        verdict="NO-GO",
    )
    assert metric_sentence(lat, alpha=0.05, min_n=50) == (
        "NO-GO: latency_p95 is 1.62× the baseline's (2,340 ms vs 1,444 ms; 95% CI 1.48× to 1.77×)."
    )
    win = _row(
        metric="helpfulness",
        kind="win_rate",
        source="pairwise",
        where={},
        n=500,
        baseline=0.5,
        candidate_value=0.479,
        estimate=-0.021,
        ci_low=-0.049,
        ci_high=0.007,
        margin=0.05,
        regressed=230,
        improved=210,
        verdict="GO",
    )
    assert metric_sentence(win, alpha=0.05, min_n=50) == (
        "GO: helpfulness: the candidate won 47.9% of comparisons with the baseline "
        "(95% CI 45.1% to 50.7%; 210 wins, 230 losses, 60 ties), within the 45.0% win-rate floor."
    )


def test_error_rate_is_worded_in_its_own_direction() -> None:
    r = _row(
        metric="error_rate",
        source="error_rate",
        where={},
        baseline=0.004,
        candidate_value=0.031,
        estimate=-0.027,
        ci_low=-0.036,
        ci_high=-0.018,
        margin=0.01,
        regressed=33,
        improved=1,
        verdict="NO-GO",
    )
    assert metric_sentence(r, alpha=0.05, min_n=50) == (
        "NO-GO: error_rate rose from 0.4% to 3.1% (+2.7 pp, 95% CI +1.8 to +3.6; "
        "33 requests failed only on the candidate, 1 only on the baseline)."
    )


def test_signed_uses_a_real_minus_and_drops_the_sign_of_zero() -> None:
    assert (signed(-7.66), signed(0.04), signed(-0.04), signed(1234.5)) == (
        "−7.7",
        "0.0",
        "0.0",
        "+1,234.5",
    )


def test_usd_never_uses_scientific_notation() -> None:
    from evalpipe.gate.numbers import usd

    assert usd(7.95e-05) == "$0.0000795"
    assert usd(0.000603) == "$0.000603"
    assert usd(0.05) == "$0.05"
    assert usd(1234.5) == "$1,234.50"
    assert usd(0) == "$0.00"
    assert usd(None) == usd(float("nan")) == usd("n/a") == "—"
