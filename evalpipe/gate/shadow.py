"""Shadow-mode gate: paired metrics → verdict per metric, slice and candidate (STATISTICS.md).

`gate_scores` maps errors onto metric values once ("Which records count"), estimates every
gated metric for the total and each slice value, runs Holm's step-down over the candidate's
NO-GO family and Benjamini-Hochberg over its slices, and writes one tables.GATE row per
candidate × metric × slice with the sentence that explains it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from evalpipe.gate import power
from evalpipe.gate.bootstrap import seeded_rng
from evalpipe.gate.canary import gate_canary
from evalpipe.gate.catalogue import Metric, gate_metrics
from evalpipe.gate.estimates import Estimates, mean_diff, pass_rate, ratios, win_share
from evalpipe.gate.frame import (
    INFRA,
    OK,
    OWN_ERROR,
    ArmData,
    Frame,
    GateTables,
    build_frame,
    frame_of,
    query_table,
)
from evalpipe.gate.multiplicity import benjamini_hochberg, holm
from evalpipe.gate.numbers import pct
from evalpipe.gate.paired import length_adjusted_win_rate
from evalpipe.gate.power import PowerCase, cluster_sums
from evalpipe.gate.reasons import candidate_sentence, metric_sentence, simpson_note
from evalpipe.gate.rows import MetricRow, to_table
from evalpipe.gate.validity import (
    INJECTION_PATTERN,
    ScoringValidity,
    collapse_share,
    scoring_validity,
)
from evalpipe.gate.verdict import CandidateVerdict, GateResult, Verdict
from evalpipe.memory import release_freed_memory
from evalpipe.spec import Spec

__all__ = ["SLICE_MIN_N", "PowerCases", "gate_scores", "gate_tables", "power_cases"]

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

SLICE_MIN_N: Final = 20
"""A slice value needs at least this many records of a metric to be estimated."""
SLICE_FLAG_Q: Final = 0.1
SIMPSON_SHOWN: Final = 3
"""Flagged slices named in a candidate's reason; the rest are in the table."""
INFRA_LIMIT: Final = 0.05
JUDGE_FAILURE_LIMIT: Final = 0.05
COLLAPSE_SHARE: Final = 0.5
COLLAPSE_BASELINE: Final = 0.2
INJECTION_LIMIT: Final = 0.01
SMALL_G: Final = 30


@dataclass
class _Pairs:
    """A metric's included records (mask over all records) and their values."""

    mask: NDArray[np.bool_]
    base: F64
    cand: F64


def _arm_value(arm: ArmData, value: F64, error_value: float) -> F64:
    # ok → the score; the arm's own error → error_value; anything else → unusable (nan).
    return np.where(arm.state == OK, value, np.where(arm.state == OWN_ERROR, error_value, np.nan))


def _rule_pairs(frame: Frame, metric: str, base: ArmData, cand: ArmData, name: str) -> _Pairs:
    vb, vc = frame.scores.get(metric, "baseline"), frame.scores.get(metric, name)
    in_scope = vb.has_row | vc.has_row
    xb, xc = _arm_value(base, vb.value, 0.0), _arm_value(cand, vc.value, 0.0)
    mask = in_scope & np.isfinite(xb) & np.isfinite(xc)
    return _Pairs(mask, xb, xc)


def _pointwise_pairs(
    frame: Frame, m: Metric, base: ArmData, cand: ArmData, name: str
) -> tuple[_Pairs, int, int]:
    vb, vc = frame.scores.get(m.name, "baseline"), frame.scores.get(m.name, name)
    in_sample = vb.has_row | vc.has_row
    xb, xc = _arm_value(base, vb.value, m.scale_min), _arm_value(cand, vc.value, m.scale_min)
    judged = (in_sample & (base.state == OK)).sum() + (in_sample & (cand.state == OK)).sum()
    failed = (in_sample & (base.state == OK) & np.isnan(vb.value)).sum() + (
        in_sample & (cand.state == OK) & np.isnan(vc.value)
    ).sum()
    return _Pairs(in_sample & np.isfinite(xb) & np.isfinite(xc), xb, xc), int(judged), int(failed)


