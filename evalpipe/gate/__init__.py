"""The gate: pure statistics from scores to a verdict per metric, candidate and run.

STATISTICS.md is the contract. `gate_scores` decides a shadow run (paired replay), `gate_canary`
a canary run (logged cohorts); both return a `GateResult` whose table conforms to tables.GATE.
`n_needed_for_check` sizes a run before any data (`--dry-run`).
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
from evalpipe.gate.power import mde, n_needed, n_needed_for_check
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
