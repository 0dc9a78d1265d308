"""The CI gate: --report-dir, --junit, the GitHub step summary, and the `gate` flow."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalpipe.cli import STEP_SUMMARY_MAX, app
from evalpipe.spec import load_spec
from evalpipe.store import latest_complete_run
from tests.flows.nights import nightly_spec

SMALL = {"path": "traffic.jsonl.gz", "sample": {"n": 30}}


def test_gate_writes_ci_artifacts_and_appends_the_step_summary(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = nightly_spec(tmp_path, traffic=SMALL)
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    runner = CliRunner()
    args = ["gate", str(path), "--report-dir", str(tmp_path / "ci"), "--junit"]
    first = runner.invoke(app, [*args, str(tmp_path / "out" / "junit.xml")])
    assert first.exit_code in (0, 1, 2, 3), first.output
    run = latest_complete_run(load_spec(path))
    assert run is not None
    assert (tmp_path / "ci" / run.run_id / "index.html").is_file()
    assert ET.parse(tmp_path / "out" / "junit.xml").getroot().tag in ("testsuites", "testsuite")
    text = summary.read_text()
    assert text.startswith("earlier step\n") and len(text) > len("earlier step\n") + 20
    # a second gate reuses the run and copies its report to another folder
    second = runner.invoke(app, ["gate", str(path), "--report-dir", str(tmp_path / "ci2")])
    assert second.exit_code == first.exit_code
    assert (tmp_path / "ci2" / run.run_id / "summary.md").is_file()
    assert f"Run {run.run_id}" in second.output


def test_the_step_summary_stays_under_githubs_limit(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = nightly_spec(tmp_path, traffic=SMALL)
    summary = tmp_path / "step-summary.md"
    summary.write_bytes(b"x" * (STEP_SUMMARY_MAX - 300))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = CliRunner().invoke(app, ["gate", str(path)])
    assert result.exit_code in (0, 1, 2, 3), result.output
    assert summary.stat().st_size <= STEP_SUMMARY_MAX
    assert b"1 MiB limit" in summary.read_bytes()


def test_the_gate_flow_reuses_the_newest_complete_run(
    fake_provider: str, prefect_harness: None, tmp_path: Path
) -> None:
    from evalpipe.flows import ci_gate, run_in_process
    from evalpipe.store import open_run

    path = nightly_spec(tmp_path, traffic=SMALL)
    run = open_run(load_spec(path))
    by_hand = run_in_process(run)
    state = ci_gate(str(path))
    assert state["reused"] is True and state["run_id"] == run.run_id
    assert state["exit_code"] == by_hand["exit_code"]


def test_baseline_run_latest_reuses_the_nightly_baseline_answers_on_the_same_sample(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from evalpipe.flows.watch import nightly_steps
    from evalpipe.flows.wiring import IN_PROCESS
    from evalpipe.store import open_run

    monkeypatch.setenv("EVALPIPE_FAKE_NIGHT", "2026-11-02")
    path = nightly_spec(tmp_path, traffic=SMALL)
    night = nightly_steps(load_spec(path), IN_PROCESS, night=None)
    assert night["status"] == "ok"
    # the gate's spec: the same baseline and sample, another candidate
    spec = yaml.safe_load(path.read_text())
    spec["candidates"] = [
        {
            "name": "next",
            "provider": "openai",
            "model": "fake-good-next",
            "base_url": "builtin:fake",
        }
    ]
    gate_path = tmp_path / "gate.yaml"
    gate_path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["gate", str(gate_path), "--baseline-run", "latest"])
    assert result.exit_code in (0, 1, 2, 3), result.output
    assert f"Baseline answers reused from nightly run {night['run_id']}" in result.output
    run = latest_complete_run(load_spec(gate_path))
    assert run is not None
    coverage = run.manifest()["coverage"]
    assert coverage["baseline"]["cache_hits"] == coverage["baseline"]["ok"] > 0
    assert coverage["next"]["cache_hits"] == 0
    assert run.manifest()["baseline_reused_from"] == night["run_id"]
    assert open_run(load_spec(path), str(night["run_id"])).complete
    page = Path(run.manifest()["report"]).read_text()
    assert f"reused from run {night['run_id']} (not paid again)" in page


def test_baseline_run_on_another_sample_is_not_reused_and_says_why(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from evalpipe.flows.watch import nightly_steps
    from evalpipe.flows.wiring import IN_PROCESS

    path = nightly_spec(tmp_path, traffic=SMALL)
    night = nightly_steps(load_spec(path), IN_PROCESS, night=None)
    spec = yaml.safe_load(path.read_text())
    spec["traffic"]["sample"] = {"n": 25}
    gate_path = tmp_path / "gate.yaml"
    gate_path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        app, ["gate", str(gate_path), "--baseline-run", str(night["run_id"])]
    )
    assert result.exit_code in (0, 1, 2, 3), result.output
    assert "its traffic sample differs" in result.output
    run = latest_complete_run(load_spec(gate_path))
    assert run is not None and run.manifest()["coverage"]["baseline"]["cache_hits"] == 0
