"""Judge drift anchors through the real SDKs to the fake provider: a stable judge agrees with
its anchor set and raises no alarm; the same judge model after a silent change (the fake's
`<model>@drift-D` from night D) moves on the anchors and its metric is INVALID."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.errors import SpecError
from evalpipe.fake.behaviours import NIGHT_ENV
from evalpipe.fake.judge import (
    drifted_score,
    drifted_winner,
    pairwise_winner,
    pointwise_score,
    reference_score,
)
from evalpipe.gate import gate_scores
from evalpipe.gate.validity import judge_drift
from evalpipe.replay.limits import Budget
from evalpipe.score import score_responses
from evalpipe.score.judges.anchors import load_anchors, score_anchors
from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import ARMS_ANCHOR, RECORDS, RESPONSES, SCORES, from_rows

DRIFTING_JUDGE = "gpt-4.1@drift-2026-11-10"
BEFORE, AFTER = "2026-11-09", "2026-11-10"


def _spec(tmp_path: Path, judges: list[dict[str, Any]], **extra: Any) -> Spec:
    (tmp_path / "t.jsonl").write_text("{}")
    return spec_from_dict(
        {
            "name": "t",
            "seed": 5,
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
            "judges": [
                {"provider": "openai", "model": DRIFTING_JUDGE, "base_url": "builtin:fake", **j}
                for j in judges
            ],
            **extra,
        },
        spec_dir=tmp_path,
    )


PAIRWISE = {"name": "helpfulness", "type": "pairwise"}
POINTWISE = {"name": "quality", "type": "pointwise"}
REFERENCE = {"name": "closeness", "type": "reference"}


def _norm(text: str) -> str:
    return " ".join(text.split())  # as the fake provider reads every turn


def test_shipped_anchor_sets_are_what_the_stable_persona_answers(tmp_path: Path) -> None:
    """The known verdicts hold for the stable judge persona and many move for the drifted one,
    so the end-to-end tests below exercise a real difference, not a coincidence."""
    spec = _spec(tmp_path, [PAIRWISE, POINTWISE, REFERENCE])
    pair, point, ref = (load_anchors(j, spec) for j in spec.judges)
    assert pair and point and ref
    assert pair[1] == "pairwise_helpfulness@1.anchors.jsonl" and len(pair[0]) >= 10
    moved = 0
    for item in pair[0]:
        a, b = _norm(item["answer_a"]), _norm(item["answer_b"])
        ctx = "JSON" in json.dumps(item["request"])
        assert pairwise_winner(a, b, json_context=ctx)[0] == item["verdict"], item["id"]
        moved += drifted_winner(a, b)[0] != item["verdict"]
    assert moved / len(pair[0]) > 0.2

    def level(score: int) -> str:
        return "high" if score >= 3 else "low"

    for items, stable in (
        (
            point[0],
            lambda i: pointwise_score(
                _norm(i["answer"]), 1, 5, json_context="JSON" in json.dumps(i["request"])
            )[0],
        ),
        (ref[0], lambda i: reference_score(_norm(i["answer"]), _norm(i["reference"]), 1, 5)[0]),
    ):
        moved = 0
        for item in items:
            assert level(stable(item)) == item["verdict"], item["id"]
            moved += level(drifted_score(_norm(item["answer"]), 1, 5)[0]) != item["verdict"]
        assert moved / len(items) > 0.2


@pytest.mark.parametrize("judge", [PAIRWISE, POINTWISE, REFERENCE], ids=lambda j: j["type"])
def test_stable_judge_no_alarm_drifted_judge_alarm(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, judge: dict[str, Any]
) -> None:
    spec = _spec(tmp_path, [judge])
    (j,) = spec.judges
    monkeypatch.setenv(NIGHT_ENV, BEFORE)
    first = score_anchors(j, spec, run_id="run-1")
    assert first.schema.equals(SCORES)
    n = len(load_anchors(j, spec)[0])  # type: ignore[index]
    assert first.num_rows == n
    assert set(first["arm"].to_pylist()) == {ARMS_ANCHOR}
    assert set(first["kind"].to_pylist()) == {"anchor"}
    assert set(first["judge_model"].to_pylist()) == {DRIFTING_JUDGE}
    assert pc.all(first["passed"]).as_py()  # the stable judge gives every known verdict
    assert pc.all(pc.is_valid(first["rationale"])).as_py()
    (drift,) = judge_drift(first, spec)
    assert drift.agreement == 1.0 and drift.compared == 0 and not drift.alarm()

    again = score_anchors(j, spec, run_id="run-2", previous=first)
    (drift,) = judge_drift(again, spec)
    assert drift.compared == n and drift.changed == 0 and not drift.alarm()

    monkeypatch.setenv(NIGHT_ENV, AFTER)  # the provider changes the model under the same name
    moved = score_anchors(j, spec, run_id="run-3", previous=again)
    (drift,) = judge_drift(moved, spec)
    assert drift.agreement < j.anchors.min_agreement
    assert drift.compared == n and drift.changed_share > j.anchors.max_changed
    assert drift.alarm()
    sentence = drift.sentence()
    assert sentence.startswith("the judge changed, not the candidate: ")
    assert f"answered {drift.changed} of {n} anchors differently from the previous run" in sentence


def test_anchor_calls_ask_the_judge_anew_each_run_but_reuse_within_a_run(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anchors use the judge's cache keyed by the run: a resumed run reuses its answers (no new
    spend), a new run asks again, so a cached earlier answer cannot hide a drift."""
    from evalpipe.replay.cache import ResponseCache

    spec = _spec(tmp_path, [POINTWISE], prices={DRIFTING_JUDGE: {"input": 1.0, "output": 1.0}})
    (j,) = spec.judges
    cache = ResponseCache(tmp_path / "cache", "read_write")
    monkeypatch.setenv(NIGHT_ENV, BEFORE)
    spent = Budget(None)
    score_anchors(j, spec, run_id="run-1", cache=cache, budget=spent, prices=spec_prices(spec))
    assert spent.spent > 0
    resumed = Budget(None)
    score_anchors(j, spec, run_id="run-1", cache=cache, budget=resumed, prices=spec_prices(spec))
    assert resumed.spent == 0
    monkeypatch.setenv(NIGHT_ENV, AFTER)
    nxt = Budget(None)
    out = score_anchors(j, spec, run_id="run-2", cache=cache, budget=nxt, prices=spec_prices(spec))
    assert nxt.spent > 0
    assert not pc.all(out["passed"]).as_py()


