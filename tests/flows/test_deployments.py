"""prefect.yaml's deployments, the flows' deployments and the CI workflow example."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import typer
import yaml
from cronsim import CronSim

from evalpipe.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _deployments() -> list[dict[str, object]]:
    return list(yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"])


def test_prefect_yaml_declares_the_four_flows_and_the_nightly_cron_parses() -> None:
    from prefect import Flow
    from prefect.flows import load_flow_from_entrypoint

    by_name = {d["name"]: d for d in _deployments()}
    assert set(by_name) == {"shadow-eval", "nightly", "gate", "canary"}
    for name, d in by_name.items():
        flow = load_flow_from_entrypoint(str(ROOT / str(d["entrypoint"])))
        assert isinstance(flow, Flow) and flow.name == name
        spec = ROOT / str(d["parameters"]["spec_path"])  # type: ignore[index]
        assert spec.is_file(), spec
    (schedule,) = by_name["nightly"]["schedules"]  # type: ignore[misc]
    zone = ZoneInfo(schedule["timezone"])
    first = next(iter(CronSim(schedule["cron"], datetime(2026, 11, 1, tzinfo=zone))))
    assert first.astimezone(UTC).hour == 3


def test_every_flow_makes_a_deployment_and_the_nightly_one_keeps_the_spec_schedule() -> None:
    from evalpipe.flows import canary_ramp, ci_gate, nightly_watch, shadow_eval
    from evalpipe.flows.nightly import nightly_deployment

    for flow in (shadow_eval, nightly_watch, ci_gate, canary_ramp):
        deployment = flow.to_deployment(name=f"t-{flow.name}", parameters={"spec_path": "x"})
        assert deployment.flow_name == flow.name
    nightly = nightly_deployment(str(ROOT / "examples" / "nightly" / "eval.yaml"))
    (schedule,) = nightly.schedules
    assert schedule.schedule.cron == "0 3 * * *" and schedule.schedule.timezone == "UTC"
    assert nightly.parameters["spec_path"].endswith("examples/nightly/eval.yaml")


def _commands() -> dict[str, Any]:
    """The CLI's commands by name (typer's own click group; typer ≥ 0.20 vendors click)."""
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _evalpipe_commands(workflow: dict[str, object]) -> list[list[str]]:
    out = []
    for job in workflow["jobs"].values():  # type: ignore[attr-defined]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            for line in str(step.get("run", "")).splitlines():
                words = shlex.split(line)
                if words and words[0] == "evalpipe":
                    out.append(words[1:])
    return out


def test_the_ci_workflow_example_is_valid_and_runs_commands_that_exist() -> None:
    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "model-gate.yml").read_text())
    trigger = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert trigger["pull_request"]["paths"]
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    uses = [s["uses"].split("@")[0] for s in steps if "uses" in s]
    assert {"actions/checkout", "actions/cache", "actions/upload-artifact"} <= set(uses)
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == ".evalpipe/cache"
    commands = _evalpipe_commands(workflow)
    assert [c[0] for c in commands] == ["gate"]
    commands_by_name = _commands()
    for words in commands:
        command = commands_by_name[words[0]]
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        for word in words[1:]:
            if word.startswith("--"):
                assert word in options, f"evalpipe {words[0]} has no option {word}"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"].rstrip("/") == "evalpipe-report"


@pytest.mark.parametrize(
    "command", ["nightly", "trends", "canary", "canary-status", "serve-nightly"]
)
def test_the_new_commands_are_listed(command: str) -> None:
    assert command in _commands()
