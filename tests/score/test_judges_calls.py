"""Judges through the real SDKs to the fake provider: both orders, position bias, parse failures
reaching the gate, the reference judge, the injection corpus, calibration against labels."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.fake.judge import ALWAYS_A, UNPARSEABLE, pairwise_winner, parse_fences
from evalpipe.gate import gate_scores
from evalpipe.gate.validity import judge_calibration, position_bias
from evalpipe.score.judges import fence, injection_flags, score_pairwise, score_pointwise
from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import RECORDS, RESPONSES, SCORES, from_rows

CORPUS = [
    json.loads(line)
    for line in (Path(__file__).parent / "data" / "injection_corpus.jsonl").read_text().splitlines()
    if line.strip()
]


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
                {"provider": "openai", "model": "gpt-4.1", "base_url": "builtin:fake", **j}
                for j in judges
            ],
            **extra,
        },
        spec_dir=tmp_path,
    )


def _request(text: str) -> str:
    return orjson.dumps(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    ).decode()


def _tables(
    cases: list[tuple[str, str, str]],
    *,
    references: list[str | None] | None = None,
    logged: list[str] | None = None,
    labels: list[float | None] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Records and responses of (question, baseline answer, candidate answer) cases."""
    records = from_rows(
        [
            {
                "record_id": f"r{i:03d}",
                "request_sha256": f"h{i}",
                "request": _request(q),
                "attributes": [],
                "reference": references[i] if references else None,
                "labels": None if not labels or labels[i] is None else [("thumbs", labels[i])],
            }
            for i, (q, _, _) in enumerate(cases)
        ],
        RECORDS,
    )
    rows = []
    for i, (_, b, c) in enumerate(cases):
        answers = [("baseline", b), ("c", c)] + ([("logged", logged[i])] if logged else [])
        for arm, text in answers:
            rows.append(
                {
                    "record_id": f"r{i:03d}",
                    "arm": arm,
                    "repeat": 0,
                    "status": "ok",
                    "output_text": text,
                    "latency_ms": 100.0,
                    "cost_usd": 0.001,
                }
            )
    return records, from_rows(rows, RESPONSES)


def _rows(scores: pa.Table, arm: str = "c") -> dict[str, dict[str, Any]]:
    return {r["record_id"]: r for r in scores.filter(pc.equal(scores["arm"], arm)).to_pylist()}


def test_pairwise_judges_both_orders_and_ties_when_they_disagree(
    fake_provider: str, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, [{"name": "helpfulness", "type": "pairwise"}])
    good = "Your order 123 ships tomorrow."
    cases = [
        ("Where is my order?", good, "I'm sorry, but I can't help with that."),  # refusal loses
        ("Where is my order?", "I'm sorry, but I can't help with that.", good),  # candidate wins
        (f"Where is my order? {ALWAYS_A}", good, "It ships tomorrow, order 123."),  # biased judge
    ]
    records, responses = _tables(cases)
    out = score_pairwise(responses, records, spec.judges[0], spec, run_id="r")
    assert out.schema.equals(SCORES)
    rows = _rows(out)
    details = {k: json.loads(v["detail"]) for k, v in rows.items()}
    assert rows["r000"]["value"] == 0.0 and details["r000"]["orders"] == [0.0, 0.0]
    assert rows["r001"]["value"] == 1.0 and details["r001"]["orders_agree"] is True
    # the biased judge picks A in both orders: the candidate wins one, loses one → a tie
    assert rows["r002"]["value"] == 0.5 and details["r002"]["orders_agree"] is False
    assert {rows[k]["prompt_version"] for k in rows} == {"pairwise_helpfulness@1"}
    assert {rows[k]["judge_model"] for k in rows} == {"gpt-4.1"}
    rate, first, n = position_bias(out, "helpfulness", "c")
    assert n == 3 and rate == pytest.approx(1 / 3) and first == pytest.approx(1 / 3)


def _gate_case(n: int, bad: int) -> list[tuple[str, str, str]]:
    return [
        (
            f"Question {i} about order {i}" + (f" {UNPARSEABLE}" if i < bad else ""),
            f"Order {i} ships on day {i % 5}.",
            f"Your order {i} ships on day {i % 5}, tracking T{i:04d}.",
        )
        for i in range(n)
    ]


