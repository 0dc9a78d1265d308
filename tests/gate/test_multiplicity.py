"""Holm and Benjamini-Hochberg against hand-computed adjustments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalpipe.gate.multiplicity import benjamini_hochberg, holm


def test_holm_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04;
    # running maximum 0.02, 0.03, 0.06, 0.06; back in input order:
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_at_level_rejects_step_down() -> None:
    # At α = 0.05: 0.01 ≤ 0.05/3 rejects, then 0.02 ≤ 0.05/2 rejects, then 0.04 > 0.05 stops.
    adjusted = holm([0.04, 0.01, 0.02])
    assert list(adjusted <= 0.05) == [True, True, True]
    assert list(holm([0.03, 0.005, 0.02]) <= 0.025) == [False, True, False]


def test_benjamini_hochberg_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04; p·m/rank = 0.02, 0.02, 0.04, 0.04; running minimum from
    # the top leaves them so.
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(q, [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(benjamini_hochberg([0.05, 0.5, 0.01]), [0.075, 0.5, 0.03])


def test_nan_is_left_out_of_the_family() -> None:
    adjusted = holm([0.01, math.nan, 0.04])
    assert math.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.02, 0.04])
    assert math.isnan(benjamini_hochberg([math.nan])[0])
    assert holm([]).size == 0


def test_adjusted_values_are_capped_at_one() -> None:
    assert holm([0.6, 0.7]).max() == pytest.approx(1.0)
    assert benjamini_hochberg([0.9, 0.95]).max() <= 1.0