def _pairwise_pairs(
    frame: Frame, metric: str, base: ArmData, cand: ArmData, name: str
) -> tuple[_Pairs, NDArray[np.bool_], int, int]:
    v = frame.scores.get(metric, name)
    both_ok = (base.state == OK) & (cand.state == OK)
    b_own, c_own = base.state == OWN_ERROR, cand.state == OWN_ERROR
    # The arm that failed on its own loses; both failing is a tie.
    w = np.where(
        both_ok,
        v.value,
        np.where(
            c_own & (base.state == OK),
            0.0,
            np.where(b_own & (cand.state == OK), 1.0, np.where(b_own & c_own, 0.5, np.nan)),
        ),
    )
    judged = v.has_row & both_ok
    failed = judged & np.isnan(v.value)
    mask = v.has_row & np.isfinite(w)
    return _Pairs(mask, np.full(w.shape, 0.5), w), v.agree, int(judged.sum()), int(failed.sum())


def _error_pairs(usable: NDArray[np.bool_], base: ArmData, cand: ArmData) -> _Pairs:
    # As a pass/fail check on "no own error", so Δ < 0 means the candidate errs more.
    xb = (base.state != OWN_ERROR).astype(np.float64)
    xc = (cand.state != OWN_ERROR).astype(np.float64)
    return _Pairs(usable, xb, xc)


def _groupings(frame: Frame) -> list[tuple[str | None, I64, list[str | None]]]:
    total: list[str | None] = [None]
    out: list[tuple[str | None, I64, list[str | None]]] = [
        (None, np.zeros(frame.n, dtype=np.int64), total)
    ]
    for col, (codes, labels) in frame.slices.items():
        out.append((col, codes, list(labels)))
    return out


def _row(
    m: Metric, cand: str, col: str | None, value: str | None, est: Estimates, j: int
) -> MetricRow:
    return MetricRow(
        candidate=cand,
        metric=m.name,
        kind=m.kind,
        source=m.source,
        gated=m.gated,
        critical=m.critical,
        slice_col=col,
        slice_value=value,
        n=int(est.n[j]),
        clusters=int(est.clusters[j]),
        baseline=float(est.baseline[j]),
        candidate_value=float(est.candidate[j]),
        estimate=float(est.estimate[j]),
        ci_low=float(est.ci_low[j]),
        ci_high=float(est.ci_high[j]),
        margin=m.margin,
        p_less=float(est.p_less[j]),
        p_two=float(est.p_two[j]),
        regressed=None if m.kind == "ratio" else int(est.regressed[j]),
        improved=None if m.kind == "ratio" else int(est.improved[j]),
        se=float(est.se[j]),
        where=dict(m.where),
    )


Estimator = Callable[[F64, F64, I64, I64, int], Estimates]


def _estimate_rows(
    frame: Frame,
    m: Metric,
    cand: str,
    pairs: _Pairs,
    estimator: Estimator,
    decided: set[str | None],
) -> list[MetricRow]:
    """A metric's total and slice rows; rows that get a verdict (slice column in `decided`)
    carry their clusters' sums for the power simulation."""
    rows = []
    for col, codes, labels in _groupings(frame):
        keep = pairs.mask & (codes >= 0)
        est = estimator(
            pairs.base[keep], pairs.cand[keep], frame.cluster[keep], codes[keep], len(labels)
        )
        total_n = int(pairs.mask.sum())
        for j, label in enumerate(labels):
            if col is not None and (est.n[j] < SLICE_MIN_N or est.n[j] == total_n):
                continue  # too small, or the whole metric again (e.g. its own `where`)
            row = _row(m, cand, col, label, est, j)
            if m.source == "error_rate":  # show the arms' error rates, not their ok rates
                row.baseline, row.candidate_value = 1 - row.baseline, 1 - row.candidate_value
            if m.gated and col in decided:
                row.power = _power_case(m, pairs, frame.cluster, keep & (codes == j))
            rows.append(row)
    return rows


def _power_case(m: Metric, pairs: _Pairs, cluster: I64, keep: NDArray[np.bool_]) -> PowerCase:
    _, codes = np.unique(cluster[keep], return_inverse=True)
    pass_fail = m.kind == "pass_rate"
    sums = cluster_sums(
        pairs.base[keep],
        pairs.cand[keep],
        codes,
        int(codes.max(initial=-1)) + 1,
        pass_fail=pass_fail,
    )
    return PowerCase(sums, pass_fail, m.margin or 0.0, m.critical)


