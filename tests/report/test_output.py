"""write_report and write_runs_index end to end on hand-built and realistic runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow.compute as pc
import pytest

from evalpipe.report import ReportPaths, validate_verdict, write_report, write_runs_index
from evalpipe.tables import RECORDS, from_rows

from .conftest import NO_GO_REASON, HandRun, _request, part_file_views
from .synth import XSS_IMG, XSS_SCRIPT, SynthRun


def test_writes_the_four_files(run: HandRun, tmp_path: Path) -> None:
    paths = write_report(tmp_path / "r", **run.kwargs())
    assert isinstance(paths, ReportPaths)
    assert paths.index_html == tmp_path / "r" / "index.html"
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0, p
    assert not list((tmp_path / "r").glob(".*.tmp"))


def test_verdict_json_validates_and_has_each_verdict(run: HandRun, tmp_path: Path) -> None:
    doc = json.loads(write_report(tmp_path, **run.kwargs()).verdict_json.read_text())
    validate_verdict(doc)
    assert doc["run_id"] == run.gate.run_id
    assert (doc["verdict"], doc["exit_code"]) == ("INVALID", 3)
    got = {name: (c["verdict"], c["exit_code"]) for name, c in doc["candidates"].items()}
    assert got == {
        "good": ("GO", 0),
        "bad": ("NO-GO", 1),
        "unsure": ("NOT-PROVEN", 2),
        "broken": ("INVALID", 3),
    }
    bad = doc["candidates"]["bad"]
    assert bad["reason"] == NO_GO_REASON
    assert bad["config"] == {
        "name": "bad",
        "model": "gpt-4.1-mini",
        "provider": "openai",
        "version": None,
        "config_hash": run.spec.candidates[1].config_hash(),
    }
    assert {m["metric"] for m in bad["metrics"]} == {"valid_json", "helpfulness", "error_rate"}
    assert doc["candidates"]["broken"]["invalid_reasons"]
    flagged = doc["candidates"]["good"]["slices_flagged"]
    assert [(s["slice_col"], s["slice_value"], s["metric"]) for s in flagged] == [
        ("feature", "<b>vip</b>", "valid_json")
    ]
    arms = doc["coverage"]["arms"]
    assert arms["bad"] == {
        "replayed": 3,
        "errored": 1,
        "errored_infrastructure": 0,
        "errored_candidate": 1,
        "skipped": 0,
        "cache_hits": 1,
    }
    assert arms["broken"]["errored_infrastructure"] == 2
    assert doc["coverage"]["records"] == 4 and doc["coverage"]["quarantined"] == 1
    assert doc["cost_usd"]["total"] == 0.03
    assert doc["versions"]["spec_hash"] == "abcdef0123456789"


def test_junit_fails_the_no_go_metric(run: HandRun, tmp_path: Path) -> None:
    root = ET.parse(write_report(tmp_path, **run.kwargs()).junit_xml).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"good", "bad", "unsure", "broken"}
    bad = {tc.get("name"): tc for tc in suites["bad"].iter("testcase")}
    failure = bad["valid_json"].find("failure")
    assert failure is not None and failure.get("message") == NO_GO_REASON
    assert bad["helpfulness"].find("skipped") is not None
    assert bad["error_rate"].find("failure") is None
    assert suites["bad"].get("failures") == "1" and suites["bad"].get("skipped") == "1"
    assert all(tc.find("error") is not None for tc in suites["broken"].iter("testcase"))
    assert suites["good"].get("failures") == "0"
    assert root.get("failures") == "1" and root.get("errors") == "1"


def test_summary_has_verdicts_and_reason(run: HandRun, tmp_path: Path) -> None:
    text = write_report(tmp_path, **run.kwargs()).summary_md.read_text()
    assert "**NO-GO**" in text and "**NOT-PROVEN**" in text and "**INVALID**" in text
    assert "valid\\_json on triage fell from 99.0% to 91.0%" in text
    assert "index.html" in text
    assert "Simpson" in text
    assert "<b>" not in text  # the slice name is escaped


def test_hostile_output_is_escaped_in_the_page(run: HandRun, tmp_path: Path) -> None:
    html = write_report(tmp_path, **run.kwargs()).index_html.read_text()
    for raw in (XSS_SCRIPT, XSS_IMG, "<b>vip</b>"):
        assert raw not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html.lower()


def test_page_shows_verdicts_reasons_and_coverage(run: HandRun, tmp_path: Path) -> None:
    html = write_report(tmp_path, **run.kwargs()).index_html.read_text()
    assert "Switch the shop bot?" in html
    assert "4 logged requests replayed against the baseline gpt-4o-mini and 4 candidates" in html
    for word in ("GO", "NO-GO", "NOT-PROVEN", "INVALID"):
        assert f">{word}<" in html
    assert "valid_json on triage fell from 99.0% to 91.0%" in html  # the card's reason
    assert "−8.0 pp" in html and "×0.90" in html
    assert "only 12 clusters" in html
    assert "Simpson's warning" in html and "is worse on feature=&lt;b&gt;vip&lt;/b&gt;" in html
    assert "gpt-4o-mini-2024-07-18" in html and "abcdef0123456789" in html
    assert "$0.03" in html
    assert "Content-Security-Policy" in html


def test_page_shows_what_the_selection_dropped_and_the_log_formats(
    run: HandRun, tmp_path: Path
) -> None:
    # the counts ingest_run writes to the manifest
    run.manifest["counts"] = {
        "records": 4,
        "quarantined": 1,
        "out_of_window": 120,
        "duplicates_dropped": 7,
        "sampled_out": 0,
    }
    run.manifest["source_formats"] = {"openai_chat@1": 3, "anthropic_messages@1": 2}
    html = write_report(tmp_path, **run.kwargs()).index_html.read_text()
    assert "<dt>Outside the time window</dt><dd>120</dd>" in html
    assert "<dt>Duplicates dropped</dt><dd>7</dd>" in html
    assert "Sampled out" not in html  # nothing was
    assert "<dt>Log formats</dt><dd>anthropic_messages@1 (2), openai_chat@1 (3)</dd>" in html


def test_examples_show_regressions_with_pii_redacted(run: HandRun, tmp_path: Path) -> None:
    html = write_report(tmp_path, **run.kwargs()).index_html.read_text()
    assert "valid_json: passed on the baseline, failed on the candidate" in html
    assert "the candidate&#39;s own request failed; the baseline answered" in html
    assert "helpfulness: the judge preferred the baseline" in html
    assert "jane.doe@example.com" not in html and "[EMAIL]" in html
    assert "415 555 0134" not in html and "[PHONE]" in html
    assert "Where is order 1234?" in html  # the last user message, not an earlier one
    assert "earlier question" not in html


def test_examples_keep_pii_when_redaction_is_off(run: HandRun, tmp_path: Path) -> None:
    spec = run.spec.model_copy(
        update={"redact_pii": run.spec.redact_pii.model_copy(update={"reports": False})}
    )
    kwargs = {**run.kwargs(), "spec": spec}
    html = write_report(tmp_path, **kwargs).index_html.read_text()
    assert "jane.doe@example.com" in html


def test_no_examples_when_top_examples_is_zero(run: HandRun, tmp_path: Path) -> None:
    spec = run.spec.model_copy(
        update={"report": run.spec.report.model_copy(update={"top_examples": 0})}
    )
    html = write_report(tmp_path, **{**run.kwargs(), "spec": spec}).index_html.read_text()
    assert "passed on the baseline, failed on the candidate" not in html
    assert "Examples are turned off" in html
    assert "jane.doe" not in html


def test_realistic_run(synth_run: SynthRun, tmp_path: Path) -> None:
    paths = write_report(
        tmp_path,
        gate=synth_run.gate,
        spec=synth_run.spec,
        records=synth_run.records,
        responses=synth_run.responses,
        scores=synth_run.scores,
        manifest=synth_run.manifest,
    )
    doc = json.loads(paths.verdict_json.read_text())
    validate_verdict(doc)
    assert doc["candidates"]["gpt-4.1-mini"]["verdict"] == "NO-GO"
    html = paths.index_html.read_text()
    assert XSS_SCRIPT not in html
    k = synth_run.spec.report.top_examples
    worse, better = (
        html.count('<article class="example worse"'),
        html.count('<article class="example better"'),
    )
    assert 0 < worse <= 3 * k and 0 < better <= 3 * k  # per candidate, each way


def test_empty_tables_still_make_a_report(run: HandRun, tmp_path: Path) -> None:
    kwargs = run.kwargs()
    kwargs.update(
        records=run.records.slice(0, 0),
        responses=run.responses.slice(0, 0),
        scores=run.scores.slice(0, 0),
        manifest={"run_id": run.gate.run_id},
    )
    paths = write_report(tmp_path, **kwargs)
    validate_verdict(json.loads(paths.verdict_json.read_text()))
    assert "No responses were recorded" in paths.index_html.read_text()


def test_runs_index_lists_runs_newest_first(tmp_path: Path) -> None:
    runs = [
        {
            "run_id": "20261101-000000-a-111111",
            "created": "2026-11-01T00:00:00+00:00",
            "spec_name": "a",
            "verdict": "GO",
            "candidates": {"x": {"verdict": "GO"}},
            "counts": {"records": 10},
            "cost_usd": {"total": 1.5},
        },
        {
            "run_id": "20261120-000000-b-222222",
            "created": "2026-11-20T00:00:00+00:00",
            "spec_name": "<i>b</i>",
            "verdict": "NO-GO",
            "candidates": {"y": {"verdict": "NO-GO"}, "z": {"verdict": "GO"}},
        },
        {"spec_name": "no id, skipped"},
    ]
    path = write_runs_index(tmp_path / "reports", runs)
    html = path.read_text()
    assert path == tmp_path / "reports" / "index.html"
    assert html.index("20261120-000000-b-222222") < html.index("20261101-000000-a-111111")
    assert 'href="20261120-000000-b-222222/index.html"' in html
    assert "<i>b</i>" not in html and "&lt;i&gt;b&lt;/i&gt;" in html
    assert "no id" not in html
    assert "2 runs" in html


@pytest.mark.parametrize("runs", [[]])
def test_runs_index_without_runs(tmp_path: Path, runs: list[dict[str, object]]) -> None:
    assert "No finished run yet" in write_runs_index(tmp_path, runs).read_text()


def test_runs_index_links_a_report_written_elsewhere(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "index.html"
    other.parent.mkdir()
    other.write_text("<p>report</p>")
    run = {"run_id": "20261120-000000-b-222222", "report": str(other), "verdict": "GO"}
    html = write_runs_index(tmp_path / "reports", [run]).read_text()
    assert f'href="{other.as_uri()}"' in html


def test_canary_step_is_shown(run: HandRun, tmp_path: Path) -> None:
    from dataclasses import replace

    cands = [
        replace(c, canary_step={"decision": "hold", "step": 2}) if c.candidate == "good" else c
        for c in run.gate.candidates
    ]
    gate = replace(run.gate, candidates=cands)
    paths = write_report(tmp_path, **{**run.kwargs(), "gate": gate})
    assert "canary step: hold (step 2)" in paths.index_html.read_text()
    doc = json.loads(paths.verdict_json.read_text())
    assert doc["candidates"]["good"]["canary_step"] == {"decision": "hold", "step": 2}


def test_examples_render_a_word_diff_escaped_and_fold_long_requests(
    run: HandRun, tmp_path: Path
) -> None:
    long_ask = "Please help with my order. " * 40
    records = run.records.to_pylist()
    for r in records:
        r["request"] = _request(long_ask)
    kwargs = {**run.kwargs(), "records": from_rows(records, RECORDS)}
    html = write_report(tmp_path, **kwargs).index_html.read_text()
    assert (
        '<details class="long"><summary>The request\'s last user message (1,080 characters)' in html
    )
    assert '<del class="del">' in html and '<ins class="ins">' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the hostile output, inside the diff
    assert "<script>" not in html


def test_page_names_the_eval_sets_replayed(run: HandRun, tmp_path: Path) -> None:
    manifest = {**run.manifest, "eval_sets": {"demo_edge_cases": 30}}
    html = write_report(tmp_path, **{**run.kwargs(), "manifest": manifest}).index_html.read_text()
    assert "Eval sets" in html and "demo_edge_cases (30 cases)" in html
    assert "Eval sets" not in write_report(tmp_path / "b", **run.kwargs()).index_html.read_text()


def test_a_large_run_is_counted_in_duckdb_not_held(synth_run: SynthRun, tmp_path: Path) -> None:
    """With `examples_from` (what pipeline.report_run passes), coverage and money are counted
    over the run's Parquet files in DuckDB and no responses table is handed in: the same report
    as from the whole tables."""
    import duckdb

    from evalpipe.report.coverage import arm_coverage, arm_coverage_in
    from evalpipe.report.money import money, money_in

    run = synth_run
    kwargs = {"gate": run.gate, "spec": run.spec, "manifest": run.manifest}
    tables = {"records": run.records, "responses": run.responses, "scores": run.scores}
    whole = write_report(tmp_path / "whole", **kwargs, **tables)  # type: ignore[arg-type]
    with duckdb.connect() as con:
        part_file_views(con, tables, tmp_path / "parts")
        # (sums over the part files in another order: equal up to the last bits)
        assert _rounded(arm_coverage_in(con, run.spec)) == _rounded(
            arm_coverage(run.responses, run.spec)
        )
        arms = ["baseline", "claude-haiku", "gpt-4.1-mini", "nano-fast"]
        options = {"arms": arms, "slice_columns": ["tenant", "feature"]}
        got = money_in(con, run.records, **options)  # type: ignore[arg-type]
        assert _rounded(got) == _rounded(money(run.records, run.responses, **options))  # type: ignore[arg-type]
        assert got.arms[0].answered > 0 and got.breakdowns
        paths = write_report(
            tmp_path / "lean",
            **kwargs,  # type: ignore[arg-type]
            records=run.records.select(["record_id", "timestamp", "attributes", "labels"]),
            responses=None,
            scores=run.scores.filter(pc.equal(run.scores["kind"], "judge")),
            examples_from=con,
        )
    for a, b in ((whole.verdict_json, paths.verdict_json), (whole.summary_md, paths.summary_md)):
        assert _stable(a.read_text()) == _stable(b.read_text().replace("/lean/", "/whole/"))


def _rounded(obj: object) -> object:
    """Dataclasses as dicts, floats to 12 significant digits."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _rounded(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v) for v in obj]
    return float(f"{obj:.12g}") if isinstance(obj, float) else obj


def _stable(text: str) -> str:
    """A report file without its generation time."""
    import re

    return re.sub(r"\d\d \w{3} \d{4}, \d\d:\d\d UTC|\"generated\": \"[^\"]*\"", "", text)
