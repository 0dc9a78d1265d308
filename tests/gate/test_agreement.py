"""Cohen's κ and quadratic-weighted κ against hand computations."""

from __future__ import annotations

import math

import pytest

from evalpipe.gate.agreement import agreement, cohens_kappa, weighted_kappa


def test_cohens_kappa_textbook_case() -> None:
    # 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → p_o = 0.7, p_e = 0.5·0.6 + 0.5·0.4 = 0.5
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohens_kappa(a, b) == pytest.approx(0.4)


def test_kappa_is_one_for_perfect_and_nan_when_undefined() -> None:
    assert cohens_kappa([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert math.isnan(cohens_kappa([1, 1], [1, 1]))


def test_quadratic_weighted_kappa_by_hand() -> None:
    # Σ w·O = 0.5 and Σ w·E = 1.4 (see the derivation in the commit), so κ_w = 1 − 0.5/1.4
    assert weighted_kappa([1, 2, 3, 1, 2], [1, 2, 2, 1, 3], 1, 3) == pytest.approx(1 - 0.5 / 1.4)


def test_agreement_reports_the_majority_baseline() -> None:
    got = agreement([1, 1, 0, 1], [1, 1, 1, 1])
    assert got.raw == 0.75 and got.majority_baseline == 1.0 and got.n == 4
