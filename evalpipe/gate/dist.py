"""The distribution functions the gate uses, from `scipy.special`.

The same functions as `scipy.stats`' `norm`, `t`, `binom`, `beta` and `poisson`, without importing
`scipy.stats` (half a second, every run: it builds every distribution's docstring). The rare
tests (Wilcoxon, Mann-Whitney, chi-square) import `scipy.stats` where they are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import special

__all__ = [
    "beta_ppf",
    "binom_sf",
    "chi2_sf",
    "norm_cdf",
    "norm_ppf",
    "norm_sf",
    "poisson_cdf",
    "t_cdf",
    "t_ppf",
]


def norm_ppf(q: Any) -> Any:
    """Standard normal quantile (`stats.norm.ppf`)."""
    return special.ndtri(q)


def norm_cdf(z: Any) -> Any:
    """Standard normal CDF (`stats.norm.cdf`)."""
    return special.ndtr(z)


def norm_sf(z: Any) -> Any:
    """Standard normal survival function, 1 − CDF (`stats.norm.sf`)."""
    return special.ndtr(-np.asarray(z, dtype=np.float64))


def t_ppf(q: Any, df: Any) -> Any:
    """Student's t quantile with `df` degrees of freedom (`stats.t.ppf(q, df)`)."""
    return special.stdtrit(df, q)


def t_cdf(x: Any, df: Any) -> Any:
    """Student's t CDF (`stats.t.cdf(x, df)`)."""
    return special.stdtr(df, x)


def binom_sf(k: Any, n: Any, p: Any) -> Any:
    """P(X > k) for X ~ Binomial(n, p) (`stats.binom.sf`): 1 for k < 0, 0 for k ≥ n."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    inside = special.bdtrc(np.clip(k, 0, np.maximum(n - 1, 0)), n, p)
    return np.where(k < 0, 1.0, np.where(k >= n, 0.0, inside))


def beta_ppf(q: Any, a: Any, b: Any) -> Any:
    """Beta(a, b) quantile (`stats.beta.ppf(q, a, b)`)."""
    return special.betaincinv(a, b, q)


def chi2_sf(x: Any, df: Any) -> Any:
    """P(X > x) for X ~ chi-square(df) (`stats.chi2.sf(x, df)`)."""
    return special.chdtrc(df, x)


def poisson_cdf(k: Any, mu: Any) -> Any:
    """P(X ≤ k) for X ~ Poisson(mu) (`stats.poisson.cdf`)."""
    return special.pdtr(k, mu)
