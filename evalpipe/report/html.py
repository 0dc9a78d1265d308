"""The HTML pages: a run's report (index.html) and the list of all runs (reports/index.html).

Both are self-contained (inline CSS and SVG, no script, a Content-Security-Policy that forbids
any request) and rendered by Jinja2 with autoescaping on for every template, so model outputs,
requests, slice and metric names can never become markup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import jinja2
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate.numbers import MINUS, count, finite, p_text, usd
from evalpipe.gate.verdict import EXIT_CODES, SEVERITY, CandidateVerdict, GateResult
from evalpipe.report.charts import ForestPanel, StackBar, Strips, percentile_strips, stack_bar
from evalpipe.report.coverage import ArmCoverage
from evalpipe.report.examples import Example
from evalpipe.report.facts import not_sent, skipped
from evalpipe.report.figures import (
    INFO_COLOUR,
    VERDICT_COLOURS,
    MetricView,
    SliceView,
    metric_label,
    metric_views,
    pct,
    total_rows,
)
from evalpipe.report.forest import VERDICT_ICONS, forest_panels
from evalpipe.report.heatmap import Heatmap, heatmaps
from evalpipe.report.judges import JudgeReliability
from evalpipe.report.leaderboard import Leaderboard, leaderboard
from evalpipe.report.money import Money
from evalpipe.spec import Arm, Spec
from evalpipe.version import __version__

__all__ = [
    "ArmRow",
    "Card",
    "ExampleGroup",
    "PageData",
    "RunRow",
    "Section",
    "SliceGroup",
    "environment",
    "page_data",
    "render_page",
    "render_runs",
    "run_rows",
    "strip_verdict",
]

INDEX_NAME: Final = "index.html"
SLICES_SHOWN: Final = 5
"""Slices of concern shown per candidate before the rest are folded away."""
_BAR_COLOURS: Final = {
    "ok": "#2da44e",
    "own": "#cf222e",
    "infra": "#bf8700",
    "skipped": "#afb8c1",
}


@cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the report templates (autoescape on for every template)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("evalpipe.report", "templates"),
        autoescape=True,  # plain True: select_autoescape would not escape *.html.j2
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["verdict_colours"] = VERDICT_COLOURS
    env.globals["info_colour"] = INFO_COLOUR
    env.globals["verdict_icons"] = VERDICT_ICONS
    return env


def compile_templates() -> None:
    """Compile every template into the environment's cache (about a tenth of a second; `evalpipe
    run` does it while replay waits on the network, so that the report stage only renders)."""
    env = environment()
    for name in env.list_templates(extensions=["j2"]):
        env.get_template(name)


# --- page data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    name: str
    verdict: str
    reason: str
    model: str | None
    provider: str | None
    version: str | None
    config_hash: str | None
    n: int
    warnings: list[str]
    invalid_reasons: list[str]
    canary: str | None = None
    """Canary mode: the last ramp step's decision and its figures, as one line."""
    forest: list[ForestPanel] = field(default_factory=list)
    need: str | None = None
    """NOT-PROVEN: how many more records would settle it and what replaying them would cost."""
    money: str | None = None
    """What the switch does to the monthly bill at the logged volume."""

    @property
    def icon(self) -> str:
        return VERDICT_ICONS.get(self.verdict, "·")

    @property
    def colour(self) -> str:
        return VERDICT_COLOURS.get(self.verdict, INFO_COLOUR)

    @property
    def css(self) -> str:
        return self.verdict.lower()


@dataclass(frozen=True)
class Section:
    """One candidate's metric table."""

    card: Card
    gated: list[MetricView]
    info: list[MetricView]
    notes: list[str]

    @property
    def metrics(self) -> list[MetricView]:
        return self.gated + self.info


@dataclass(frozen=True)
class SliceGroup:
    """One candidate's slices of concern: the first few in a table, the rest folded; and its
    gated slices that are NOT-PROVEN only for want of records (one line)."""

    candidate: str
    verdict: str
    top: list[SliceView]
    more: list[SliceView]
    unproven: list[SliceView] = field(default_factory=list)

    @property
    def unproven_text(self) -> str:
        """The unproven gated slices in a sentence: each slice with its metrics and records."""
        by_slice: dict[str, list[SliceView]] = {}
        for s in self.unproven:
            by_slice.setdefault(s.view.slice or "", []).append(s)
        parts = []
        for name, views in by_slice.items():
            metrics = ", ".join(v.view.label for v in views)
            n = max(v.view.n for v in views)
            parts.append(f"{name} on {metrics} ({n:,} records)")
        return "; ".join(parts)


@dataclass(frozen=True)
class ExampleGroup:
    candidate: str
    verdict: str
    examples: list[Example]
    """The worst regressions."""
    improvements: list[Example] = field(default_factory=list)
    """The best improvements."""


@dataclass(frozen=True)
class ExampleFilter:
    """The choices of the examples' filter (pure CSS: radio buttons and `:checked ~` rules).

    Choices are numbered, and only the numbers reach the CSS and the `data-` tokens, so no slice
    or metric name is ever written into a selector.
    """

    slices: list[str]
    metrics: list[str]

    def slice_tokens(self, ex: Example) -> str:
        return " ".join(f"s{self.slices.index(f'{k}={v}')}" for k, v in ex.attributes)

    def metric_tokens(self, ex: Example) -> str:
        return " ".join(f"m{self.metrics.index(metric_label(m))}" for m in ex.metrics)


def example_filter(groups: list[ExampleGroup]) -> ExampleFilter:
    slices: list[str] = []
    metrics: list[str] = []
    for g in groups:
        for ex in g.examples + g.improvements:
            for k, v in ex.attributes:
                if f"{k}={v}" not in slices:
                    slices.append(f"{k}={v}")
            for m in ex.metrics:
                if metric_label(m) not in metrics:
                    metrics.append(metric_label(m))
    return ExampleFilter(sorted(slices), metrics)


@dataclass(frozen=True)
class ArmRow:
    arm: str
    label: str
    model: str | None
    models_seen: list[str]
    coverage: ArmCoverage
    bar: StackBar


@dataclass(frozen=True)
class ComparedArm:
    """One arm in "What was compared": its configuration and the snapshots that answered."""

    role: str
    name: str
    model: str
    provider: str
    snapshots: str
    version: str
    prompt: str
    params: str
    fallback: str
    config_hash: str


@dataclass(frozen=True)
class PageData:
    """Everything the run page and summary.md show, already formatted."""

    title: str
    run_id: str
    spec_name: str
    created_text: str
    verdict: str
    exit_code: int
    compared: str
    cards: list[Card]
    sections: list[Section]
    slices: list[SliceView]
    """Every slice of concern, most telling first."""
    slice_groups: list[SliceGroup]
    examples: list[ExampleGroup]
    top_examples: int
    redacted: bool
    arms: list[ArmRow]
    records: int
    quarantined: int | None
    counts: list[tuple[str, str]]
    fidelity: list[tuple[str, list[str]]]
    """What the replay did not send as logged and why requests were skipped (report/facts.py)."""
    costs: list[tuple[str, str]]
    cost_total: str
    timings: list[tuple[str, str]]
    versions: list[tuple[str, str]]
    money: MoneyView | None = None
    example_filter: ExampleFilter | None = None
    judges: JudgeReliability | None = None
    compared_arms: list[ComparedArm] = field(default_factory=list)
    compared_facts: list[tuple[str, str]] = field(default_factory=list)
    heatmaps: list[Heatmap] = field(default_factory=list)
    leaderboard: Leaderboard | None = None
    index_name: str = INDEX_NAME
    generated: str = field(default_factory=lambda: _when(datetime.now(UTC).isoformat()))

    @property
    def colour(self) -> str:
        return VERDICT_COLOURS.get(self.verdict, INFO_COLOUR)

    @property
    def simpson(self) -> list[str]:
        return [s.simpson for s in self.slices if s.simpson]


def _when(iso: Any) -> str:
    if not iso:
        return "unknown date"
    try:
        t = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return f"{t:%d %b %Y, %H:%M} UTC"


def _seconds(x: Any) -> str:
    if not isinstance(x, int | float) or not math.isfinite(x):
        return "—"
    return f"{x:,.1f} s" if x < 120 else f"{x / 60:,.1f} min"


def _arm_of(spec: Spec, name: str) -> Arm | None:
    if name == "baseline":
        return spec.baseline
    return next((c for c in spec.candidates if c.name == name), None)


def strip_verdict(reason: str, verdict: str) -> str:
    """The reason without its leading `VERDICT: ` (the page shows the verdict beside it)."""
    text = reason.strip()
    prefix = f"{verdict}: "
    text = text[len(prefix) :] if text.startswith(prefix) else text
    return text or verdict


def usd_delta(x: float) -> str:
    """`+$12.30`, `−$4.10`: a change of spend."""
    return ("+" if x >= 0 else MINUS) + usd(abs(x))


def need_text(gate: pa.Table, candidate: str, cost_per_record: float | None) -> str | None:
    """What would settle a NOT-PROVEN candidate: the gate's `n_needed` and its replay cost."""
    rows = [
        r
        for r in total_rows(gate, candidate)
        if r.get("gated") and r.get("verdict") == "NOT-PROVEN"
    ]
    if not rows:
        return None
    sized = [r for r in rows if finite(r.get("n_needed"))]
    if not sized:
        return (
            "What it would take: the gate could not size the run that would settle "
            + ", ".join(str(r["metric"]) for r in rows)
            + " (too few records to estimate from)."
        )
    top = max(sized, key=lambda r: float(r["n_needed"]))
    n_now = int(top.get("n") or 0)
    more = int(top["n_needed"]) - n_now
    if more <= 0:
        return (
            f"What it would take: {top['metric']} sits too close to its margin for more records "
            "to settle it soon; a wider margin or a clearer difference would."
        )
    text = (
        f"What it would take: about {more:,} more records ({int(top['n_needed']):,} in all, "
        f"{n_now:,} now) would settle {top['metric']}"
    )
    if len(rows) > 1:
        text += f", the hardest of {len(rows)} open metrics"
    if cost_per_record is not None and cost_per_record > 0:
        text += (
            f"; replaying them at this run's {usd(cost_per_record)} a record would cost about "
            f"{usd(more * cost_per_record)}"
        )
    return text + "."


def money_text(money: Money | None, candidate: str) -> str | None:
    """The switch's effect on the monthly bill, as one sentence."""
    if money is None or money.per_day is None:
        return None
    base, cand = money.arm("baseline"), money.arm(candidate)
    if base is None or cand is None or base.monthly is None or cand.monthly is None:
        return None
    delta = cand.monthly - base.monthly
    way = "save" if delta < 0 else "cost"
    more = "" if delta < 0 else " more"
    return (
        f"At the logged volume (~{money.per_day:,.0f} requests a day), switching would {way} "
        f"{usd(abs(delta))}{more} a month ({usd(cand.monthly)} instead of {usd(base.monthly)})."
    )


def _n_of(gate: pa.Table | None, candidate: str) -> int:
    """Paired requests of a candidate from its gate rows (a gate result rebuilt from files)."""
    if gate is None:
        return 0
    return max((int(r.get("n") or 0) for r in total_rows(gate, candidate)), default=0)


def _card(
    cv: CandidateVerdict,
    spec: Spec,
    gate: pa.Table | None = None,
    *,
    cost_per_record: float | None = None,
    money: Money | None = None,
) -> Card:
    arm = _arm_of(spec, cv.candidate)
    return Card(
        forest=forest_panels(gate, cv.candidate) if gate is not None else [],
        need=need_text(gate, cv.candidate, cost_per_record)
        if gate is not None and cv.verdict == "NOT-PROVEN"
        else None,
        money=money_text(money, cv.candidate),
        name=cv.candidate,
        verdict=cv.verdict,
        reason=strip_verdict(cv.reason or "", cv.verdict),
        model=arm.model if arm else None,
        provider=arm.provider if arm else None,
        version=arm.version if arm else None,
        config_hash=arm.config_hash() if arm else None,
        n=cv.n or _n_of(gate, cv.candidate),
        warnings=list(cv.warnings),
        invalid_reasons=[r for r in cv.invalid_reasons if r not in (cv.reason or "")],
        canary=_canary(cv.canary_step),
    )


def _canary(step: dict[str, object] | None) -> str | None:
    if not step:
        return None
    decision = step.get("decision") or step.get("action")
    rest = ", ".join(f"{k} {v}" for k, v in step.items() if k not in ("decision", "action"))
    head = f"canary step: {decision}" if decision else "canary step"
    return f"{head} ({rest})" if rest else head


def _notes(cv: CandidateVerdict) -> list[str]:
    """The secondary figures (shown, not gated) of each metric, as sentences."""
    out = []
    for metric, figs in cv.secondary.items():
        parts = []
        if "swap_consistency" in figs:
            parts.append(
                f"the judge gave the same answer with the two outputs swapped on "
                f"{pct(figs['swap_consistency'])} of records"
            )
        if "length_adjusted_win_rate" in figs:
            lo = figs.get("length_adjusted_ci_low", math.nan)
            hi = figs.get("length_adjusted_ci_high", math.nan)
            parts.append(
                f"length-adjusted win rate {pct(figs['length_adjusted_win_rate'])} "
                f"(95% CI {pct(lo)} to {pct(hi)})"
            )
        if "position_bias_rate" in figs and math.isfinite(figs["position_bias_rate"]):
            parts.append(
                f"it chose the same position in both orders on "
                f"{pct(figs['position_bias_rate'])} of records (position bias)"
            )
        for key in sorted(k for k in figs if k.startswith("labels_") and k.endswith("_n")):
            label = key.removeprefix("labels_").removesuffix("_n")
            kappa = figs.get(f"labels_{label}_kappa", math.nan)
            weighted = figs.get(f"labels_{label}_weighted_kappa", math.nan)
            parts.append(
                f"against the labels {label}: agreement "
                f"{pct(figs.get(f'labels_{label}_agreement', math.nan))} on "
                f"{int(figs[key]):,} records, Cohen's κ {kappa:.2f} (weighted {weighted:.2f}), "
                f"always the most common label {pct(figs.get(f'labels_{label}_majority', math.nan))}"
            )
        if "wilcoxon_p" in figs:
            p = figs["wilcoxon_p"]
            parts.append(f"Wilcoxon signed-rank {p_text(p)}" if math.isfinite(p) else "")
        parts = [p for p in parts if p]
        if parts:
            out.append(f"{metric}: " + "; ".join(parts) + " (not gated).")
    return out


def _compared(spec: Spec, records: int, cards: list[Card], eval_cases: int = 0) -> str:
    names = ", ".join(c.name for c in cards)
    k = len(cards)
    if spec.mode == "canary" or spec.baseline is None:
        return f"{records:,} logged requests compared between live cohorts ({names})."
    b = spec.baseline
    base = b.model if b.name == "baseline" else f"{b.name} ({b.model})"
    what = f"{records - eval_cases:,} logged requests"
    if eval_cases:
        what += f" and {eval_cases:,} curated eval-set cases"
    return f"{what} replayed against the baseline {base} and {count(k, 'candidate')}: {names}."


def _arm_rows(spec: Spec, coverage: list[ArmCoverage], manifest: dict[str, Any]) -> list[ArmRow]:
    seen = manifest.get("models_seen") or {}
    rows = []
    for c in coverage:
        arm = _arm_of(spec, c.arm)
        if c.arm == "baseline" and arm is not None and arm.name != "baseline":
            label = arm.name
        elif c.arm == "logged":
            label = "what production served"
        else:
            label = c.arm
        bar = stack_bar(
            [
                (c.replayed, _BAR_COLOURS["ok"], f"{c.replayed:,} answered"),
                (c.errored_candidate, _BAR_COLOURS["own"], f"{c.errored_candidate:,} own errors"),
                (
                    c.errored_infrastructure,
                    _BAR_COLOURS["infra"],
                    f"{c.errored_infrastructure:,} infrastructure errors",
                ),
                (c.skipped, _BAR_COLOURS["skipped"], f"{c.skipped:,} skipped"),
            ]
        )
        models = [str(m) for m in seen.get(c.arm, c.models) or []]
        rows.append(ArmRow(c.arm, label, arm.model if arm else None, models, c, bar))
    return rows


def _slice_group(card: Card, slices: list[SliceView]) -> SliceGroup | None:
    """The card's slices of concern and unproven gated slices (None: it has neither)."""
    mine = [s for s in slices if s.candidate == card.name]
    if not mine:
        return None
    concern = [s for s in mine if s.concern]
    unproven = [s for s in mine if not s.concern]
    return SliceGroup(
        card.name, card.verdict, concern[:SLICES_SHOWN], concern[SLICES_SHOWN:], unproven
    )


def page_data(
    *,
    gate: GateResult,
    spec: Spec,
    manifest: dict[str, Any],
    records: pa.Table,
    coverage: list[ArmCoverage],
    slices: list[SliceView],
    examples: list[ExampleGroup],
    money: Money | None = None,
    judges: JudgeReliability | None = None,
) -> PageData:
    """Format a run for the page and the summary."""
    cost_m = manifest.get("cost_usd") or {}
    spent = cost_m.get("total")
    if spent is None and cost_m:
        spent = sum(v for v in cost_m.values() if finite(v))
    per_record = spent / records.num_rows if finite(spent) and records.num_rows else None
    cards = [
        _card(cv, spec, gate.table, cost_per_record=per_record, money=money)
        for cv in gate.candidates
    ]
    sections = []
    for cv, card in zip(gate.candidates, cards, strict=True):
        views = metric_views(gate.table, cv.candidate)
        sections.append(
            Section(
                card,
                [v for v in views if v.gated],
                [v for v in views if not v.gated],
                _notes(cv),
            )
        )
    counts_m = manifest.get("counts") or {}
    quarantined = counts_m.get("quarantined")
    counts = [("Logged records evaluated", f"{records.num_rows:,}")]
    if quarantined is not None:
        counts.append(("Input lines quarantined (unreadable)", f"{int(quarantined):,}"))
    # the keys ingest_run writes (ingest.select_rows' counts)
    for key, label in (
        ("out_of_window", "Outside the time window"),
        ("duplicates_dropped", "Duplicates dropped"),
        ("sampled_out", "Sampled out"),
    ):
        if isinstance(counts_m.get(key), int) and counts_m[key]:
            counts.append((label, f"{counts_m[key]:,}"))
    formats = manifest.get("source_formats") or {}
    if formats:
        counts.append(
            ("Log formats", ", ".join(f"{name} ({n:,})" for name, n in sorted(formats.items())))
        )
    cost = manifest.get("cost_usd") or {}
    costs = [(k.replace("_", " ").capitalize(), usd(v)) for k, v in cost.items() if k != "total"]
    total = cost.get("total")
    if total is None and cost:
        total = sum(v for v in cost.values() if isinstance(v, int | float))
    timings = [(str(k), _seconds(v)) for k, v in (manifest.get("timings") or {}).items()]
    git = manifest.get("git_sha")
    versions = [
        ("evalpipe", str(manifest.get("evalpipe_version") or __version__)),
        ("Spec hash", str(manifest.get("spec_hash") or "—")),
        ("Git commit", str(git)[:12] if git else "—"),
        ("Seed", str(manifest.get("seed", spec.seed))),
    ]
    return PageData(
        title=spec.report.title or str(manifest.get("spec_name") or spec.name),
        run_id=gate.run_id or str(manifest.get("run_id", "")),
        spec_name=str(manifest.get("spec_name") or spec.name),
        created_text=_when(manifest.get("created")),
        verdict=gate.verdict,
        exit_code=gate.exit_code,
        compared=_compared(
            spec,
            records.num_rows,
            cards,
            int((manifest.get("counts") or {}).get("eval_set_records") or 0),
        ),
        cards=cards,
        sections=sections,
        slices=[s for s in slices if s.concern],
        slice_groups=[g for g in (_slice_group(c, slices) for c in cards) if g is not None],
        examples=examples,
        top_examples=spec.report.top_examples,
        redacted=spec.redact_pii.reports,
        arms=_arm_rows(spec, coverage, manifest),
        records=records.num_rows,
        quarantined=None if quarantined is None else int(quarantined),
        counts=counts,
        fidelity=[
            (label, lines)
            for label, lines in (
                ("Not sent as logged", not_sent(manifest)),
                ("Skipped", skipped(manifest)),
            )
            if lines
        ],
        costs=costs,
        cost_total=usd(total) if total is not None else "not recorded",
        timings=timings,
        versions=versions,
        money=money_view(money, [c.name for c in cards], _labels(spec, cards)) if money else None,
        compared_arms=compared_arms(spec, manifest, coverage),
        compared_facts=compared_facts(
            spec, manifest, records, usd(total) if total is not None else "not recorded"
        ),
        heatmaps=heatmaps(gate.table, [c.name for c in cards]),
        example_filter=example_filter(examples),
        judges=judges,
        leaderboard=leaderboard(gate.table, {c.name: c.verdict for c in cards}, money),
    )


def _prompt(arm: Arm) -> str:
    if arm.system_prompt_by is not None:
        return f"by {arm.system_prompt_by.attribute} ({len(arm.system_prompt_by.files)} files)"
    if arm.system_prompt is not None:
        sp = arm.system_prompt
        return f"replaced by {sp.replace}" if sp.replace else "logged + appended text"
    return "as logged"


def _fallback_text(arm: Arm, fired: dict[str, int]) -> str:
    """The arm's fallback chain and how often it answered: `openai/gpt-4o (fired 12×)`."""
    if not arm.fallback:
        return "none"
    parts = []
    for f in arm.fallback:
        n = sum(v for model, v in fired.items() if model == f.model or model.startswith(f.model))
        parts.append(f"{f.provider}/{f.model} (fired {n:,}×)")
    return ", ".join(parts)


def compared_arms(
    spec: Spec, manifest: dict[str, Any], coverage: list[ArmCoverage]
) -> list[ComparedArm]:
    """Each arm's model, the snapshots seen answering, prompt, parameters, fallback and version."""
    seen = manifest.get("models_seen") or {}
    by_cov = {c.arm: c.models for c in coverage}
    arms: list[tuple[str, str, Arm]] = []
    if spec.baseline is not None:
        arms.append(("baseline", "baseline", spec.baseline))
    arms += [("candidate", c.name, c) for c in spec.candidates]
    out = []
    for role, key, arm in arms:
        snaps = [str(m) for m in (seen.get(key) or by_cov.get(key) or [])]
        params = ", ".join(f"{k}={v}" for k, v in sorted(arm.params.items())) or "as logged"
        fallback = _fallback_text(arm, (manifest.get("fallbacks") or {}).get(key) or {})
        out.append(
            ComparedArm(
                role,
                arm.name,
                arm.model,
                arm.provider,
                ", ".join(snaps) or "none answered",
                arm.version or "—",
                _prompt(arm),
                params,
                fallback,
                arm.config_hash(),
            )
        )
    return out


def compared_facts(
    spec: Spec, manifest: dict[str, Any], records: pa.Table, cost_total: str
) -> list[tuple[str, str]]:
    """Traffic window, n, sample, spec hash, seed, evalpipe version and the evaluation's cost."""
    window = "—"
    if records.num_rows:
        lo, hi = pc.min(records["timestamp"]).as_py(), pc.max(records["timestamp"]).as_py()
        if lo is not None and hi is not None:
            window = f"{lo:%d %b %Y %H:%M} to {hi:%d %b %Y %H:%M} UTC"
    sample = spec.traffic.sample
    sample_text = "every record"
    if sample is not None:
        sample_text = f"seeded sample of {sample.n:,}"
        if sample.stratify:
            sample_text += " stratified by " + ", ".join(sample.stratify)
    facts = [
        ("Traffic window", window),
        ("Records", f"{records.num_rows:,}"),
        ("Sample", sample_text),
        ("Spec hash", str(manifest.get("spec_hash") or "—")),
        ("Seed", str(manifest.get("seed", spec.seed))),
        ("evalpipe", str(manifest.get("evalpipe_version") or __version__)),
        ("Evaluation cost", cost_total),
    ]
    sets = manifest.get("eval_sets") or {}
    if sets:  # curated cases replayed beside the traffic, each its own slice (eval_set)
        facts.insert(
            2,
            ("Eval sets", ", ".join(f"{name} ({int(n):,} cases)" for name, n in sets.items())),
        )
    reused = manifest.get("baseline_reused_from")
    if reused:  # `evalpipe gate --baseline-run`: the baseline's answers came from that night
        facts.insert(3, ("Baseline answers", f"reused from run {reused} (not paid again)"))
    return facts


def _labels(spec: Spec, cards: list[Card]) -> dict[str, str]:
    b = spec.baseline
    base = "baseline" if b is None or b.name == "baseline" else f"baseline ({b.name})"
    return {"baseline": base} | {c.name: c.name for c in cards}


def render_page(page: PageData) -> str:
    return environment().get_template("report.html.j2").render(page=page)


# --- money and time ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyRow:
    arm: str
    label: str
    cost_per_request: str
    monthly: str
    delta: str
    """The monthly change against the baseline (empty for the baseline)."""
    saves: bool | None
    latency: list[str]
    ttft: list[str]


@dataclass(frozen=True)
class BreakdownView:
    dimension: str
    arms: list[str]
    rows: list[tuple[str, str, str, list[str]]]
    """(value, records, share, [baseline monthly, then per candidate: monthly (±delta)])."""


@dataclass(frozen=True)
class MoneyView:
    basis: str
    rows: list[MoneyRow]
    breakdowns: list[BreakdownView]
    ttft_measured: bool
    strips: list[Strips] = field(default_factory=list)
    """Latency (and time to first token) percentiles per arm, drawn."""


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f} ms"


def money_view(m: Money, candidates: list[str], labels: dict[str, str]) -> MoneyView:
    """`Money` formatted: one row per arm and a table per breakdown."""
    base = m.arm("baseline")
    base_month = base.monthly if base else None
    rows = []
    for a in m.arms:
        delta, saves = "", None
        if a.arm != "baseline" and a.monthly is not None and base_month is not None:
            d = a.monthly - base_month
            delta, saves = usd_delta(d), d < 0
        rows.append(
            MoneyRow(
                a.arm,
                labels.get(a.arm, a.arm),
                usd(a.cost_per_request),
                usd(a.monthly) if a.monthly is not None else "—",
                delta,
                saves,
                [_ms(x) for x in a.latency],
                [_ms(x) for x in a.ttft] if a.ttft else ["—"] * 3,
            )
        )
    if m.per_day is None:
        basis = (
            "No monthly projection: the logged window is shorter than an hour or has no timestamps."
        )
    else:
        basis = (
            f"Projected at the logged volume: {m.logged:,} requests over {m.days:,.1f} days "
            f"= {m.per_day:,.0f} a day, × 30 days, at each arm's mean cost per answered request "
            "(list prices)."
        )
    views = []
    for b in m.breakdowns:
        out = []
        for r in b.rows:
            b0 = r.monthly.get("baseline")
            cells = [usd(b0) if b0 is not None else "—"]
            for c in candidates:
                v = r.monthly.get(c)
                if v is None:
                    cells.append("—")
                elif b0 is None:
                    cells.append(usd(v))
                else:
                    cells.append(f"{usd(v)} ({usd_delta(v - b0)})")
            out.append((r.value, f"{r.records:,}", pct(r.share), cells))
        views.append(
            BreakdownView(b.dimension, [labels.get("baseline", "baseline"), *candidates], out)
        )
    strips = [
        percentile_strips(
            [(labels.get(a.arm, a.arm), a.latency) for a in m.arms],
            title="Latency per arm: p50, p95 and p99 of answered requests",
            axis="latency, milliseconds",
        ),
        percentile_strips(
            [(labels.get(a.arm, a.arm), a.ttft) for a in m.arms if a.ttft],
            title="Time to first token per arm: p50, p95 and p99 of streamed requests",
            axis="time to first token, milliseconds",
        ),
    ]
    return MoneyView(
        basis, rows, views, any(a.ttft for a in m.arms), [s for s in strips if s is not None]
    )


# --- the list of runs --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    run_id: str
    href: str
    created_text: str
    created: str
    spec_name: str
    verdict: str | None
    candidates: list[tuple[str, str]]
    records: str
    cost: str

    @property
    def colour(self) -> str:
        return VERDICT_COLOURS.get(self.verdict or "", INFO_COLOUR)


def _href(run_id: str, manifest: dict[str, Any], root: Path | None) -> str:
    """`<run_id>/index.html`, or the manifest's report path when the report lives elsewhere."""
    relative = quote(run_id, safe="") + "/" + INDEX_NAME
    elsewhere = manifest.get("report")
    if root is None or not isinstance(elsewhere, str) or (root / run_id / INDEX_NAME).exists():
        return relative
    path = Path(elsewhere)
    return path.as_uri() if path.is_absolute() and path.exists() else relative


def run_rows(runs: list[dict[str, Any]], root: Path | None = None) -> list[RunRow]:
    """Manifests (or verdict documents) of runs as index rows, newest first."""
    rows = []
    for m in runs:
        run_id = str(m.get("run_id") or "")
        if not run_id:
            continue
        cands = m.get("candidates") or {}
        pairs = []
        if isinstance(cands, dict):
            for name, c in cands.items():
                v = c.get("verdict") if isinstance(c, dict) else c
                pairs.append((str(name), str(v)))
        verdict = m.get("verdict")
        if verdict is None and pairs:
            verdict = max((v for _, v in pairs), key=lambda v: SEVERITY.get(v, -1))
        counts = m.get("counts") or {}
        n = counts.get("records") if isinstance(counts, dict) else None
        cost = (m.get("cost_usd") or {}).get("total")
        rows.append(
            RunRow(
                run_id=run_id,
                href=_href(run_id, m, root),
                created_text=_when(m.get("created")),
                created=str(m.get("created") or ""),
                spec_name=str(m.get("spec_name") or ""),
                verdict=str(verdict) if verdict in EXIT_CODES else None,
                candidates=pairs,
                records=f"{n:,}" if isinstance(n, int) else "—",
                cost=usd(cost),
            )
        )
    rows.sort(key=lambda r: (r.created, r.run_id), reverse=True)
    return rows


def render_runs(runs: list[dict[str, Any]], root: Path | None = None) -> str:
    """The list of runs; `root` is the reports folder the links are relative to."""
    from evalpipe.report.trends import trends_path

    rows = run_rows(runs, root)
    generated = _when(datetime.now(UTC).isoformat())
    trends = []
    if root is not None:
        for name in sorted({r.spec_name for r in rows if r.spec_name}):
            path = trends_path(root, name)
            if path.exists():
                trends.append((name, "trends/" + quote(path.name)))
    return (
        environment()
        .get_template("runs.html.j2")
        .render(rows=rows, generated=generated, trends=trends)
    )
