"""The judge reliability panel: what the scores hold, and the gaps named."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.report.judges import judge_reliability
from evalpipe.tables import RECORDS, SCORES, from_rows

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
    assert "κ" in text and "Anchor-set drift" in text
    assert "no human labels" in text
    assert "Position bias" not in text  # the scores record each judgement's order now
    (good,) = [r for r in rel.rows if r.arm == "good"]
    assert good.swap_consistency == "100.0%"  # its one judgement agreed in both orders


def test_no_panel_without_judges(run: HandRun) -> None:
    rules = run.scores.filter(pc.not_equal(run.scores["kind"], "judge"))
    assert judge_reliability(rules, run.records) is None


def test_position_bias_counts_pairs_won_by_one_position_in_both_orders() -> None:
    def row(orders: list[float], first_a: bool) -> dict[str, object]:
        detail = {"orders": orders, "orders_agree": orders[0] == orders[1], "first_a": first_a}
        return {
            "record_id": f"r{len(rows)}",
            "arm": "cand",
            "repeat": 0,
            "kind": "judge",
            "metric": "helpfulness",
            "value": sum(orders) / 2,
            "detail": orjson.dumps(detail).decode(),
            "judge_model": "j",
            "prompt_version": "p@1",
        }

    rows: list[dict[str, object]] = []
    rows.append(row([1.0, 0.0], True))  # answer A won both orders: position, not content
    rows.append(row([1.0, 1.0], True))  # the candidate won both orders: content
    rows.append(row([0.5, 0.5], False))  # ties: not position bias
    scores = from_rows(rows, SCORES)
    records = from_rows([{"record_id": "r0"}], RECORDS)
    rel = judge_reliability(scores, records)
    assert rel is not None
    (only,) = rel.rows
    assert only.position_bias == "33.3%"
    assert only.swap_consistency == "66.7%"


def _anchor_rows(answers: list[tuple[str, str, str | None]]) -> list[dict[str, object]]:
    """Anchor rows of the `helpfulness` judge: (expected, answer, previous answer)."""
    value = {"A": 0.0, "tie": 0.5, "B": 1.0}
    return [
        {
            "record_id": f"p{i:02d}",
            "arm": "anchor",
            "repeat": 0,
            "kind": "anchor",
            "metric": "helpfulness",
            "value": value[answer],
            "passed": answer == expected,
            "detail": orjson.dumps(
                {"expected": expected, "answer": answer, "previous": previous}
            ).decode(),
            "judge_model": "gpt-4.1",
            "prompt_version": "pairwise_helpfulness@1",
        }
        for i, (expected, answer, previous) in enumerate(answers)
    ]


def test_anchor_drift_is_shown_per_judge(run: HandRun, tmp_path: Path) -> None:
    from evalpipe.report import write_report

    stable = _anchor_rows([("A", "A", "A")] * 9 + [("B", "B", "B")])
    rel = judge_reliability(from_rows(stable, SCORES), run.records, run.spec)
    assert rel is not None
    (a,) = rel.anchors
    assert (a.metric, a.anchors, a.drifted) == ("helpfulness", 10, False)
    assert a.agreement == "100.0% (bar 80%)" and a.changed.startswith("0 of 10 (0.0%")
    assert not any("Anchor-set drift" in g for g in rel.gaps)

    moved = _anchor_rows([("A", "B", "A")] * 4 + [("A", "A", "A")] * 6)
    scores = pa.concat_tables([run.scores, from_rows(moved, SCORES)])
    rel = judge_reliability(scores, run.records, run.spec)
    assert rel is not None
    (a,) = rel.anchors
    assert a.drifted and a.agreement == "60.0% (bar 80%)"
    assert a.changed == "4 of 10 (40.0%; limit 20%)"
    assert a.status == "the judge changed: its metric is INVALID"
    html = write_report(tmp_path, **{**run.kwargs(), "scores": scores}).index_html.read_text()
    assert "Judge drift: the anchor sets" in html
    assert "the judge changed: its metric is INVALID" in html
