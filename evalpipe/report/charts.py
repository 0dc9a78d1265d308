"""Geometry of the inline SVG charts; the templates draw them (`_charts.html.j2`).

Only numbers leave this module, so the SVG markup is written by the autoescaped templates and no
text is ever marked safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["CiBar", "StackBar", "ci_bar", "stack_bar"]

WIDTH: Final = 168.0
HEIGHT: Final = 22.0
PAD: Final = 8.0


@dataclass(frozen=True)
class CiBar:
    """A 95% interval on an axis with the no-change line and the bad side beyond the bound."""

    width: float
    height: float
    lo: float
    hi: float
    est: float
    neutral: float
    bound: float | None
    """x of the bound (margin line), when the metric has one."""
    bad_x: float
    bad_width: float
    colour: str
    title: str


def _finite(*xs: float | None) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def ci_bar(
    lo: float | None,
    hi: float | None,
    est: float | None,
    *,
    neutral: float,
    bound: float | None,
    bad_high: bool,
    colour: str,
    title: str,
) -> CiBar | None:
    """Place an interval, its estimate, the no-change line and the bound on one small axis.

    Args:
        lo, hi, est: the interval and estimate in display units.
        neutral: the value of no change (0 for differences, 1 for ratios).
        bound: the worst acceptable value (None: not gated).
        bad_high: values above the bound are bad (ratios, error rate) rather than below.
    """
    if lo is None or hi is None or est is None or not _finite(lo, hi, est):
        return None
    points = [lo, hi, est, neutral] + ([bound] if bound is not None and _finite(bound) else [])
    dmin, dmax = min(points), max(points)
    span = dmax - dmin
    if span <= 0:
        span = abs(dmax) or 1.0
    dmin, dmax = dmin - 0.12 * span, dmax + 0.12 * span

    def x(v: float) -> float:
        return round(PAD + (v - dmin) / (dmax - dmin) * (WIDTH - 2 * PAD), 2)

    bx = x(bound) if bound is not None and _finite(bound) else None
    if bx is None:
        bad_x, bad_w = 0.0, 0.0
    elif bad_high:
        bad_x, bad_w = bx, WIDTH - bx
    else:
        bad_x, bad_w = 0.0, bx
    return CiBar(WIDTH, HEIGHT, x(lo), x(hi), x(est), x(neutral), bx, bad_x, bad_w, colour, title)


@dataclass(frozen=True)
class StackBar:
    """One horizontal bar split into coloured parts (coverage per arm)."""

    width: float
    height: float
    parts: list[tuple[float, float, str, str]]
    """(x, width, colour, title) of each non-empty part."""


def stack_bar(counts: list[tuple[int, str, str]], *, width: float = 160.0) -> StackBar:
    """Parts proportional to `(count, colour, title)`; empty parts are dropped."""
    total = sum(c for c, _, _ in counts)
    parts = []
    x = 0.0
    for count, colour, title in counts:
        if count <= 0 or total <= 0:
            continue
        w = round(count / total * width, 2)
        parts.append((round(x, 2), w, colour, title))
        x += w
    return StackBar(width, 10.0, parts)


# --- forest plot -------------------------------------------------------------------------------

FOREST_WIDTH: Final = 420.0
_LABEL_W: Final = 116.0
_TEXT_W: Final = 66.0
_ROW_H: Final = 24.0
_TOP: Final = 6.0
_AXIS_H: Final = 40.0


@dataclass(frozen=True)
class ForestRow:
    """One metric: its interval, estimate and non-inferiority bound on the panel's axis."""

    label: str
    y: float
    lo: float
    hi: float
    est: float
    bound: float | None
    bad_x: float
    bad_width: float
    colour: str
    icon: str
    text: str
    """The change and its interval as written in the metric table."""
    title: str


@dataclass(frozen=True)
class ForestPanel:
    """Rows sharing one axis (one unit): ticks, the zero line and a titled, labelled axis."""

    title: str
    axis: str
    width: float
    height: float
    x0: float
    x1: float
    zero: float
    ticks: list[tuple[float, str]]
    rows: list[ForestRow]
    axis_y: float


@dataclass(frozen=True)
class ForestItem:
    """A metric in a panel's units: `bad_high` when values above `bound` are worse."""

    label: str
    lo: float
    hi: float
    est: float
    bound: float | None
    bad_high: bool
    colour: str
    icon: str
    text: str
    """The change as the metric table writes it."""
    detail: str = ""
    """The change with its interval, for the row's tooltip."""


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values within [lo, hi] (steps of 1, 2 or 5 × 10^k, the nearest to an even split)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda s: abs(math.log(s / raw)))
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def forest_panel(
    items: list[ForestItem], *, title: str, axis: str, neutral: float, fmt: str
) -> ForestPanel | None:
    """Lay out `items` on one axis with `neutral` (no change) and each item's bound.

    Args:
        title: the chart's title (also its accessible name).
        axis: the axis label, with its unit and which side is better.
        neutral: the value of no change (0 for differences, 1 for ratios).
        fmt: a format spec for tick labels, e.g. `+.0f` or `.2f`.
    """
    items = [i for i in items if _finite(i.lo, i.hi, i.est)]
    if not items:
        return None
    points = [neutral]
    for i in items:
        points += [i.lo, i.hi, i.est] + (
            [i.bound] if i.bound is not None and _finite(i.bound) else []
        )
    dmin, dmax = min(points), max(points)
    span = (dmax - dmin) or (abs(dmax) or 1.0)
    dmin, dmax = dmin - 0.08 * span, dmax + 0.08 * span
    ticks = nice_ticks(dmin, dmax)
    dmin, dmax = min(dmin, ticks[0]), max(dmax, ticks[-1])
    x0, x1 = _LABEL_W, FOREST_WIDTH - _TEXT_W

    def x(v: float) -> float:
        return round(x0 + (v - dmin) / (dmax - dmin) * (x1 - x0), 2)

    rows = []
    for k, i in enumerate(items):
        y = _TOP + k * _ROW_H
        bx = x(i.bound) if i.bound is not None and _finite(i.bound) else None
        if bx is None:
            bad_x, bad_w = 0.0, 0.0
        elif i.bad_high:
            bad_x, bad_w = bx, x1 - bx
        else:
            bad_x, bad_w = x0, bx - x0
        title_text = f"{i.label}: {i.detail or i.text}" + (
            "" if bx is None else "; the red line is the margin"
        )
        rows.append(
            ForestRow(
                i.label,
                y,
                x(i.lo),
                x(i.hi),
                x(i.est),
                bx,
                bad_x,
                bad_w,
                i.colour,
                i.icon,
                i.text,
                title_text,
            )
        )
    axis_y = _TOP + len(items) * _ROW_H + 2
    labels = [
        (x(t), "0" if t == 0 and neutral == 0 else format(t, fmt).replace("-", "−")) for t in ticks
    ]
    return ForestPanel(
        title, axis, FOREST_WIDTH, axis_y + _AXIS_H, x0, x1, x(neutral), labels, rows, axis_y
    )
