"""The canary ramp flow (`canary`): `ramp.canary_steps` with its stages as Prefect tasks."""

from __future__ import annotations

from typing import Any

from prefect import flow

from evalpipe.flows.artifacts import publish_run
from evalpipe.flows.ramp import canary_steps
from evalpipe.flows.shadow import PREFECT_TASKS
from evalpipe.spec import load_spec


@flow(name="canary", log_prints=False, validate_parameters=False)
def canary_ramp(
    spec_path: str, step: int | None = None, store: str | None = None
) -> list[dict[str, Any]]:
    """Decide promote / hold / roll back at ramp step `step` (or walk the ramp's steps).

    Returns:
        One decision per step decided: ``{"step", "decision", "verdict", "reason", "run_id", …}``.
    """
    spec = load_spec(spec_path)
    decisions = canary_steps(spec, PREFECT_TASKS, step=step, store=store)
    last = decisions[-1]
    headline = (
        f"# Canary step {last['step']} of {last['steps']}: {last['decision']}\n\n{last['reason']}"
    )
    publish_run(spec, str(last["run_id"]), "canary", headline, store=store)
    return decisions
