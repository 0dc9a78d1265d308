"""The gate: pure statistics from scores to a verdict per metric, candidate and run.

STATISTICS.md is the contract. `gate_scores` decides a shadow run (paired replay), `gate_canary`
a canary run (logged cohorts); both return a `GateResult` whose table conforms to tables.GATE.
`n_needed_for_check` sizes a run before any data (`--dry-run`); `gate.catalogue` lists the
metrics and margins that plan, gate and report share.

The gate table (tables.GATE) has one row per candidate × metric × slice; totals have a null
`slice_col`. Kinds: `pass_rate` (checks and `error_rate`), `mean` (pointwise judges; diff
metrics, ungated), `win_rate` (pairwise judges), `ratio` (`latency_p50`, `latency_p95`, `cost`);
`source` says where the values come from (catalogue.SOURCES) and `flagged` marks a slice with
q < 0.1 that is worse than the margin.
`estimate`, `ci_low`, `ci_high` are differences oriented so that negative means the candidate is
worse (for `error_rate`: baseline rate − candidate rate; for `win_rate`: Ŵ − ½), or for `ratio`
candidate / baseline with the bound at `1 + margin`. `baseline` and `candidate_value` are each
arm's own figure (error rates, win rate ½ and Ŵ, milliseconds, USD). On totals `p_value` is the
one-sided p of "worse than the margin" (exact McNemar for critical checks) and `p_adjusted` its
Holm adjustment over the candidate's NO-GO family; on slices `p_value` is the two-sided p of no
difference behind `q_value` (BH), and `p_adjusted` is set on gated slices only (their one-sided
p, Holm-adjusted in the same family). `verdict` is null on ungated rows; `n_needed` is set on
rows with a verdict (the records for NO-GO beyond the margin, else for GO with power 0.8^{1/k}
by `power.n_for_go`).
"""

from evalpipe.gate.canary import gate_canary
from evalpipe.gate.multiplicity import benjamini_hochberg, holm
from evalpipe.gate.paired import (
    clustered_se,
    mcnemar_p,
    newcombe_paired,
    paired_mean,
    win_rate,
)
from evalpipe.gate.power import go_power, mde, n_needed, n_needed_for_check
from evalpipe.gate.shadow import gate_scores
from evalpipe.gate.verdict import (
    EXIT_CODES,
    SEVERITY,
    CandidateVerdict,
    GateResult,
    Verdict,
    worst,
)

__all__ = [
    "EXIT_CODES",
    "SEVERITY",
    "CandidateVerdict",
    "GateResult",
    "Verdict",
    "benjamini_hochberg",
    "clustered_se",
    "gate_canary",
    "gate_scores",
    "go_power",
    "holm",
    "mcnemar_p",
    "mde",
    "n_needed",
    "n_needed_for_check",
    "newcombe_paired",
    "paired_mean",
    "win_rate",
    "worst",
]
