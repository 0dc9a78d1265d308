"""The sentences a PM reads: one per metric row, one per candidate (STATISTICS.md, verdict reasons).

Every sentence is built from the row's numbers. Metric names are shown as given in the spec;
proportions are in percent and differences of proportions in percentage points (pp).
"""

from __future__ import annotations

import math

from evalpipe.gate.numbers import count, num, p_text, pct, signed, usd
from evalpipe.gate.rows import MetricRow

__all__ = [
    "candidate_sentence",
    "metric_sentence",
    "short_figure",
    "simpson_note",
]


def _where(where: dict[str, str | list[str]]) -> list[str]:
    parts = []
    for value in where.values():
        parts.append(value if isinstance(value, str) else "/".join(value))
    return parts


def scope(row: MetricRow) -> str:
    """` on triage`, ` on feature=billing`, or nothing."""
    parts = _where(row.where)
    if row.slice_col is not None:
        parts.append(f"{row.slice_col}={row.slice_value}")
    return " on " + ", ".join(parts) if parts else ""


def _digits(row: MetricRow) -> int:
    scale = max(abs(row.baseline), abs(row.candidate_value)) if math.isfinite(row.baseline) else 1
    return 2 if scale >= 1 else 3


def _moved(label: str, before: str, after: str, change: float) -> str:
    if not math.isfinite(change) or before == after:
        return f"{label} held at {after}"
    return f"{label} {'fell' if change < 0 else 'rose'} from {before} to {after}"


def _figures(row: MetricRow, ci: str) -> tuple[str, str]:
    """(main clause, parenthesis) of a row."""
    label = row.metric + scope(row)
    lo, hi, est = row.ci_low, row.ci_high, row.estimate
    if row.source == "rule":
        main = _moved(label, pct(row.baseline), pct(row.candidate_value), est)
        paren = (
            f"{signed(est * 100)} pp, {ci} {signed(lo * 100)} to {signed(hi * 100)}; "
            f"{count(row.regressed, 'request')} regressed, {row.improved or 0:,} improved"
        )
    elif row.source == "error_rate":
        main = _moved(label, pct(row.baseline), pct(row.candidate_value), -est)
        paren = (
            f"{signed(-est * 100)} pp, {ci} {signed(-hi * 100)} to {signed(-lo * 100)}; "
            f"{count(row.regressed, 'request')} failed only on the candidate, "
            f"{row.improved or 0:,} only on the baseline"
        )
    elif row.source == "pointwise":
        d = _digits(row)
        main = _moved(label, num(row.baseline, d), num(row.candidate_value, d), est)
        paren = (
            f"{signed(est, d)}, {ci} {signed(lo, d)} to {signed(hi, d)}; "
            f"{count(row.regressed, 'request')} scored lower, {row.improved or 0:,} higher"
        )
    elif row.source == "pairwise":
        main = f"{label}: the candidate won {pct(row.candidate_value)} of comparisons with the baseline"
        ties = row.n - (row.regressed or 0) - (row.improved or 0)
        paren = (
            f"{ci} {pct(lo + 0.5)} to {pct(hi + 0.5)}; {count(row.improved, 'win')}, "
            f"{count(row.regressed, 'loss', 'losses')}, {count(ties, 'tie')}"
        )
    elif row.source == "latency":
        main = f"{label} is {est:.2f}× the baseline's"
        paren = (
            f"{num(row.candidate_value, 0)} ms vs {num(row.baseline, 0)} ms; "
            f"{ci} {lo:.2f}× to {hi:.2f}×"
        )
    else:  # cost
        main = f"cost per request{scope(row)} is {est:.2f}× the baseline's"
        paren = f"{usd(row.candidate_value)} vs {usd(row.baseline)}; {ci} {lo:.2f}× to {hi:.2f}×"
    return main, paren


def margin_phrase(row: MetricRow) -> str:
    m = row.margin if row.margin is not None else math.nan
    if row.source in ("rule", "error_rate"):
        return f"{m * 100:.1f} pp margin"
    if row.source == "pointwise":
        return f"{m:.2f} margin"
    if row.source == "pairwise":
        return f"{pct(0.5 - m)} win-rate floor"
    return f"{1 + m:.2f}× limit"


