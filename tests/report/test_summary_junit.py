"""summary.md escaping and junit.xml structure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pyarrow as pa

from evalpipe.gate.verdict import CandidateVerdict, GateResult
from evalpipe.report.junit import render_junit
from evalpipe.report.summary import md_escape
from evalpipe.tables import GATE, empty


def test_md_escape_keeps_text_literal() -> None:
    assert md_escape("valid_json | *x* <img src=x> [a](b)") == (
        "valid\\_json \\| \\*x\\* \\<img src=x\\> \\[a\\](b)"
    )
    assert md_escape("two\nlines") == "two lines"


def test_junit_without_gated_rows_uses_the_candidate_verdict() -> None:
    gate = GateResult("r", empty(GATE), [CandidateVerdict("c", "NOT-PROVEN", "NOT-PROVEN: few.")])
    root = ET.fromstring(render_junit(gate))
    (case,) = root.iter("testcase")
    assert case.get("name") == "verdict"
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == "NOT-PROVEN: few."


def test_junit_survives_control_characters() -> None:
    table = pa.Table.from_pylist(
        [
            {
                "candidate": "c",
                "metric": "m\x00",
                "kind": "pass_rate",
                "gated": True,
                "verdict": "NO-GO",
                "reason": "bad\x1b[31m <tag> & more",
            }
        ],
        schema=GATE,
    )
    gate = GateResult("r", table, [CandidateVerdict("c", "NO-GO", "NO-GO: bad.")])
    root = ET.fromstring(render_junit(gate))
    failure = next(root.iter("failure"))
    assert "<tag> & more" in (failure.get("message") or "")
