"""Gate-table rows as the figures a PM reads: percentages, pp, ×ratios, intervals and CI bars.

The gate table orients every difference so that negative means the candidate is worse (STATISTICS.md,
notation). Here each row is turned back into what a reader expects: error rate as the candidate's
rate minus the baseline's (up is worse), win rate in pp against ½, ratios as ×1.23.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate import numbers
from evalpipe.gate.numbers import MINUS, finite, usd
from evalpipe.report.charts import CiBar, ci_bar

__all__ = [
    "INFO_COLOUR",
    "VERDICT_COLOURS",
    "MetricView",
    "SliceView",
    "flagged_slices",
    "metric_label",
    "metric_views",
    "p_text",
    "pct",
    "slice_rows",
    "total_rows",
]

MISSING: Final = "—"
"""A table cell without a value."""
VERDICT_COLOURS: Final[dict[str, str]] = {
    "GO": "#1a7f37",
    "NO-GO": "#cf222e",
    "NOT-PROVEN": "#9a6700",
    "INVALID": "#6639ba",
}
INFO_COLOUR: Final = "#6e7781"

_LABELS: Final[dict[str, str]] = {
    "error_rate": "error rate",
    "latency_p50": "latency p50",
    "latency_p95": "latency p95",
    "ttft_p95": "time to first token p95",
    "cost": "cost per request",
    "diff.exact": "identical to baseline",
    "diff.similarity": "similarity to baseline",
    "diff.length_ratio": "length vs baseline",
    "diff.json_structure": "same JSON keys as baseline",
    "diff.tool_calls": "same tool calls as baseline",
}


def metric_label(metric: str) -> str:
    """A reader's name for evalpipe's own metrics; spec metrics keep the spec's name."""
    return _LABELS.get(metric, metric)


def _ok(x: Any) -> bool:
    return finite(x)


def pct(x: Any, digits: int = 1) -> str:
    return numbers.pct(x, digits, missing=MISSING)


def signed(x: Any, digits: int = 1, unit: str = "") -> str:
    return numbers.signed(x, digits, unit, missing=MISSING)


def _num(x: Any, digits: int = 2) -> str:
    return numbers.num(x, digits, missing=MISSING)


def p_text(p: Any) -> str:
    return numbers.p_value(p, missing=MISSING)


def _ratio(x: Any) -> str:
    return f"×{x:.2f}" if _ok(x) else MISSING


def _ms(x: Any) -> str:
    return f"{_num(x, 0)} ms" if _ok(x) else MISSING


def _interval(lo: str, hi: str) -> str:
    return MISSING if MISSING in (lo, hi) else f"{lo} to {hi}"


@dataclass(frozen=True)
class MetricView:
    """One metric row as the page and summary show it."""

    metric: str
    label: str
    source: str
    gated: bool
    critical: bool
    baseline: str
    candidate: str
    change: str
    ci: str
    allowed: str
    verdict: str | None
    """None for informational rows."""
    n: int
    clusters: int | None
    p: str
    p_adjusted: str
    reason: str
    bar: CiBar | None
    slice: str | None = None
    q: str = MISSING
    flag: str | None = None
    """Why a slice row is shown: `flagged`, or its gated verdict."""

    @property
    def colour(self) -> str:
        return VERDICT_COLOURS.get(self.verdict or "", INFO_COLOUR)


def _scale(x: Any, k: float) -> float | None:
    return float(x) * k if _ok(x) else None