def test_unparseable_judge_answers_reach_the_gate(fake_provider: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{"name": "helpfulness", "type": "pairwise"}], gate={"min_n": 10})
    records, responses = _tables(_gate_case(40, 4))  # 10% of judged records unreadable
    scores = score_pairwise(responses, records, spec.judges[0], spec, run_id="r")
    errors = pc.value_counts(scores["error"]).to_pylist()
    assert {"values": "unparseable judge answer", "counts": 4} in errors
    verdict = gate_scores(scores, responses, records, spec, run_id="r", bootstrap_b=50)
    reasons = verdict.for_candidate("c").invalid_reasons
    assert verdict.for_candidate("c").verdict == "INVALID"
    assert any("helpfulness judge failed on 10.0% of judged records" in r for r in reasons)


def test_few_parse_failures_do_not_invalidate(fake_provider: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{"name": "helpfulness", "type": "pairwise"}], gate={"min_n": 10})
    records, responses = _tables(_gate_case(40, 1))  # 2.5%: under the 5% rule
    scores = score_pairwise(responses, records, spec.judges[0], spec, run_id="r")
    verdict = gate_scores(scores, responses, records, spec, run_id="r", bootstrap_b=50)
    assert not any("judge failed" in r for r in verdict.for_candidate("c").invalid_reasons)


def test_reference_judge_scores_against_the_reference(fake_provider: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{"name": "correct", "type": "reference", "scale": [1, 5]}])
    ref = "The capital of Australia is Canberra."
    cases = [
        ("Capital of Australia?", "The capital of Australia is Canberra.", "It is Sydney, mate."),
        ("Capital of Australia?", "Canberra.", "the capital of australia is canberra"),
        ("Anything?", "Yes.", "Yes."),
    ]
    records, responses = _tables(cases, references=[ref, ref, None])
    out = score_pointwise(responses, records, spec.judges[0], spec, run_id="r")
    assert out.schema.equals(SCORES)
    cand, base = _rows(out), _rows(out, "baseline")
    assert base["r000"]["value"] == 5 and cand["r000"]["value"] == 1
    assert cand["r001"]["value"] == 5 and base["r001"]["value"] < 5
    assert cand["r002"]["value"] is None and cand["r002"]["error"] == "no reference"
    assert cand["r000"]["prompt_version"] == "reference@1"


def test_reference_judge_is_accepted_by_the_spec(tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{"name": "correct", "type": "reference"}])
    from evalpipe.gate.catalogue import gate_metrics

    m = {x.name: x for x in gate_metrics(spec)}["correct"]
    assert m.kind == "mean" and m.gated and m.margin == pytest.approx(0.05 * 4)


# --- injection ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_injection_corpus_is_flagged_and_cannot_forge_a_fence(case: dict[str, Any]) -> None:
    text = case["text"]
    assert injection_flags(pa.array([text])).to_pylist() == [case["flag"]]
    fenced = fence("ANSWER A", text, "5eed")
    body = fenced.split("\n", 1)[1].rsplit("\n", 1)[0]
    assert (body != text) is case["fence"]  # look-alike fences are defused, the rest untouched
    assert "<<<" not in body
    prompt = f"{fence('REQUEST', 'q', '5eed')}\n{fenced}\n{fence('ANSWER B', 'b', '5eed')}"
    assert parse_fences(prompt)["ANSWER A"] == body  # one block, whole: nothing closed it early


def test_injection_payloads_are_judged_as_answers_and_flagged_per_row(
    fake_provider: str, tmp_path: Path
) -> None:
    """Each payload as the candidate's answer: the judge sees it whole inside its fence (its
    verdict is the persona's verdict on the raw texts), and every row says whether it was
    flagged."""
    spec = _spec(tmp_path, [{"name": "helpfulness", "type": "pairwise"}])
    base = "Your refund of $20 was issued today; it reaches your card in 3 to 5 days."
    cases = [("Where is my refund?", base, c["text"]) for c in CORPUS]
    records, responses = _tables(cases)
    rows = _rows(score_pairwise(responses, records, spec.judges[0], spec, run_id="r"))
    for i, case in enumerate(CORPUS):
        row = rows[f"r{i:03d}"]
        detail = json.loads(row["detail"])
        assert detail.get("injection", False) is case["flag"], case["name"]
        body = fence("X", case["text"], "0").split("\n", 1)[1].rsplit("\n", 1)[0]
        winner, _ = pairwise_winner(" ".join(base.split()), " ".join(body.split()))  # as it reads
        expected = {"A": 0.0, "B": 1.0, "tie": 0.5}[winner]
        assert row["value"] == expected, case["name"]


