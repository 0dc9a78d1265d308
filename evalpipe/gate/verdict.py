"""Verdict types and their order (STATISTICS.md, "Verdict per candidate and per run")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import pyarrow as pa

__all__ = [
    "EXIT_CODES",
    "SEVERITY",
    "CandidateVerdict",
    "GateResult",
    "Verdict",
    "worst",
]

Verdict = Literal["GO", "NO-GO", "NOT-PROVEN", "INVALID"]

EXIT_CODES: Final[dict[str, int]] = {"GO": 0, "NO-GO": 1, "NOT-PROVEN": 2, "INVALID": 3}
"""Exit code of each verdict (ARCHITECTURE.md, exit codes)."""

SEVERITY: Final[dict[str, int]] = {"GO": 0, "NOT-PROVEN": 1, "NO-GO": 2, "INVALID": 3}
"""Explicit order for the worst verdict: INVALID > NO-GO > NOT-PROVEN > GO."""


def worst(verdicts: list[Verdict]) -> Verdict:
    """The most severe verdict (GO for an empty list)."""
    return max(verdicts, key=SEVERITY.__getitem__, default="GO")


@dataclass(frozen=True)
class CandidateVerdict:
    """The gate's decision for one candidate."""

    candidate: str
    verdict: Verdict
    reason: str
    """One sentence a PM can read, with the numbers that decided it."""
    invalid_reasons: list[str] = field(default_factory=list)
    slices_flagged: list[str] = field(default_factory=list)
    """`column=value: metric` of each flagged slice."""
    n: int = 0
    """Records with both arms usable."""
    warnings: list[str] = field(default_factory=list)
    """Caveats the report shows beside the verdict (e.g. few clusters)."""
    secondary: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per metric, figures shown but not gated (Wilcoxon p, swap consistency, length-adjusted
    win rate and its interval)."""
    coverage: dict[str, int] = field(default_factory=dict)
    """Usable pairs, and skipped / infrastructure-error / own-error responses per arm."""
    canary_step: dict[str, object] | None = None
    """Canary mode: the last ramp step's decision (promote / hold / rollback) and its figures."""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


@dataclass(frozen=True)
class GateResult:
    """All verdicts of one run, and the gate table (tables.GATE) they came from."""

    run_id: str
    table: pa.Table
    candidates: list[CandidateVerdict]

    @property
    def verdict(self) -> Verdict:
        return worst([c.verdict for c in self.candidates])

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def for_candidate(self, name: str) -> CandidateVerdict:
        for c in self.candidates:
            if c.candidate == name:
                return c
        raise KeyError(name)