def metric_sentence(row: MetricRow, *, alpha: float, min_n: int) -> str:
    """The row's reason: its verdict, figures, and what would settle it."""
    ci = f"{100 * (1 - alpha):g}% CI"
    label = row.metric + scope(row)
    if row.n == 0:
        prefix = f"{row.verdict}: " if row.verdict else ""
        return f"{prefix}no usable records for {label}."
    main, paren = _figures(row, ci)
    if row.verdict is None:
        note = f"; flagged ({p_text(row.q_value, 'q')})" if row.flagged else ""
        return f"{main} ({paren}){note}."
    if row.verdict == "NO-GO":
        if row.critical:
            paren += f"; critical check, exact McNemar {p_text(row.p_less)}"
        return f"NO-GO: {main} ({paren})."
    if row.verdict == "GO":
        return f"GO: {main} ({paren}), within the {margin_phrase(row)}."
    if row.below_min_n:
        return f"NOT-PROVEN: {main} ({paren}), but on only {row.n:,} records (min_n is {min_n:,})."
    worse = row.estimate > row.bound if row.kind == "ratio" else row.estimate < row.bound
    lean = "NO-GO" if worse else "GO"
    tail = "more records are needed"
    if row.n_needed is not None and math.isfinite(row.n_needed):
        more = int(row.n_needed) - row.n
        if more > 0:
            tail = f"need ~{more:,} more records"
        else:
            tail = "the estimate sits too close to the margin for more records to settle it soon"
    return (
        f"NOT-PROVEN: {main} ({paren}); the interval still crosses the {margin_phrase(row)}, "
        f"leaning {lean}; {tail}."
    )


def short_figure(row: MetricRow, *, alpha: float) -> str:
    """`helpfulness win rate 47.9% (95% CI 45.1% to 50.7%; floor 45.0%)` and the like."""
    ci = f"{100 * (1 - alpha):g}% CI"
    label = row.metric + scope(row)
    lo, hi, est = row.ci_low, row.ci_high, row.estimate
    if row.source == "rule":
        fig = f"{signed(est * 100)} pp ({ci} {signed(lo * 100)} to {signed(hi * 100)}"
    elif row.source == "error_rate":
        fig = f"{signed(-est * 100)} pp ({ci} {signed(-hi * 100)} to {signed(-lo * 100)}"
    elif row.source == "pointwise":
        d = _digits(row)
        fig = f"{signed(est, d)} ({ci} {signed(lo, d)} to {signed(hi, d)}"
    elif row.source == "pairwise":
        fig = f"win rate {pct(row.candidate_value)} ({ci} {pct(lo + 0.5)} to {pct(hi + 0.5)}"
    else:
        fig = f"{est:.2f}× ({ci} {lo:.2f}× to {hi:.2f}×"
    return f"{label} {fig}; {margin_phrase(row)})"


def simpson_note(row: MetricRow, total: MetricRow) -> str:
    """Names a flagged slice whose total is GO or improves (Simpson's case)."""
    how = "is GO" if total.verdict == "GO" else "improves"
    if row.kind == "ratio":
        fig = f"{row.estimate:.2f}×"
    elif row.source in ("rule", "error_rate"):
        fig = f"{signed((-row.estimate if row.source == 'error_rate' else row.estimate) * 100)} pp"
    else:
        fig = signed(row.estimate, _digits(row))
    verb = "got worse" if row.source in ("error_rate", "latency", "cost") else "fell"
    return (
        f"Note: {row.metric} {verb} on {row.slice_col}={row.slice_value} "
        f"({fig}, {p_text(row.q_value, 'q')}) although the total {how}."
    )


def candidate_sentence(
    verdict: str,
    rows: list[MetricRow],
    *,
    n: int,
    alpha: float,
    invalid_reasons: list[str],
) -> str:
    """The candidate's reason, from its gated rows (totals and gated slices)."""
    if verdict == "INVALID":
        return "INVALID: " + "; ".join(invalid_reasons) + "."
    gated = [r for r in rows if r.gated and r.verdict is not None]
    totals = [r for r in gated if r.slice_col is None]
    if verdict == "NO-GO":
        bad = sorted(
            (r for r in gated if r.verdict == "NO-GO"),
            # lead with what a PM acts on: a critical check, on the whole traffic, most certain first
            key=lambda r: (
                not r.critical,
                r.slice_col is not None,
                r.p_adjusted if r.p_adjusted is not None else 1.0,
                r.slice_col or "",
            ),
        )
        text = bad[0].reason
        others = sorted({r.metric + scope(r) for r in bad[1:]})
        if others:
            text += f" Also NO-GO: {', '.join(others)}."
        return text
    if verdict == "GO":

        def slack(r: MetricRow) -> float:
            m = r.margin or 1.0
            if r.kind == "ratio":
                return (1 + m - r.ci_high) / abs(m)
            return (r.ci_low + m) / m

        worst = min(totals, key=slack)
        return (
            f"GO: every gated metric is within its margin on {n:,} paired requests "
            f"(worst: {short_figure(worst, alpha=alpha)})."
        )
    open_rows = [r for r in totals if r.verdict == "NOT-PROVEN"] or [
        r for r in gated if r.verdict == "NOT-PROVEN"
    ]
    if not open_rows:
        return "NOT-PROVEN: no gated metric could be decided."

    def need(r: MetricRow) -> float:
        if r.n == 0 or r.below_min_n:
            return math.inf
        return r.n_needed if r.n_needed is not None and math.isfinite(r.n_needed) else 0.0

    first = max(open_rows, key=need)
    text = first.reason
    if len(open_rows) > 1:
        text += f" ({len(open_rows)} of {len(totals)} gated metrics are not settled.)"
    return text