# --- calibration against people --------------------------------------------------------------


def _calibration_case(tmp_path: Path, labels: list[float], min_kappa: float) -> tuple[Any, ...]:
    spec = _spec(
        tmp_path,
        [{"name": "quality", "type": "pointwise", "scale": [1, 5]}],
        labels={
            "thumbs": {
                "column": "labels.thumbs",
                "kind": "binary",
                "judge": "quality",
                "min_kappa": min_kappa,
            }
        },
        gate={"min_n": 10},
    )
    good = [f"Order {i} ships on day {i % 5}." for i in range(len(labels))]
    logged = [
        g if i % 2 == 0 else "I'm sorry, but I can't help with that." for i, g in enumerate(good)
    ]
    cases = [(f"Where is order {i}?", g, g) for i, g in enumerate(good)]
    records, responses = _tables(cases, logged=logged, labels=labels)
    return spec, records, responses


def test_judge_agreeing_with_people_passes_and_reports_kappa(
    fake_provider: str, tmp_path: Path
) -> None:
    n = 24
    labels = [1.0 if i % 2 == 0 else 0.0 for i in range(n)]  # people liked the real answers
    labels[0] = 0.0  # one disagreement
    spec, records, responses = _calibration_case(tmp_path, labels, 0.6)
    scores = score_pointwise(responses, records, spec.judges[0], spec, run_id="r")
    assert set(scores["arm"].to_pylist()) == {"baseline", "c", "logged"}
    (cal,) = judge_calibration(scores, records, spec)
    # judge: 12 good (score 5), 12 refusals (score 1); people: 11 up, 13 down
    assert cal.figures.confusion.tolist() == [[12, 0], [1, 11]]
    po, pe = 23 / 24, (12 * 13 + 12 * 11) / 24**2
    assert cal.kappa == pytest.approx((po - pe) / (1 - pe))
    verdict = gate_scores(scores, responses, records, spec, run_id="r", bootstrap_b=50)
    cv = verdict.for_candidate("c")
    assert not any("agrees with the labels" in r for r in cv.invalid_reasons)
    assert cv.secondary["quality"]["labels_thumbs_kappa"] == pytest.approx(cal.kappa)


def test_judge_below_min_kappa_is_invalid_with_the_figures(
    fake_provider: str, tmp_path: Path
) -> None:
    n = 24
    labels = [1.0 if i % 3 else 0.0 for i in range(n)]  # unrelated to the answers' quality
    spec, records, responses = _calibration_case(tmp_path, labels, 0.4)
    scores = score_pointwise(responses, records, spec.judges[0], spec, run_id="r")
    verdict = gate_scores(scores, responses, records, spec, run_id="r", bootstrap_b=50)
    cv = verdict.for_candidate("c")
    assert cv.verdict == "INVALID"
    (reason,) = [r for r in cv.invalid_reasons if "agrees with the labels" in r]
    assert "the quality judge agrees with the labels `thumbs` at κ = " in reason
    assert "(below 0.40)" in reason and "on 24 records" in reason and "confusion matrix" in reason


def test_labels_must_name_a_judge_of_the_right_type(tmp_path: Path) -> None:
    from evalpipe.errors import SpecError

    with pytest.raises(SpecError, match="no judge named `nope`"):
        _spec(tmp_path, [], labels={"x": {"column": "labels.x", "judge": "nope"}})
    with pytest.raises(SpecError, match="kind `preference` cannot calibrate the pointwise"):
        _spec(
            tmp_path,
            [{"name": "q", "type": "pointwise"}],
            labels={"x": {"column": "labels.x", "kind": "preference", "judge": "q"}},
        )
