"""Canary mode: logged cohorts on a ramp, decided step by step (STATISTICS.md, "Canary mode").

The unit is the user (`gate.unit`): sample-ratio mismatch is tested on units per ramp step, and
every variance is cluster-robust by unit. Each metric is estimated within each ramp step and
combined across steps with inverse-variance weights, so a change over time is not read as a
treatment effect. After each step an mSPRT normal-mixture confidence sequence decides: promote
(GO), roll back (NO-GO) or hold (NOT-PROVEN); looking after every step keeps false rollbacks
≤ α however many steps there are.

Scores are those of the `logged` arm (what production served, one row per record); the arm
column of the records says which cohort served it.
"""

from __future__ import annotations

import logging
import math
from typing import Final, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike, NDArray

from evalpipe.gate import dist
from evalpipe.gate.bootstrap import quantile_bootstrap, seeded_rng
from evalpipe.gate.catalogue import Metric, gate_metrics
from evalpipe.gate.numbers import pct, signed
from evalpipe.gate.paired import design_effect, grouped_cr1, wilson
from evalpipe.gate.rows import MetricRow, to_table
from evalpipe.gate.verdict import CandidateVerdict, GateResult, Verdict
from evalpipe.spec import Spec
from evalpipe.tables import ARMS_LOGGED, column_values

__all__ = [
    "SRM_ALPHA",
    "gate_canary",
    "msprt_half_width",
    "newcombe_hybrid",
    "rate_ratio_exact",
    "srm_p",
    "welch",
]

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

SRM_ALPHA: Final = 0.001
"""A ramp step whose units per arm fit its weight with p below this is a sample-ratio mismatch."""


# --- estimators ---------------------------------------------------------------------------------


