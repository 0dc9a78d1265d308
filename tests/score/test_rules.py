"""Rule checks on columns: each check type, `where` scoping, error rows left null."""

from __future__ import annotations

import typing

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from evalpipe.score import scoring_frame
from evalpipe.score.rules import CHECKS, score_rules
from evalpipe.spec import Check, spec_from_dict
from evalpipe.tables import RECORDS, RESPONSES, SCORES, from_rows

SCHEMA = {
    "type": "object",
    "properties": {"category": {"enum": ["billing", "other"]}},
    "required": ["category"],
    "additionalProperties": False,
}


def _records() -> pa.Table:
    triage = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "refund"}]}],
        "response_format": {"type": "json_schema", "name": "t", "schema": SCHEMA},
        "tools": [{"name": "lookup", "parameters": {"type": "object", "required": ["id"]}}],
    }
    plain = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}
    rows = [
        {
            "record_id": f"r{i}",
            "request": orjson.dumps(triage if i < 4 else plain).decode(),
            "attributes": [("feature", "triage" if i < 4 else "answer")],
            "replayable": True,
        }
        for i in range(6)
    ]
    return from_rows(rows, RECORDS)


def _responses() -> pa.Table:
    outputs = [
        ('{"category": "billing"}', "stop", "ok", None),
        ('{"category": "shipping"}', "stop", "ok", None),  # valid JSON, breaks the schema enum
        ('Sure! {"category": "billing"}', "stop", "ok", None),  # not JSON
        (None, None, "error", None),
        ("I'm sorry, but I can't help with that.", "stop", "ok", None),
        (
            "Mail jane.doe@example.com or call +1 415 555 0134." + "x" * 30,
            "length",
            "ok",
            '[{"id": "c", "name": "lookup", "arguments": {"id": 3}}]',
        ),
    ]
    rows = [
        {
            "record_id": f"r{i}",
            "arm": "baseline",
            "repeat": 0,
            "output_text": t,
            "finish_reason": f,
            "status": s,
            "output_tool_calls": calls,
        }
        for i, (t, f, s, calls) in enumerate(outputs)
    ]
    return from_rows(rows, RESPONSES)


def _checks() -> list:
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": __file__},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "m2"}],
            "checks": [
                {"name": "valid_json", "type": "json_valid", "where": {"feature": "triage"}},
                {
                    "name": "schema_ok",
                    "type": "json_schema",
                    "schema": "request",
                    "where": {"feature": "triage"},
                },
                {"name": "no_refusal", "type": "not_refusal"},
                {"name": "short", "type": "max_chars", "value": 60},
                {"name": "no_pii", "type": "no_pii"},
                {"name": "complete", "type": "finish_reason_not", "values": ["length"]},
                {"name": "tools_ok", "type": "tool_call_valid"},
                {"name": "mentions_category", "type": "regex", "pattern": "category"},
            ],
        }
    )
    return list(spec.checks)


def _passed(scores: pa.Table, metric: str) -> dict[str, object]:
    rows = scores.filter(pa.compute.equal(scores["metric"], metric)).to_pylist()
    return {r["record_id"]: r["passed"] for r in rows}


def test_every_check_type_is_implemented() -> None:
    union = typing.get_args(typing.get_args(Check)[0])
    types = {typing.get_args(cls.model_fields["type"].annotation)[0] for cls in union}
    assert types == set(CHECKS)


def test_rule_checks_on_columns() -> None:
    frame = scoring_frame(_responses(), _records())
    scores = score_rules(frame, _checks(), run_id="run")
    assert scores.schema.equals(SCORES)
    assert _passed(scores, "valid_json") == {"r0": True, "r1": True, "r2": False, "r3": None}
    assert _passed(scores, "schema_ok") == {"r0": True, "r1": False, "r2": False, "r3": None}
    refusal = _passed(scores, "no_refusal")
    assert refusal["r4"] is False and refusal["r0"] is True and refusal["r3"] is None
    assert _passed(scores, "short")["r5"] is False and _passed(scores, "short")["r0"] is True
    assert _passed(scores, "no_pii")["r5"] is False and _passed(scores, "no_pii")["r4"] is True
    assert _passed(scores, "complete")["r5"] is False and _passed(scores, "complete")["r0"] is True
    assert _passed(scores, "tools_ok")["r5"] is False  # a call to a tool the request did not offer
    assert _passed(scores, "tools_ok")["r0"] is True
    assert _passed(scores, "mentions_category")["r1"] is True
    errors = scores.filter(pa.compute.equal(scores["record_id"], "r3")).column("error").to_pylist()
    assert set(errors) == {"error"}


def test_tool_call_with_unknown_tool_or_bad_arguments_fails() -> None:
    frame = scoring_frame(_responses(), _records())
    bad = frame.set_column(
        frame.schema.get_field_index("output_tool_calls"),
        "output_tool_calls",
        pa.array(
            [
                '[{"name": "lookup", "arguments": {"id": 1}}]',
                '[{"name": "nope", "arguments": {}}]',
                '[{"name": "lookup", "arguments": {}}]',
                None,
                None,
                None,
            ]
        ),
    )
    checks = [c for c in _checks() if c.type == "tool_call_valid"]
    got = _passed(score_rules(bad, checks, run_id="run"), "tools_ok")
    assert got["r1"] is False and got["r2"] is False and got["r0"] is True


