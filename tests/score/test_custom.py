"""Custom scorers (`type: python`): vectorised and per-row, the `evalpipe.scorers` entry point,
failures as one clear line; logged columns as metrics."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.errors import SpecError
from evalpipe.score import score_logged_metrics, scoring_frame
from evalpipe.score.rules import score_rules
from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import RECORDS, RESPONSES, SCORES, from_rows

MODULE = """
import pyarrow.compute as pc
from evalpipe.score.custom import per_row

def polite(frame):
    return pc.match_substring_regex(frame["output_text"], "(?i)please|thank")

def length_score(frame):
    return [None if t is None else len(t) / 10 for t in frame["output_text"].to_pylist()]

@per_row
def mentions_order(row):
    return row["output_text"] is not None and "order" in row["output_text"]

def boom(frame):
    raise ZeroDivisionError("division by zero")

def short(frame):
    return [True]

def words(frame):
    return ["yes"] * frame.num_rows
"""


@pytest.fixture
def checks_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"my_checks_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _spec(checks: list[dict[str, Any]], **extra: Any) -> Spec:
    return spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": __file__},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "m2"}],
            "checks": checks,
            **extra,
        }
    )


def _frame(n: int = 4) -> pa.Table:
    texts = ["Thank you for your order", "no", None, "Please wait, order 7"]
    records = from_rows(
        [{"record_id": f"r{i}", "request": "{}", "attributes": []} for i in range(n)], RECORDS
    )
    responses = from_rows(
        [
            {
                "record_id": f"r{i}",
                "arm": arm,
                "repeat": 0,
                "status": "ok",
                "output_text": texts[i % 4],
            }
            for arm in ("baseline", "c")
            for i in range(n)
        ],
        RESPONSES,
    )
    return scoring_frame(responses, records)


def _by_row(scores: pa.Table, metric: str, field: str = "passed") -> dict[str, Any]:
    rows = scores.filter(pc.and_(pc.equal(scores["metric"], metric), pc.equal(scores["arm"], "c")))
    return {r["record_id"]: r[field] for r in rows.to_pylist()}


def test_vectorised_per_row_and_numeric_scorers(checks_module: str) -> None:
    spec = _spec(
        [
            {"name": "polite", "type": "python", "function": f"{checks_module}:polite"},
            {"name": "order", "type": "python", "function": f"{checks_module}:mentions_order"},
            {
                "name": "long",
                "type": "python",
                "function": f"{checks_module}:length_score",
                "min": 1.5,
            },
        ]
    )
    out = score_rules(_frame(), list(spec.checks), run_id="r", spec=spec)
    assert out.schema.equals(SCORES)
    assert _by_row(out, "polite") == {"r0": True, "r1": False, "r2": None, "r3": True}
    assert _by_row(out, "order") == {"r0": True, "r1": False, "r2": False, "r3": True}
    assert _by_row(out, "long") == {"r0": True, "r1": False, "r2": None, "r3": True}


@pytest.mark.parametrize(
    ("fn", "problem"),
    [
        ("boom", "raised ZeroDivisionError: division by zero"),
        ("short", "returned 1 values for 8 rows"),
        ("words", "returned string, not booleans (give `min:` to compare numbers with it)"),
    ],
)
def test_a_failing_scorer_is_one_error_naming_it(
    checks_module: str, fn: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec(
        [
            {"name": "bad", "type": "python", "function": f"{checks_module}:{fn}"},
            {"name": "fine", "type": "min_chars", "value": 1},
        ]
    )
    out = score_rules(_frame(), list(spec.checks), run_id="r", spec=spec)
    errors = set(_by_row(out, "bad", "error").values())
    assert errors == {f"check bad (scorer {checks_module}:{fn}): {problem}"}
    assert set(_by_row(out, "bad", "value").values()) == {None}
    assert _by_row(out, "fine")["r0"] is True  # the other checks go on
    failures = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(failures) == 1 and f"{checks_module}:{fn}" in failures[0].getMessage()


def test_a_failing_scorer_makes_the_candidate_invalid(checks_module: str) -> None:
    from evalpipe.gate import gate_scores

    n = 60
    records = from_rows(
        [
            {"record_id": f"r{i}", "request": "{}", "request_sha256": f"h{i}", "attributes": []}
            for i in range(n)
        ],
        RECORDS,
    )
    responses = from_rows(
        [
            {
                "record_id": f"r{i}",
                "arm": arm,
                "repeat": 0,
                "status": "ok",
                "output_text": f"answer number {i} from {arm}",
                "latency_ms": 100.0,
                "cost_usd": 0.001,
            }
            for arm in ("baseline", "c")
            for i in range(n)
        ],
        RESPONSES,
    )
    spec = _spec([{"name": "bad", "type": "python", "function": f"{checks_module}:boom"}])
    frame = scoring_frame(responses, records)
    scores = score_rules(frame, list(spec.checks), run_id="r", spec=spec)
    result = gate_scores(scores, responses, records, spec, run_id="r", bootstrap_b=50)
    verdict = result.for_candidate("c")
    assert verdict.verdict == "INVALID"
    assert any(f"scorer {checks_module}:boom" in r for r in verdict.invalid_reasons)


def test_unknown_module_or_function_is_a_spec_error(checks_module: str) -> None:
    with pytest.raises(SpecError) as err:
        _spec([{"name": "x", "type": "python", "function": "no_such_module_zz:f"}])
    assert err.value.where == "checks[0].function" and "\n" not in str(err.value)
    with pytest.raises(SpecError, match="has no `nope`"):
        _spec([{"name": "x", "type": "python", "function": f"{checks_module}:nope"}])
    with pytest.raises(SpecError, match=r"no scorer `unregistered_zz` at the `evalpipe\.scorers`"):
        _spec([{"name": "x", "type": "python", "function": "unregistered_zz"}])


def test_scorer_registered_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package that declares `[project.entry-points."evalpipe.scorers"]` (here its installed
    metadata, written by hand) makes its scorer available by name."""
    pkg = "acme_scorers_" + tmp_path.name.replace("-", "_")
    (tmp_path / f"{pkg}.py").write_text(MODULE)
    dist = tmp_path / "acme_scorers-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-scorers\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""
            [evalpipe.scorers]
            acme_polite = {pkg}:polite
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    spec = _spec([{"name": "polite", "type": "python", "function": "acme_polite"}])
    out = score_rules(_frame(), list(spec.checks), run_id="r", spec=spec)
    assert _by_row(out, "polite") == {"r0": True, "r1": False, "r2": None, "r3": True}