def newcombe_hybrid(
    x_t: ArrayLike, n_t: ArrayLike, x_c: ArrayLike, n_c: ArrayLike, *, alpha: float = 0.05
) -> tuple[F64, F64, F64]:
    """Newcombe's hybrid score interval for `x_t/n_t − x_c/n_c` (independent samples).

    `L = Δ − √((p_t − l_t)² + (u_c − p_c)²)`, `U = Δ + √((u_t − p_t)² + (p_c − l_c)²)` from the
    Wilson limits of each proportion (Newcombe 1998, method 10 of the unpaired paper; statsmodels'
    `confint_proportions_2indep(..., method="newcomb")`).
    """
    z = float(dist.norm_ppf(1 - alpha / 2))
    xt, nt = np.asarray(x_t, np.float64), np.asarray(n_t, np.float64)
    xc, nc = np.asarray(x_c, np.float64), np.asarray(n_c, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        pt, pc_ = xt / nt, xc / nc
    lt, ut = wilson(xt, nt, z)
    lc, uc = wilson(xc, nc, z)
    est = pt - pc_
    lo = est - np.sqrt((pt - lt) ** 2 + (uc - pc_) ** 2)
    hi = est + np.sqrt((ut - pt) ** 2 + (pc_ - lc) ** 2)
    return est, lo, hi


def welch(
    mean_t: F64, var_t: F64, g_t: I64, mean_c: F64, var_c: F64, g_c: I64
) -> tuple[F64, F64, F64]:
    """Difference of means, its variance, and Welch-Satterthwaite df (from cluster counts)."""
    v = var_t + var_c
    with np.errstate(invalid="ignore", divide="ignore"):
        df = v**2 / (var_t**2 / np.maximum(g_t - 1, 1) + var_c**2 / np.maximum(g_c - 1, 1))
    return mean_t - mean_c, v, df


def rate_ratio_exact(
    x_t: int, n_t: int, x_c: int, n_c: int, *, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Rate ratio `(x_t/n_t) / (x_c/n_c)` with the exact conditional (binomial) interval.

    Given `x_t + x_c` events, `x_t ~ Bin(x_t + x_c, π)` with `π = n_t·RR / (n_t·RR + n_c)`; the
    Clopper-Pearson limits of π map to limits of RR.
    """
    total = x_t + x_c
    if total == 0 or n_t == 0 or n_c == 0:
        return math.nan, 0.0, math.inf
    lo_pi = float(dist.beta_ppf(alpha / 2, x_t, x_c + 1)) if x_t > 0 else 0.0
    hi_pi = float(dist.beta_ppf(1 - alpha / 2, x_t + 1, x_c)) if x_c > 0 else 1.0
    scale = n_c / n_t

    def rr(p: float) -> float:
        return math.inf if p >= 1 else p / (1 - p) * scale

    rate_c = x_c / n_c
    point = (x_t / n_t) / rate_c if rate_c > 0 else math.inf
    return point, rr(lo_pi), rr(hi_pi)


def msprt_half_width(v: ArrayLike, tau2: ArrayLike, a: float) -> F64:
    """Half-width of the always-valid normal-mixture (mSPRT) confidence sequence at level a.

    `h = sqrt( V · (V + τ²) / τ² · ln( (V + τ²) / (V · a²) ) )` for an estimate with variance V
    and mixing variance τ².
    """
    var = np.asarray(v, np.float64)
    t2 = np.asarray(tau2, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.sqrt(var * (var + t2) / t2 * np.log((var + t2) / (var * a**2))))


def srm_p(control_units: int, treatment_units: int, weight: float) -> float:
    """Chi-square goodness-of-fit p of units per arm against the step's treatment weight."""
    total = control_units + treatment_units
    if total == 0 or not 0 < weight < 1:
        return 1.0
    expected = np.array([total * (1 - weight), total * weight])
    observed = np.array([control_units, treatment_units], dtype=np.float64)
    statistic = float(np.sum((observed - expected) ** 2 / expected))  # Pearson, 1 df
    return float(dist.chi2_sf(statistic, 1))


# --- the canary gate ----------------------------------------------------------------------------


class _Step(NamedTuple):
    """One metric in each ramp step: difference (or −log ratio), its variance, and context."""

    estimate: F64
    var: F64
    lo: F64
    hi: F64
    n: I64
    clusters: I64
    control: F64
    treatment: F64


def _metrics(spec: Spec, scored: list[str]) -> list[Metric]:
    """The shadow gate's metrics that cohorts compare: the scored checks and pointwise judges
    (a pairwise judge needs both answers to one request), error rate, and latency."""
    return [
        m
        for m in gate_metrics(spec)
        if (m.source in ("rule", "pointwise", "label") and m.name in scored)
        or m.source == "error_rate"
        or m.source == "latency"
    ]


def _proportion_steps(x: F64, arm: I64, step: I64, unit: I64, k: int, alpha: float) -> _Step:
    ok = np.isfinite(x) & (arm >= 0)
    group = step[ok] * 2 + arm[ok]
    st = grouped_cr1(x[ok], unit[ok], group, 2 * k)
    ones = np.bincount(group, weights=x[ok], minlength=2 * k)
    xt, nt, xc, nc = ones[1::2], st.n[1::2], ones[0::2], st.n[0::2]
    est, lo, hi = newcombe_hybrid(xt, nt, xc, nc, alpha=alpha)
    deff = design_effect(
        st.se[1::2] ** 2 + st.se[0::2] ** 2, st.se_iid[1::2] ** 2 + st.se_iid[0::2] ** 2
    )
    root = np.sqrt(deff)
    lo, hi = est - (est - lo) * root, est + (hi - est) * root
    z = float(dist.norm_ppf(1 - alpha / 2))
    var = ((hi - lo) / (2 * z)) ** 2
    return _Step(est, var, lo, hi, nt + nc, st.clusters[1::2] + st.clusters[0::2], xc / nc, xt / nt)


def _mean_steps(x: F64, arm: I64, step: I64, unit: I64, k: int, alpha: float) -> _Step:
    ok = np.isfinite(x) & (arm >= 0)
    group = step[ok] * 2 + arm[ok]
    st = grouped_cr1(x[ok], unit[ok], group, 2 * k)
    se_t = np.where(np.isfinite(st.se[1::2]), st.se[1::2], st.se_iid[1::2])
    se_c = np.where(np.isfinite(st.se[0::2]), st.se[0::2], st.se_iid[0::2])
    est, var, df = welch(
        st.mean[1::2], se_t**2, st.clusters[1::2], st.mean[0::2], se_c**2, st.clusters[0::2]
    )
    q = dist.t_ppf(1 - alpha / 2, np.where(np.isfinite(df), np.maximum(df, 1), 1))
    half = q * np.sqrt(var)
    n = st.n[1::2] + st.n[0::2]
    return _Step(
        est,
        var,
        est - half,
        est + half,
        n,
        st.clusters[1::2] + st.clusters[0::2],
        st.mean[0::2],
        st.mean[1::2],
    )


def _quantile_steps(
    x: F64, arm: I64, step: I64, unit: I64, k: int, *, seed: int, b: int, alpha: float
) -> tuple[_Step, _Step]:
    """Latency p50 and p95 per step as −log(treatment / control) (so that < 0 is worse)."""
    out = {
        p: {f: np.full(k, np.nan) for f in ("est", "var", "lo", "hi", "c", "t")} for p in (50, 95)
    }
    n = np.zeros(k, np.int64)
    g = np.zeros(k, np.int64)
    for s in range(k):
        sel = (step == s) & np.isfinite(x)
        t_sel, c_sel = sel & (arm == 1), sel & (arm == 0)
        n[s] = int(t_sel.sum() + c_sel.sum())
        g[s] = int(np.unique(unit[t_sel]).size + np.unique(unit[c_sel]).size)
        if not t_sel.any() or not c_sel.any():
            continue
        pt, rt = quantile_bootstrap(
            unit[t_sel], x[t_sel], rng=seeded_rng(seed, "canary", s, 1), b=b
        )
        pc_, rc = quantile_bootstrap(
            unit[c_sel], x[c_sel], rng=seeded_rng(seed, "canary", s, 0), b=b
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = -np.log(rt / rc)
        for j, p in enumerate((50, 95)):
            r = reps[:, j][np.isfinite(reps[:, j])]
            o = out[p]
            o["c"][s], o["t"][s] = pc_[j], pt[j]
            o["est"][s] = -math.log(pt[j] / pc_[j]) if pt[j] > 0 and pc_[j] > 0 else np.nan
            if r.size > 1:
                o["var"][s] = float(np.var(r, ddof=1))
                o["lo"][s], o["hi"][s] = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    steps = []
    for p in (50, 95):
        o = out[p]
        steps.append(_Step(o["est"], o["var"], o["lo"], o["hi"], n, g, o["c"], o["t"]))
    return steps[0], steps[1]


class _Look(NamedTuple):
    estimate: float
    var: float
    h: float


def _combine(steps: _Step, upto: int) -> tuple[float, float]:
    """Inverse-variance combination of steps 0..upto."""
    est, var = steps.estimate[: upto + 1], steps.var[: upto + 1]
    ok = np.isfinite(est) & np.isfinite(var) & (var > 0)
    if not ok.any():
        return math.nan, math.nan
    w = 1 / var[ok]
    return float((w * est[ok]).sum() / w.sum()), float(1 / w.sum())


def _bound(m: Metric) -> float:
    """The bad-side bound on the estimate's scale (−δ, or −log(1 + δ) for ratios)."""
    margin = m.margin or 0.0
    return -math.log1p(margin) if m.kind == "ratio" else -margin


class _Cohorts(NamedTuple):
    """The logged records in record_id order: cohort (0 control, 1 treatment, −1 neither),
    unit code and ramp step of each."""

    records: pa.Table
    ids: pa.Array
    arm: I64
    unit: I64
    step: I64
    steps: int
    weights: list[float]


def _cohorts(records: pa.Table, spec: Spec) -> _Cohorts:
    g = spec.gate
    records = records.sort_by("record_id")
    ids = records["record_id"].combine_chunks()
    n = len(ids)
    arm_values = column_values(records, g.arm_column or "variant")
    arm = np.full(n, -1, np.int64)
    arm[np.asarray(pc.fill_null(pc.equal(arm_values, g.control or "A"), False), bool)] = 0
    arm[np.asarray(pc.fill_null(pc.equal(arm_values, g.treatment or "B"), False), bool)] = 1
    units = column_values(records, g.unit or "user_id")
    units = pc.if_else(pc.is_null(units), pc.binary_join_element_wise("\x00", ids, ""), units)
    unit = np.asarray(pc.rank(units, tiebreaker="dense"), np.int64) - 1
    ts = np.asarray(pc.fill_null(records["timestamp"].cast(pa.int64()), 0), np.int64)
    untils = np.array([int(r.until.timestamp() * 1_000_000) for r in g.ramp], np.int64)
    k = max(len(g.ramp), 1)
    step = (
        np.minimum(np.searchsorted(untils, ts, side="right"), k - 1)
        if g.ramp
        else np.zeros(n, np.int64)
    )
    weights = [r.weight for r in g.ramp] or [math.nan]
    return _Cohorts(records, ids, arm, unit, step, k, weights)


def _srm(c: _Cohorts) -> tuple[list[str], list[float]]:
    """Sample-ratio mismatch per ramp step, on units: INVALID reasons and each step's p."""
    invalid, srm = [], []
    for s in range(c.steps):
        in_step = c.step == s
        c_units = int(np.unique(c.unit[in_step & (c.arm == 0)]).size)
        t_units = int(np.unique(c.unit[in_step & (c.arm == 1)]).size)
        p = srm_p(c_units, t_units, c.weights[s])
        srm.append(p)
        if p < SRM_ALPHA:
            invalid.append(
                f"sample-ratio mismatch in ramp step {s + 1}: {t_units:,} treatment and "
                f"{c_units:,} control users against a {pct(c.weights[s], 0)} weight (p = {p:.2g})"
            )
    return invalid, srm


def _step_estimates(
    c: _Cohorts, scores: pa.Table, metrics: list[Metric], spec: Spec, *, bootstrap_b: int
) -> tuple[dict[str, _Step], dict[str, dict[str, float]]]:
    """Each metric estimated within each ramp step, and its secondary figures."""
    alpha, k, n = spec.gate.alpha, c.steps, len(c.ids)
    arm, step, unit = c.arm, c.step, c.unit
    logged = _logged(scores)
    sidx = np.asarray(pc.fill_null(pc.index_in(logged["record_id"], value_set=c.ids), -1), np.int64)
    svalue = np.asarray(pc.fill_null(logged["value"], np.nan), np.float64)
    smetric = logged["metric"].to_numpy(zero_copy_only=False)
    errored = np.asarray(pc.fill_null(pc.equal(c.records["status"], "error"), False), bool)
    per_metric: dict[str, _Step] = {}
    secondary: dict[str, dict[str, float]] = {}
    for m in metrics:
        if m.source in ("rule", "pointwise", "label"):
            x = np.full(n, np.nan)
            sel = (smetric == m.name) & (sidx >= 0)
            x[sidx[sel]] = svalue[sel]
            if m.source == "label" and m.kind == "pass_rate":  # logged feedback, e.g. thumbs
                per_metric[m.name] = _proportion_steps(x, arm, step, unit, k, alpha)
            elif m.source == "rule":
                x[errored] = 0.0  # a served error fails the check
                per_metric[m.name] = _proportion_steps(x, arm, step, unit, k, alpha)
            else:
                per_metric[m.name] = _mean_steps(x, arm, step, unit, k, alpha)
                secondary[m.name] = _shift_figures(x, arm)
        elif m.source == "error_rate":
            ok_rate = (~errored).astype(np.float64)
            per_metric[m.name] = _proportion_steps(ok_rate, arm, step, unit, k, alpha)
            xt, nt = int(errored[arm == 1].sum()), int((arm == 1).sum())
            xc, nc = int(errored[arm == 0].sum()), int((arm == 0).sum())
            rr, lo, hi = rate_ratio_exact(xt, nt, xc, nc, alpha=alpha)
            secondary["error_rate"] = {
                "rate_ratio": rr,
                "rate_ratio_ci_low": lo,
                "rate_ratio_ci_high": hi,
            }
    latency = np.asarray(pc.fill_null(c.records["latency_ms"], np.nan), np.float64).copy()
    latency[arm < 0] = np.nan
    p50, p95 = _quantile_steps(
        latency, arm, step, unit, k, seed=spec.seed, b=bootstrap_b, alpha=alpha
    )
    per_metric["latency_p50"], per_metric["latency_p95"] = p50, p95
    return per_metric, {k_: v for k_, v in secondary.items() if v}


def _logged(scores: pa.Table) -> pa.Table:
    """Repeat-0 scores of the `logged` arm (what production served)."""
    return scores.filter(
        pc.and_(
            pc.equal(scores["arm"], ARMS_LOGGED), pc.fill_null(pc.equal(scores["repeat"], 0), False)
        )
    )


def _shift_figures(x: F64, arm: I64) -> dict[str, float]:
    """Mann-Whitney U p and the Hodges-Lehmann shift (secondary; STATISTICS.md, Canary)."""
    xt, xc = x[(arm == 1) & np.isfinite(x)], x[(arm == 0) & np.isfinite(x)]
    if not (xt.size and xc.size):
        return {}
    from scipy import stats  # (a second's import; only canary runs with a mean metric need it)

    diffs = np.subtract.outer(xt[:2000], xc[:2000]).ravel()
    return {
        "mann_whitney_p": float(stats.mannwhitneyu(xt, xc).pvalue),
        "hodges_lehmann_shift": float(np.median(diffs)),
    }


def _sequential_looks(
    per_metric: dict[str, _Step], metrics: list[Metric], steps: int, a: float
) -> tuple[list[str], dict[str, list[_Look]]]:
    """After each step, the confidence sequence over the steps so far: promote when every gated
    metric clears its margin, roll back when any is beyond it, hold otherwise."""
    decisions: list[str] = []
    looks: dict[str, list[_Look]] = {m.name: [] for m in metrics}
    for s in range(steps):
        promote, rollback = True, False
        for m in metrics:
            est, var = _combine(per_metric[m.name], s)
            tau2 = _bound(m) ** 2 if m.margin else (0.05**2)
            h = float(msprt_half_width(var, tau2, a)) if math.isfinite(var) else math.nan
            looks[m.name].append(_Look(est, var, h))
            if not m.gated:
                continue
            bound = 0.0 if m.critical else _bound(m)
            if not (math.isfinite(est) and math.isfinite(h)):
                promote = False
                continue
            promote &= est - h > _bound(m)
            rollback |= est + h < bound
        decisions.append("rollback" if rollback else "promote" if promote else "hold")
    return decisions, looks


def _decided_rows(
    metrics: list[Metric],
    per_metric: dict[str, _Step],
    looks: dict[str, list[_Look]],
    decided_at: int,
    name: str,
    a: float,
    alpha: float,
    secondary: dict[str, dict[str, float]],
) -> list[MetricRow]:
    """One row per metric at the look that decided (or the last), with its sentence."""
    z = float(dist.norm_ppf(1 - alpha / 2))
    upto = slice(0, decided_at + 1)
    rows = []
    for m in metrics:
        st = per_metric[m.name]
        look = looks[m.name][decided_at]
        est, var = look.estimate, look.var
        finite_steps = np.flatnonzero(np.isfinite(st.estimate[upto]))
        if finite_steps.size == 1:
            lo, hi = float(st.lo[finite_steps[0]]), float(st.hi[finite_steps[0]])
        else:
            lo, hi = est - z * math.sqrt(var), est + z * math.sqrt(var)
        base = _pooled(st.control[upto], st.n[upto])
        cand = _pooled(st.treatment[upto], st.n[upto])
        rows.append(_canary_row(m, name, est, lo, hi, look, base, cand, st, upto, a, alpha))
        secondary.setdefault(m.name, {}).update(
            {"cs_low": _cs(m, est - look.h), "cs_high": _cs(m, est + look.h)}
        )
    for r in rows:
        r.reason = _canary_metric_sentence(r, alpha, secondary.get(r.metric, {}))
    return rows


def gate_canary(
    records: pa.Table,
    scores: pa.Table,
    spec: Spec,
    *,
    run_id: str,
    bootstrap_b: int = 2000,
) -> GateResult:
    """Decide a canary: promote (GO), roll back (NO-GO) or hold (NOT-PROVEN), or INVALID.

    Args:
        records: tables.RECORDS of the logged traffic, with the arm column and the unit.
        scores: tables.SCORES of the `logged` arm.
        spec: a canary spec (`gate.arm_column`, `control`, `treatment`, `unit`, `ramp`).
        run_id: written into every row.
        bootstrap_b: replicates of the latency quantile bootstrap per arm and step.
    """
    g = spec.gate
    name = spec.candidates[0].name if spec.candidates else (g.treatment or "treatment")
    c = _cohorts(records, spec)
    invalid, srm = _srm(c)
    usable = int((c.arm >= 0).sum())
    if usable < g.min_n:
        invalid.append(
            f"only {usable:,} requests in the two cohorts (the gate needs at least {g.min_n:,})"
        )
    scored = _logged(scores)["metric"].to_numpy(zero_copy_only=False)
    metrics = _metrics(spec, sorted(set(scored.tolist())))
    a = g.alpha / max(sum(1 for m in metrics if m.gated), 1)
    per_metric, secondary = _step_estimates(c, scores, metrics, spec, bootstrap_b=bootstrap_b)
    decisions, looks = _sequential_looks(per_metric, metrics, c.steps, a)
    first = next((i for i, d in enumerate(decisions) if d != "hold"), None)
    decision = decisions[first] if first is not None else "hold"
    decided_at = first if first is not None else c.steps - 1
    rows = _decided_rows(metrics, per_metric, looks, decided_at, name, a, g.alpha, secondary)
    verdict: Verdict = "INVALID" if invalid else _DECISION_VERDICTS[decision]
    step_info: dict[str, object] = {
        "decision": decision,
        "step": decided_at + 1,
        "steps_seen": c.steps,
        "weight": c.weights[decided_at],
        "decisions": decisions,
        "srm_p": srm,
    }
    reason = _canary_reason(verdict, decision, decided_at, c.weights, rows, invalid, usable)
    cv = CandidateVerdict(
        candidate=name,
        verdict=verdict,
        reason=reason,
        invalid_reasons=invalid,
        n=usable,
        secondary=secondary,
        canary_step=step_info,
    )
    log.info("canary %s: %s at step %d", name, decision, decided_at + 1)
    return GateResult(run_id=run_id, table=to_table(rows, run_id), candidates=[cv])


_DECISION_VERDICTS: Final[dict[str, Verdict]] = {
    "promote": "GO",
    "rollback": "NO-GO",
    "hold": "NOT-PROVEN",
}


def _pooled(values: F64, n: I64) -> float:
    ok = np.isfinite(values) & (n > 0)
    return float((values[ok] * n[ok]).sum() / n[ok].sum()) if ok.any() else math.nan


def _cs(m: Metric, x: float) -> float:
    """A limit on the estimate's scale back to the row's scale (ratios: treatment/control)."""
    return math.exp(-x) if m.kind == "ratio" else x


def _canary_row(
    m: Metric,
    name: str,
    est: float,
    lo: float,
    hi: float,
    look: _Look,
    base: float,
    cand: float,
    st: _Step,
    upto: slice,
    a: float,
    alpha: float,
) -> MetricRow:
    # mSPRT always-valid p for "no worse than the margin" at this look (Bonferroni over k).
    theta = est - (0.0 if m.critical else _bound(m))
    tau2 = _bound(m) ** 2 if m.margin else 0.05**2
    var = look.var
    if math.isfinite(var) and var > 0 and math.isfinite(theta):
        log_lr = 0.5 * math.log(var / (var + tau2)) + tau2 * theta**2 / (2 * var * (var + tau2))
        p = min(1.0, math.exp(-log_lr)) if theta < 0 else 1.0
    else:
        p = math.nan
    k = alpha / a
    if m.kind == "ratio":
        shown = (math.exp(-est), math.exp(-hi), math.exp(-lo))
        base_v, cand_v = base, cand
    elif m.source == "error_rate":
        shown = (est, lo, hi)
        base_v, cand_v = 1 - base, 1 - cand
    else:
        shown = (est, lo, hi)
        base_v, cand_v = base, cand
    verdict = None
    if m.gated:
        if math.isfinite(est) and math.isfinite(look.h):
            bad = 0.0 if m.critical else _bound(m)
            verdict = (
                "NO-GO"
                if est + look.h < bad
                else "GO"
                if est - look.h > _bound(m)
                else "NOT-PROVEN"
            )
        else:
            verdict = "NOT-PROVEN"
    return MetricRow(
        candidate=name,
        metric=m.name,
        kind=m.kind,
        source=m.source,
        gated=m.gated,
        critical=m.critical,
        slice_col=None,
        slice_value=None,
        n=int(st.n[upto].sum()),
        clusters=int(st.clusters[upto].sum()),
        baseline=base_v,
        candidate_value=cand_v,
        estimate=shown[0],
        ci_low=shown[1],
        ci_high=shown[2],
        margin=m.margin,
        p_less=p,
        p_two=math.nan,
        regressed=None,
        improved=None,
        se=math.sqrt(var) if math.isfinite(var) else math.nan,
        p_adjusted=min(1.0, p * k) if math.isfinite(p) else None,
        verdict=verdict,
    )


def _canary_metric_sentence(r: MetricRow, alpha: float, extra: dict[str, float]) -> str:
    ci = f"{100 * (1 - alpha):g}% CI"
    lo_cs, hi_cs = extra.get("cs_low", math.nan), extra.get("cs_high", math.nan)
    if r.kind == "ratio":
        lo_cs, hi_cs = min(lo_cs, hi_cs), max(lo_cs, hi_cs)
        text = (
            f"{r.metric} is {r.estimate:.2f}× in treatment ({ci} {r.ci_low:.2f}× to {r.ci_high:.2f}×; "
            f"always-valid {lo_cs:.2f}× to {hi_cs:.2f}×)"
        )
    elif r.kind == "pass_rate":  # checks, error rate, binary logged feedback
        sign = -1 if r.source == "error_rate" else 1
        lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
        cs = sorted((sign * lo_cs, sign * hi_cs))
        if pct(r.baseline) == pct(r.candidate_value):
            moved = f"held at {pct(r.baseline)} in both cohorts"
        else:
            verb = "fell" if r.candidate_value < r.baseline else "rose"
            moved = (
                f"{verb} from {pct(r.baseline)} (control) to {pct(r.candidate_value)} (treatment)"
            )
        text = (
            f"{r.metric} {moved} over the ramp so far "
            f"({signed(sign * r.estimate * 100)} pp compared within each step, {ci} "
            f"{signed(lo * 100)} to "
            f"{signed(hi * 100)}; always-valid {signed(cs[0] * 100)} to {signed(cs[1] * 100)})"
        )
    else:
        text = (
            f"{r.metric} {r.baseline:.2f} (control) vs {r.candidate_value:.2f} (treatment) "
            f"({signed(r.estimate, 2)}, {ci} {signed(r.ci_low, 2)} to {signed(r.ci_high, 2)}; "
            f"always-valid {signed(lo_cs, 2)} to {signed(hi_cs, 2)})"
        )
    return f"{r.verdict}: {text}." if r.verdict else f"{text}."


def _canary_reason(
    verdict: str,
    decision: str,
    step: int,
    weights: list[float],
    rows: list[MetricRow],
    invalid: list[str],
    usable: int,
) -> str:
    if verdict == "INVALID":
        return "INVALID: " + "; ".join(invalid) + "."
    where = f"ramp step {step + 1}" + (
        f" ({pct(weights[step], 0)} treatment)" if math.isfinite(weights[step]) else ""
    )
    gated = [r for r in rows if r.gated]
    if decision == "rollback":
        bad = next(r for r in gated if r.verdict == "NO-GO")
        return f"NO-GO: roll back at {where}: " + bad.reason.removeprefix("NO-GO: ")
    if decision == "promote":
        return (
            f"GO: promote after {where}: every gated metric is within its margin on "
            f"{usable:,} requests, however often the ramp is looked at."
        )
    open_rows = [r.metric for r in gated if r.verdict != "GO"]
    return (
        f"NOT-PROVEN: hold at {where}: the always-valid intervals of "
        f"{', '.join(open_rows)} still cross their margins."
    )
