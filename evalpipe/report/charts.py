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