def metric_view(row: dict[str, Any], *, colour: str | None = None) -> MetricView:
    """A gate-table row (as a dict) in display units, with its CI bar (in `colour` if given)."""
    metric, source = str(row["metric"]), str(row["source"])
    b, c, est, lo, hi = (
        row.get(k) for k in ("baseline", "candidate_value", "estimate", "ci_low", "ci_high")
    )
    margin = row.get("margin")
    m: float | None = float(margin) if isinstance(margin, int | float) and _ok(margin) else None
    verdict = row.get("verdict")
    colour = colour or VERDICT_COLOURS.get(verdict or "", INFO_COLOUR)
    bar_args: tuple[float | None, float | None, float | None, float, float | None, bool] | None
    if source == "rule":
        baseline, candidate = pct(b), pct(c)
        change = signed(_scale(est, 100), 1, " pp")
        ci = _interval(signed(_scale(lo, 100)), signed(_scale(hi, 100), 1, " pp"))
        parts = [f"≥ {MINUS}{m * 100:.1f} pp"] if m is not None else []
        if row.get("critical"):  # NO-GO on any significant drop; GO within the margin
            parts.append("no significant drop")
        allowed = ", ".join(parts) or MISSING
        bar_args = (
            _scale(lo, 100),
            _scale(hi, 100),
            _scale(est, 100),
            0.0,
            None if m is None else -m * 100,
            False,
        )
    elif source == "error_rate":
        baseline, candidate = pct(b), pct(c)
        change = signed(_scale(est, -100), 1, " pp")
        ci = _interval(signed(_scale(hi, -100)), signed(_scale(lo, -100), 1, " pp"))
        allowed = f"≤ +{m * 100:.1f} pp" if m is not None else MISSING
        bar_args = (
            _scale(hi, -100),
            _scale(lo, -100),
            _scale(est, -100),
            0.0,
            None if m is None else m * 100,
            True,
        )
    elif source == "pairwise":
        baseline, candidate = "50.0% (tie)", pct(c) + " wins"
        change = signed(_scale(est, 100), 1, " pp")
        ci = _interval(signed(_scale(lo, 100)), signed(_scale(hi, 100), 1, " pp"))
        allowed = f"win rate ≥ {pct(0.5 - m)}" if m is not None else MISSING
        bar_args = (
            _scale(lo, 100),
            _scale(hi, 100),
            _scale(est, 100),
            0.0,
            None if m is None else -m * 100,
            False,
        )
    elif source == "pointwise":
        baseline, candidate = _num(b), _num(c)
        change = signed(est, 2)
        ci = _interval(signed(lo, 2), signed(hi, 2))
        allowed = f"≥ {MINUS}{m:.2f}" if m is not None else MISSING
        bar_args = (lo, hi, est, 0.0, None if m is None else -m, False)
    elif source in ("latency", "cost"):
        fmt = _ms if source == "latency" else usd
        baseline, candidate = fmt(b), fmt(c)
        change = _ratio(est)
        ci = _interval(_ratio(lo), _ratio(hi))
        allowed = f"≤ ×{1 + m:.2f}" if m is not None and row.get("gated") else "not gated"
        bar_args = (lo, hi, est, 1.0, None if m is None else 1 + m, True)
    else:  # diff: the candidate against the baseline, beside the baseline against itself
        fmt = _ratio if metric == "diff.length_ratio" else pct
        baseline = fmt(b) + " (A/A)" if _ok(b) else MISSING
        candidate, change, ci, allowed = fmt(c), MISSING, MISSING, "not gated"
        bar_args = None
    bar = None
    if bar_args is not None:
        blo, bhi, best, neutral, bound, bad_high = bar_args
        bar = ci_bar(
            blo,
            bhi,
            best,
            neutral=neutral,
            bound=bound,
            bad_high=bad_high,
            colour=colour,
            title=f"95% CI {ci}; allowed {allowed}",
        )
    slice_col = row.get("slice_col")
    return MetricView(
        metric=metric,
        label=metric_label(metric),
        source=source,
        gated=bool(row.get("gated")),
        critical=bool(row.get("critical")),
        baseline=baseline,
        candidate=candidate,
        change=change,
        ci=ci,
        allowed=allowed,
        verdict=verdict,
        n=int(row.get("n") or 0),
        clusters=row.get("clusters"),
        p=p_text(row.get("p_value")),
        p_adjusted=p_text(row.get("p_adjusted")),
        reason=str(row.get("reason") or ""),
        bar=bar,
        slice=None if slice_col is None else f"{slice_col}={row.get('slice_value')}",
        q=p_text(row.get("q_value")),
    )


