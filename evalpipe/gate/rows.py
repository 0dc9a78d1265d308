"""One gate-table row per candidate × metric × slice, and the table they make (tables.GATE)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyarrow as pa

from evalpipe.gate.power import PowerCase
from evalpipe.tables import GATE, conform

__all__ = ["MetricRow", "to_table"]


@dataclass
class MetricRow:
    """A row of tables.GATE plus what the verdict and its sentence need.

    `estimate`, `ci_low`, `ci_high` are differences oriented so that negative means the candidate
    is worse (for `error_rate` that is baseline rate − candidate rate), or a candidate/baseline
    ratio for kind `ratio` (above 1 is worse; the bound is `1 + margin`). `baseline` and
    `candidate_value` are the arms' own figures (error rates for `error_rate`, win rate ½ and Ŵ
    for `win_rate`).
    """

    candidate: str
    metric: str
    kind: str
    source: str
    """rule | error_rate | pointwise | pairwise | latency | cost | diff."""
    gated: bool
    critical: bool
    slice_col: str | None
    slice_value: str | None
    n: int
    clusters: int
    baseline: float
    candidate_value: float
    estimate: float
    ci_low: float
    ci_high: float
    margin: float | None
    p_less: float
    """One-sided p of "worse than the margin" (the Holm family's p)."""
    p_two: float
    """Two-sided p of no difference (the slices' BH family's p)."""
    regressed: int | None
    improved: int | None
    se: float
    where: dict[str, str | list[str]] = field(default_factory=dict)
    mde: float | None = None
    n_needed: float | None = None
    p_adjusted: float | None = None
    q_value: float | None = None
    in_family: bool = False
    flagged: bool = False
    below_min_n: bool = False
    verdict: str | None = None
    reason: str = ""
    power: PowerCase | None = None
    """Rows that get a verdict: the clusters' sums that `power.n_for_go` resamples."""

    @property
    def p_value(self) -> float:
        """The p shown: one-sided (margin) on totals, two-sided (no difference) on slices."""
        return self.p_two if self.slice_col is not None else self.p_less

    @property
    def bound(self) -> float:
        """The bad-side bound: −margin for differences, 1 + margin for ratios."""
        margin = self.margin if self.margin is not None else math.nan
        return 1 + margin if self.kind == "ratio" else -margin

    def worse_than_margin(self) -> bool:
        if self.margin is None or not math.isfinite(self.estimate):
            return False
        if self.kind == "ratio":
            return self.estimate > 1 + self.margin
        return self.estimate < -self.margin


def _clean(x: float | int | None) -> float | int | None:
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def to_table(rows: list[MetricRow], run_id: str) -> pa.Table:
    """The rows as tables.GATE (nan and inf become null)."""
    cols: dict[str, list[object]] = {name: [] for name in GATE.names}
    for r in rows:
        values: dict[str, object] = {
            "run_id": run_id,
            "candidate": r.candidate,
            "metric": r.metric,
            "kind": r.kind,
            "source": r.source,
            "gated": r.gated,
            "critical": r.critical,
            "slice_col": r.slice_col,
            "slice_value": r.slice_value,
            "n": r.n,
            "clusters": r.clusters,
            "baseline": _clean(r.baseline),
            "candidate_value": _clean(r.candidate_value),
            "estimate": _clean(r.estimate),
            "ci_low": _clean(r.ci_low),
            "ci_high": _clean(r.ci_high),
            "margin": _clean(r.margin),
            "p_value": _clean(r.p_value),
            "p_adjusted": _clean(r.p_adjusted),
            "q_value": _clean(r.q_value),
            "flagged": r.flagged,
            "regressed": r.regressed,
            "improved": r.improved,
            "mde": _clean(r.mde),
            "n_needed": None if _clean(r.n_needed) is None else int(r.n_needed or 0),
            "verdict": r.verdict,
            "reason": r.reason,
        }
        for name in GATE.names:
            cols[name].append(values[name])
    return conform(pa.table(cols, schema=GATE), GATE)
