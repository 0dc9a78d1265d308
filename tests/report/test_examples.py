"""Picking the worst regressions: which records, in what order, with what text."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa

from evalpipe.report.examples import (
    MAX_CHARS,
    Example,
    last_user_message,
    pick_examples,
    pick_examples_from,
    word_diff,
)
from evalpipe.tables import GATE, RECORDS, RESPONSES, SCORES, from_rows

from .conftest import HOSTILE, HandRun, part_file_views


def _pick(run: HandRun, cand: str, limit: int = 10, redact: bool = False) -> list[Example]:
    return list(
        pick_examples(
            [cand],
            gate=run.gate.table,
            records=run.records,
            responses=run.responses,
            scores=run.scores,
            limit=limit,
            slice_columns=["feature"],
            redact=redact,
        )[0][cand]
    )


def test_rule_regression_error_and_judge_loss(run: HandRun) -> None:
    ex = _pick(run, "bad")
    got = {e.record_id: e.failures for e in ex}
    assert got == {
        "r1": ["valid_json: passed on the baseline, failed on the candidate"],
        "r2": ["the candidate's own request failed; the baseline answered"],
        "r3": ["helpfulness: the judge preferred the baseline"],
    }
    # The NO-GO metric's regression comes first, then the other gated metrics in gate order.
    assert [e.record_id for e in ex] == ["r1", "r3", "r2"]
    first = ex[0]
    assert first.candidate_output == HOSTILE
    assert first.baseline_output == '{"ok": true}'
    assert first.attributes == [("feature", "triage")]
    assert first.user_message.startswith("Where is order 1234?")
    assert ex[2].candidate_output == "[error: BadRequestError]"


def test_limit_and_redaction(run: HandRun) -> None:
    ex = _pick(run, "bad", limit=1, redact=True)
    assert len(ex) == 1
    assert "[EMAIL]" in ex[0].candidate_output
    assert "[PHONE]" in ex[0].user_message


def test_a_candidate_without_regressions_has_none(run: HandRun) -> None:
    assert _pick(run, "good") == []


def _run(n: int, metrics: list[str]) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    ids = [f"r{i:03d}" for i in range(n)]
    records = from_rows([{"record_id": r} for r in ids], RECORDS)
    responses = from_rows(
        [
            {"record_id": r, "arm": a, "repeat": 0, "status": "ok", "output_text": "x" * 5000}
            for r in ids
            for a in ("baseline", "c")
        ],
        RESPONSES,
    )
    scores = from_rows(
        [
            {
                "record_id": r,
                "arm": a,
                "repeat": 0,
                "kind": "rule",
                "metric": m,
                "passed": a == "baseline",
            }
            for r in ids
            for a in ("baseline", "c")
            for m in metrics[int(r[1:]) % len(metrics) :][:1]
        ],
        SCORES,
    )
    gate = from_rows(
        [
            {
                "candidate": "c",
                "metric": m,
                "kind": "pass_rate",
                "gated": True,
                "verdict": "NO-GO",
                "p_adjusted": 0.001 * (i + 1),
            }
            for i, m in enumerate(metrics)
        ],
        GATE,
    )
    return gate, records, responses, scores


def test_failing_metrics_take_turns_and_long_texts_are_cut() -> None:
    gate, records, responses, scores = _run(30, ["a", "b", "c"])
    ex = pick_examples(
        ["c"],
        gate=gate,
        records=records,
        responses=responses,
        scores=scores,
        limit=6,
        slice_columns=[],
        redact=False,
    )[0]["c"]
    assert [e.failures[0].split(":")[0] for e in ex] == ["a", "b", "c", "a", "b", "c"]
    assert len(ex[0].candidate_output) < MAX_CHARS + 50
    assert ex[0].candidate_output.endswith("(3,500 more characters)")
    assert ex[0].user_message == "(request not captured)"
    again = pick_examples(
        ["c"],
        gate=gate,
        records=records,
        responses=responses,
        scores=scores,
        limit=6,
        slice_columns=[],
        redact=False,
    )[0]["c"]
    assert [e.record_id for e in again] == [e.record_id for e in ex]  # deterministic


def test_last_user_message_shapes() -> None:
    assert last_user_message(None) == "(request not captured)"
    assert last_user_message("not json") == "not json"
    assert last_user_message(json.dumps({"messages": [{"role": "user", "content": "hi"}]})) == "hi"
    req = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]},
            {"role": "assistant", "content": "b"},
        ]
    }
    assert last_user_message(json.dumps(req)) == "a\n[image]"
    assert last_user_message(json.dumps({"messages": []})) == "(no user message)"


def test_word_diff_marks_only_the_changed_words_and_keeps_the_texts() -> None:
    left, right = word_diff("The parcel ships today.", "The parcel ships in 2 days.")
    assert "".join(t for _, t in left) == "The parcel ships today."
    assert "".join(t for _, t in right) == "The parcel ships in 2 days."
    assert ("del", "today") in left and ("ins", "in 2 days") in right
    assert left[0] == ("same", "The parcel ships ")


def test_word_diff_of_very_long_texts_is_plain() -> None:
    a, b = "word " * 2000, "other " * 2000
    assert word_diff(a, b) == ([("same", a)], [("same", b)])


def test_best_improvements_with_every_check_and_the_judges_rationale(run: HandRun) -> None:
    ex = pick_examples(
        ["good"],
        gate=run.gate.table,
        records=run.records,
        responses=run.responses,
        scores=run.scores,
        limit=5,
        slice_columns=["feature"],
        redact=True,
    )[1]["good"]
    assert [e.record_id for e in ex] == ["r3"]
    (e,) = ex
    assert e.improvement and e.failures == ["helpfulness: the judge preferred the candidate"]
    assert e.metrics == ["helpfulness"]
    assert [(c.metric, c.candidate, c.change) for c in e.checks] == [
        ("helpfulness", "candidate wins", "better")
    ]
    ((metric, text),) = e.rationale
    assert metric == "helpfulness" and "jane.doe" not in text and "[EMAIL]" in text


def test_the_rationale_judges_store_is_shown_redacted(run: HandRun) -> None:
    """Judges write their rationale to the scores' `rationale` column (not `detail`)."""
    rows = run.scores.to_pylist()
    for r in rows:
        if r["kind"] == "judge" and r["detail"] and "rationale" in r["detail"]:
            r["rationale"] = json.loads(r["detail"]).pop("rationale")
            r["detail"] = json.dumps({"orders": [1.0, 1.0], "orders_agree": True})
    scores = from_rows(rows, SCORES)
    assert "rationale" not in "".join(d or "" for d in scores["detail"].to_pylist())
    (e,) = pick_examples(
        ["good"],
        gate=run.gate.table,
        records=run.records,
        responses=run.responses,
        scores=scores,
        limit=5,
        slice_columns=["feature"],
        redact=True,
    )[1]["good"]
    ((metric, text),) = e.rationale
    assert metric == "helpfulness" and text.startswith("Clearer ")
    assert "jane.doe" not in text and "[EMAIL]" in text


def test_regressions_list_every_check_of_the_record(run: HandRun) -> None:
    (r1,) = [e for e in _pick(run, "bad") if e.record_id == "r1"]
    assert [(c.metric, c.baseline, c.candidate, c.change) for c in r1.checks] == [
        ("valid_json", "pass", "fail", "worse")
    ]
    assert any(kind == "ins" for kind, _ in r1.diff_candidate)


def test_examples_picked_over_parquet_files_equal_the_tables(run: HandRun, tmp_path: Path) -> None:
    """A large run's report picks its examples in DuckDB over the run's part files."""
    options = {"limit": 10, "slice_columns": ["feature"], "redact": False}
    names = ["bad", "good"]
    want = pick_examples(
        names,
        gate=run.gate.table,
        records=run.records,
        responses=run.responses,
        scores=run.scores,
        **options,  # type: ignore[arg-type]
    )
    tables = {"records": run.records, "responses": run.responses, "scores": run.scores}
    with duckdb.connect() as con:
        part_file_views(con, tables, tmp_path)
        got = pick_examples_from(con, names, gate=run.gate.table, **options)  # type: ignore[arg-type]
    assert got == want
    assert got[0]["bad"]
