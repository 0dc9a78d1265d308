"""The catalogue of metrics the gate reports, with their margins (STATISTICS.md, "Decision per
metric"): the one place that plan (`--dry-run`), the shadow and canary gates and the report read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from evalpipe.spec import Spec

__all__ = ["DEFAULT_MARGINS", "SOURCES", "Metric", "gate_metrics"]

Source = Literal["rule", "error_rate", "pointwise", "pairwise", "latency", "cost", "diff", "label"]

SOURCES: Final[tuple[str, ...]] = (
    "rule",
    "error_rate",
    "pointwise",
    "pairwise",
    "latency",
    "cost",
    "diff",
    "label",
)
"""Where a metric's values come from; the gate table's `source` column."""

DEFAULT_MARGINS: Final[dict[str, float]] = {
    "check": 0.02,
    "critical": 0.005,
    "error_rate": 0.01,
    "pointwise": 0.05,
    "pairwise": 0.05,
}
"""Default non-inferiority margins (pointwise: share of the scale range)."""


@dataclass(frozen=True)
class Metric:
    """One metric of the gate: its kind (`pass_rate`, `mean`, `win_rate`, `ratio`), where its
    values come from, whether it is gated, and its margin on the estimate's scale."""

    name: str
    kind: str
    source: Source
    gated: bool
    critical: bool = False
    margin: float | None = None
    where: dict[str, str | list[str]] = field(default_factory=dict)
    scale_min: float = 0.0


def gate_metrics(spec: Spec) -> list[Metric]:
    """Every metric the gate reports, in spec order, with its margin.

    `gate.margins[name]` overrides a check's or judge's own margin; for a pointwise judge both
    are shares of the scale range, as `Judge.margin` documents.
    """
    over = spec.gate.margins
    out = []
    for check in spec.checks:
        default = DEFAULT_MARGINS["critical" if check.critical else "check"]
        margin = over.get(check.name, check.margin if check.margin is not None else default)
        out.append(
            Metric(check.name, "pass_rate", "rule", True, check.critical, margin, dict(check.where))
        )
    for judge in spec.judges:
        if judge.type == "pairwise":
            margin = over.get(judge.name, judge.margin or DEFAULT_MARGINS["pairwise"])
            out.append(Metric(judge.name, "win_rate", "pairwise", True, False, margin))
        else:
            lo, hi = judge.scale
            share = over.get(judge.name, judge.margin or DEFAULT_MARGINS["pointwise"])
            out.append(
                Metric(
                    judge.name, "mean", "pointwise", True, False, share * (hi - lo), scale_min=lo
                )
            )
    for lm in spec.metrics:
        # Logged columns exist for what production served only: cohorts compare them (canary);
        # a shadow run shows them beside the replayed arms.
        binary = lm.kind == "binary"
        label_margin = over.get(lm.name, lm.margin)
        if label_margin is None and binary:
            label_margin = DEFAULT_MARGINS["check"]
        gated = spec.mode == "canary" and label_margin is not None
        kind = "pass_rate" if binary else "mean"
        out.append(Metric(lm.name, kind, "label", gated, False, label_margin))
    error_margin = over.get("error_rate", DEFAULT_MARGINS["error_rate"])
    out.append(Metric("error_rate", "pass_rate", "error_rate", True, False, error_margin))
    p95, cost = spec.gate.latency_p95_ratio_max, spec.gate.cost_ratio_max
    out.append(Metric("latency_p50", "ratio", "latency", False))
    out.append(
        Metric("latency_p95", "ratio", "latency", p95 is not None, margin=_ratio_margin(p95))
    )
    if spec.replay.stream and spec.mode == "shadow":  # streamed: time to first token too
        ttft = spec.gate.ttft_p95_ratio_max
        out.append(
            Metric("ttft_p95", "ratio", "latency", ttft is not None, margin=_ratio_margin(ttft))
        )
    out.append(Metric("cost", "ratio", "cost", cost is not None, margin=_ratio_margin(cost)))
    return out


def _ratio_margin(limit: float | None) -> float | None:
    return None if limit is None else limit - 1
