"""Cohen's κ, weighted κ and the confusion matrix against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalpipe.gate.agreement import agreement, cohen_kappa, confusion_matrix


def test_kappa_of_a_textbook_table() -> None:
    # 50 items: both yes 20, a yes / b no 5, a no / b yes 10, both no 15
    m = np.array([[20, 5], [10, 15]])
    po, pe = 35 / 50, (25 * 30 + 25 * 20) / 50**2
    assert cohen_kappa(m) == pytest.approx((po - pe) / (1 - pe))  # 0.4
    assert cohen_kappa(m) == pytest.approx(0.4)


def test_weighted_kappa_counts_near_misses_as_partial_agreement() -> None:
    m = np.array([[10, 4, 0], [3, 10, 2], [0, 1, 10]])
    n = m.sum()
    expected = np.outer(m.sum(1), m.sum(0)) / n
    v = np.array([[abs(i - j) / 2 for j in range(3)] for i in range(3)]) ** 2
    assert cohen_kappa(m, "quadratic") == pytest.approx(1 - (v * m).sum() / (v * expected).sum())
    assert cohen_kappa(m, "quadratic") > cohen_kappa(m)  # only adjacent disagreements
    far = np.array([[10, 0, 4], [0, 10, 0], [3, 0, 10]])
    assert cohen_kappa(far, "quadratic") < cohen_kappa(far)


def test_perfect_chance_and_empty_cases() -> None:
    assert cohen_kappa(np.array([[5, 0], [0, 5]])) == 1.0
    assert math.isnan(cohen_kappa(np.array([[0, 0], [0, 0]])))
    assert math.isnan(cohen_kappa(np.array([[7, 0], [0, 0]])))  # chance agreement is perfect


def test_agreement_orders_categories_and_ignores_values_outside() -> None:
    got = agreement([1, 2, 3, 3, 9], [1, 2, 2, 3, 1], [1, 2, 3])
    assert got.confusion.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert got.n == 4 and got.agreement == 0.75 and got.majority == 0.5
    assert confusion_matrix([0.5], [0.5], [0.0, 0.5, 1.0]).tolist()[1][1] == 1