def test_logged_columns_become_metrics_of_the_logged_arm(tmp_path: Path) -> None:
    records = from_rows(
        [
            {"record_id": "a", "labels": [("thumbs", 1.0)], "attributes": [("csat", "4")]},
            {"record_id": "b", "labels": [("thumbs", 0.0)], "attributes": [("csat", "2.5")]},
            {"record_id": "c", "attributes": [("csat", "great")]},
        ],
        RECORDS,
    )
    spec = _spec(
        [],
        metrics=[
            {"name": "thumbs_up", "column": "labels.thumbs"},
            {"name": "csat", "column": "attributes.csat", "kind": "continuous"},
        ],
    )
    out = score_logged_metrics(records, spec, run_id="r")
    assert out.schema.equals(SCORES)
    rows = {(r["metric"], r["record_id"]): r for r in out.to_pylist()}
    assert set(r["arm"] for r in rows.values()) == {"logged"}
    assert set(r["kind"] for r in rows.values()) == {"label"}
    assert rows[("thumbs_up", "a")]["passed"] is True and rows[("thumbs_up", "b")]["value"] == 0
    assert ("thumbs_up", "c") not in rows  # no label: no row
    assert rows[("csat", "b")]["value"] == 2.5 and rows[("csat", "b")]["passed"] is None
    assert rows[("csat", "c")]["value"] is None and "not a number" in rows[("csat", "c")]["error"]
    from evalpipe.gate.catalogue import gate_metrics

    shown = {m.name: m for m in gate_metrics(spec)}
    assert shown["thumbs_up"].source == "label" and not shown["thumbs_up"].gated


def test_logged_thumbs_are_gated_in_canary_mode() -> None:
    """User feedback as a metric: cohorts whose thumbs-up rate fell roll back on it."""
    from evalpipe.gate import gate_scores
    from tests.gate.test_canary import _canary

    records, rule_scores, spec = _canary(0.90, seed=2)
    label_type = RECORDS.field("labels").type
    thumbs = pa.array([[("thumbs", v)] for v in rule_scores["value"].to_pylist()], label_type)
    records = records.set_column(records.schema.get_field_index("labels"), "labels", thumbs)
    data = spec.model_dump(mode="json", by_alias=True, exclude={"checks"})  # type: ignore[attr-defined]
    data["metrics"] = [{"name": "thumbs_up", "column": "labels.thumbs"}]
    spec = spec_from_dict(data, spec_dir=spec.spec_dir)  # type: ignore[attr-defined]
    scores = score_logged_metrics(records, spec, run_id="c")
    result = gate_scores(scores, pa.table({}), records, spec, run_id="c")
    cv = result.for_candidate("next")
    assert cv.verdict == "NO-GO" and "thumbs_up fell from 98." in cv.reason
