"""Scoring: rule checks, diffs against the baseline, LLM judges → the long scores table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.replay.cache import ResponseCache
from evalpipe.replay.engine import Progress, spec_prices
from evalpipe.replay.limits import Budget
from evalpipe.score.diffs import score_diffs
from evalpipe.score.judges import score_pairwise, score_pointwise
from evalpipe.score.judges.anchors import score_anchors
from evalpipe.score.rules import score_rules
from evalpipe.spec import Spec
from evalpipe.tables import SCORES, conform

__all__ = ["score_logged_metrics", "score_responses", "scoring_frame"]

log = logging.getLogger(__name__)

_RECORD_COLUMNS = (
    "request",
    "attributes",
    "session_id",
    "user_id",
    "timestamp",
    "labels",
    "reference",
)


def scoring_frame(responses: pa.Table, records: pa.Table) -> pa.Table:
    """Responses with their records' columns beside them (for `where` and `schema: request`)."""
    idx = pc.index_in(responses["record_id"], value_set=records["record_id"])
    picked = records.select(list(_RECORD_COLUMNS)).take(idx)
    out = responses
    for name in _RECORD_COLUMNS:
        out = out.append_column(name, picked[name])
    return out


def score_logged_metrics(records: pa.Table, spec: Spec, *, run_id: str) -> pa.Table:
    """tables.SCORES rows (kind `label`, arm `logged`) of each `metrics:` column, one per record
    that has a numeric value in it; a value that is not a number is an error row."""
    from evalpipe.tables import column_values

    tables = []
    for m in spec.metrics:
        text = column_values(records, m.column)
        try:
            value = pc.cast(text, pa.float64())
            error: pa.Array | pa.ChunkedArray = pa.nulls(len(text), pa.string())
        except pa.ArrowInvalid:  # words such as true / thumbs up: read one by one
            parsed = [_number(t) for t in text.to_pylist()]
            value = pa.array([p for p, _ in parsed], pa.float64())
            error = pa.array([e for _, e in parsed], pa.string())
        keep = pc.is_valid(text)
        n = records.num_rows
        passed = pc.not_equal(value, 0.0) if m.kind == "binary" else pa.nulls(n, pa.bool_())
        table = pa.table(
            {
                "run_id": pa.array([run_id] * n, pa.string()),
                "record_id": records["record_id"],
                "arm": pa.array(["logged"] * n, pa.string()),
                "repeat": pa.array([0] * n, pa.int32()),
                "scorer": pa.array([m.column] * n, pa.string()),
                "kind": pa.array(["label"] * n, pa.string()),
                "metric": pa.array([m.name] * n, pa.string()),
                "value": value,
                "passed": passed,
                "error": error,
            }
        ).filter(keep)
        tables.append(conform(table, SCORES))
    return pa.concat_tables(tables) if tables else SCORES.empty_table()


def _number(text: str | None) -> tuple[float | None, str | None]:
    if text is None:
        return None, None
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "up", "👍"):
        return 1.0, None
    if lowered in ("false", "no", "down", "👎"):
        return 0.0, None
    try:
        return float(lowered), None
    except ValueError:
        return None, f"not a number: {text[:40]!r}"


def score_responses(
    responses: pa.Table,
    records: pa.Table,
    spec: Spec,
    *,
    run_id: str,
    cache: ResponseCache | None = None,
    budget: Budget | None = None,
    redact: Callable[[list[str]], list[str]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    previous_anchors: pa.Table | None = None,
    judge_samples: Mapping[str, pa.Array] | None = None,
    anchors: bool = True,
) -> pa.Table:
    """Score every response: rules on every arm, diffs and judges on candidates vs baseline,
    and each judge on its anchor set (`score.judges.anchors`; `previous_anchors`: the anchor rows
    of the spec's previous run, to tell whether the judge's answers moved).

    `judge_samples` gives a sampled judge's sample over the whole run (judge name → record ids)
    when `records` is one partition of it; without it a sample is drawn from `records`. A run
    judges its anchor sets once: `anchors=False` for all its partitions but one.

    Returns:
        tables.SCORES, sorted by arm, metric, record_id.
    """
    frame = scoring_frame(responses, records)
    parts = [score_rules(frame, spec.checks, run_id=run_id, spec=spec)]
    if spec.metrics:
        parts.append(score_logged_metrics(records, spec, run_id=run_id))
    if spec.diffs:
        parts.append(score_diffs(responses, list(spec.diffs), run_id=run_id))
    budget = budget or Budget(spec.budget_usd)
    for judge in spec.judges:
        fn = score_pairwise if judge.type == "pairwise" else score_pointwise  # and reference
        parts.append(
            fn(
                responses,
                records,
                judge,
                spec,
                run_id=run_id,
                cache=cache,
                budget=budget,
                prices=spec_prices(spec),
                redact=redact,
                on_progress=on_progress,
                sample=(judge_samples or {}).get(judge.name),
            )
        )
        if not anchors:
            continue
        parts.append(
            score_anchors(
                judge,
                spec,
                run_id=run_id,
                cache=cache,
                budget=budget,
                prices=spec_prices(spec),
                redact=redact,
                previous=previous_anchors,
            )
        )
    out = pa.concat_tables([conform(p, SCORES) for p in parts])
    return out.sort_by([("arm", "ascending"), ("metric", "ascending"), ("record_id", "ascending")])
