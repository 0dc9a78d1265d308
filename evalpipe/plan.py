"""`--dry-run`: what a run would send, cost and take, and how much data its margins need.

Nothing is sent: the traffic is read and selected as a run would, then counted.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalpipe.providers.prices import price_for
from evalpipe.replay.engine import spec_prices
from evalpipe.score.rules import where_mask
from evalpipe.spec import Spec
from evalpipe.tables import RECORDS_LEAN

__all__ = ["ArmPlan", "CheckNeed", "RunPlan", "plan_run"]

_JUDGE_TOKENS_OVERHEAD = 350  # the judge prompt's own text, in tokens


@dataclass(frozen=True)
class ArmPlan:
    """Requests, tokens, cost and time of one arm (or judge)."""

    name: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    """None when the model's price is unknown."""
    minutes: float


@dataclass(frozen=True)
class CheckNeed:
    """Records a gated pass/fail check needs for GO when the candidate is as good as the
    baseline (`power.n_needed_for_check`: its discordance and pass rate are assumed)."""

    metric: str
    margin: float
    records: int
    """Records in the check's scope."""
    needed: int
    power: float
    """This check's chance of GO at `needed` records: GO_POWER ** (1 / gated)."""
    gated: int
    """Gated metrics of the run (all must show GO)."""


@dataclass(frozen=True)
class RunPlan:
    records: int
    quarantined: int
    arms: list[ArmPlan]
    needs: list[CheckNeed] = field(default_factory=list)
    """Per gated pass/fail check: its margin, the records in scope, and the records a GO needs."""
    unlogged_outputs: int = 0
    """Records without a logged answer, whose output is counted at max_tokens."""

    @property
    def cost_usd(self) -> float:
        return sum(a.cost_usd or 0.0 for a in self.arms)


def _tokens(texts: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.utf8_length(texts), 0).to_numpy(zero_copy_only=False)) / 4.0


def plan_run(spec: Spec) -> RunPlan:
    """Count what a run of `spec` would do, without sending anything."""
    from evalpipe.gate import power
    from evalpipe.gate.catalogue import gate_metrics
    from evalpipe.ingest import ingest_selected, selection_of
    from evalpipe.ingest.evalsets import append_records, ingest_eval_sets
    from evalpipe.score.judges.anchors import load_anchors

    with tempfile.TemporaryDirectory(prefix="evalpipe-plan-") as scratch:
        path = Path(scratch) / "records.parquet"
        result = ingest_selected(
            spec.resolve_input(spec.traffic.path),
            path,
            format=spec.traffic.format,
            selection=selection_of(spec),
        )
        cases = ingest_eval_sets(spec) if spec.eval_sets else None
        if cases is not None:
            append_records(path, cases.records)
        records = pq.read_table(path, columns=RECORDS_LEAN.names)
    n = records.num_rows
    in_tok = _tokens(records["request"])
    logged_out = np.asarray(
        pc.fill_null(records["output_tokens"], 0).to_numpy(zero_copy_only=False), float
    )
    out_tok = np.where(logged_out > 0, logged_out, _tokens(records["output_text"]))
    # no answer logged (a batch input file, BFCL questions): count max_tokens, an upper bound
    unlogged = out_tok <= 0
    out_tok = np.where(unlogged, float(spec.replay.max_tokens_default), out_tok)
    latency = pc.approximate_median(records["latency_ms"]).as_py() or 1500.0
    prices = spec_prices(spec)
    arms: list[ArmPlan] = []

    def arm_plan(name: str, model: str, requests: int, tin: float, tout: float) -> ArmPlan:
        price = price_for(model, prices)
        cost = None if price is None else (tin * price.input + tout * price.output) / 1e6
        conc = spec.limit_for(model).concurrency or 32
        return ArmPlan(
            name, model, requests, int(tin), int(tout), cost, requests * latency / conc / 60000
        )

    assert spec.baseline is not None or spec.mode == "canary"
    for arm in spec.arms():
        reps = spec.baseline.repeats if spec.baseline is not None and arm is spec.baseline else 1
        key = "baseline" if arm is spec.baseline else arm.name
        arms.append(arm_plan(key, arm.model, n * reps, in_tok.sum() * reps, out_tok.sum() * reps))
    n_cases = cases.records.num_rows if cases is not None else 0
    for judge in spec.judges:
        # eval-set cases are always judged; the sample is drawn from the traffic
        k = min(judge.sample or n, n - n_cases) + n_cases
        per = (in_tok.mean() + 2 * out_tok.mean() + _JUDGE_TOKENS_OVERHEAD) if n else 0.0
        calls = k * len(spec.candidates) * (2 if judge.type == "pairwise" else 1)
        if judge.type in ("pointwise", "reference"):
            calls = k * len(spec.arms())
        anchors = load_anchors(judge, spec)  # re-judged with every run (judge drift)
        calls += len(anchors[0]) * (2 if judge.type == "pairwise" else 1) if anchors else 0
        arms.append(arm_plan(f"judge {judge.name}", judge.model, calls, calls * per, calls * 60))
    gated = [m for m in gate_metrics(spec) if m.gated]
    # each of k gated metrics at power^(1/k), as the gate's n_needed (STATISTICS.md, "Power")
    check_power = power.GO_POWER ** (1 / max(len(gated), 1))
    needs = []
    for m in gated:
        if m.source != "rule" or m.margin is None:
            continue
        in_scope = pc.sum(where_mask(records, m.where)).as_py() or 0
        needed = power.n_needed_for_check(
            m.margin, power=check_power, alpha=spec.gate.alpha, critical=m.critical, k=len(gated)
        )
        needs.append(
            CheckNeed(m.name, m.margin, int(in_scope), int(needed), check_power, len(gated))
        )
    return RunPlan(
        records=n,
        quarantined=result.quarantine.num_rows + (cases.quarantine.num_rows if cases else 0),
        arms=arms,
        needs=needs,
        unlogged_outputs=int(unlogged.sum()),
    )
