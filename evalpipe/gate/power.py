"""Power: minimum detectable effects and the n that would settle a metric (STATISTICS.md, "Power").

Usable before any data (`n_needed_for_check`, for `--dry-run`) and after it (`mde`, `n_needed`,
from a metric's standard error).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist

from scipy import stats

__all__ = ["mde", "n_needed", "n_needed_for_check", "n_needed_to_reject"]

_SMALL_G = 30


@lru_cache(maxsize=1024)
def _q(p: float, df: float | None) -> float:
    # t quantile when there are few clusters, normal otherwise.
    if df is not None and math.isfinite(df) and df < _SMALL_G - 1:
        return float(stats.t.ppf(p, max(df, 1.0)))
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
    delta: float, discordance: float = 0.05, power: float = 0.8, alpha: float = 0.05
) -> int:
    """Records a pass/fail check needs before any data: `(z_{1−α/2} + z_power)² · π / δ²`.

    `π` is the assumed share of discordant pairs (one arm passes, the other fails). The result
    is floored at the all-agree bound `z²_{1−α/2} / δ` (about 3.8/δ): even when both arms pass
    everything, Newcombe's interval reaches that far below zero on n records.
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    z = float(stats.norm.ppf(1 - alpha / 2))
    zp = float(stats.norm.ppf(power))
    return max(math.ceil((z + zp) ** 2 * discordance / delta**2), math.ceil(z**2 / delta))
