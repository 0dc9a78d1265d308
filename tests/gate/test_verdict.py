"""Verdict order and exit codes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from evalpipe.gate.verdict import EXIT_CODES, CandidateVerdict, GateResult, worst


def test_worst_is_by_severity_not_exit_code() -> None:
    assert worst(["GO", "NOT-PROVEN", "NO-GO"]) == "NO-GO"
    assert worst(["NO-GO", "INVALID"]) == "INVALID"
    assert worst([]) == "GO"
    assert EXIT_CODES == {"GO": 0, "NO-GO": 1, "NOT-PROVEN": 2, "INVALID": 3}


def test_gate_result_verdict_and_lookup() -> None:
    result = GateResult(
        "r",
        pa.table({}),
        [CandidateVerdict("a", "GO", "fine"), CandidateVerdict("b", "NOT-PROVEN", "unsure")],
    )
    assert (result.verdict, result.exit_code) == ("NOT-PROVEN", 2)
    assert result.for_candidate("a").exit_code == 0
    with pytest.raises(KeyError):
        result.for_candidate("c")