def spec_prices(spec: Spec) -> Any:
    from evalpipe.replay.engine import spec_prices as prices

    return prices(spec)


def _run_tables(n: int) -> tuple[pa.Table, pa.Table]:
    records = from_rows(
        [
            {
                "record_id": f"r{i:03d}",
                "request_sha256": f"h{i}",
                "request": json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": [{"type": "text", "text": f"Order {i}?"}]}
                        ]
                    }
                ),
                "attributes": [],
            }
            for i in range(n)
        ],
        RECORDS,
    )
    rows = [
        {
            "record_id": f"r{i:03d}",
            "arm": arm,
            "repeat": 0,
            "status": "ok",
            "output_text": f"Order {i} ships on day {i % 5}.",
            "latency_ms": 100.0,
            "cost_usd": 0.001,
        }
        for i in range(n)
        for arm in ("baseline", "c")
    ]
    return records, from_rows(rows, RESPONSES)


def test_drifted_judge_makes_the_gate_invalid_saying_the_judge_changed(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tmp_path, [{**POINTWISE, "sample": 30}], gate={"min_n": 10})
    records, responses = _run_tables(30)
    monkeypatch.setenv(NIGHT_ENV, BEFORE)
    stable = score_responses(responses, records, spec, run_id="run-1")
    cv = gate_scores(stable, responses, records, spec, run_id="run-1", bootstrap_b=50)
    assert not any("judge changed" in r for r in cv.for_candidate("c").invalid_reasons)
    assert cv.for_candidate("c").secondary["quality"]["anchors_agreement"] == 1.0

    monkeypatch.setenv(NIGHT_ENV, AFTER)
    anchors = stable.filter(pc.equal(stable["arm"], ARMS_ANCHOR))
    drifted = score_responses(responses, records, spec, run_id="run-2", previous_anchors=anchors)
    verdict = gate_scores(drifted, responses, records, spec, run_id="run-2", bootstrap_b=50)
    c = verdict.for_candidate("c")
    assert c.verdict == "INVALID"
    (reason,) = [r for r in c.invalid_reasons if "judge changed" in r]
    assert reason.startswith("the judge changed, not the candidate: the quality judge")
    assert "differently from the previous run" in reason
    assert c.secondary["quality"]["anchors_changed"] > spec.judges[0].anchors.max_changed


def test_anchors_can_be_turned_off_or_given_for_a_prompt_of_ones_own(tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{**PAIRWISE, "anchors": False}])
    assert load_anchors(spec.judges[0], spec) is None
    assert score_anchors(spec.judges[0], spec, run_id="r").num_rows == 0
    (tmp_path / "mine.md").write_text("{request_fence}{answer_fence}Scale: {low}-{high}")
    spec = _spec(tmp_path, [{**POINTWISE, "prompt": "mine.md"}])
    assert load_anchors(spec.judges[0], spec) is None  # no set ships with a prompt of one's own
    line = {"id": "x", "request": {"messages": []}, "answer": "Hi", "verdict": "high"}
    (tmp_path / "mine.anchors.jsonl").write_text(json.dumps(line) + "\n")
    spec = _spec(
        tmp_path,
        [{**POINTWISE, "prompt": "mine.md", "anchors": {"path": "mine.anchors.jsonl"}}],
    )
    items, source = load_anchors(spec.judges[0], spec)  # type: ignore[misc]
    assert [i["id"] for i in items] == ["x"] and source == "mine.anchors.jsonl"
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "verdict": "maybe"}\n')
    spec = _spec(tmp_path, [{**POINTWISE, "anchors": {"path": "bad.jsonl"}}])
    with pytest.raises(SpecError, match=r"bad\.jsonl line 1 is not a pointwise anchor"):
        load_anchors(spec.judges[0], spec)
    with pytest.raises(SpecError, match=r"judges\[0\].anchors.path"):
        _spec(tmp_path, [{**POINTWISE, "anchors": {"path": "missing.jsonl"}}])
