"""Power: minimum detectable effects and the n that would settle a metric (STATISTICS.md, "Power").

Usable before any data (`n_needed_for_check`, for `--dry-run`) and after it (`mde`, `n_needed`,
from a metric's standard error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from evalpipe.gate import dist
from evalpipe.gate.paired import design_effect, mcnemar_p, newcombe_paired, t_interval

__all__ = [
    "DRY_RUN_DISCORDANCE",
    "DRY_RUN_PASS_RATE",
    "GO_POWER",
    "ClusterSums",
    "PowerCase",
    "cluster_sums",
    "go_power",
    "mde",
    "n_for_go",
    "n_needed",
    "n_needed_for_check",
    "n_needed_to_reject",
]

F64 = NDArray[np.float64]

_SMALL_G = 30
_GRID = 6
_MAX_TYPES = 4000
_CHUNK = 1 << 22  # replicates × cluster types drawn at once

GO_POWER = 0.8
"""Chance that a candidate as good as the baseline shows GO on every gated metric at the n the
gate and the dry run ask for; each of k metrics gets `GO_POWER ** (1 / k)`."""
DRY_RUN_DISCORDANCE = 0.05
"""Share of pairs where one arm passes a check and the other fails, assumed before any data."""
DRY_RUN_PASS_RATE = 0.9
"""Baseline pass rate a check is sized for before any data (`n_needed_for_check`)."""


@lru_cache(maxsize=1024)
def _q(p: float, df: float | None) -> float:
    # t quantile when there are few clusters, normal otherwise.
    if df is not None and math.isfinite(df) and df < _SMALL_G - 1:
        return float(dist.t_ppf(p, max(df, 1.0)))
    return NormalDist().inv_cdf(p)


def _records(x: float) -> float:
    # Beyond 10^12 records "need ~N more" means "not with this design": report inf.
    return float(math.ceil(x)) if x < 1e12 else math.inf


def mde(
    se: float, k: int = 1, *, alpha: float = 0.05, power: float = 0.8, df: float | None = None
) -> float:
    """NO-GO minimum detectable effect beyond the margin: `(q_{1−α/(2k)} + q_power) · SE`."""
    if not math.isfinite(se):
        return math.nan
    return (_q(1 - alpha / (2 * max(k, 1)), df) + _q(power, df)) * se


def n_needed(
    n: int,
    se: float,
    delta: float,
    k: int = 1,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    df: float | None = None,
) -> float:
    """Records for GO when the true difference is 0: `n · ((q_{1−α/2} + q_{power^{1/k}}) · SE / δ)²`.

    Each of k gated metrics gets power `power^{1/k}`, so that all k pass together with
    probability `power`. Returns nan when the SE is unknown.
    """
    if not (math.isfinite(se) and delta > 0 and n > 0):
        return math.nan
    q = _q(1 - alpha / 2, df) + _q(power ** (1 / max(k, 1)), df)
    return _records(n * (q * se / delta) ** 2)


def n_needed_to_reject(
    n: int,
    se: float,
    excess: float,
    k: int = 1,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    df: float | None = None,
) -> float:
    """Records for NO-GO when the true difference lies `excess` beyond the margin."""
    if not (math.isfinite(se) and excess > 0 and n > 0):
        return math.nan
    q = _q(1 - alpha / (2 * max(k, 1)), df) + _q(power, df)
    return _records(n * (q * se / excess) ** 2)


def n_needed_for_check(
    delta: float,
    discordance: float = DRY_RUN_DISCORDANCE,
    power: float = GO_POWER,
    alpha: float = 0.05,
    *,
    pass_rate: float = DRY_RUN_PASS_RATE,
    critical: bool = False,
    k: int = 1,
) -> float:
    """Records a pass/fail check needs before any data, for GO with probability `power`.

    Assumes equally good arms, independent records, a share `discordance` of pairs where one
    arm passes and the other fails (half each way) and a baseline `pass_rate`; the gate's own
    rule decides (`n_for_go`), so the few discordant pairs of a small run and the Wilson limits
    near 100% count (the normal formula `(z_{1−α/2} + z_power)² · π / δ²` promised too much).
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    half = discordance / 2
    if not (discordance >= 0 and half <= min(pass_rate, 1 - pass_rate)):
        raise ValueError(
            f"discordance {discordance} does not fit a pass rate of {pass_rate}: "
            "half of it must be at most min(pass rate, fail rate)"
        )
    cells = np.eye(4)  # one record each: both pass, improved, regressed, neither
    d = cells[:, 1] - cells[:, 2]
    sums = ClusterSums(np.ones(4), d, d * d, cells[:, 0], cells[:, 1], cells[:, 2])
    weight = np.array([pass_rate - half, half, half, 1 - pass_rate - half])
    case = PowerCase(sums, pass_fail=True, margin=delta, critical=critical)
    needed = n_for_go(
        case, power=power, clustered=False, alpha=alpha, k=k, weight=weight, replicates=4000
    )
    assert needed is not None  # four kinds of pair
    return needed


