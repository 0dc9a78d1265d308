"""summary.md escaping and junit.xml structure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

import pyarrow as pa

from evalpipe.gate.verdict import CandidateVerdict, GateResult
from evalpipe.report.coverage import arm_coverage
from evalpipe.report.html import PageData, page_data
from evalpipe.report.junit import render_junit
from evalpipe.report.summary import md_escape, render_summary
from evalpipe.tables import GATE, empty

from .conftest import HandRun


def _page(run: HandRun) -> PageData:
    return page_data(
        gate=run.gate,
        spec=run.spec,
        manifest=run.manifest,
        records=run.records,
        coverage=arm_coverage(run.responses, run.spec),
        slices=[],
        examples=[],
    )


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


def test_summary_has_verdicts_reasons_what_it_takes_and_money(run: HandRun) -> None:
    page = _page(run)
    text = render_summary(page, report_path="reports/x/index.html")
    assert "| bad | 🔴 **NO-GO** |" in text
    assert "about 800 more records" in text
    assert "| Metric | Baseline | Candidate |" in text
    assert text.rstrip().endswith("reports/x/index.html")


def test_summary_stays_under_64_kb_with_the_verdicts_and_the_link(run: HandRun) -> None:
    page = _page(run)
    long = "NO-GO: " + "a long reason " * 400
    cards = [replace(c, name=f"{c.name}{k}", reason=long) for k in range(12) for c in page.cards]
    sections = [
        replace(s, card=replace(s.card, name=f"{s.card.name}{k}"), gated=s.gated * 40)
        for k in range(12)
        for s in page.sections
    ]
    big = replace(page, cards=cards, sections=sections)
    text = render_summary(big, report_path="reports/x/index.html")
    assert len(text.encode()) <= 64_000
    assert all(f"| {md_escape(c.name)} |" in text for c in cards)
    assert text.rstrip().endswith("reports/x/index.html")


def test_junit_has_a_testcase_per_candidate_and_gated_metric(run: HandRun) -> None:
    root = ET.fromstring(render_junit(run.gate))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"good", "bad", "unsure", "broken"}
    bad = suites["bad"]
    failures = [tc for tc in bad.iter("testcase") if tc.find("failure") is not None]
    assert failures and all(
        (tc.find("failure").get("message") or "").startswith("NO-GO")
        for tc in failures  # type: ignore[union-attr]
    )


def test_dollars_are_not_read_as_math() -> None:
    assert md_escape("cost $2.85 more ($3.28 instead of $0.43)") == (
        "cost \\$2.85 more (\\$3.28 instead of \\$0.43)"
    )