def _ratio_rows(
    frame: Frame,
    metrics: list[Metric],
    cand: str,
    usable: NDArray[np.bool_],
    *,
    seed: int,
    b_total: int,
    b_slice: int,
    alpha: float,
) -> list[MetricRow]:
    base, arm = frame.arms["baseline"], frame.arms[cand]
    named = {m.name: m for m in metrics}
    ttft = named.pop("ttft_p95", None)
    metrics = list(named.values())  # latency_p50, latency_p95, cost
    bounds = tuple(1 + (m.margin if m.margin is not None else 0.0) for m in metrics)
    rows = []
    for col, codes, labels in _groupings(frame):
        keep = usable & (codes >= 0)
        rngs = [seeded_rng(seed, "bootstrap", cand, col or "", lab or "") for lab in labels]
        ests = ratios(
            frame.cluster[keep],
            (base.latency[keep], arm.latency[keep]),
            (base.cost[keep], arm.cost[keep]),
            codes[keep],
            len(labels),
            bounds=(bounds[0], bounds[1], bounds[2]),
            rngs=rngs,
            b=b_total if col is None else b_slice,
            alpha=alpha,
        )
        estimated = list(zip(metrics, ests, strict=True))
        if ttft is not None:  # the same bootstrap over time to first token (its p95 row)
            bound = 1 + (ttft.margin if ttft.margin is not None else 0.0)
            none = np.full(int(keep.sum()), np.nan)
            ttft_ests = ratios(
                frame.cluster[keep],
                (base.ttft[keep], arm.ttft[keep]),
                (none, none),
                codes[keep],
                len(labels),
                bounds=(bound, bound, 1.0),
                rngs=[seeded_rng(seed, "ttft", cand, col or "", lab or "") for lab in labels],
                b=b_total if col is None else b_slice,
                alpha=alpha,
            )
            estimated.append((ttft, ttft_ests[1]))
        for m, est in estimated:
            for j, label in enumerate(labels):
                if col is not None and (est.n[j] < SLICE_MIN_N or est.n[j] == int(usable.sum())):
                    continue
                rows.append(_row(m, cand, col, label, est, j))
    return rows