# --- power of the gate's own decision rule, by simulation -------------------------------------


class ClusterSums(NamedTuple):
    """One metric's paired differences `d` summed per cluster: all that the gate's interval reads
    (the CR1 and iid standard errors and, for a pass/fail check, the 2×2 cells)."""

    records: F64
    diff: F64
    diff_sq: F64
    both: F64
    improved: F64
    regressed: F64


class PowerCase(NamedTuple):
    """A gated metric as the power simulation sees it: its sums and how GO is decided."""

    sums: ClusterSums
    pass_fail: bool
    margin: float
    critical: bool = False


def cluster_sums(
    base: ArrayLike, cand: ArrayLike, cluster: ArrayLike, n_clusters: int, *, pass_fail: bool
) -> ClusterSums:
    """Per-cluster sums of `d = cand − base` (a win share's base is ½) over `n_clusters` codes."""
    b, c = np.asarray(base, np.float64), np.asarray(cand, np.float64)
    g = np.asarray(cluster, np.int64)
    d = c - b

    def per(x: ArrayLike) -> F64:
        sums = np.bincount(g, weights=np.asarray(x, np.float64), minlength=n_clusters)
        return sums.astype(np.float64)

    zero = np.zeros(n_clusters)
    cells = (
        (per((b == 1) & (c == 1)), per((b == 0) & (c == 1)), per((b == 1) & (c == 0)))
        if pass_fail
        else (zero, zero, zero)
    )
    return ClusterSums(per(np.ones(d.size)), per(d), per(d * d), *cells)


