"""The CI gate flow (`gate`): `wiring.gate_steps` with its stages as Prefect tasks, for teams
that gate from Prefect instead of CI."""

from __future__ import annotations

from typing import Any

from prefect import flow

from evalpipe.flows.artifacts import publish_run
from evalpipe.flows.shadow import PREFECT_TASKS
from evalpipe.flows.wiring import gate_steps, provider_for
from evalpipe.spec import load_spec


@flow(name="gate", log_prints=False, validate_parameters=False)
def ci_gate(
    spec_path: str, run_id: str | None = None, store: str | None = None, reports: str | None = None
) -> dict[str, Any]:
    """The verdict of the spec's newest complete run (or of a new run when there is none).

    Returns:
        ``{"run_id", "exit_code", "verdict", "reused"}``: exit code 0 GO, 1 NO-GO,
        2 NOT-PROVEN, 3 INVALID.
    """
    spec = load_spec(spec_path)
    with provider_for(spec):
        result = gate_steps(spec, PREFECT_TASKS, run_id=run_id, store=store, reports=reports)
    publish_run(spec, str(result["run_id"]), "gate", f"# Gate: {result['verdict']}", store=store)
    return result
