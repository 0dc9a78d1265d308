"""Power: MDE, n needed, and the dry-run sizing of a pass/fail check."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from evalpipe.gate.power import mde, n_needed, n_needed_for_check, n_needed_to_reject


def test_n_needed_for_check_by_hand() -> None:
    # (1.95996 + 0.84162)² · 0.05 / 0.02² = 7.8489 · 125 = 981.1 → 982
    assert n_needed_for_check(0.02) == 982
    assert n_needed_for_check(0.02, discordance=0.10, power=0.9, alpha=0.05) == math.ceil(
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.9)) ** 2 * 0.10 / 0.02**2
    )


def test_n_needed_for_check_is_floored_at_the_all_agree_bound() -> None:
    # With no discordance at all, n must still exceed z² / δ ≈ 3.84 / δ.
    assert n_needed_for_check(0.005, discordance=0.0) == 769
    assert n_needed_for_check(0.02, discordance=0.0) == 193


def test_n_needed_for_check_rejects_a_bad_margin() -> None:
    with pytest.raises(ValueError):
        n_needed_for_check(0.0)


def test_mde_uses_alpha_over_2k_and_power() -> None:
    z = stats.norm.ppf(1 - 0.05 / (2 * 10)) + stats.norm.ppf(0.8)
    assert mde(0.01, 10) == pytest.approx(z * 0.01)
    # Few clusters: t instead of z.
    t = stats.t.ppf(1 - 0.05 / 2, 9) + stats.t.ppf(0.8, 9)
    assert mde(0.01, 1, df=9) == pytest.approx(t * 0.01)
    assert math.isnan(mde(math.nan))


def test_n_needed_spreads_power_over_k_metrics() -> None:
    se, n, delta = 0.01, 500, 0.02
    q1 = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    q5 = stats.norm.ppf(0.975) + stats.norm.ppf(0.8 ** (1 / 5))
    assert n_needed(n, se, delta, 1) == math.ceil(n * (q1 * se / delta) ** 2)
    assert n_needed(n, se, delta, 5) == math.ceil(n * (q5 * se / delta) ** 2)
    assert n_needed(n, se, delta, 5) > n_needed(n, se, delta, 1)
    assert n_needed_to_reject(n, se, 0.01, 2) == math.ceil(
        n * ((stats.norm.ppf(1 - 0.05 / 4) + stats.norm.ppf(0.8)) * se / 0.01) ** 2
    )
