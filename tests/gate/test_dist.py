"""The gate's distribution functions equal scipy.stats' at many points (they come from
scipy.special so that a run does not import scipy.stats)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from evalpipe.gate import dist

Q = np.array([1e-6, 0.001, 0.025, 0.05, 0.3, 0.5, 0.8, 0.975, 0.999])
X = np.array([-8.0, -2.5, -1.96, -0.3, 0.0, 0.7, 1.64, 3.2, 9.0])
DF = np.array([1, 2, 3, 5, 9, 19, 49, 120, 1e6])


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (dist.norm_ppf(Q), stats.norm.ppf(Q)),
        (dist.norm_cdf(X), stats.norm.cdf(X)),
        (dist.norm_sf(X), stats.norm.sf(X)),
        (dist.t_ppf(Q, DF), stats.t.ppf(Q, DF)),
        (dist.t_cdf(X, DF), stats.t.cdf(X, DF)),
        (dist.beta_ppf(Q, 3, 7), stats.beta.ppf(Q, 3, 7)),
        (dist.poisson_cdf(np.arange(16), 1.0), stats.poisson.cdf(np.arange(16), 1.0)),
        (dist.chi2_sf(np.abs(X), 1), stats.chi2.sf(np.abs(X), 1)),
    ],
)
def test_matches_scipy_stats(ours: np.ndarray, theirs: np.ndarray) -> None:
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-300)


def test_binomial_survival_matches_at_the_edges() -> None:
    n = np.array([0, 1, 5, 5, 5, 5, 40, 40])
    k = np.array([-1, -1, -1, 0, 4, 5, 19, 40])
    np.testing.assert_allclose(dist.binom_sf(k, n, 0.5), stats.binom.sf(k, n, 0.5), rtol=1e-12)
