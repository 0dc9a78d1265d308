"""The trends page of a spec (`reports/trends/<spec>.html`): each gated metric night by night.

Read from the run folders, the store's truth (ARCHITECTURE.md, the store): each finished run's
manifest (created, candidates' verdicts, model snapshots seen, cost) and the total rows of its
gate.parquet, with DuckDB over all of them at once. Verdict changes and model-snapshot changes are
marked on the time axis; cost per request and latency p50 per arm follow night by night.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb

from evalpipe.gate.numbers import finite, usd
from evalpipe.report.charts import SHAPES, TrendChart, trend_chart
from evalpipe.report.figures import metric_label

__all__ = ["Trends", "trends", "trends_path"]

log = logging.getLogger(__name__)

PALETTE: Final = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56636e")
"""Okabe-Ito hues (told apart with colour-vision deficiencies), darkened where text needs it."""
BASELINE_COLOUR: Final = "#59636e"
_PP: Final = ("rule", "error_rate", "pairwise")


@dataclass(frozen=True)
class Event:
    badge: str
    night: str
    text: str


@dataclass(frozen=True)
class Trends:
    spec_name: str
    nights: int
    first: str
    last: str
    candidates: list[tuple[str, str, str]]
    """(name, colour, marker shape)."""
    charts: list[TrendChart]
    money: list[TrendChart]
    events: list[Event]
    latest: list[tuple[str, str, str]]
    """(candidate, its latest verdict, the night)."""
    runs: list[tuple[str, str, str, str]]
    """(night, run id, verdicts, cost) newest first."""


def trends_path(reports_root: Path, spec_name: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in spec_name) or "spec"
    return Path(reports_root) / "trends" / f"{safe}.html"


def _when(iso: Any) -> datetime | None:
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _at(manifest: dict[str, Any]) -> datetime | None:
    """When a run stands on the time axis: the night it watched (a nightly run, which may be
    re-run or back-filled later), else when it was created."""
    night = (manifest.get("nightly") or {}).get("night")
    return _when(night) if night else _when(manifest.get("created"))


def _manifests(root: Path, spec_name: str) -> list[dict[str, Any]]:
    import orjson

    runs_dir = root / "runs"
    out: list[dict[str, Any]] = []
    if not runs_dir.is_dir():
        return out
    for d in sorted(runs_dir.iterdir()):
        m = d / "manifest.json"
        if not (m.is_file() and (d / "gate.parquet").is_file()):
            continue
        try:
            doc = orjson.loads(m.read_bytes())
        except orjson.JSONDecodeError:
            log.warning("unreadable manifest %s", m)
            continue
        if doc.get("spec_name") == spec_name and doc.get("verdict") and _at(doc):
            out.append(doc)
    out.sort(key=lambda m: (_at(m), m["run_id"]))
    return out


def _scale(source: str) -> tuple[float, str, str, str]:
    """(factor to display units, axis label, unit, tick format) of a metric source."""
    if source == "error_rate":  # (the gate's estimate is the change in requests answered)
        axis = "change in requests answered without error, percentage points (up = fewer errors)"
        return 100.0, axis, "pp", "+.0f"
    if source in _PP:
        return 100.0, "change against the baseline, percentage points (up is better)", "pp", "+.0f"
    if source in ("latency", "cost"):
        return 1.0, "candidate ÷ baseline, × (down is better)", "× baseline", ".2f"
    return 1.0, "change in judge score, points (up is better)", "points", "+.2f"


def trends(root: Path, spec_name: str) -> Trends | None:
    """Every finished run of `spec_name` in the store at `root`, as charts (None: no run)."""
    manifests = _manifests(Path(root), spec_name)
    if not manifests:
        return None
    ids = [m["run_id"] for m in manifests]
    paths = [str(Path(root) / "runs" / i / "gate.parquet") for i in ids]
    with duckdb.connect() as con:
        rows = con.execute(
            "SELECT run_id, candidate, metric, source, kind, gated, baseline, candidate_value, "
            "estimate, ci_low, ci_high, margin, verdict FROM read_parquet(?, union_by_name = true) "
            "WHERE slice_col IS NULL ORDER BY run_id, candidate, metric",
            [paths],
        ).fetchall()
    cols = (
        "run_id",
        "candidate",
        "metric",
        "source",
        "kind",
        "gated",
        "baseline",
        "candidate_value",
        "estimate",
        "ci_low",
        "ci_high",
        "margin",
        "verdict",
    )
    table = [dict(zip(cols, r, strict=True)) for r in rows]
    times = [_at(m) for m in manifests]
    t0, t1 = times[0], times[-1]
    assert t0 is not None and t1 is not None
    width = (t1 - t0).total_seconds() or 1.0
    xs = [((t - t0).total_seconds() / width) if len(times) > 1 else 0.5 for t in times if t]
    index = {run_id: k for k, run_id in enumerate(ids)}
    nights = [f"{t:%d %b}" for t in times if t]
    step = max(1, len(xs) // 10)
    xlabels = [(xs[k], nights[k]) for k in range(0, len(xs), step)]

    names: list[str] = []
    for m in manifests:
        for c in m.get("candidates") or {}:
            if c not in names:
                names.append(c)
    colour = {n: PALETTE[k % len(PALETTE)] for k, n in enumerate(names)}
    shape = {n: SHAPES[(k + 1) % len(SHAPES)] for k, n in enumerate(names)} | {
        "baseline": SHAPES[0]
    }

    events: list[Event] = []
    marks: list[tuple[float, str, str]] = []

    def add_event(k: int, text: str) -> None:
        badge = str(len(events) + 1)
        events.append(Event(badge, nights[k], text))
        marks.append((xs[k], badge, f"{nights[k]}: {text}"))

    for k in range(1, len(manifests)):
        before, now = manifests[k - 1].get("candidates") or {}, manifests[k].get("candidates") or {}
        for c in names:
            v0 = (before.get(c) or {}).get("verdict")
            v1 = (now.get(c) or {}).get("verdict")
            if v0 and v1 and v0 != v1:
                add_event(k, f"{c}: {v0} → {v1}")
        seen0, seen1 = (
            manifests[k - 1].get("models_seen") or {},
            manifests[k].get("models_seen") or {},
        )
        for arm in sorted(set(seen0) | set(seen1)):
            a, b = sorted(map(str, seen0.get(arm) or [])), sorted(map(str, seen1.get(arm) or []))
            if a and b and a != b:
                add_event(k, f"{arm} snapshot {', '.join(a)} → {', '.join(b)}")

    gated: list[tuple[str, str]] = []
    for r in table:
        if r["gated"] and r["source"] not in ("diff",) and (r["metric"], r["source"]) not in gated:
            gated.append((r["metric"], r["source"]))
    by = {(r["run_id"], r["candidate"], r["metric"]): r for r in table}
    charts = []
    for metric, source in gated:
        k_scale, axis, unit, fmt = _scale(source)
        series = []
        margin = None
        for c in names:
            pts: list[tuple[float, float, float] | None] = [None] * len(ids)
            tips = [""] * len(ids)
            for run_id in ids:
                got = by.get((run_id, c, metric))
                if got is None or not finite(got["estimate"]):
                    continue
                i = index[run_id]
                lo = got["ci_low"] * k_scale if finite(got["ci_low"]) else float("nan")
                hi = got["ci_high"] * k_scale if finite(got["ci_high"]) else float("nan")
                pts[i] = (got["estimate"] * k_scale, lo, hi)
                tips[i] = (
                    f"{c}, {nights[i]}: {got['estimate'] * k_scale:{fmt}} ({got['verdict'] or 'not gated'})"
                )
                if finite(got["margin"]):
                    margin = got["margin"]
            if any(p is not None for p in pts):
                series.append((c, colour[c], shape[c], pts, tips))
        neutral = 1.0 if source in ("latency", "cost") else 0.0
        rules = [(neutral, "no change", BASELINE_COLOUR, "3 3")]
        if margin is not None:
            bound = 1 + margin if neutral == 1.0 else -margin * k_scale
            rules.append((bound, "margin", "#cf222e", ""))
        charts.append(
            trend_chart(
                title=f"{metric_label(metric)} night by night, 95% CI",
                axis=axis,
                unit=unit,
                xs=xs,
                xlabels=xlabels,
                series=series,
                rules=rules,
                events=marks,
                fmt=fmt,
            )
        )
    money = [
        chart
        for metric, title, unit, fmt in (
            ("cost", "Cost per request, baseline and candidates", "$ per request", ".2g"),
            ("latency_p50", "Latency p50, baseline and candidates", "ms", ",.0f"),
        )
        if (
            chart := _level_chart(
                metric, title, unit, fmt, ids, nights, xs, xlabels, marks, names, colour, shape, by
            )
        )
        is not None
    ]
    latest_m = manifests[-1].get("candidates") or {}
    runs = []
    for m, night in zip(reversed(manifests), reversed(nights), strict=True):
        cands = m.get("candidates") or {}
        verdicts = ", ".join(f"{c} {(v or {}).get('verdict')}" for c, v in cands.items())
        runs.append(
            (night, str(m["run_id"]), verdicts, usd((m.get("cost_usd") or {}).get("total")))
        )
    return Trends(
        spec_name,
        len(manifests),
        f"{t0:%d %b %Y}",
        f"{t1:%d %b %Y}",
        [("baseline", BASELINE_COLOUR, shape["baseline"])]
        + [(n, colour[n], shape[n]) for n in names],
        charts,
        money,
        events,
        [(c, str((v or {}).get("verdict")), nights[-1]) for c, v in latest_m.items()],
        runs,
    )


def _level(metric: str, v: float) -> str:
    return usd(v) if metric == "cost" else f"{v:,.0f} ms"


def _level_chart(
    metric: str,
    title: str,
    unit: str,
    fmt: str,
    ids: list[str],
    nights: list[str],
    xs: list[float],
    xlabels: list[tuple[float, str]],
    marks: list[tuple[float, str, str]],
    names: list[str],
    colour: dict[str, str],
    shape: dict[str, str],
    by: dict[tuple[str, str, str], dict[str, Any]],
) -> TrendChart | None:
    """Cost per request or latency p50 of each arm night by night (levels, not changes)."""
    nan = float("nan")
    n = len(ids)
    base: list[tuple[float, float, float] | None] = [None] * n
    base_tips = [""] * n
    series: list[tuple[str, str, str, list[tuple[float, float, float] | None], list[str]]] = []
    for c in names:
        values: list[tuple[float, float, float] | None] = [None] * n
        notes = [""] * n
        for i, run_id in enumerate(ids):
            got = by.get((run_id, c, metric))
            if got is None:
                continue
            if finite(got["candidate_value"]):
                val = float(got["candidate_value"])
                values[i] = (val, nan, nan)
                notes[i] = f"{c}, {nights[i]}: {_level(metric, val)}"
            if finite(got["baseline"]) and base[i] is None:
                b = float(got["baseline"])
                base[i] = (b, nan, nan)
                base_tips[i] = f"baseline, {nights[i]}: {_level(metric, b)}"
        if any(v is not None for v in values):
            series.append((c, colour[c], shape[c], values, notes))
    if not series:
        return None
    series.insert(0, ("baseline", BASELINE_COLOUR, shape["baseline"], base, base_tips))
    return trend_chart(
        title=title,
        axis=unit,
        unit=unit,
        xs=xs,
        xlabels=xlabels,
        series=series,
        rules=[],
        events=marks,
        fmt=fmt,
    )