def _aa_floor(scores: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Mean of each diff metric of the baseline against itself (repeat ≥ 1), when replayed twice."""
    sub = query_table(
        scores,
        "SELECT metric, value FROM scores WHERE arm = 'baseline' AND repeat >= 1 AND kind = 'diff'",
    )
    if sub.num_rows == 0:
        return {}
    agg = sub.group_by("metric").aggregate([("value", "mean")])
    return {
        m: float(v)
        for m, v in zip(agg["metric"].to_pylist(), agg["value_mean"].to_pylist(), strict=True)
        if v is not None
    }


def _diff_rows(frame: Frame, cand: str, floor: dict[str, float]) -> list[MetricRow]:
    rows = []
    for metric in frame.scores.metrics:
        if not metric.startswith("diff."):
            continue
        v = frame.scores.get(metric, cand)
        ok = v.has_row & np.isfinite(v.value)
        n = int(ok.sum())
        if n == 0:
            continue
        mean = float(v.value[ok].mean())
        aa = floor.get(metric, math.nan)
        if metric == "diff.exact":
            reason = f"The candidate changed {pct(1 - mean)} of outputs"
            reason += (
                f"; the baseline changes {pct(1 - aa)} of its own." if math.isfinite(aa) else "."
            )
        else:
            reason = f"{metric}: mean {mean:.3f} against the baseline"
            reason += f" (the baseline against itself: {aa:.3f})." if math.isfinite(aa) else "."
        rows.append(
            MetricRow(
                candidate=cand,
                metric=metric,
                kind="mean",
                source="diff",
                gated=False,
                critical=False,
                slice_col=None,
                slice_value=None,
                n=n,
                clusters=int(np.unique(frame.cluster[ok]).size),
                baseline=aa,
                candidate_value=mean,
                estimate=mean - aa,
                ci_low=math.nan,
                ci_high=math.nan,
                margin=None,
                p_less=math.nan,
                p_two=math.nan,
                regressed=None,
                improved=None,
                se=math.nan,
                reason=reason,
            )
        )
    return rows


def _invalid_reasons(
    frame: Frame,
    cand: str,
    spec: Spec,
    usable_n: int,
    budget_exhausted: bool,
    judge_failures: dict[str, tuple[int, int]],
    scoring: list[str],
) -> list[str]:
    """INVALID rules 1–4 and 6 (STATISTICS.md, "Verdict per candidate and per run"), and
    `scoring`: what made the run's scores untrustworthy for every candidate (validity.py)."""
    out = list(scoring)
    min_n = spec.gate.min_n
    if usable_n < min_n:
        if budget_exhausted:
            out.append(
                f"the budget ran out after {usable_n:,} usable paired requests "
                f"(the gate needs at least {min_n:,})"
            )
        else:
            out.append(
                f"only {usable_n:,} requests have usable answers from both arms "
                f"(the gate needs at least {min_n:,})"
            )
    for label, arm in (("the baseline", frame.arms["baseline"]), (cand, frame.arms[cand])):
        sent = int(np.count_nonzero(arm.state != 0))
        infra = arm.count(INFRA)
        if sent and infra / sent > INFRA_LIMIT:
            out.append(
                f"{pct(infra / sent)} of {label}'s requests ended in infrastructure errors "
                f"after retries (limit {pct(INFRA_LIMIT, 0)})"
            )
    for metric, (judged, failed) in judge_failures.items():
        if judged and failed / judged > JUDGE_FAILURE_LIMIT:
            out.append(
                f"the {metric} judge failed on {pct(failed / judged)} of judged records "
                f"(limit {pct(JUDGE_FAILURE_LIMIT, 0)})"
            )
    arm, base = frame.arms[cand], frame.arms["baseline"]
    distinct = np.flatnonzero(frame.distinct_input)  # (texts read from the view as needed)
    release_freed_memory()  # (what the checks before freed: not resident under the texts)
    # (counted in the gate's own DuckDB: one memory limit for the texts and their counts)
    cand_share = collapse_share(arm.texts.batches_at(distinct), database=arm.texts.con)
    if cand_share > COLLAPSE_SHARE:
        base_share = collapse_share(base.texts.batches_at(distinct), database=base.texts.con)
        if base_share < COLLAPSE_BASELINE:
            out.append(
                f"the candidate's outputs collapsed: {pct(cand_share)} of distinct requests got "
                f"the same or nearly the same answer (baseline {pct(base_share)})"
            )
    release_freed_memory()  # (the counts of a million texts: not resident through what follows)
    total, hits = arm.texts.count_matching(INJECTION_PATTERN)  # (as injection_share, in DuckDB)
    injected = hits / total if total else 0.0
    if injected > INJECTION_LIMIT:
        out.append(
            f"{pct(injected)} of the candidate's outputs look like attempts to steer the judge "
            f"(limit {pct(INJECTION_LIMIT, 0)})"
        )
    return out


def _decide(rows: list[MetricRow], spec: Spec, k: int, *, clustered: bool) -> None:
    """Holm, BH, flags, verdicts, power and sentences of one candidate's rows, in place."""
    alpha, min_n = spec.gate.alpha, spec.gate.min_n
    gated_slices = set(spec.gate.gated_slices)
    for r in rows:
        if r.gated and r.slice_col is None:
            r.below_min_n = r.n < min_n
            r.in_family = not r.below_min_n and math.isfinite(r.p_less)
        elif r.gated and r.slice_col in gated_slices:
            r.in_family = math.isfinite(r.p_less)
    family = [r for r in rows if r.in_family]
    for r, p in zip(family, holm([r.p_less for r in family]), strict=True):
        r.p_adjusted = float(p)
    sliced = [r for r in rows if r.slice_col is not None]
    for r, q in zip(sliced, benjamini_hochberg([r.p_two for r in sliced]), strict=True):
        r.q_value = float(q)
        r.flagged = bool(q < SLICE_FLAG_Q) and r.worse_than_margin()
    for r in rows:
        if r.source == "diff":
            continue
        df = r.clusters - 1 if r.clusters > 1 else None
        r.mde = power.mde(r.se, k, alpha=alpha, df=df)
        if r.gated and (r.slice_col is None or r.slice_col in gated_slices):
            r.n_needed = _n_needed(r, k, alpha=alpha, seed=spec.seed, clustered=clustered)
            r.verdict = _verdict(r, alpha)
        r.reason = metric_sentence(r, alpha=alpha, min_n=min_n)


def _n_needed(r: MetricRow, k: int, *, alpha: float, seed: int, clustered: bool) -> float | None:
    """Records that would settle a decided row (STATISTICS.md, "Power"): NO-GO when it lies
    beyond the margin, else GO with power 0.8^{1/k} when the arms are equally good."""
    if r.margin is None or r.n == 0:
        return None
    df = r.clusters - 1 if r.clusters > 1 else None
    if r.kind == "ratio":
        excess = r.estimate - r.bound
    else:
        excess = (0.0 if r.critical else -r.margin) - r.estimate
        excess = excess if r.estimate < -r.margin else -1.0
    if excess > 0:
        return power.n_needed_to_reject(r.n, r.se, excess, k, alpha=alpha, df=df)
    target = power.GO_POWER ** (1 / max(k, 1))
    if r.power is not None:
        needed = power.n_for_go(
            r.power, power=target, clustered=clustered, alpha=alpha, k=k, seed=seed
        )
        if needed is not None:
            return needed
    return power.n_needed(r.n, r.se, r.margin, k, alpha=alpha, power=power.GO_POWER, df=df)


def _verdict(r: MetricRow, alpha: float) -> str:
    if r.n == 0 or not math.isfinite(r.estimate) or r.below_min_n:
        return "NOT-PROVEN"
    if r.p_adjusted is not None and r.p_adjusted <= alpha / 2:
        return "NO-GO"
    if r.kind == "ratio":
        go = math.isfinite(r.ci_high) and r.ci_high < r.bound
    else:
        go = math.isfinite(r.ci_low) and r.ci_low > r.bound
    return "GO" if go else "NOT-PROVEN"


class _Measured(NamedTuple):
    """A metric's included pairs, its judge's (judged, failed) counts and secondary figures."""

    pairs: _Pairs
    judge_failures: tuple[int, int] | None
    secondary: dict[str, float] | None


def _wilcoxon_p(d: np.ndarray) -> float:
    """Wilcoxon signed-rank p of non-zero paired differences (secondary; pointwise judges)."""
    from scipy import stats  # (half a second's import; only runs with a pointwise judge)

    return float(stats.wilcoxon(d).pvalue)


def _measure(
    frame: Frame, m: Metric, name: str, usable: NDArray[np.bool_], spec: Spec
) -> _Measured | None:
    """The paired values of one non-ratio metric ("Which records count"); None for ratios."""
    base, arm = frame.arms["baseline"], frame.arms[name]
    if m.source == "rule":
        return _Measured(_rule_pairs(frame, m.name, base, arm, name), None, None)
    if m.source == "error_rate":
        return _Measured(_error_pairs(usable, base, arm), None, None)
    if m.source == "pointwise":
        pairs, judged, failed = _pointwise_pairs(frame, m, base, arm, name)
        d = (pairs.cand - pairs.base)[pairs.mask]
        wilcoxon = {"wilcoxon_p": _wilcoxon_p(d[d != 0])} if np.any(d != 0) else None
        return _Measured(pairs, (judged, failed), wilcoxon)
    if m.source == "pairwise":
        pairs, agree, judged, failed = _pairwise_pairs(frame, m.name, base, arm, name)
        extra = _pairwise_secondary(frame, pairs, agree, base, arm, spec, name, m)
        return _Measured(pairs, (judged, failed), extra)
    return None


def _usable(frame: Frame, name: str) -> NDArray[np.bool_]:
    """Records where both arms answered or failed on their own (infrastructure errors out)."""
    base, arm = frame.arms["baseline"], frame.arms[name]
    return np.isin(base.state, (OK, OWN_ERROR)) & np.isin(arm.state, (OK, OWN_ERROR))


def _metric_rows(
    frame: Frame,
    name: str,
    spec: Spec,
    metrics: list[Metric],
    usable: NDArray[np.bool_],
) -> tuple[list[MetricRow], dict[str, tuple[int, int]], dict[str, dict[str, float]]]:
    """Rows of every non-ratio metric (total and slices), judge failures, secondary figures."""
    rows: list[MetricRow] = []
    judge_failures: dict[str, tuple[int, int]] = {}
    secondary: dict[str, dict[str, float]] = {}
    for m in metrics:
        measured = _measure(frame, m, name, usable, spec)
        if measured is None:
            continue
        if measured.judge_failures is not None:
            judge_failures[m.name] = measured.judge_failures
        if measured.secondary is not None:
            secondary[m.name] = measured.secondary
        estimator = _estimator(m, frame.clustered, spec.gate.alpha)
        decided = {None, *spec.gate.gated_slices}
        rows.extend(_estimate_rows(frame, m, name, measured.pairs, estimator, decided))
    return rows, judge_failures, secondary


def _candidate_verdict(rows: list[MetricRow], invalid: list[str]) -> Verdict:
    """INVALID > NO-GO (any gated row) > GO (every gated total) > NOT-PROVEN."""
    gated = [r for r in rows if r.verdict is not None]
    totals = [r for r in gated if r.slice_col is None]
    if invalid:
        return "INVALID"
    if any(r.verdict == "NO-GO" for r in gated):
        return "NO-GO"
    if totals and all(r.verdict == "GO" for r in totals):
        return "GO"
    return "NOT-PROVEN"


def _simpson_notes(rows: list[MetricRow]) -> str:
    """Sentences naming flagged slices whose total is GO or improves (STATISTICS.md, Slices)."""
    totals = {r.metric: r for r in rows if r.slice_col is None}
    flagged = sorted(
        (r for r in rows if r.flagged),
        key=lambda r: r.q_value if r.q_value is not None else 1.0,
    )
    simpson = [
        (r, totals[r.metric])
        for r in flagged
        if r.metric in totals and _total_fine(totals[r.metric])
    ]
    text = "".join(" " + simpson_note(r, total) for r, total in simpson[:SIMPSON_SHOWN])
    if len(simpson) > SIMPSON_SHOWN:
        text += f" ({len(simpson) - SIMPSON_SHOWN} more flagged slices in the table.)"
    return text


def _warnings(frame: Frame, usable: NDArray[np.bool_], spec: Spec) -> list[str]:
    if not frame.clustered:
        return []
    g = int(np.unique(frame.cluster[usable]).size)
    if g >= SMALL_G:
        return []
    return [f"only {g} clusters of {spec.gate.cluster}: intervals may be too narrow"]


def _coverage(frame: Frame, name: str, usable_n: int) -> dict[str, int]:
    base, arm = frame.arms["baseline"], frame.arms[name]
    return {
        "usable": usable_n,
        "skipped_baseline": base.count(0),
        "skipped_candidate": arm.count(0),
        "infra_errors_baseline": base.count(INFRA),
        "infra_errors_candidate": arm.count(INFRA),
        "own_errors_baseline": base.count(OWN_ERROR),
        "own_errors_candidate": arm.count(OWN_ERROR),
    }


def _gate_candidate(
    frame: Frame,
    name: str,
    spec: Spec,
    floor: dict[str, float],
    *,
    budget_exhausted: bool,
    bootstrap_b: int,
    slice_bootstrap_b: int,
    scoring: ScoringValidity,
) -> tuple[list[MetricRow], CandidateVerdict]:
    """Estimate, decide and explain one candidate against the baseline."""
    alpha = spec.gate.alpha
    usable = _usable(frame, name)
    usable_n = int(usable.sum())
    metrics = gate_metrics(spec)
    rows, judge_failures, secondary = _metric_rows(frame, name, spec, metrics, usable)
    rows += _ratio_rows(
        frame,
        [m for m in metrics if m.kind == "ratio"],
        name,
        usable,
        seed=spec.seed,
        b_total=bootstrap_b,
        b_slice=slice_bootstrap_b,
        alpha=alpha,
    )
    rows = _in_metric_order(rows, metrics)
    _decide(rows, spec, sum(1 for m in metrics if m.gated), clustered=frame.clustered)
    rows.extend(_diff_rows(frame, name, floor))
    invalid = _invalid_reasons(
        frame, name, spec, usable_n, budget_exhausted, judge_failures, scoring.reasons
    )
    for metric, figures in scoring.figures.get(name, {}).items():
        secondary.setdefault(metric, {}).update(figures)
    verdict = _candidate_verdict(rows, invalid)
    reason = candidate_sentence(verdict, rows, n=usable_n, alpha=alpha, invalid_reasons=invalid)
    if verdict != "INVALID":
        reason += _simpson_notes(rows)
    cv = CandidateVerdict(
        candidate=name,
        verdict=verdict,
        reason=reason,
        invalid_reasons=invalid,
        slices_flagged=[f"{r.slice_col}={r.slice_value}: {r.metric}" for r in rows if r.flagged],
        n=usable_n,
        warnings=_warnings(frame, usable, spec),
        secondary=secondary,
        coverage=_coverage(frame, name, usable_n),
    )
    return rows, cv


def _total_fine(total: MetricRow) -> bool:
    """The total is GO or improves: a flagged slice is then Simpson's case."""
    improves = total.estimate < 1 if total.kind == "ratio" else total.estimate > 0
    return total.verdict == "GO" or (math.isfinite(total.estimate) and improves)


def _in_metric_order(rows: list[MetricRow], metrics: list[Metric]) -> list[MetricRow]:
    rank = {m.name: i for i, m in enumerate(metrics)}
    slice_rank: dict[str | None, int] = {None: -1}
    for r in rows:
        slice_rank.setdefault(r.slice_col, len(slice_rank))
    return sorted(
        rows, key=lambda r: (rank[r.metric], slice_rank[r.slice_col], r.slice_value or "")
    )


def _estimator(m: Metric, clustered: bool, alpha: float) -> Estimator:
    if m.kind == "pass_rate":
        return _pass_rate_estimator(m, clustered, alpha)
    if m.kind == "win_rate":
        return _win_estimator(m, alpha)
    return _mean_estimator(m, alpha)


def _pass_rate_estimator(m: Metric, clustered: bool, alpha: float) -> Estimator:
    margin = m.margin or 0.0

    def run(b: F64, c: F64, cl: I64, g: I64, k: int) -> Estimates:
        return pass_rate(
            b, c, cl, g, k, margin=margin, critical=m.critical, clustered=clustered, alpha=alpha
        )

    return run


def _mean_estimator(m: Metric, alpha: float) -> Estimator:
    margin = m.margin or 0.0

    def run(b: F64, c: F64, cl: I64, g: I64, k: int) -> Estimates:
        return mean_diff(b, c, cl, g, k, margin=margin, alpha=alpha)

    return run


def _win_estimator(m: Metric, alpha: float) -> Estimator:
    margin = m.margin or 0.0

    def run(b: F64, c: F64, cl: I64, g: I64, k: int) -> Estimates:
        del b
        return win_share(c, cl, g, k, margin=margin, alpha=alpha)

    return run


def _pairwise_secondary(
    frame: Frame,
    pairs: _Pairs,
    agree: NDArray[np.bool_],
    base: ArmData,
    arm: ArmData,
    spec: Spec,
    name: str,
    m: Metric,
) -> dict[str, float]:
    both_ok = pairs.mask & (base.state == OK) & (arm.state == OK)
    out: dict[str, float] = {}
    if both_ok.any():
        out["swap_consistency"] = float(agree[both_ok].mean())
    if pairs.mask.sum() >= 2:
        w = pairs.cand[pairs.mask]
        dlen = (arm.length - base.length)[pairs.mask]
        rng = seeded_rng(spec.seed, "length-adjusted", name, m.name)
        est, lo, hi = length_adjusted_win_rate(
            w, dlen, frame.cluster[pairs.mask], rng=rng, b=200, alpha=spec.gate.alpha
        )
        out.update(
            length_adjusted_win_rate=est, length_adjusted_ci_low=lo, length_adjusted_ci_high=hi
        )
    return out


def gate_scores(
    scores: pa.Table,
    responses: pa.Table,
    records: pa.Table,
    spec: Spec,
    *,
    run_id: str,
    budget_exhausted: bool = False,
    bootstrap_b: int = 2000,
    slice_bootstrap_b: int = 200,
) -> GateResult:
    """Decide every candidate of a run: GO, NO-GO, NOT-PROVEN or INVALID.

    Args:
        scores: tables.SCORES.
        responses: tables.RESPONSES (repeat 0 of `baseline` and each candidate is gated).
        records: tables.RECORDS (slice and cluster columns).
        spec: the run's spec; a canary spec is handed to `gate_canary`.
        run_id: written into every row.
        budget_exhausted: the replay stopped on the budget (INVALID rule 6 below min_n).
        bootstrap_b: replicates of the latency and cost bootstrap on totals.
        slice_bootstrap_b: replicates on slices.

    Returns:
        A GateResult whose table conforms to tables.GATE.
    """
    if spec.mode == "canary":
        return gate_canary(records, scores, spec, run_id=run_id)
    tables = GateTables.from_tables(scores, responses, records)
    try:
        return gate_tables(
            tables,
            spec,
            run_id=run_id,
            budget_exhausted=budget_exhausted,
            bootstrap_b=bootstrap_b,
            slice_bootstrap_b=slice_bootstrap_b,
        )
    finally:
        tables.close()


def gate_tables(
    tables: GateTables,
    spec: Spec,
    *,
    run_id: str,
    budget_exhausted: bool = False,
    bootstrap_b: int = 2000,
    slice_bootstrap_b: int = 200,
) -> GateResult:
    """`gate_scores` of a shadow run over `GateTables` (a run's Parquet files, read out of core:
    one arm's or one metric's numbers at a time, never a whole table of rows)."""
    frame = frame_of(tables, spec)
    floor = _aa_floor(tables.con)
    scoring = scoring_validity(tables.con, tables.records, spec)
    tables.release_records()
    all_rows: list[MetricRow] = []
    verdicts = []
    for cand in spec.candidates:
        rows, cv = _gate_candidate(
            frame,
            cand.name,
            spec,
            floor,
            budget_exhausted=budget_exhausted,
            bootstrap_b=bootstrap_b,
            slice_bootstrap_b=slice_bootstrap_b,
            scoring=scoring,
        )
        log.info("gate %s: %s on %d paired requests", cand.name, cv.verdict, cv.n)
        all_rows.extend(rows)
        verdicts.append(cv)
    return GateResult(run_id=run_id, table=to_table(all_rows, run_id), candidates=verdicts)


class PowerCases(NamedTuple):
    """A candidate's gated metrics (ratios aside) as `power.go_power` cases on shared clusters."""

    metrics: list[Metric]
    cases: list[PowerCase]
    n: int
    """Records usable in both arms: `go_power`'s scale 1."""
    clustered: bool
    k: int
    """Gated metrics, ratios included (the Holm family's size)."""


def power_cases(
    scores: pa.Table, responses: pa.Table, records: pa.Table, spec: Spec, *, candidate: str
) -> PowerCases:
    """This run as a pilot for the power of a run like it (STATISTICS.md, "Power"): every gated
    metric's per-cluster sums over one cluster index, so that `go_power` draws them together."""
    frame = build_frame(scores, responses, records, spec)
    usable = _usable(frame, candidate)
    n_clusters = int(frame.cluster.max(initial=-1)) + 1
    metrics, cases = [], []
    for m in gate_metrics(spec):
        measured = _measure(frame, m, candidate, usable, spec) if m.gated else None
        if measured is None:
            continue
        keep = measured.pairs.mask
        pass_fail = m.kind == "pass_rate"
        sums = cluster_sums(
            measured.pairs.base[keep],
            measured.pairs.cand[keep],
            frame.cluster[keep],
            n_clusters,
            pass_fail=pass_fail,
        )
        metrics.append(m)
        cases.append(PowerCase(sums, pass_fail, m.margin or 0.0, m.critical))
    k = sum(1 for m in gate_metrics(spec) if m.gated)
    return PowerCases(metrics, cases, int(usable.sum()), frame.clustered, k)
