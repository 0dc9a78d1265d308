"""Paired estimators for shadow mode (STATISTICS.md, "Paired estimates").

Every function here works on whole arrays. The grouped forms (`grouped_cr1`, `newcombe_paired`)
estimate the total and every slice value in one pass: `group` gives each record's slice code, so
a loop runs over slice columns at most, never over records.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from evalpipe.gate import dist

__all__ = [
    "GroupStats",
    "PairedMean",
    "WinRate",
    "clustered_se",
    "design_effect",
    "grouped_cr1",
    "length_adjusted_win_rate",
    "mcnemar_p",
    "newcombe_p_less",
    "newcombe_paired",
    "paired_mean",
    "t_interval",
    "t_p_less",
    "wilson",
    "win_rate",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


class GroupStats(NamedTuple):
    """Per-group mean and standard errors of one variable (arrays of length n_groups)."""

    n: I64
    clusters: I64
    mean: F64
    se: F64
    """CR1 clustered standard error (nan when a group has fewer than 2 clusters)."""
    se_iid: F64
    """sd/√n, the standard error as if every record were its own cluster."""


def _as_codes(cluster: ArrayLike | None, n: int) -> I64:
    if cluster is None:
        return np.arange(n, dtype=np.int64)
    codes = np.asarray(cluster)
    if codes.dtype.kind in "iu":
        return codes.astype(np.int64, copy=False)
    _, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int64)


def grouped_cr1(values: F64, cluster: I64, group: I64, n_groups: int) -> GroupStats:
    """Mean and CR1 standard error of `values` within each group.

    `SE = sqrt(G/(G−1) · Σ_g (Σ_{i∈g} (x_i − x̄))²) / n` over the G clusters present in the
    group; it equals sd/√n when every record is its own cluster.

    Args:
        values: one value per included record.
        cluster: non-negative cluster code per record (clusters may span groups).
        group: group code per record, in `range(n_groups)`.
        n_groups: number of groups.
    """
    values = np.asarray(values, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    n = np.bincount(group, minlength=n_groups).astype(np.int64)
    sums = np.bincount(group, weights=values, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / n
    if values.size == 0:
        nan = np.full(n_groups, np.nan)
        return GroupStats(n, np.zeros(n_groups, np.int64), nan, nan.copy(), nan.copy())
    resid = values - mean[group]
    width = int(cluster.max()) + 1
    cells, inverse = np.unique(group * width + cluster, return_inverse=True)
    cell_sums = np.bincount(inverse, weights=resid)
    cell_group = cells // width
    clusters = np.bincount(cell_group, minlength=n_groups).astype(np.int64)
    between = np.bincount(cell_group, weights=cell_sums**2, minlength=n_groups)
    within = np.bincount(group, weights=resid**2, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(clusters > 1, np.sqrt(clusters / (clusters - 1) * between) / n, np.nan)
        se_iid = np.where(n > 1, np.sqrt(within / (n - 1) / n), np.nan)
    return GroupStats(n, clusters, mean, se, se_iid)


def design_effect(var_clustered: ArrayLike, var_iid: ArrayLike) -> F64:
    """`deff = max(1, V_clustered / V_iid)`, 1 where either is undefined (STATISTICS.md,
    pass/fail checks: the interval is widened by √deff)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.asarray(var_clustered, np.float64) / np.asarray(var_iid, np.float64)
    return np.where(np.isfinite(ratio), np.maximum(ratio, 1.0), 1.0)


def clustered_se(values: ArrayLike, cluster: ArrayLike | None = None) -> float:
    """CR1 standard error of the mean of `values` (each value its own cluster when None)."""
    x = np.asarray(values, dtype=np.float64)
    codes = _as_codes(cluster, x.size)
    zero = np.zeros(x.size, dtype=np.int64)
    return float(grouped_cr1(x, codes, zero, 1).se[0])


def t_interval(mean: F64, se: F64, clusters: I64, alpha: float) -> tuple[F64, F64]:
    """`mean ± t_{G−1, 1−α/2} · se`."""
    with np.errstate(invalid="ignore"):
        q = dist.t_ppf(1 - alpha / 2, np.maximum(clusters - 1, 1))
    half = np.where(clusters > 1, q * se, np.nan)
    return mean - half, mean + half


