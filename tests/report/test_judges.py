"""The judge reliability panel: what the scores hold, and the gaps named."""

from __future__ import annotations

import pyarrow.compute as pc

from evalpipe.report.judges import judge_reliability

from .conftest import HandRun
from .synth import SynthRun


def test_judges_show_judged_failures_and_swap_consistency(synth_run: SynthRun) -> None:
    rel = judge_reliability(synth_run.scores, synth_run.records)
    assert rel is not None
    arms = {r.arm for r in rel.rows}
    assert arms == {"claude-haiku", "gpt-4.1-mini", "nano-fast"}
    for r in rel.rows:
        assert r.metric == "helpfulness" and r.judged > 0
        assert r.swap_consistency.endswith("%")


def test_gaps_are_named_where_the_tables_hold_nothing(run: HandRun) -> None:
    rel = judge_reliability(run.scores, run.records)
    assert rel is not None
    text = " ".join(rel.gaps)
    assert "Position bias" in text and "κ" in text and "Anchor-set drift" in text
    assert "no human labels" in text
    (good,) = [r for r in rel.rows if r.arm == "good"]
    assert good.swap_consistency == "100.0%"  # its one judgement agreed in both orders


def test_no_panel_without_judges(run: HandRun) -> None:
    rules = run.scores.filter(pc.not_equal(run.scores["kind"], "judge"))
    assert judge_reliability(rules, run.records) is None