def total_rows(gate: pa.Table, candidate: str) -> list[dict[str, Any]]:
    """The candidate's total rows (slice_col null), gated metrics first, in gate order."""
    mask = pc.and_(pc.equal(gate["candidate"], candidate), pc.is_null(gate["slice_col"]))
    rows: list[dict[str, Any]] = gate.filter(mask).to_pylist()
    return sorted(rows, key=lambda r: not r["gated"])


def metric_views(gate: pa.Table, candidate: str) -> list[MetricView]:
    return [metric_view(r) for r in total_rows(gate, candidate)]


@dataclass(frozen=True)
class SliceView:
    candidate: str
    view: MetricView
    simpson: str | None
    """Simpson's warning: the total is GO or improves while this slice is flagged."""
    total_verdict: str | None
    """The verdict of the metric's total row (None: not gated)."""
    q_value: float = 1.0
    concern: bool = True
    """Flagged, NO-GO, or a gated slice whose estimate leans worse; False: a gated slice that is
    NOT-PROVEN only for want of records (its estimate shows no harm), listed apart."""


def slice_rows(gate: pa.Table) -> list[dict[str, Any]]:
    """Slice rows that are flagged (q < 0.1 and worse than the margin) or gated and not GO.

    Each row is a gate-table dict; `flagged` is the gate's (q < 0.1 and worse than the margin).
    """
    sliced = pc.is_valid(gate["slice_col"])
    flagged = pc.fill_null(pc.and_(sliced, gate["flagged"]), False)
    gated_open = pc.fill_null(pc.and_(sliced, pc.not_equal(gate["verdict"], "GO")), False)
    shown = gate.filter(pc.or_(flagged, gated_open))
    rows: list[dict[str, Any]] = shown.to_pylist()
    return rows


def _leans_worse(row: dict[str, Any]) -> bool:
    """Whether the row's point estimate is on the worse side (or unknown): a difference below 0,
    a ratio (latency, cost) above 1."""
    estimate: Any = row.get("estimate")
    if not _ok(estimate):
        return True
    value = float(estimate)
    return value > 1 if row.get("kind") == "ratio" else value < 0


def flagged_slices(gate: pa.Table) -> list[SliceView]:
    """`slice_rows` as views, each with its Simpson's warning when the total hides it."""
    shown = slice_rows(gate)
    if not shown:
        return []
    totals = {
        (r["candidate"], r["metric"]): r
        for r in gate.filter(pc.is_null(gate["slice_col"]))
        .select(["candidate", "metric", "kind", "verdict", "estimate"])
        .to_pylist()
    }
    out = []
    for row in shown:
        flag_colour = VERDICT_COLOURS["NO-GO"] if row["flagged"] and not row["verdict"] else None
        view = metric_view(row, colour=flag_colour)
        flag = "flagged" if row["flagged"] else None
        if row["verdict"] is not None:
            flag = (
                f"{row['verdict']} (gated slice)" if flag is None else f"flagged, {row['verdict']}"
            )
        view = replace(view, flag=flag)
        total = totals.get((row["candidate"], row["metric"]))
        simpson = None
        if row["flagged"] and total is not None:
            improves = _ok(total["estimate"]) and (
                total["estimate"] < 1 if total["kind"] == "ratio" else total["estimate"] > 0
            )
            if total["verdict"] == "GO" or improves:
                how = "is GO" if total["verdict"] == "GO" else "improves"
                q = view.q if view.q.startswith("<") else f"= {view.q}"
                simpson = (
                    f"{view.label} {how} for {row['candidate']} overall, but is worse on "
                    f"{view.slice} ({view.change}, q {q}): the total hides this slice."
                )
        verdict = None if total is None else total["verdict"]
        q_value = float(row["q_value"]) if _ok(row["q_value"]) else 1.0
        concern = bool(row["flagged"]) or row["verdict"] != "NOT-PROVEN" or _leans_worse(row)
        out.append(SliceView(str(row["candidate"]), view, simpson, verdict, q_value, concern))
    # Most telling first: hidden by a good total, then not already NO-GO in total, then by q.
    out.sort(
        key=lambda s: (
            s.simpson is None,
            s.total_verdict == "NO-GO",
            s.q_value,
            s.view.slice or "",
            s.view.metric,
        )
    )
    return out
