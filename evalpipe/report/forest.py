"""The forest plot of a candidate's gated metrics: each change with its 95% CI against its margin.

Metrics are grouped by unit (percentage points, judge score points, ratios to the baseline), one
panel per unit. Differences are drawn as the gate orients them: right of zero is better for the
candidate (fewer errors for the error rate); ratios (latency, cost) as candidate ÷ baseline, where
left of ×1 is better.
"""

from __future__ import annotations

from typing import Any, Final

from evalpipe.gate.numbers import finite
from evalpipe.report.charts import ForestItem, ForestPanel, forest_panel
from evalpipe.report.figures import INFO_COLOUR, VERDICT_COLOURS, metric_view, total_rows

__all__ = ["VERDICT_ICONS", "forest_panels"]

VERDICT_ICONS: Final[dict[str, str]] = {
    "GO": "✓",
    "NO-GO": "✕",
    "NOT-PROVEN": "?",
    "INVALID": "⚠",
}
"""A shape per verdict, so colour is never the only signal."""

_PP: Final = ("rule", "error_rate", "pairwise")


def _f(x: Any, k: float = 1.0) -> float:
    return float(x) * k if finite(x) else float("nan")


def _item(row: dict[str, Any]) -> tuple[str, ForestItem]:
    view = metric_view(row)
    source = str(row["source"])
    verdict = str(row.get("verdict") or "")
    colour = VERDICT_COLOURS.get(verdict, INFO_COLOUR)
    icon = VERDICT_ICONS.get(verdict, "·")
    m = row.get("margin")
    margin = float(m) if m is not None and finite(m) else None
    text = view.change
    label = "errors (fewer →)" if source == "error_rate" else view.label
    if source in _PP:
        k, unit, bound, bad_high = 100.0, "pp", None if margin is None else -margin * 100, False
    elif source in ("latency", "cost"):
        k, unit, bound, bad_high = 1.0, "ratio", None if margin is None else 1 + margin, True
    else:
        k, unit, bound, bad_high = 1.0, "points", None if margin is None else -margin, False
    item = ForestItem(
        label,
        _f(row.get("ci_low"), k),
        _f(row.get("ci_high"), k),
        _f(row.get("estimate"), k),
        bound,
        bad_high,
        colour,
        icon,
        text,
        text if view.ci == "—" else f"{text}, 95% CI {view.ci}",
    )
    return unit, item


_PANELS: Final = {
    "pp": ("Δ vs baseline, percentage points (right = better)", 0.0, "+.0f"),
    "points": ("Δ judge score, points (right = better)", 0.0, "+.2f"),
    "ratio": ("candidate ÷ baseline, × (left = better)", 1.0, ".2f"),
}


def forest_panels(gate: Any, candidate: str) -> list[ForestPanel]:
    """One panel per unit over the candidate's gated total rows (the gate's own orientation)."""
    groups: dict[str, list[ForestItem]] = {}
    for row in total_rows(gate, candidate):
        if not row.get("gated") or row.get("source") == "diff":
            continue
        unit, item = _item(row)
        groups.setdefault(unit, []).append(item)
    out = []
    for unit, (axis, neutral, fmt) in _PANELS.items():
        if unit not in groups:
            continue
        title = f"Gated metrics of {candidate}: change with 95% CI against each margin"
        panel = forest_panel(groups[unit], title=title, axis=axis, neutral=neutral, fmt=fmt)
        if panel is not None:
            out.append(panel)
    return out
