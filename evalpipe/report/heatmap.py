"""The slice heatmap: each slice × metric change of a candidate, coloured by how close it comes to
the metric's margin, with n per cell; flagged cells are outlined and named.

The colour is a share of the margin in the gate's orientation (negative is worse): −1 is a change as
bad as the margin allows. Worse is red, better is blue (told apart without red-green vision), and
every cell also says its change and n in words, so colour is never the only signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate.numbers import finite
from evalpipe.report.figures import metric_label, metric_view

__all__ = ["HeatCell", "Heatmap", "heatmaps", "tint"]

_WORSE: Final = (255, 129, 130)
"""The tint of a change as bad as the margin (and beyond); text on it stays #1f2328."""
_BETTER: Final = (128, 181, 255)
_LIMIT: Final = 1.5


@dataclass(frozen=True)
class HeatCell:
    change: str
    n: int
    background: str
    flagged: bool
    verdict: str | None
    title: str


@dataclass(frozen=True)
class Heatmap:
    candidate: str
    metrics: list[str]
    """Column labels."""
    rows: list[tuple[str, list[HeatCell | None]]]
    """(slice as `column=value`, one cell per metric or None where the gate has no row)."""
    flagged: list[str]
    """Each flagged cell named: `feature=triage · valid_json (−8.0 pp, n 500)`."""


def _severity(row: dict[str, Any]) -> float | None:
    est, margin = row.get("estimate"), row.get("margin")
    if est is None or not finite(est):
        return None
    d = 1.0 - float(est) if row.get("kind") == "ratio" else float(est)  # above ×1 is worse
    scale = float(margin) if finite(margin) and margin else None
    if scale is None:  # not gated: a 25% ratio or a 5 pp change reads as full colour
        scale = 0.25 if row.get("kind") == "ratio" else 0.05
    return max(-_LIMIT, min(_LIMIT, d / scale))


def tint(severity: float | None) -> str:
    """White for no change, towards red when worse, towards blue when better (capped)."""
    if severity is None:
        return "#f6f8fa"
    end = _WORSE if severity < 0 else _BETTER
    t = min(abs(severity), 1.0)
    rgb = (round(255 + (c - 255) * t) for c in end)
    return "#" + "".join(f"{c:02x}" for c in rgb)


def heatmaps(gate: pa.Table, candidates: list[str]) -> list[Heatmap]:
    """One heatmap per candidate that has slice rows."""
    sliced = gate.filter(pc.is_valid(gate["slice_col"]))
    out = []
    for cand in candidates:
        rows = sliced.filter(pc.equal(sliced["candidate"], cand)).to_pylist()
        if not rows:
            continue
        metrics: list[str] = []
        for r in rows:
            if r["metric"] not in metrics:
                metrics.append(r["metric"])
        cells: dict[tuple[str, str], HeatCell] = {}
        biggest: dict[str, tuple[str, int]] = {}
        flagged = []
        for r in rows:
            view = metric_view(r)
            key = f"{r['slice_col']}={r['slice_value']}"
            n = int(r.get("n") or 0)
            seen = biggest.get(key, ("", 0))[1]
            biggest[key] = (str(r["slice_col"]), max(n, seen))
            is_flagged = bool(r.get("flagged"))
            change = view.change
            title = f"{key} · {view.label}: {change}"
            if view.ci != "—":
                title += f" (95% CI {view.ci})"
            title += f", n {n:,}"
            if is_flagged:
                title += f", flagged (q {view.q})"
                flagged.append(f"{key} · {view.label} ({change}, n {n:,}, q {view.q})")
            cells[(key, r["metric"])] = HeatCell(
                change, n, tint(_severity(r)), is_flagged, r.get("verdict"), title
            )
        keys = sorted(biggest, key=lambda k: (biggest[k][0], -biggest[k][1], k))
        out.append(
            Heatmap(
                cand,
                [metric_label(m) for m in metrics],
                [(k, [cells.get((k, m)) for m in metrics]) for k in keys],
                flagged,
            )
        )
    return out
