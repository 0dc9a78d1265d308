"""The leaderboard of more than two candidates, sortable without a server.

Each sort key gets its own pre-sorted copy of the table; radio buttons and CSS (`:checked ~`)
show one copy at a time, so sorting needs no script and the page's CSP can forbid all scripts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from evalpipe.gate.numbers import finite, usd
from evalpipe.gate.verdict import SEVERITY
from evalpipe.report.figures import metric_label, metric_view, total_rows
from evalpipe.report.money import Money

__all__ = ["LeaderRow", "Leaderboard", "leaderboard"]


@dataclass(frozen=True)
class LeaderRow:
    candidate: str
    verdict: str
    cells: list[tuple[str, str]]
    """(value, 95% CI) per gated metric, then cost ratio, latency ratio and projected month."""


@dataclass(frozen=True)
class Leaderboard:
    columns: list[str]
    keys: list[str]
    """The sort keys' names (Verdict, each column)."""
    views: list[list[LeaderRow]]
    """The rows sorted by each key, best first."""


def _best_first(value: Any, higher_is_better: bool) -> float:
    if not finite(value):
        return math.inf
    return -float(value) if higher_is_better else float(value)


def leaderboard(
    gate: pa.Table, verdicts: dict[str, str], money: Money | None
) -> Leaderboard | None:
    """The candidates side by side (None for two or fewer)."""
    if len(verdicts) <= 2:
        return None
    gated: list[str] = []
    by_cand: dict[str, dict[str, dict[str, Any]]] = {}
    for cand in verdicts:
        rows = {r["metric"]: r for r in total_rows(gate, cand)}
        by_cand[cand] = rows
        for m, r in rows.items():
            if r.get("gated") and r.get("source") not in ("cost", "latency") and m not in gated:
                gated.append(m)
    ratio_metrics = []
    for name in ("cost", "latency_p50"):
        if any(name in rows for rows in by_cand.values()):
            ratio_metrics.append(name)
    columns = [metric_label(m) for m in gated + ratio_metrics] + ["Projected month"]
    rows_out = []
    sort_values: list[list[float]] = []
    for cand, verdict in verdicts.items():
        cells, keys = [], [float(SEVERITY.get(verdict, len(SEVERITY)))]
        for m in gated + ratio_metrics:
            found = by_cand[cand].get(m)
            if found is None:
                cells.append(("—", ""))
                keys.append(math.inf)
                continue
            v = metric_view(found)
            cells.append((v.change, "" if v.ci == "—" else v.ci))
            keys.append(_best_first(found.get("estimate"), found.get("kind") != "ratio"))
        arm = money.arm(cand) if money else None
        monthly = arm.monthly if arm else None
        cells.append((usd(monthly) if monthly is not None else "—", ""))
        keys.append(_best_first(monthly, False))
        rows_out.append(LeaderRow(cand, verdict, cells))
        sort_values.append(keys)
    views = []
    for k in range(len(columns) + 1):
        order = sorted(
            range(len(rows_out)), key=lambda i: (sort_values[i][k], rows_out[i].candidate)
        )
        views.append([rows_out[i] for i in order])
    return Leaderboard(columns, ["Verdict", *columns], views)
