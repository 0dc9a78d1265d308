"""The nightly drift watch flow: `watch.nightly_steps` with its stages as Prefect tasks."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from evalpipe.flows.artifacts import publish_run
from evalpipe.flows.shadow import PREFECT_TASKS
from evalpipe.flows.watch import nightly_steps
from evalpipe.flows.wiring import provider_for
from evalpipe.spec import load_spec

DEFAULT_CRON = "0 3 * * *"
"""When a spec without `schedule:` runs nightly (03:00 UTC)."""


@flow(name="nightly", log_prints=False, validate_parameters=False)
def nightly_watch(
    spec_path: str,
    night: str | None = None,
    store: str | None = None,
    reports: str | None = None,
) -> dict[str, Any]:
    """Replay the night's traffic, detect drift across nights, alert once per change.

    Args:
        night: the night to run (YYYY-MM-DD; its window ends at the next midnight in the
            schedule's time zone); default: now.

    Returns:
        ``{"night", "status", "run_id", "findings", "new", "cleared", "alert"}``.
    """
    spec = load_spec(spec_path)
    with provider_for(spec, night=night):
        result = nightly_steps(
            spec,
            PREFECT_TASKS,
            night=date.fromisoformat(night) if night else None,
            store=store,
            reports=reports,
        )
    said = "".join(f"\n- {f['text']}" for f in result["new"])
    said += "".join(f"\n- cleared: {f['text']}" for f in result["cleared"])
    headline = f"# Night {result['night']}: {result['status']}{said}"
    publish_run(
        spec,
        result["run_id"] if result["status"] == "ok" else None,
        "nightly",
        headline,
        store=store,
    )
    return result


def nightly_deployment(spec_path: str) -> RunnerDeployment:
    """The nightly flow of one spec as a deployment on the spec's `schedule:` (cron + zone)."""
    spec = load_spec(spec_path)
    cron, zone = (
        (spec.schedule.cron, spec.schedule.timezone) if spec.schedule else (DEFAULT_CRON, "UTC")
    )
    deployment = nightly_watch.to_deployment(
        name=f"nightly-{spec.name}",
        schedules=[Cron(cron, timezone=zone)],
        parameters={"spec_path": str(Path(spec_path).resolve())},
        description=f"Nightly drift watch of {spec.name} ({cron}, {zone})",
    )
    assert isinstance(deployment, RunnerDeployment)  # (the sync call; async callers await it)
    return deployment


def serve_nightly(spec_path: str) -> None:
    """Serve the spec's nightly deployment on its schedule until interrupted (no work pool)."""
    serve(nightly_deployment(spec_path), print_starting_message=True)
