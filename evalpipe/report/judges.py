"""The judge reliability panel: how far the LLM judges' verdicts can be trusted.

Shown from what the scores table keeps: answers judged, parse and call failures, and for pairwise
judges the swap consistency (the same winner with the two answers in both orders) and the
position-bias rate (`gate.validity.position_bias`, the rule the gate reports), and each judge's
answers on its frozen anchor set (`gate.validity.judge_drift`): agreement with the known verdicts
and how many answers changed since the previous run. Agreement with human labels (κ) is in each
candidate's notes when the spec has labels. What the stored tables cannot show is named as a gap
rather than left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate.numbers import pct
from evalpipe.gate.validity import judge_drift, position_bias
from evalpipe.spec import Spec

__all__ = ["AnchorRow", "JudgeReliability", "JudgeRow", "judge_reliability"]


@dataclass(frozen=True)
class JudgeRow:
    metric: str
    arm: str
    judge_model: str
    prompt_version: str
    judged: int
    parse_failures: int
    call_failures: int
    other_failures: int
    swap_consistency: str
    """A share, or `—` for a pointwise judge (no swap)."""
    position_bias: str
    """Share of pairs where the judge picked the same position in both orders (`—`: pointwise)."""


@dataclass(frozen=True)
class AnchorRow:
    """One judge on its anchor set (judge drift)."""

    metric: str
    judge_model: str
    prompt_version: str
    anchors: int
    agreement: str
    """Share of the known verdicts the judge gave, with the bar: `100.0% (bar 80%)`."""
    changed: str
    """Answers changed since the previous run, or `—` when there is none to compare with."""
    drifted: bool
    """The alarm: the judge changed, not the candidate (its metric is INVALID)."""
    status: str


@dataclass(frozen=True)
class JudgeReliability:
    rows: list[JudgeRow]
    gaps: list[str]
    """What a reader would want to see that the run's tables do not hold."""
    anchors: list[AnchorRow] = field(default_factory=list)


_SQL = """
SELECT metric, arm,
       coalesce(min(judge_model), '—') AS judge_model,
       coalesce(min(prompt_version), '—') AS prompt_version,
       count(*) FILTER (WHERE value IS NOT NULL) AS judged,
       count(*) FILTER (WHERE error LIKE 'unparseable%') AS parse_failures,
       count(*) FILTER (WHERE error LIKE 'judge call failed%') AS call_failures,
       count(*) FILTER (WHERE error IS NOT NULL AND error NOT LIKE 'unparseable%'
                        AND error NOT LIKE 'judge call failed%') AS other_failures,
       avg(CASE WHEN json_extract_string(detail, '$.orders_agree') = 'true' THEN 1.0 ELSE 0.0 END)
           FILTER (WHERE json_extract_string(detail, '$.orders_agree') IN ('true', 'false'))
           AS swap
FROM judged
GROUP BY metric, arm
ORDER BY metric, arm
"""


def judge_reliability(
    scores: pa.Table, records: pa.Table, spec: Spec | None = None
) -> JudgeReliability | None:
    """Per judge metric and arm, its reliability figures, and with the run's `spec` (whose
    thresholds decide) each judge's anchor-set drift (None when the run has no judge)."""
    judged = scores.filter(pc.fill_null(pc.equal(scores["kind"], "judge"), False))
    anchors = _anchor_rows(scores, spec) if spec is not None else []
    if judged.num_rows == 0 and not anchors:
        return None
    cols = ["metric", "arm", "judge_model", "prompt_version", "value", "error", "detail"]
    with duckdb.connect() as con:
        con.register("judged", judged.select(cols))
        rows = con.sql(_SQL).to_arrow_table().to_pylist()
        con.register("recs", records.select(["labels"]))
        labelled = con.sql("SELECT count(*) FROM recs WHERE cardinality(labels) > 0").fetchall()
    has_labels = bool(labelled and labelled[0][0])
    out = [
        JudgeRow(
            str(r["metric"]),
            str(r["arm"]),
            str(r["judge_model"]),
            str(r["prompt_version"]),
            int(r["judged"]),
            int(r["parse_failures"]),
            int(r["call_failures"]),
            int(r["other_failures"]),
            pct(r["swap"], missing="—"),
            _position_bias(judged, str(r["metric"]), str(r["arm"]), r["swap"] is not None),
        )
        for r in rows
    ]
    gaps = []
    if not has_labels:
        gaps.append("Agreement with human labels (κ): no human labels in this run's records.")
    if not anchors:
        gaps.append("Anchor-set drift: not measured (no judge of this run has an anchor set).")
    return JudgeReliability(out, gaps, anchors)


def _anchor_rows(scores: pa.Table, spec: Spec) -> list[AnchorRow]:
    out = []
    for d in judge_drift(scores, spec):
        changed = (
            f"{d.changed} of {d.compared} ({pct(d.changed_share)}; limit {pct(d.max_changed, 0)})"
            if d.compared
            else "— (no earlier run to compare)"
        )
        out.append(
            AnchorRow(
                d.judge,
                d.judge_model,
                d.prompt_version,
                d.n + d.failed,
                f"{pct(d.agreement)} (bar {pct(d.min_agreement, 0)})",
                changed,
                d.alarm(),
                "the judge changed: its metric is INVALID" if d.alarm() else "stable",
            )
        )
    return out


def _position_bias(judged: pa.Table, metric: str, arm: str, pairwise: bool) -> str:
    if not pairwise:
        return "—"
    rate, _, n = position_bias(judged, metric, arm)
    return pct(rate, missing="—") if n else "—"
