"""promptfoo's deterministic checks on hand-made rows: pass, fail and not scorable for each type,
`where` and every arm, and the reference checks on BFCL's answers."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalpipe.score import scoring_frame
from evalpipe.score.rules import score_rules
from evalpipe.score.textstats import bleu, rouge_n
from evalpipe.score.toolcalls import tool_call_scores
from evalpipe.spec import spec_from_dict
from evalpipe.tables import RECORDS, RESPONSES, SCORES, from_rows
from tests.shared import DATA, absent

BFCL = DATA / "bfcl"

# record id → (output_text, reference, output_tokens, latency_ms, cost_usd, tool calls, feature)
ROWS: dict[str, tuple[Any, ...]] = {
    "pass": (
        'Hello Alice, your order {"id": 7, "tags": ["a"]} shipped.',
        'Hello Alice, your order {"id": 7, "tags": ["a"]} shipped.',
        12,
        300.0,
        0.001,
        None,
        "answer",
    ),
    "fail": ("sorry", "Hello Alice, your order shipped today.", 900, 9000.0, 0.5, None, "answer"),
    "noref": ("Hello there", None, None, None, None, None, "answer"),
    "error": (None, "Hello", None, None, None, None, "answer"),
}


def _frame(
    rows: dict[str, tuple[Any, ...]] = ROWS, arms: tuple[str, ...] = ("baseline",)
) -> pa.Table:
    records = from_rows(
        [
            {
                "record_id": rid,
                "request": "{}",
                "reference": ref,
                "attributes": [("feature", feature)],
            }
            for rid, (_, ref, *_rest, feature) in rows.items()
        ],
        RECORDS,
    )
    responses = from_rows(
        [
            {
                "record_id": rid,
                "arm": arm,
                "repeat": 0,
                "output_text": text,
                "output_tokens": tokens,
                "latency_ms": latency,
                "cost_usd": cost,
                "output_tool_calls": calls,
                "status": "error" if rid == "error" else "ok",
            }
            for arm in arms
            for rid, (text, _ref, tokens, latency, cost, calls, _f) in rows.items()
        ],
        RESPONSES,
    )
    return scoring_frame(responses, records)


def _score(check: dict[str, Any], frame: pa.Table | None = None) -> dict[str, Any]:
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": __file__},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "m2"}],
            "checks": [{"name": "x", **check}],
        }
    )
    out = score_rules(frame if frame is not None else _frame(), list(spec.checks), run_id="r")
    assert out.schema.equals(SCORES)
    return {r["record_id"]: r for r in out.to_pylist()}


def _passed(check: dict[str, Any]) -> dict[str, bool | None]:
    return {rid: r["passed"] for rid, r in _score(check).items()}


CASES: list[tuple[dict[str, Any], bool | None]] = [
    # (check, what the `noref` row gets: texts checks score it, reference checks do not)
    ({"type": "contains", "value": "order"}, False),
    ({"type": "contains", "value": "ORDER", "case_sensitive": False}, False),
    ({"type": "not_contains", "value": "sorry"}, True),
    ({"type": "contains_any", "values": ["shipped", "delivered"]}, False),
    ({"type": "contains_all", "values": ["hello", "ALICE"], "case_sensitive": False}, False),
    ({"type": "starts_with", "value": "Hello"}, True),
    ({"type": "equals"}, None),
    ({"type": "levenshtein_max", "value": 3}, None),
    ({"type": "rouge_n_min", "value": 0.9, "n": 2}, None),
    ({"type": "bleu_min", "value": 0.5}, None),
    ({"type": "min_chars", "value": 10}, True),
    ({"type": "max_output_tokens", "value": 100}, None),
    ({"type": "latency_ms_max", "value": 1000}, None),
    ({"type": "cost_usd_max", "value": 0.01}, None),
    ({"type": "json_path", "path": "$.id", "equals": 7}, False),
]


@pytest.mark.parametrize(("check", "noref"), CASES, ids=[c["type"] for c, _ in CASES])
def test_check_passes_fails_and_is_not_scorable(check: dict[str, Any], noref: bool | None) -> None:
    if check["type"] == "json_path":  # its passing and failing rows hold JSON
        rows = {
            "pass": ('{"id": 7}', *ROWS["pass"][1:]),
            "fail": ('{"id": "7"}', *ROWS["fail"][1:]),
            "noref": ("not json", *ROWS["noref"][1:]),
            "error": ROWS["error"],
        }
        got = {rid: r["passed"] for rid, r in _score(check, _frame(rows)).items()}
    else:
        got = _passed(check)
    assert got["pass"] is True
    assert got["fail"] is False
    assert got["noref"] is noref
    assert got["error"] is None  # an errored response is never scored


def test_reference_checks_say_why_they_could_not_score() -> None:
    rows = _score({"type": "levenshtein_max", "value": 3})
    assert rows["noref"]["error"] == "no reference" and rows["noref"]["value"] is None
    assert rows["error"]["error"] == "error"
    assert rows["pass"]["error"] is None
    assert json.loads(rows["fail"]["detail"])["distance"] > 3


def test_figures_are_in_detail() -> None:
    rows = _score({"type": "rouge_n_min", "value": 0.5, "measure": "recall"})
    assert json.loads(rows["pass"]["detail"]) == {"rouge1_recall": 1.0}
    assert rows["noref"]["detail"] is None


def test_equals_with_a_literal_value_needs_no_reference() -> None:
    got = _passed({"type": "equals", "value": "hello there", "case_sensitive": False})
    assert got == {"pass": False, "fail": False, "noref": True, "error": None}


def test_where_scopes_and_every_arm_is_scored() -> None:
    frame = _frame(arms=("baseline", "c", "logged"))
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": __file__},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "m2"}],
            "checks": [
                {"name": "x", "type": "contains", "value": "o", "where": {"feature": "answer"}},
                {"name": "y", "type": "min_chars", "value": 1, "where": {"feature": "x"}},
                {"name": "z", "type": "equals", "critical": True},
            ],
        }
    )
    out = score_rules(frame, list(spec.checks), run_id="r")
    assert set(out["arm"].to_pylist()) == {"baseline", "c", "logged"}
    assert out.filter(pc.equal(out["metric"], "x")).num_rows == 12
    assert out.filter(pc.equal(out["metric"], "y")).num_rows == 0  # no record in scope
    assert spec.checks[2].critical


def test_json_path_matches_and_nested_equals() -> None:
    rows = {
        "a": ('{"order": {"items": [1, 2], "status": "SHIPPED"}}', None, *ROWS["pass"][2:]),
        "b": ('{"order": {"items": [2, 1], "status": "lost"}}', None, *ROWS["pass"][2:]),
        "c": ('{"order": {"items": [1, 2], "flag": true}}', None, *ROWS["pass"][2:]),
    }
    frame = _frame(rows)
    eq = _score({"type": "json_path", "path": "$.order.items", "equals": [1, 2]}, frame)
    assert [eq[k]["passed"] for k in "abc"] == [True, False, True]
    rx = _score({"type": "json_path", "path": "$.order.status", "matches": "(?i)^ship"}, frame)
    assert [rx[k]["passed"] for k in "abc"] == [True, False, False]
    flag = _score({"type": "json_path", "path": "/order/flag", "equals": True}, frame)
    assert [flag[k]["passed"] for k in "abc"] == [False, False, True]


def test_json_path_needs_one_test() -> None:
    from evalpipe.errors import SpecError

    with pytest.raises(SpecError, match="exactly one of `equals` or `matches`"):
        _score({"type": "json_path", "path": "$.a"})


def test_rouge_and_bleu_by_hand() -> None:
    out = pa.array(["the cat sat on the mat", "Hello, world!", "x", None])
    ref = pa.array(["the cat is on the mat", "hello world", None, "y"])
    # unigrams: 5 of 6 match either way; bigrams: the-cat, on-the, the-mat = 3 of 5
    assert rouge_n(out, ref, 1, "recall").to_pylist() == [5 / 6, 1.0, None, None]
    assert rouge_n(out, ref, 2, "f1").to_pylist()[0] == pytest.approx(0.6)
    # p1 5/6, p2 (3+1)/(5+1), p3 (1+1)/(4+1), p4 (0+1)/(3+1), no brevity penalty
    expected = (5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    got = bleu(out, ref).to_pylist()
    assert got[0] == pytest.approx(expected) and got[1] == pytest.approx(1.0)
    assert got[2:] == [None, None]
    # an empty output has no words (it is not one empty word); an empty reference is unscorable
    empty = pa.array(["", "?!", "a b"]), pa.array(["a b", "a b", ""])
    assert bleu(*empty).to_pylist() == [0.0, 0.0, None]
    assert rouge_n(*empty).to_pylist() == [0.0, 0.0, None]
    short = bleu(pa.array(["the cat"]), pa.array(["the cat sat on the mat"])).to_pylist()[0]
    assert short == pytest.approx(1.0 * 2.718281828 ** (1 - 6 / 2) * (1 * 2 / 2 * 1 * 1) ** 0.25)


def _calls(*calls: tuple[str, dict[str, Any]]) -> str:
    return orjson.dumps(
        [{"id": f"c{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(calls)]
    ).decode()


def test_tool_calls_against_reference_by_hand() -> None:
    ref = orjson.dumps(
        [
            {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
            {"spotify.play": {"artist": ["Maroon 5"], "duration": [15], "shuffle": ["", False]}},
        ]
    ).decode()
    calls = pa.array(
        [
            _calls(
                ("spotify.play", {"artist": "maroon 5", "duration": 15}),
                ("spotify.play", {"artist": "Taylor Swift", "duration": 20.0}),
            ),
            _calls(("spotify.play", {"artist": "Taylor Swift", "duration": 20})),
            _calls(("spotify.play", {"artist": "Taylor Swift", "duration": 20, "volume": 3})),
            None,
            None,
        ]
    )
    refs = pa.array([ref, ref, ref, ref, None])
    f1, exact = tool_call_scores(calls, refs, pa.array(["", "", "", "no call", "x"]))
    assert f1.to_pylist() == [1.0, 2 / 3, 0.0, 0.0, None]
    assert exact.to_pylist() == [True, False, False, False, None]


def _bfcl(name: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    q, a = BFCL / name, BFCL / "possible_answer" / name
    if not a.is_file():
        pytest.skip(absent(a, "BFCL answers"))
    questions = [json.loads(line) for line in q.read_text().splitlines() if line.strip()]
    answers = {
        r["id"]: r["ground_truth"]
        for r in (json.loads(line) for line in a.read_text().splitlines() if line.strip())
    }
    return questions, answers


def _first(value: Any) -> Any:
    """The first acceptable value, nested dicts (parameter → alternatives) included."""
    if isinstance(value, dict):
        return {k: _first(v[0]) for k, v in value.items() if v and v[0] != ""}
    if isinstance(value, list):
        return [_first(v) for v in value]
    return value


def _first_values(truth: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """One correct answer: each call with the first acceptable value of each parameter."""
    out = []
    for call in truth:
        name, params = next(iter(call.items()))
        out.append((name, {k: _first(v[0]) for k, v in params.items() if v and v[0] != ""}))
    return out


def test_reference_tool_checks_on_bfcl_answers() -> None:
    """Records ingested from BFCL carry their answers as `reference`; a model answering with
    the first acceptable values passes (in reversed order for parallel calls), one that drops
    a call or changes a value fails."""
    from evalpipe.ingest import ingest_paths

    for name in ("BFCL_v4_parallel.json", "BFCL_v4_simple_python.json"):
        _bfcl(name)
    records = pa.concat_tables(
        [
            ingest_paths(BFCL / name, format="bfcl").records
            for name in ("BFCL_v4_parallel.json", "BFCL_v4_simple_python.json")
        ]
    )
    assert records.num_rows == 600
    truth = {
        r: orjson.loads(t)
        for r, t in zip(
            records["record_id"].to_pylist(), records["reference"].to_pylist(), strict=True
        )
    }
    arms = {"right": [], "dropped": [], "wrong": []}
    for ref in truth.values():
        calls = _first_values(ref)
        arms["right"].append(_calls(*reversed(calls)))
        arms["dropped"].append(_calls(*calls[:-1]))
        name, args = calls[0]
        changed = {
            k: (v + 1 if isinstance(v, int | float) and not isinstance(v, bool) else "zz")
            for k, v in args.items()
        }
        arms["wrong"].append(_calls((name, changed), *calls[1:]))
    ids = list(truth)
    responses = from_rows(
        [
            {
                "record_id": rid,
                "arm": arm,
                "repeat": 0,
                "status": "ok",
                "output_tool_calls": calls[i],
            }
            for arm, calls in arms.items()
            for i, rid in enumerate(ids)
        ],
        RESPONSES,
    )
    frame = scoring_frame(responses, records)
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": __file__},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "m2"}],
            "checks": [
                {"name": "exact", "type": "tool_call_exact"},
                {"name": "f1", "type": "tool_call_f1", "value": 0.5},
            ],
        }
    )
    out = score_rules(frame, list(spec.checks), run_id="r")
    rate = {
        (arm, m): pc.mean(
            out.filter(pc.and_(pc.equal(out["arm"], arm), pc.equal(out["metric"], m)))["value"]
        ).as_py()
        for arm in arms
        for m in ("exact", "f1")
    }
    assert rate[("right", "exact")] == 1.0 and rate[("right", "f1")] == 1.0
    assert rate[("dropped", "exact")] == 0.0
    # simple questions have one call: dropping it leaves F1 0; parallel ones keep F1 ≥ 0.5
    assert rate[("dropped", "f1")] == pytest.approx(200 / 600)
    assert rate[("wrong", "exact")] < 0.05


def test_checks_together_score_as_each_alone() -> None:
    """score_rules runs checks on threads that share what they derive from a frame (words,
    n-gram counts, tool-call scores, distinct outputs): together they score as each alone."""
    rows = {
        **ROWS,
        "json": ('{"id": 7, "tags": ["a"]}', '{"id": 7}', 5, 10.0, 0.0, None, "answer"),
        "again": ROWS["pass"],  # the same pair twice
        "calls": (
            "",
            '[{"f": {"x": [1]}}]',
            1,
            1.0,
            0.0,
            '[{"id": "c", "name": "f", "arguments": {"x": 1}}]',
            "answer",
        ),
    }
    frame = _frame(rows, arms=("baseline", "c"))
    checks = [
        *(c for c, _ in CASES),
        {"type": "rouge_n_min", "value": 0.5, "n": 1, "measure": "precision"},
        {"type": "json_path", "path": "$.tags", "equals": ["a"]},
        {"type": "json_valid"},
        {"type": "tool_call_f1", "value": 0.5},
        {"type": "tool_call_exact"},
        {"type": "no_pii"},
    ]
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": __file__},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "m2"}],
            "checks": [{"name": f"x{i}", **c} for i, c in enumerate(checks)],
        }
    )
    together = score_rules(frame, list(spec.checks), run_id="r")
    alone = pa.concat_tables([score_rules(frame, [c], run_id="r") for c in spec.checks])
    assert together.equals(alone)
    exact = together.filter(pc.equal(together["metric"], f"x{len(checks) - 2}"))
    assert dict(zip(exact["record_id"].to_pylist(), exact["passed"].to_pylist(), strict=True))[
        "calls"
    ]


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


_SHORT = st.text(st.sampled_from([*"abAB ", "é", "\t"]), max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(st.none(), _SHORT), st.one_of(st.none(), _SHORT)), min_size=1),
    st.data(),
)
def test_equals_and_levenshtein_row_by_row(
    rows: list[tuple[str | None, str | None]], data: st.DataObject
) -> None:
    """equals and levenshtein_max score each distinct (output, reference) pair once, by the
    codes of the distinct texts: row by row they are Python's comparison and edit distance."""
    from evalpipe.score.rules import CHECKS, Measured
    from evalpipe.spec import Equals, LevenshteinMax

    outputs = [o for o, _ in rows]
    rows = rows + [(o, o) for o in data.draw(st.lists(st.sampled_from(outputs), max_size=4))]
    rows = rows + data.draw(st.lists(st.sampled_from(rows), max_size=4))  # repeated pairs
    frame = pa.table(
        {
            "output_text": pa.array([o for o, _ in rows], pa.string()),
            "reference": pa.array([r for _, r in rows], pa.string()),
        }
    )
    trim, case = data.draw(st.booleans()), data.draw(st.booleans())
    check = Equals(name="e", type="equals", trim=trim, case_sensitive=case)
    got = CHECKS["equals"](frame, check, None)
    assert isinstance(got, pa.Array | pa.ChunkedArray)

    def canonical(text: str) -> str:
        text = pc.utf8_trim_whitespace(pa.scalar(text)).as_py() if trim else text
        return text if case else pc.utf8_lower(pa.scalar(text)).as_py()

    want = [None if o is None or r is None else canonical(o) == canonical(r) for o, r in rows]
    assert got.to_pylist() == want
    measured = CHECKS["levenshtein_max"](
        frame, LevenshteinMax(name="l", type="levenshtein_max", value=2), None
    )
    assert isinstance(measured, Measured)
    distances = [None if o is None or r is None else _distance(o, r) for o, r in rows]
    assert measured.figure.to_pylist() == distances
    assert measured.passed.to_pylist() == [None if d is None else d <= 2 for d in distances]
