"""Agreement of a judge with people (STATISTICS.md, "Judge agreement"): raw agreement, Cohen's κ,
quadratic-weighted κ for ordinal scales, the confusion matrix and the majority-class baseline.

Pure NumPy over coded labels; `categories` fixes the order of the matrix's rows (judge) and
columns (people), so a category nobody used still has its row.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Agreement", "agreement", "cohen_kappa", "confusion_matrix"]

I64 = NDArray[np.int64]


def confusion_matrix(a: ArrayLike, b: ArrayLike, categories: ArrayLike) -> I64:
    """Counts `m[i, j]` of items that rater a put in category i and rater b in category j.

    Values outside `categories` are ignored.
    """
    cats = np.asarray(categories, dtype=np.float64)
    ai = _codes(np.asarray(a, dtype=np.float64), cats)
    bi = _codes(np.asarray(b, dtype=np.float64), cats)
    keep = (ai >= 0) & (bi >= 0)
    k = len(cats)
    return np.bincount(ai[keep] * k + bi[keep], minlength=k * k).reshape(k, k).astype(np.int64)


def _codes(values: NDArray[np.float64], cats: NDArray[np.float64]) -> I64:
    idx = np.searchsorted(cats, values)
    idx = np.clip(idx, 0, len(cats) - 1)
    return np.where(np.isclose(cats[idx], values), idx, -1).astype(np.int64)


def cohen_kappa(m: ArrayLike, weights: Literal["quadratic", "linear"] | None = None) -> float:
    """Cohen's κ = (p_o − p_e) / (1 − p_e) of a confusion matrix; with `weights`, the weighted κ
    `1 − Σ v·O / Σ v·E` with disagreement weights v = |i − j|/(k − 1) (linear) or its square
    (quadratic). nan when there are no items, or when chance agreement is already perfect."""
    obs = np.asarray(m, dtype=np.float64)
    n = obs.sum()
    k = obs.shape[0]
    if n == 0:
        return math.nan
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / n
    if weights is None:
        v = 1.0 - np.eye(k)
    else:
        d = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / max(k - 1, 1)
        v = d**2 if weights == "quadratic" else d
    denominator = float((v * expected).sum())
    if denominator == 0:
        return math.nan
    return 1.0 - float((v * obs).sum()) / denominator


class Agreement(NamedTuple):
    """How a judge's verdicts line up with people's on the same records."""

    n: int
    agreement: float
    """Share of records where judge and people chose the same category."""
    kappa: float
    """Cohen's κ (unweighted)."""
    weighted_kappa: float
    """Quadratic-weighted κ (ordinal scales and preferences)."""
    majority: float
    """Agreement of always answering the people's most common category."""
    confusion: I64
    """Rows: the judge's category; columns: the people's."""
    categories: list[float]


def agreement(judge: ArrayLike, people: ArrayLike, categories: ArrayLike) -> Agreement:
    """Agreement, κ, weighted κ, majority baseline and confusion matrix of two raters."""
    cats = np.asarray(categories, dtype=np.float64)
    m = confusion_matrix(judge, people, cats)
    n = int(m.sum())
    agree = float(np.trace(m)) / n if n else math.nan
    majority = float(m.sum(axis=0).max()) / n if n else math.nan
    return Agreement(
        n=n,
        agreement=agree,
        kappa=cohen_kappa(m),
        weighted_kappa=cohen_kappa(m, "quadratic"),
        majority=majority,
        confusion=m,
        categories=cats.tolist(),
    )