def t_p_less(mean: F64, se: F64, clusters: I64, bound: float | F64) -> F64:
    """One-sided p for `H1: Δ < bound` (t with G−1 df); 0/½/1 when the SE is 0."""
    mean = np.asarray(mean, dtype=np.float64)
    se = np.asarray(se, dtype=np.float64)
    bound_arr = np.broadcast_to(np.asarray(bound, dtype=np.float64), mean.shape)
    df = np.maximum(np.asarray(clusters) - 1, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = dist.t_cdf((mean - bound_arr) / se, df)
    degenerate = np.where(mean < bound_arr, 0.0, np.where(mean > bound_arr, 1.0, 0.5))
    p = np.where(se == 0, degenerate, p)
    return np.where((np.asarray(clusters) > 1) & np.isfinite(mean), p, np.nan)


class PairedMean(NamedTuple):
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    clusters: int


def paired_mean(
    candidate: ArrayLike,
    baseline: ArrayLike,
    cluster: ArrayLike | None = None,
    *,
    alpha: float = 0.05,
) -> PairedMean:
    """Mean paired difference `candidate − baseline` with a CR1 clustered t interval."""
    d = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return _one_group(d, cluster, alpha)


def _one_group(x: F64, cluster: ArrayLike | None, alpha: float) -> PairedMean:
    codes = _as_codes(cluster, x.size)
    g = grouped_cr1(x, codes, np.zeros(x.size, dtype=np.int64), 1)
    lo, hi = t_interval(g.mean, g.se, g.clusters, alpha)
    return PairedMean(
        float(g.mean[0]),
        float(g.se[0]),
        float(lo[0]),
        float(hi[0]),
        int(g.n[0]),
        int(g.clusters[0]),
    )


class WinRate(NamedTuple):
    """Pairwise win rate Ŵ = mean(w) (null value ½) with its clustered t interval."""

    estimate: float
    se: float
    ci_low: float
    ci_high: float
    n: int
    clusters: int


def win_rate(w: ArrayLike, cluster: ArrayLike | None = None, *, alpha: float = 0.05) -> WinRate:
    """Win rate of per-record win shares `w ∈ [0, 1]` (1 win, ½ tie, 0 loss, or a probability).

    With every record its own cluster this is AlpacaEval's `win_rate` and `standard_error`
    (divided by 100).
    """
    return WinRate(*_one_group(np.asarray(w, dtype=np.float64), cluster, alpha))


# --- pass/fail checks ---------------------------------------------------------------------------


def wilson(successes: ArrayLike, n: ArrayLike, z: ArrayLike) -> tuple[F64, F64]:
    """Wilson score limits of `successes / n` (arrays broadcast)."""
    x = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / m
        denom = 1 + zz**2 / m
        centre = (p + zz**2 / (2 * m)) / denom
        half = zz * np.sqrt(p * (1 - p) / m + zz**2 / (4 * m**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def _phi(both: F64, improved: F64, regressed: F64, neither: F64) -> F64:
    # Newcombe's φ of the 2×2 table with his correction: ad − bc is reduced by n/2 when it
    # exceeds n/2, set to 0 when it lies in [0, n/2], kept when negative.
    n = both + improved + regressed + neither
    margins = (both + improved) * (regressed + neither) * (both + regressed) * (improved + neither)
    a = both * neither - improved * regressed
    num = np.where(a > n / 2, a - n / 2, np.where(a >= 0, 0.0, a))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(margins > 0, num / np.sqrt(margins), 0.0)


def _counts(
    both: ArrayLike,
    improved: ArrayLike,
    regressed: ArrayLike,
    neither: ArrayLike,
    *shapes: tuple[int, ...],
) -> tuple[F64, F64, F64, F64]:
    arrays = [np.asarray(c, dtype=np.float64) for c in (both, improved, regressed, neither)]
    shape = np.broadcast_shapes(*(a.shape for a in arrays), *shapes)
    a, b, c, d = (np.broadcast_to(x, shape) for x in arrays)
    return a, b, c, d


def _newcombe_limits(
    counts: tuple[F64, F64, F64, F64], z: F64, inflate: F64
) -> tuple[F64, F64, F64]:
    both, improved, regressed, neither = counts
    n = both + improved + regressed + neither
    with np.errstate(invalid="ignore", divide="ignore"):
        p_cand = (both + improved) / n
        p_base = (both + regressed) / n
    l_cand, u_cand = wilson(both + improved, n, z)
    l_base, u_base = wilson(both + regressed, n, z)
    phi = _phi(both, improved, regressed, neither)
    est = p_cand - p_base
    dl, du = p_cand - l_cand, u_base - p_base
    el, eu = p_base - l_base, u_cand - p_cand
    lower = np.sqrt(np.maximum(dl**2 - 2 * phi * dl * du + du**2, 0.0))
    upper = np.sqrt(np.maximum(el**2 - 2 * phi * el * eu + eu**2, 0.0))
    return est, np.maximum(est - lower * inflate, -1.0), np.minimum(est + upper * inflate, 1.0)


def newcombe_paired(
    both: ArrayLike,
    improved: ArrayLike,
    regressed: ArrayLike,
    neither: ArrayLike,
    *,
    alpha: float = 0.05,
    deff: ArrayLike = 1.0,
) -> tuple[F64, F64, F64]:
    """Newcombe's method 10 interval for a difference of paired proportions.

    Δ = candidate pass rate − baseline pass rate. Cells: `both` passed, `improved` (baseline
    failed, candidate passed), `regressed` (baseline passed, candidate failed), `neither`. Wilson
    score limits of each margin are combined with Newcombe's corrected φ (Newcombe 1998, method
    10; as in Fagerland, Lydersen & Laake 2014), then widened around Δ̂ by `sqrt(deff)`.

    Returns:
        (Δ̂, lower, upper), arrays.
    """
    counts = _counts(both, improved, regressed, neither, np.shape(deff))
    z = np.asarray(dist.norm_ppf(1 - alpha / 2), dtype=np.float64)
    inflate = np.sqrt(np.maximum(np.asarray(deff, dtype=np.float64), 1.0))
    return _newcombe_limits(counts, z, inflate)


def newcombe_p_less(
    both: ArrayLike,
    improved: ArrayLike,
    regressed: ArrayLike,
    neither: ArrayLike,
    bound: ArrayLike,
    *,
    deff: ArrayLike = 1.0,
) -> F64:
    """One-sided p for `H1: Δ < bound`, by inverting the (widened) method-10 interval.

    The p-value is `Φ(−z*)` where the interval at `z*` has its upper limit on `bound`
    (or `Φ(z*)` with the lower limit there, when Δ̂ ≥ bound); so `p < α/2` exactly when the
    two-sided 1 − α interval lies below `bound`.
    """
    counts = _counts(both, improved, regressed, neither, np.shape(bound), np.shape(deff))
    shape = counts[0].shape
    b = np.broadcast_to(np.asarray(bound, dtype=np.float64), shape)
    inflate = np.broadcast_to(np.sqrt(np.maximum(np.asarray(deff, dtype=np.float64), 1.0)), shape)
    est, _, _ = _newcombe_limits(counts, np.zeros(shape), inflate)
    below = est < b
    lo = np.zeros(shape)
    hi = np.full(shape, 40.0)
    for _ in range(48):  # bisection on z, all tests at once: |error| < 40 / 2^48
        mid = (lo + hi) / 2
        _, low_lim, up_lim = _newcombe_limits(counts, mid, inflate)
        reached = np.where(below, up_lim >= b, low_lim <= b)
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid)
    z = (lo + hi) / 2
    p = np.where(below, dist.norm_sf(z), dist.norm_cdf(z))
    p = np.where(est == b, 0.5, p)
    n = counts[0] + counts[1] + counts[2] + counts[3]
    return np.where(n > 0, p, np.nan)


def mcnemar_p(regressed: ArrayLike, improved: ArrayLike) -> F64:
    """Exact one-sided McNemar p that the candidate regresses: P(X ≥ b), X ~ Bin(b + c, ½)."""
    b = np.asarray(regressed, dtype=np.int64)
    c = np.asarray(improved, dtype=np.int64)
    p = dist.binom_sf(b - 1, b + c, 0.5)
    return np.where(b + c > 0, p, 1.0).astype(np.float64)


# --- length-adjusted win rate -------------------------------------------------------------------


def _fractional_logit(y: F64, t: F64, iterations: int = 50) -> tuple[float, float]:
    """Quasi-ML of `logit E[y] = θ + β·t` (Newton steps on the Bernoulli quasi-likelihood)."""
    share = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    theta, beta = math.log(share / (1 - share)), 0.0
    basis = np.column_stack([np.ones_like(t), t, t * t])
    for _ in range(iterations):
        mu = special.expit(theta + beta * t)
        g0, g1 = (y - mu) @ basis[:, :2]
        h00, h01, h11 = (mu * (1 - mu)) @ basis
        det = h00 * h11 - h01**2
        if det > 1e-12:
            d_theta, d_beta = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        else:  # no spread in t: the intercept alone
            d_theta, d_beta = (g0 / h00 if h00 > 0 else 0.0), 0.0
        theta = min(max(theta + d_theta, -30.0), 30.0)
        beta = min(max(beta + d_beta, -30.0), 30.0)
        if max(abs(d_theta), abs(d_beta)) < 1e-10:
            break
    return theta, beta


def _chunks(b: int, width: int) -> list[int]:
    size = max(1, (1 << 22) // max(width, 1))
    return [min(size, b - start) for start in range(0, b, size)]


def length_adjusted_win_rate(
    w: ArrayLike,
    length_diff: ArrayLike,
    cluster: ArrayLike | None = None,
    *,
    rng: np.random.Generator,
    b: int = 200,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Win rate at equal length: `sigmoid(θ)` of `logit E[w] = θ + β·tanh(Δlen / sd(Δlen))`.

    Follows AlpacaEval's idea (it is not AlpacaEval's LC figure). The interval is a percentile
    cluster bootstrap (Poisson counts per cluster), each replicate one Newton step from the
    estimate (the one-step bootstrap), so a replicate costs a matrix product, not a refit.

    Returns:
        (estimate, lower, upper).
    """
    from evalpipe.gate.bootstrap import poisson_counts

    y = np.asarray(w, dtype=np.float64)
    dl = np.asarray(length_diff, dtype=np.float64)
    if y.size == 0:
        return math.nan, math.nan, math.nan
    sd = float(np.std(dl, ddof=1)) if y.size > 1 else 0.0
    t = np.tanh(dl / sd) if sd > 0 else np.zeros_like(dl)
    codes = _as_codes(cluster, y.size)
    _, codes = np.unique(codes, return_inverse=True)
    theta, beta = _fractional_logit(y, t)
    estimate = float(special.expit(theta))
    # One-step bootstrap: one Newton step from the estimate per replicate. Scores and Hessian
    # terms at the estimate are summed per cluster once; a replicate is then a matrix product.
    mu = special.expit(theta + beta * t)
    v = mu * (1 - mu)
    n_clusters = int(codes.max()) + 1
    terms = np.column_stack([y - mu, (y - mu) * t, v, v * t, v * t * t])
    per_cluster = np.column_stack(
        [np.bincount(codes, weights=col, minlength=n_clusters) for col in terms.T]
    )
    sums = np.vstack(
        [
            poisson_counts(rng, (m, n_clusters)).astype(np.float64) @ per_cluster
            for m in _chunks(b, n_clusters)
        ]
    )
    g0, g1, h00, h01, h11 = sums.T
    det = h00 * h11 - h01**2
    with np.errstate(invalid="ignore", divide="ignore"):
        step = np.where(det > 1e-12, (h11 * g0 - h01 * g1) / det, g0 / h00)
    rates = special.expit(theta + step)
    lo, hi = np.nanquantile(rates, [alpha / 2, 1 - alpha / 2])
    return estimate, float(lo), float(hi)
