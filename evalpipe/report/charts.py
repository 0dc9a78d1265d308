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

FOREST_WIDTH: Final = 360.0
_LABEL_W: Final = 106.0
_TEXT_W: Final = 58.0
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


# --- trend lines -------------------------------------------------------------------------------

TREND_WIDTH: Final = 1080.0
TREND_HEIGHT: Final = 230.0
_T_LEFT: Final = 76.0
_T_RIGHT: Final = 16.0
_T_TOP: Final = 26.0
_T_BOTTOM: Final = 44.0
SHAPES: Final = ("circle", "square", "triangle", "diamond", "cross")
"""A marker shape per series, so a series is never told by its colour alone."""


@dataclass(frozen=True)
class TrendSeries:
    name: str
    colour: str
    shape: str
    line: str
    """SVG polyline points of the estimates."""
    band: str
    """SVG polygon points of the 95% CI band (empty without intervals)."""
    markers: list[tuple[float, float, str]]
    """(x, y, tooltip) per night with a value."""


@dataclass(frozen=True)
class TrendChart:
    title: str
    axis: str
    unit: str
    """The y axis's short label (its unit)."""
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    """The plot's top."""
    y1: float
    """The plot's bottom (the x axis)."""
    xticks: list[tuple[float, str]]
    yticks: list[tuple[float, str]]
    series: list[TrendSeries]
    rules: list[tuple[float, str, str, str]]
    """Horizontal lines: (y, label, colour, dash)."""
    events: list[tuple[float, str, str]]
    """Vertical marks on the time axis: (x, badge, tooltip)."""


def trend_chart(
    *,
    title: str,
    axis: str,
    unit: str,
    xs: list[float],
    xlabels: list[tuple[float, str]],
    series: list[tuple[str, str, str, list[tuple[float, float, float] | None], list[str]]],
    rules: list[tuple[float, str, str, str]],
    events: list[tuple[float, str, str]],
    fmt: str,
) -> TrendChart:
    """Lines of estimates with CI bands over nights.

    Args:
        xs: each night's position in [0, 1] along the time axis.
        xlabels: (position in [0, 1], label) of the ticks of the time axis.
        series: (name, colour, marker shape (one of SHAPES), per night (estimate, low, high) or
            None, per night a tooltip).
        rules: horizontal lines in data units: (value, label, colour, dash).
        events: (position in [0, 1], badge, tooltip) marks on the time axis.
        fmt: format spec of the y tick labels.
    """
    x0, x1 = _T_LEFT, TREND_WIDTH - _T_RIGHT
    y0, y1 = _T_TOP, TREND_HEIGHT - _T_BOTTOM
    values = [v for *_, pts, _ in series for p in pts if p is not None for v in p if _finite(v)]
    values += [r[0] for r in rules if _finite(r[0])]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    span = (hi - lo) or (abs(hi) or 1.0)
    lo, hi = lo - 0.06 * span, hi + 0.06 * span
    ticks = nice_ticks(lo, hi, 5)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])

    def px(t: float) -> float:
        return round(x0 + t * (x1 - x0), 2)

    def py(v: float) -> float:
        return round(y1 - (v - lo) / (hi - lo) * (y1 - y0), 2)

    out = []
    for name, colour, shape, pts, tips in series:
        line, top, bottom, markers = [], [], [], []
        for x, p, tip in zip(xs, pts, tips, strict=True):
            if p is None or not _finite(p[0]):
                continue
            est, low, high = p
            line.append(f"{px(x)},{py(est)}")
            if _finite(low, high):
                top.append(f"{px(x)},{py(high)}")
                bottom.append(f"{px(x)},{py(low)}")
            markers.append((px(x), py(est), tip))
        band = " ".join(top + bottom[::-1]) if len(top) > 1 else ""
        out.append(TrendSeries(name, colour, shape, " ".join(line), band, markers))
    return TrendChart(
        title,
        axis,
        unit,
        TREND_WIDTH,
        TREND_HEIGHT,
        x0,
        x1,
        y0,
        y1,
        [(px(t), label) for t, label in xlabels],
        [(py(t), "0" if t == 0 else format(t, fmt).replace("-", "−")) for t in ticks],
        out,
        [(py(v), label, colour, dash) for v, label, colour, dash in rules if _finite(v)],
        [(px(t), badge, tip) for t, badge, tip in events],
    )


# --- latency percentiles ---------------------------------------------------------------------

STRIP_WIDTH: Final = 720.0
_S_LABEL: Final = 196.0
_S_ROW: Final = 26.0


@dataclass(frozen=True)
class StripRow:
    label: str
    y: float
    p50: float
    p95: float
    p99: float
    title: str


@dataclass(frozen=True)
class Strips:
    """Percentiles (p50, p95, p99) of one quantity per arm on a shared axis from zero."""

    title: str
    axis: str
    width: float
    height: float
    x0: float
    x1: float
    axis_y: float
    ticks: list[tuple[float, str]]
    rows: list[StripRow]


def percentile_strips(
    rows: list[tuple[str, tuple[float | None, float | None, float | None]]],
    *,
    title: str,
    axis: str,
) -> Strips | None:
    """Lay out each arm's p50, p95 and p99 (ms) on one axis starting at 0 ms."""
    kept = [(label, p) for label, p in rows if all(v is not None and _finite(v) for v in p)]
    if not kept:
        return None
    top = max(float(p[2] or 0) for _, p in kept) or 1.0
    ticks = nice_ticks(0.0, top * 1.05, 6)
    hi = max(top * 1.05, ticks[-1])
    x0, x1 = _S_LABEL, STRIP_WIDTH - 20

    def x(v: float) -> float:
        return round(x0 + v / hi * (x1 - x0), 2)

    out = []
    for k, (label, (p50, p95, p99)) in enumerate(kept):
        assert p50 is not None and p95 is not None and p99 is not None
        out.append(
            StripRow(
                label,
                6 + k * _S_ROW,
                x(p50),
                x(p95),
                x(p99),
                f"{label}: p50 {p50:,.0f} ms, p95 {p95:,.0f} ms, p99 {p99:,.0f} ms",
            )
        )
    axis_y = 6 + len(kept) * _S_ROW + 2
    return Strips(
        title,
        axis,
        STRIP_WIDTH,
        axis_y + 40,
        x0,
        x1,
        axis_y,
        [(x(t), f"{t:,.0f}") for t in ticks],
        out,
    )
