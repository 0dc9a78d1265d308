"""Grouped estimates of one metric for the total and every slice value at once.

Each function takes one slot per included record (values, cluster code, group code) and
returns an `Estimates` of arrays, one entry per group. Differences are oriented so that a
negative estimate means the candidate is worse (STATISTICS.md, "Notation").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from evalpipe.gate import dist
from evalpipe.gate.bootstrap import ratio_bootstrap
from evalpipe.gate.paired import (
    design_effect,
    grouped_cr1,
    mcnemar_p,
    newcombe_p_less,
    newcombe_paired,
    t_interval,
    t_p_less,
)

__all__ = ["Estimates", "mean_diff", "pass_rate", "ratios", "two_sided", "win_share"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


class Estimates(NamedTuple):
    """Arrays over groups. `p_less` is the one-sided p of `H1: worse than the margin`
    (`Δ < −δ`; for a ratio, `ratio > bound`); `p_two` the two-sided p of no difference."""

    n: I64
    clusters: I64
    baseline: F64
    candidate: F64
    estimate: F64
    ci_low: F64
    ci_high: F64
    se: F64
    p_less: F64
    p_two: F64
    regressed: I64
    improved: I64
    deff: F64


def two_sided(p_less_at_null: F64) -> F64:
    """Two-sided p from the one-sided p of `H1: Δ < null`."""
    p = np.minimum(2 * np.minimum(p_less_at_null, 1 - p_less_at_null), 1.0)
    return np.asarray(p, dtype=np.float64)


def _count(group: I64, mask: NDArray[np.bool_], k: int) -> I64:
    return np.bincount(group, weights=mask.astype(np.float64), minlength=k).astype(np.int64)


def pass_rate(
    base: F64,
    cand: F64,
    cluster: I64,
    group: I64,
    k: int,
    *,
    margin: float,
    critical: bool,
    clustered: bool,
    alpha: float,
) -> Estimates:
    """Pass/fail: Newcombe method-10 interval widened by √deff; McNemar b and c.

    For a critical check `p_less` is the exact McNemar p (`H0: Δ ≥ 0`), otherwise the inverted
    interval's p at `−margin`.
    """
    bp, cp = base == 1, cand == 1
    both = _count(group, bp & cp, k)
    improved = _count(group, ~bp & cp, k)
    regressed = _count(group, bp & ~cp, k)
    neither = _count(group, ~bp & ~cp, k)
    st = grouped_cr1(cand - base, cluster, group, k)
    deff = design_effect(st.se**2, st.se_iid**2) if clustered else np.ones(k)
    est, lo, hi = newcombe_paired(both, improved, regressed, neither, alpha=alpha, deff=deff)
    bounds = np.array([[-margin], [0.0]])  # both inversions in one bisection
    at_margin, at_zero = newcombe_p_less(both, improved, regressed, neither, bounds, deff=deff)
    p_less = mcnemar_p(regressed, improved) if critical else at_margin
    p_two = two_sided(at_zero)
    n = st.n
    with np.errstate(invalid="ignore", divide="ignore"):
        b_rate, c_rate = (both + regressed) / n, (both + improved) / n
    empty = n == 0
    return Estimates(
        n,
        st.clusters,
        b_rate,
        c_rate,
        np.where(empty, np.nan, est),
        np.where(empty, np.nan, lo),
        np.where(empty, np.nan, hi),
        # The SE the decision interval implies (for power and n needed): Newcombe's interval is
        # wider than ±z·SE(d) when few pairs disagree, and GO is read off that interval.
        np.where(empty, np.nan, (hi - lo) / (2 * float(dist.norm_ppf(1 - alpha / 2)))),
        np.where(empty, np.nan, p_less),
        np.where(empty, np.nan, p_two),
        regressed,
        improved,
        deff,
    )


def mean_diff(
    base: F64, cand: F64, cluster: I64, group: I64, k: int, *, margin: float, alpha: float
) -> Estimates:
    """Paired mean difference with a CR1 clustered t interval."""
    d = cand - base
    st = grouped_cr1(d, cluster, group, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_mean = np.bincount(group, weights=base, minlength=k) / st.n
        c_mean = np.bincount(group, weights=cand, minlength=k) / st.n
    lo, hi = t_interval(st.mean, st.se, st.clusters, alpha)
    return Estimates(
        st.n,
        st.clusters,
        b_mean,
        c_mean,
        st.mean,
        lo,
        hi,
        st.se,
        t_p_less(st.mean, st.se, st.clusters, -margin),
        two_sided(t_p_less(st.mean, st.se, st.clusters, 0.0)),
        _count(group, d < 0, k),
        _count(group, d > 0, k),
        np.ones(k),
    )


def win_share(
    w: F64, cluster: I64, group: I64, k: int, *, margin: float, alpha: float
) -> Estimates:
    """Pairwise win rate: estimate Ŵ − ½ with a clustered t interval (null ½)."""
    st = grouped_cr1(w - 0.5, cluster, group, k)
    lo, hi = t_interval(st.mean, st.se, st.clusters, alpha)
    return Estimates(
        st.n,
        st.clusters,
        np.full(k, 0.5),
        st.mean + 0.5,
        st.mean,
        lo,
        hi,
        st.se,
        t_p_less(st.mean, st.se, st.clusters, -margin),
        two_sided(t_p_less(st.mean, st.se, st.clusters, 0.0)),
        _count(group, w < 0.5, k),
        _count(group, w > 0.5, k),
        np.ones(k),
    )


def ratios(
    cluster: I64,
    latency: tuple[F64, F64],
    cost: tuple[F64, F64],
    group: I64,
    k: int,
    *,
    bounds: tuple[float, float, float],
    rngs: list[np.random.Generator],
    b: int,
    alpha: float,
) -> tuple[Estimates, Estimates, Estimates]:
    """Latency p50, p95 and mean cost ratios per group, by paired cluster bootstrap.

    `p_less` is the share of replicates at or below the bound (the claim "worse than the
    bound" needs the ratio above it); the interval is the bootstrap percentile interval.
    """
    fields: list[dict[str, list[float]]] = [{} for _ in range(3)]
    for g in range(k):
        sel = group == g
        boot = ratio_bootstrap(
            cluster[sel],
            latency[0][sel],
            latency[1][sel],
            cost[0][sel],
            cost[1][sel],
            rng=rngs[g],
            b=b,
        )
        for j in range(3):
            reps = boot.replicates[:, j]
            reps = reps[np.isfinite(reps)]
            out = fields[j]
            lo, hi = (
                np.quantile(reps, [alpha / 2, 1 - alpha / 2]) if reps.size else (np.nan, np.nan)
            )
            share_below = float(np.mean(reps <= bounds[j])) if reps.size else np.nan
            below_one = float(np.mean(reps <= 1.0)) if reps.size else np.nan
            above_one = float(np.mean(reps >= 1.0)) if reps.size else np.nan
            values = {
                "n": float(boot.n[j]),
                "clusters": float(boot.clusters[j]),
                "baseline": float(boot.baseline[j]),
                "candidate": float(boot.candidate[j]),
                "estimate": float(boot.point[j]),
                "ci_low": float(lo),
                "ci_high": float(hi),
                "se": float(np.std(reps, ddof=1)) if reps.size > 1 else np.nan,
                "p_less": share_below,
                "p_two": min(1.0, 2 * min(below_one, above_one)),
            }
            for key, v in values.items():
                out.setdefault(key, []).append(v)
    result = []
    for out in fields:
        n = np.asarray(out.get("n", []), dtype=np.int64)
        none = np.zeros(k, dtype=np.int64)
        result.append(
            Estimates(
                n,
                np.asarray(out.get("clusters", []), dtype=np.int64),
                np.asarray(out.get("baseline", []), dtype=np.float64),
                np.asarray(out.get("candidate", []), dtype=np.float64),
                np.asarray(out.get("estimate", []), dtype=np.float64),
                np.asarray(out.get("ci_low", []), dtype=np.float64),
                np.asarray(out.get("ci_high", []), dtype=np.float64),
                np.asarray(out.get("se", []), dtype=np.float64),
                np.asarray(out.get("p_less", []), dtype=np.float64),
                np.asarray(out.get("p_two", []), dtype=np.float64),
                none,
                none,
                np.ones(k),
            )
        )
    return result[0], result[1], result[2]
