"""`evalpipe report RUN_ID` re-renders a finished run's report from its stored tables."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from evalpipe.cli import main

from .conftest import RUN_ID, HandRun


def _store(run: HandRun, root: Path) -> Path:
    d = root / "runs" / RUN_ID
    (d / "responses").mkdir(parents=True)
    pq.write_table(run.records, d / "records.parquet")
    pq.write_table(run.responses, d / "responses" / "part-00000.parquet")
    pq.write_table(run.scores, d / "scores.parquet")
    pq.write_table(run.gate.table, d / "gate.parquet")
    manifest = run.manifest | {
        "spec": run.spec.model_dump(mode="json", by_alias=True),
        "verdict": run.gate.verdict,
        "candidates": {
            c.candidate: {"verdict": c.verdict, "reason": c.reason} for c in run.gate.candidates
        },
        "stages": {},
    }
    (d / "manifest.json").write_bytes(orjson.dumps(manifest))
    return d


def test_report_rerenders_from_the_store_without_a_provider(run: HandRun, tmp_path: Path) -> None:
    _store(run, tmp_path / "store")
    with pytest.raises(SystemExit) as exc:
        main(["report", RUN_ID, "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out")])
    assert exc.value.code == 0
    html = (tmp_path / "out" / RUN_ID / "index.html").read_text()
    assert "NOT-PROVEN" in html and "about 800 more records" in html
    assert "400 paired requests" in html  # n from the gate table, not the lost verdict objects
    for name in ("summary.md", "verdict.json", "junit.xml"):
        assert (tmp_path / "out" / RUN_ID / name).is_file()
    assert (tmp_path / "out" / "index.html").is_file()


def test_report_of_an_unknown_run_says_how_to_list_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "nope", "--store", str(tmp_path / "store")])
    assert exc.value.code == 4
    assert "evalpipe runs" in capsys.readouterr().err


def test_a_rerendered_report_keeps_the_verdicts_caveats(run: HandRun, tmp_path: Path) -> None:
    """The gate stores each candidate's whole verdict, so a later report shows its warnings and
    invalid reasons, not only the sentence (they were lost on re-render)."""
    import dataclasses

    from evalpipe import pipeline
    from evalpipe.store import Run

    folder = _store(run, tmp_path / "store")
    stored = Run(RUN_ID, tmp_path / "store", run.spec)
    caveat = "only 9 sessions: the interval may be too narrow"
    result = pipeline.gate_run(stored)
    first = result.candidates[0]
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    assert manifest["candidates"][first.candidate]["reason"] == first.reason
    manifest["candidates"][first.candidate]["warnings"] = [caveat]
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    reloaded = pipeline.load_gate(stored)
    again = reloaded.for_candidate(first.candidate)
    assert again.warnings == [caveat]
    assert dataclasses.replace(again, warnings=first.warnings) == first  # every field kept
    with pytest.raises(SystemExit):
        main(["report", RUN_ID, "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out")])
    assert caveat in (tmp_path / "out" / RUN_ID / "index.html").read_text()
