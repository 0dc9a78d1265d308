"""`write_report`: a run's four report files; `write_runs_index`: the page listing every run."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import orjson
import pyarrow as pa

from evalpipe.gate.verdict import GateResult
from evalpipe.report.coverage import arm_coverage, arm_coverage_in
from evalpipe.report.document import build_verdict, validate_verdict
from evalpipe.report.examples import pick_examples, pick_examples_from
from evalpipe.report.figures import flagged_slices
from evalpipe.report.html import INDEX_NAME, ExampleGroup, page_data, render_page, render_runs
from evalpipe.report.judges import judge_reliability
from evalpipe.report.junit import render_junit
from evalpipe.report.money import money, money_in
from evalpipe.report.summary import render_summary
from evalpipe.spec import Spec
from evalpipe.tables import ARMS_LOGGED

__all__ = ["ReportPaths", "write_report", "write_runs_index", "write_trends"]

log = logging.getLogger(__name__)


class ReportPaths(NamedTuple):
    """The files `write_report` wrote."""

    index_html: Path
    summary_md: Path
    verdict_json: Path
    junit_xml: Path


def _write(path: Path, data: bytes) -> None:
    """Write atomically (tmp + rename), so a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _shown_path(path: Path) -> str:
    """The path relative to the working directory when it lies below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def _slice_columns(spec: Spec) -> list[str]:
    return [c.removeprefix("attributes.") for c in spec.gate.slices]


def write_report(
    out_dir: Path,
    *,
    gate: GateResult,
    spec: Spec,
    records: pa.Table,
    responses: pa.Table | None,
    scores: pa.Table,
    manifest: dict[str, Any],
    examples_from: duckdb.DuckDBPyConnection | None = None,
) -> ReportPaths:
    """Write index.html, summary.md, verdict.json and junit.xml of a run into `out_dir`.

    Args:
        out_dir: the run's report folder (created if missing), e.g. `reports/<run_id>`.
        gate: the gate's result.
        spec: the run's spec (titles, arms, slices, redaction, number of examples).
        records, responses, scores: the run's tables (tables.RECORDS, RESPONSES, SCORES).
        manifest: the run's manifest (run id, created, counts, cost, timings, versions).
        examples_from: a connection whose views `scores_all`, `responses_all`, `records_all`
            hold the whole run (its Parquet files): examples are picked there and coverage and
            money counted there (out of core), `responses` may then be None, `scores` need
            hold only the judges' rows and `records` only the columns the figures read (what
            `pipeline.report_run` passes for a large run).

    Returns:
        The paths of the four files.

    Raises:
        jsonschema.ValidationError: verdict.json would not match its schema (a bug).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if examples_from is not None:
        coverage = arm_coverage_in(examples_from, spec)
    elif responses is not None:
        coverage = arm_coverage(responses, spec)
    else:
        raise ValueError("write_report needs `responses` or `examples_from`")
    doc = build_verdict(gate, spec, manifest, coverage=coverage, records=records)
    validate_verdict(doc)
    shown = gate.candidates
    names = [cv.candidate for cv in shown]
    limit, slices, redact = spec.report.top_examples, _slice_columns(spec), spec.redact_pii.reports
    if examples_from is not None:
        worst, best = pick_examples_from(
            examples_from, names, gate=gate.table, limit=limit, slice_columns=slices, redact=redact
        )
    else:
        assert responses is not None
        worst, best = pick_examples(
            names,
            gate=gate.table,
            records=records,
            responses=responses,
            scores=scores,
            limit=limit,
            slice_columns=slices,
            redact=redact,
        )
    groups = [
        ExampleGroup(cv.candidate, cv.verdict, worst[cv.candidate], best[cv.candidate])
        for cv in shown
    ]
    counts = manifest.get("counts") or {}
    extra = sum(
        int(counts.get(k) or 0)
        for k in ("sampled_out", "duplicates_dropped")
        if isinstance(counts.get(k), int)
    )
    shown_arms = [c.arm for c in coverage if c.arm != ARMS_LOGGED]
    if examples_from is not None:
        figures = money_in(
            examples_from,
            records,
            arms=shown_arms,
            slice_columns=_slice_columns(spec),
            extra_logged=extra,
        )
    else:
        assert responses is not None
        figures = money(
            records,
            responses,
            arms=shown_arms,
            slice_columns=_slice_columns(spec),
            extra_logged=extra,
        )
    page = page_data(
        gate=gate,
        spec=spec,
        manifest=manifest,
        records=records,
        coverage=coverage,
        slices=flagged_slices(gate.table),
        examples=groups,
        money=figures,
        judges=judge_reliability(scores, records, spec),
    )
    paths = ReportPaths(
        out_dir / INDEX_NAME,
        out_dir / "summary.md",
        out_dir / "verdict.json",
        out_dir / "junit.xml",
    )
    _write(paths.index_html, render_page(page).encode("utf-8"))
    _write(
        paths.summary_md, render_summary(page, report_path=_shown_path(paths.index_html)).encode()
    )
    _write(
        paths.verdict_json,
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n",
    )
    _write(paths.junit_xml, render_junit(gate, suite_name=f"evalpipe {page.spec_name}"))
    log.info("report of %s written to %s", page.run_id, out_dir)
    return paths


def write_runs_index(reports_root: Path, runs: list[dict[str, Any]]) -> Path:
    """Write `reports_root/index.html`: every run, newest first, linking to its report.

    Args:
        reports_root: the reports folder (each run's report in `<run_id>/index.html`).
        runs: run manifests (or verdict.json documents): run_id, created, spec_name, verdict,
            candidates {name: {verdict, …}}, and optionally counts.records and cost_usd.total.
    """
    root = Path(reports_root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / INDEX_NAME
    _write(path, render_runs(runs, root).encode("utf-8"))
    return path


def write_trends(store_root: Path, spec_name: str, reports_root: Path) -> Path | None:
    """Write `reports_root/trends/<spec>.html` from the store's finished runs of `spec_name`.

    Returns:
        The page's path, or None when the store holds no finished run of the spec.
    """
    from datetime import UTC, datetime

    from evalpipe.report.html import environment
    from evalpipe.report.trends import trends, trends_path

    data = trends(Path(store_root), spec_name)
    if data is None:
        return None
    path = trends_path(Path(reports_root), spec_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = f"{datetime.now(UTC):%d %b %Y, %H:%M} UTC"
    html = (
        environment()
        .get_template("trends.html.j2")
        .render(t=data, generated=generated, index_name=INDEX_NAME)
    )
    _write(path, html.encode("utf-8"))
    log.info("trends of %s written to %s", spec_name, path)
    return path