def test_json_valid_is_strict() -> None:
    from evalpipe.score.rules import _strict_json

    assert _strict_json('{"a": 1,}') is False  # DuckDB's json_valid says true
    assert _strict_json("```json\n{}\n```") is False
    assert _strict_json("42") is False
    assert _strict_json(' {"a": [1, 2]} ') is True
    assert _strict_json(None) is None


_TEXTS = st.text(
    st.sampled_from([*"aAbB.*(|\\$^ \t\n", "é", "É", "ß", "ſ", "K", "\u00a0", "\u2003"]),
    max_size=12,
)

_FLAGGED = st.sampled_from(
    [
        "I'm sorry, but I can't.",
        " i cannot help with that",
        "mail jane@example.com",
        "card 4111 1111 1111 1111 ok",  # passes the Luhn check
        "card 4111 1111 1111 1112 ok",  # does not
        "call +1 415 555 0134",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.none(), _TEXTS, _FLAGGED), min_size=1, max_size=20, unique=True),
    st.data(),
)
def test_text_checks_agree_with_the_arrow_kernels(
    texts: list[str | None], data: st.DataObject
) -> None:
    """contains & co. run as one RE2 pass over escaped literals, starts_with trims only the
    texts that may lead with a space, lengths count bytes of ASCII columns: the verdicts are
    those of match_substring / utf8_ltrim_whitespace + starts_with / utf8_length. Outputs that
    repeat are checked once per distinct text: the verdicts are the same."""
    from evalpipe.score.rules import _repeated_outputs

    values = data.draw(st.lists(_TEXTS.filter(bool), min_size=1, max_size=3))
    case = data.draw(st.booleans())
    distinct = pa.table({"output_text": pa.array(texts, pa.string())})
    assert _repeated_outputs(distinct) is None or len(texts) == 1  # checked as they are
    _assert_text_checks(distinct, values, case)
    # chunks whose dictionaries are merged (texts repeat a lot) or put end to end
    for chunks in ([texts * 3, texts[::-1] * 2], [texts * 2, texts[::-1]]):
        repeated = pa.table({"output_text": pa.chunked_array(chunks, pa.string())})
        assert _repeated_outputs(repeated) is not None
        _assert_text_checks(repeated, values, case)


def _assert_text_checks(frame: pa.Table, values: list[str], case: bool) -> None:
    from evalpipe.pii import contains_pii
    from evalpipe.score.rules import REFUSAL_PATTERN
    from evalpipe.spec import (
        Contains,
        ContainsAll,
        ContainsAny,
        MinChars,
        NoPii,
        NotContains,
        NotRefusal,
        Regex,
        StartsWith,
    )

    column = frame["output_text"]
    texts = column.to_pylist()

    def has(v: str) -> list[bool | None]:
        return pc.match_substring(column, v, ignore_case=not case).to_pylist()

    got = CHECKS["contains"](
        frame, Contains(name="c", type="contains", value=values[0], case_sensitive=case), None
    )
    assert got.to_pylist() == has(values[0])
    nope = CHECKS["not_contains"](
        frame,
        NotContains(name="c", type="not_contains", value=values[0], case_sensitive=case),
        None,
    )
    assert nope.to_pylist() == [None if h is None else not h for h in has(values[0])]
    hits = [has(v) for v in values]
    any_ = CHECKS["contains_any"](
        frame, ContainsAny(name="c", type="contains_any", values=values, case_sensitive=case), None
    )
    all_ = CHECKS["contains_all"](
        frame, ContainsAll(name="c", type="contains_all", values=values, case_sensitive=case), None
    )
    for i, text in enumerate(texts):
        row = [h[i] for h in hits]
        assert any_.to_pylist()[i] == (None if text is None else any(row))
        assert all_.to_pylist()[i] == (None if text is None else all(row))
    start = CHECKS["starts_with"](
        frame, StartsWith(name="s", type="starts_with", value=values[0], case_sensitive=case), None
    )
    trimmed = pc.utf8_ltrim_whitespace(column)
    assert start.to_pylist() == pc.starts_with(trimmed, values[0], ignore_case=not case).to_pylist()
    chars = CHECKS["min_chars"](frame, MinChars(name="m", type="min_chars", value=3), None)
    assert chars.to_pylist() == pc.greater_equal(pc.utf8_length(column), 3).to_pylist()
    regex = CHECKS["regex"](frame, Regex(name="r", type="regex", pattern="(?i)a.b"), None)
    assert regex.to_pylist() == pc.match_substring_regex(column, "(?i)a.b").to_pylist()
    pii = CHECKS["no_pii"](frame, NoPii(name="p", type="no_pii"), None)
    assert pii.to_pylist() == pc.invert(contains_pii(column)).to_pylist()
    refusal = CHECKS["not_refusal"](
        frame.append_column("finish_reason", pa.array(["stop"] * frame.num_rows, pa.string())),
        NotRefusal(name="r", type="not_refusal"),
        None,
    )
    assert (
        refusal.to_pylist()
        == pc.invert(pc.match_substring_regex(column, REFUSAL_PATTERN)).to_pylist()
    )


def test_ascii_and_unicode_lengths() -> None:
    from evalpipe.spec import MaxChars

    check = MaxChars(name="m", type="max_chars", value=5)
    assert CHECKS["max_chars"](
        pa.table({"output_text": ["héllo", "hello!"]}), check, None
    ).to_pylist() == [True, False]
    assert CHECKS["max_chars"](
        pa.table({"output_text": ["hello", "hello!"]}), check, None
    ).to_pylist() == [True, False]
