"""Judge agreement with human or external labels (STATISTICS.md, "Judge agreement")."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Agreement", "agreement", "cohens_kappa", "weighted_kappa"]


def _confusion(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        raise ValueError("both raters must rate the same items")
    cats, codes = np.unique(np.concatenate([x, y]), return_inverse=True)
    k, n = len(cats), len(x)
    table = np.zeros((k, k))
    np.add.at(table, (codes[:n], codes[n:]), 1.0)
    return table, cats


def cohens_kappa(a: ArrayLike, b: ArrayLike) -> float:
    """Cohen's κ = (p_o − p_e) / (1 − p_e) for two raters' categorical labels (nan if p_e = 1)."""
    table, _ = _confusion(a, b)
    n = table.sum()
    if n == 0:
        return float("nan")
    p_o = np.trace(table) / n
    p_e = float(table.sum(1) @ table.sum(0)) / n**2
    return float("nan") if p_e == 1 else float((p_o - p_e) / (1 - p_e))


def weighted_kappa(a: ArrayLike, b: ArrayLike, low: int, high: int) -> float:
    """Quadratic-weighted κ for ordinal ratings on the integer scale [low, high]."""
    x, y = np.asarray(a, dtype=int) - low, np.asarray(b, dtype=int) - low
    k = high - low + 1
    observed = np.zeros((k, k))
    np.add.at(observed, (x, y), 1.0)
    n = observed.sum()
    if n == 0 or k < 2:
        return float("nan")
    expected = np.outer(observed.sum(1), observed.sum(0)) / n
    i, j = np.indices((k, k))
    w = (i - j) ** 2 / (k - 1) ** 2
    denom = float((w * expected).sum())
    return float("nan") if denom == 0 else 1 - float((w * observed).sum()) / denom


class Agreement(NamedTuple):
    n: int
    raw: float
    """Share of items where both raters agree."""
    kappa: float
    majority_baseline: float
    """Agreement of always answering the labels' most common class."""


def agreement(judge: ArrayLike, human: ArrayLike) -> Agreement:
    """Raw agreement, κ, and the majority-class baseline of a judge against labels."""
    j, h = np.asarray(judge), np.asarray(human)
    if len(h) == 0:
        return Agreement(0, float("nan"), float("nan"), float("nan"))
    _, counts = np.unique(h, return_counts=True)
    return Agreement(
        len(h), float(np.mean(j == h)), cohens_kappa(j, h), float(counts.max() / len(h))
    )
