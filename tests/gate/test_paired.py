"""Paired estimators against hand-computed and published figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from evalpipe.gate.bootstrap import seeded_rng
from evalpipe.gate.paired import (
    clustered_se,
    grouped_cr1,
    length_adjusted_win_rate,
    mcnemar_p,
    newcombe_p_less,
    newcombe_paired,
    paired_mean,
    t_p_less,
    wilson,
    win_rate,
)
from tests.shared import DATA, absent

ALPACA = (
    DATA
    / "alpaca_eval"
    / "claude-2.1_vs_gpt4_1106_preview.weighted_alpaca_eval_gpt4_turbo.annotations.json"
)


# --- clustered standard error -------------------------------------------------------------------


def test_cr1_on_a_tiny_hand_example() -> None:
    # d = 1, 2 | 3 | 4, 6 in clusters a | b | c. Mean 3.2; residual sums per cluster
    # −3.4, −0.2, +3.6; squares 11.56 + 0.04 + 12.96 = 24.56; G/(G−1) = 1.5 → 36.84;
    # SE = √36.84 / 5 = 1.213919…
    se = clustered_se([1, 2, 3, 4, 6], ["a", "a", "b", "c", "c"])
    assert se == pytest.approx(math.sqrt(36.84) / 5, rel=1e-12)


def test_cr1_with_every_record_its_own_cluster_is_sd_over_root_n() -> None:
    x = np.array([0.3, 1.7, -0.4, 2.2, 0.9, 1.1])
    assert clustered_se(x) == pytest.approx(x.std(ddof=1) / math.sqrt(x.size), rel=1e-12)


def test_paired_mean_uses_t_with_clusters_minus_one_df() -> None:
    r = paired_mean([2, 3, 4, 5, 7], [1, 1, 1, 1, 1], ["a", "a", "b", "c", "c"])
    half = stats.t.ppf(0.975, 2) * math.sqrt(36.84) / 5
    assert (r.estimate, r.clusters, r.n) == (pytest.approx(3.2), 3, 5)
    assert (r.ci_low, r.ci_high) == (pytest.approx(3.2 - half), pytest.approx(3.2 + half))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.integers(0, 6), st.integers(0, 2)), min_size=4, max_size=60
    )
)
def test_grouped_cr1_equals_each_group_alone(rows: list[tuple[float, int, int]]) -> None:
    x = np.array([r[0] for r in rows])
    cluster = np.array([r[1] for r in rows])
    group = np.array([r[2] for r in rows])
    together = grouped_cr1(x, cluster, group, 3)
    for g in range(3):
        sel = group == g
        alone = grouped_cr1(x[sel], cluster[sel], np.zeros(sel.sum(), dtype=np.int64), 1)
        assert together.n[g] == alone.n[0]
        assert together.clusters[g] == alone.clusters[0]
        np.testing.assert_allclose(together.se[g], alone.se[0], rtol=1e-9, atol=1e-12)


# --- Newcombe method 10 and McNemar ------------------------------------------------------------


def test_wilson_limits() -> None:
    lo, hi = wilson(2, 21, 1.959963984540054)
    assert (float(lo), float(hi)) == (
        pytest.approx(0.02651, abs=1e-5),
        pytest.approx(0.28915, abs=1e-5),
    )


def test_newcombe_method_10_matches_fagerland_lydersen_laake_2014() -> None:
    # Cavo et al. (2012) in Fagerland, Lydersen & Laake (2014), "Recommended tests and confidence
    # intervals for paired binomial proportions": table [[59, 6], [16, 80]], Newcombe
    # square-and-add (method 10) −0.0621 (95% CI −0.1186 to −0.0046).
    est, lo, hi = newcombe_paired(59, 6, 16, 80)
    assert float(est) == pytest.approx(-10 / 161)
    assert round(float(lo), 4) == -0.1186
    assert round(float(hi), 4) == -0.0046


def test_newcombe_method_10_by_hand_a1_b1_c7_d12() -> None:
    # Bentur et al. (2009): a = 1, b = 1, c = 7, d = 12, n = 21. θ̂ = (b − c)/n = −0.28571.
    # ad − bc = 5 lies in [0, n/2], so Newcombe's φ is 0. Wilson 95% limits:
    #   2/21 → (0.02651, 0.28915), 8/21 → (0.20751, 0.59123).
    # L = θ̂ − √((0.09524 − 0.02651)² + (0.59123 − 0.38095)²) = −0.28571 − 0.22123 = −0.50694
    # U = θ̂ + √((0.38095 − 0.20751)² + (0.28915 − 0.09524)²) = −0.28571 + 0.26016 = −0.02555
    est, lo, hi = newcombe_paired(1, 1, 7, 12)
    assert float(est) == pytest.approx(-6 / 21)
    assert float(lo) == pytest.approx(-0.50694, abs=2e-5)
    assert float(hi) == pytest.approx(-0.02555, abs=2e-5)


def test_all_agree_interval_reaches_about_3_8_over_n_below_zero() -> None:
    for n in (190, 760, 5000):
        est, lo, hi = newcombe_paired(n, 0, 0, 0)
        z2 = stats.norm.ppf(0.975) ** 2
        assert float(est) == 0
        assert float(lo) == pytest.approx(-z2 / (n + z2), rel=1e-9)
        assert float(hi) == pytest.approx(z2 / (n + z2), rel=1e-9)


def test_design_effect_widens_around_the_estimate() -> None:
    est, lo, hi = newcombe_paired(59, 6, 16, 80)
    _, lo4, hi4 = newcombe_paired(59, 6, 16, 80, deff=4.0)
    assert float(est - lo4) == pytest.approx(2 * float(est - lo))
    assert float(hi4 - est) == pytest.approx(2 * float(hi - est))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 60),
    st.integers(0, 15),
    st.integers(0, 15),
    st.integers(0, 40),
    st.floats(-0.2, 0.1),
    st.floats(1.0, 3.0),
)
def test_newcombe_p_is_below_alpha_half_exactly_when_the_interval_is_below_the_bound(
    a: int, b: int, c: int, d: int, bound: float, deff: float
) -> None:
    if a + b + c + d == 0:
        return
    _, lo, hi = newcombe_paired(a, b, c, d, deff=deff)
    p = float(newcombe_p_less(a, b, c, d, bound, deff=deff))
    if abs(float(hi) - bound) > 1e-6:
        assert (p < 0.025) == (float(hi) < bound)
    if abs(float(lo) - bound) > 1e-6:
        assert (p > 0.975) == (float(lo) > bound)


def test_mcnemar_is_the_exact_one_sided_binomial_test() -> None:
    assert float(mcnemar_p(5, 0)) == pytest.approx(1 / 32)
    assert float(mcnemar_p(0, 0)) == 1.0
    for b, c in [(37, 2), (8, 0), (3, 9), (12, 12)]:
        expected = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
        assert float(mcnemar_p(b, c)) == pytest.approx(expected, rel=1e-12)


def test_t_p_less_is_dual_to_the_t_interval() -> None:
    mean, se, g = np.array([-0.03]), np.array([0.01]), np.array([200])
    upper = mean + stats.t.ppf(0.975, 199) * se
    assert t_p_less(mean, se, g, float(upper[0]))[0] == pytest.approx(0.025)
    assert t_p_less(np.array([0.0]), np.array([0.0]), g, -0.05)[0] == 1.0


# --- pairwise win rate ------------------------------------------------------------------------


def test_win_rate_reproduces_alpaca_eval_claude_2_1() -> None:
    if not ALPACA.is_file():
        pytest.skip(absent(ALPACA, "AlpacaEval annotations"))
    rows = json.loads(ALPACA.read_text(encoding="utf-8"))
    pref = np.array([float(r["preference"]) for r in rows])
    pref[pref == 0] = 1.5  # AlpacaEval's legacy draw code
    r = win_rate(pref - 1)  # iid: every instruction its own cluster
    assert r.n == 805
    assert r.estimate * 100 == pytest.approx(15.7335, abs=1e-4)
    assert r.se * 100 == pytest.approx(1.1203, abs=1e-4)


def test_win_rate_with_clusters_is_wider_when_clusters_agree() -> None:
    w = np.repeat([1.0, 0.0, 1.0, 0.5, 0.0, 1.0], 5)
    iid = win_rate(w)
    clustered = win_rate(w, np.repeat(np.arange(6), 5))
    assert clustered.estimate == iid.estimate
    assert clustered.se > 2 * iid.se


def test_length_adjusted_win_rate_is_the_mean_when_lengths_do_not_vary() -> None:
    w = np.array([1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 0.25])
    est, lo, hi = length_adjusted_win_rate(w, np.zeros(7), rng=seeded_rng(0, "t"), b=100)
    assert est == pytest.approx(w.mean(), rel=1e-8)
    assert lo <= est <= hi


def test_length_adjusted_win_rate_removes_a_length_bias() -> None:
    rng = np.random.default_rng(3)
    dlen = rng.normal(0, 300, 4000)
    # The judge prefers longer answers; at equal length the candidate wins half the time.
    p = 1 / (1 + np.exp(-(1.5 * np.tanh(dlen / dlen.std()) + 0.0)))
    w = (rng.random(4000) < p).astype(float)
    shifted = dlen + 150  # the candidate answers longer on average
    p2 = 1 / (1 + np.exp(-(1.5 * np.tanh(shifted / dlen.std()))))
    w2 = (rng.random(4000) < p2).astype(float)
    est, lo, hi = length_adjusted_win_rate(w2, shifted, rng=seeded_rng(0, "t"), b=200)
    assert w2.mean() > 0.55  # raw win rate inflated by length
    assert lo < 0.5 + 0.1 and est < w2.mean()
    assert lo <= est <= hi
    del w