def go_power(
    cases: Sequence[PowerCase],
    scale: float,
    *,
    clustered: bool,
    alpha: float = 0.05,
    k: int = 1,
    weight: ArrayLike | None = None,
    replicates: int = 1000,
    seed: int = 0,
) -> tuple[F64, float]:
    """P(GO) of each case, and of all of them together, if the true differences were 0.

    A parametric-free power (STATISTICS.md, "Power"): `replicates` runs of `scale` times the
    pilot's clusters are drawn from them with replacement (a cluster type stands for `weight`
    clusters), and the gate's own rule (Newcombe method 10 widened by the
    estimated √deff, or the clustered t interval) decides each, its limit moved by the pilot's
    estimate so that the truth is Δ = 0. So the few discordant pairs of a small run, the spread
    of the estimated design effect, and what the cases share (an own error fails every check:
    they share one cluster index) all count, where a normal formula with one SE did not.

    Returns:
        (P(GO) per case, P(all GO)).
    """
    if not cases:
        return np.zeros(0), 1.0
    w = np.ones(cases[0].sums.records.size) if weight is None else np.asarray(weight, float)
    features = np.column_stack([np.column_stack(c.sums) for c in cases])
    types, inverse = np.unique(features, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=w)
    width = len(ClusterSums._fields)
    per_case = [
        case._replace(sums=ClusterSums(*types[:, i * width : (i + 1) * width].T))
        for i, case in enumerate(cases)
    ]
    centre = [float(counts @ c.sums.diff) / float(counts @ c.sums.records) for c in per_case]
    total, share = max(round(float(counts.sum()) * scale), 1), counts / counts.sum()
    rng = np.random.default_rng(seed)
    go = np.ones((len(cases), replicates), dtype=bool)
    step = max(1, _CHUNK // counts.size)
    for start in range(0, replicates, step):
        m = min(step, replicates - start)
        draws = rng.multinomial(total, share, size=m).astype(np.float64)
        for i, case in enumerate(per_case):
            low, regressed, improved = _lower_limit(case, draws, clustered, alpha)
            ok = low - centre[i] > -case.margin
            if case.pass_fail and case.critical:  # any significant regression: NO-GO (Holm)
                ok &= mcnemar_p(regressed, improved) > alpha / (2 * max(k, 1))
            go[i, start : start + m] = ok
    return go.mean(axis=1), float(go.all(axis=0).mean())


def _lower_limit(
    case: PowerCase, draws: F64, clustered: bool, alpha: float
) -> tuple[F64, F64, F64]:
    """The gate's lower limit of each replicate (nan when empty), and its McNemar b and c."""
    s = case.sums  # each drawn cluster is a cluster of its own in the replicate
    n = draws @ s.records
    g = draws @ (s.records > 0)
    regressed, improved = draws @ s.regressed, draws @ s.improved
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (draws @ s.diff) / n
        between = (
            draws @ s.diff**2
            - 2 * mean * (draws @ (s.records * s.diff))
            + mean**2 * (draws @ s.records**2)
        )
        se = np.where(g > 1, np.sqrt(g / (g - 1) * np.maximum(between, 0.0)) / n, np.nan)
        within = np.maximum(draws @ s.diff_sq - n * mean**2, 0.0)
        se_iid = np.where(n > 1, np.sqrt(within / (n - 1) / n), np.nan)
    if not case.pass_fail:
        low, _ = t_interval(mean, se, g.astype(np.int64), alpha)
        return np.where(n > 0, low, np.nan), regressed, improved
    both = draws @ s.both
    deff = design_effect(se**2, se_iid**2) if clustered else np.ones_like(n)
    neither = n - both - regressed - improved
    _, low, _ = newcombe_paired(both, improved, regressed, neither, alpha=alpha, deff=deff)
    return np.where(n > 0, low, np.nan), regressed, improved


def n_for_go(
    case: PowerCase,
    *,
    power: float,
    clustered: bool,
    alpha: float = 0.05,
    k: int = 1,
    weight: ArrayLike | None = None,
    replicates: int = 1000,
    seed: int = 0,
) -> float | None:
    """Fewest records at which `go_power` reaches `power` (inf beyond 10^12 records).

    `case`'s sums (times `weight`) are the pilot: at scale 1 they stand for their own records.
    None when the clusters differ in more than `_MAX_TYPES` ways: so many clusters that the
    normal formula (`n_needed`) holds and the simulation would be slow.
    """
    w = np.ones(case.sums.records.size) if weight is None else np.asarray(weight, float)
    per_scale = float(w @ case.sums.records)
    if per_scale <= 0:
        return math.nan
    types, inverse = np.unique(np.column_stack(case.sums), axis=0, return_inverse=True)
    if len(types) > _MAX_TYPES:
        return None
    case = case._replace(sums=ClusterSums(*types.T))
    w = np.bincount(inverse.ravel(), weights=w)

    def power_at(scale: float, replicates: int) -> float:
        p, _ = go_power(
            [case],
            scale,
            clustered=clustered,
            alpha=alpha,
            k=k,
            weight=w,
            replicates=replicates,
            seed=seed,
        )
        return float(p[0])

    # Bracket the target by doubling, then fit probit(P) linear in log n across the bracket:
    # the fit smooths both the Monte-Carlo noise and the saw-tooth of few discordant pairs.
    lo, hi = 0.5, 1.0
    while power_at(hi, replicates // 4) < power:
        lo, hi = hi, hi * 2
        if hi * per_scale > 1e12:
            return math.inf
    while lo * per_scale >= 2 and power_at(lo, replicates // 4) >= power:
        lo, hi = lo / 2, lo
    grid = np.geomspace(lo, hi, _GRID)
    p = np.array([power_at(x, replicates) for x in grid])
    z = dist.norm_ppf(np.clip(p, 0.5 / replicates, 1 - 0.5 / replicates))
    slope, intercept = np.polyfit(np.log(grid), z, 1)
    if slope <= 0:
        return _records(hi * per_scale)
    scale = math.exp((float(dist.norm_ppf(power)) - intercept) / slope)
    return _records(min(max(scale, lo), hi) * per_scale)
