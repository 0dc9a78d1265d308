"""The shadow evaluation flow: `wiring.shadow_steps` with its stages as Prefect tasks."""

from __future__ import annotations

from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from evalpipe import pipeline
from evalpipe.flows.wiring import (
    PARTITION_RETRIES,
    Stages,
    is_transient,
    provider_for,
    shadow_steps,
)
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless it failed on the user's input (spec, auth, unknown model)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


# Runs are resumable by their own stage markers; Prefect's input-hash cache stays out of the way.
ingest = task(name="ingest", cache_policy=NO_CACHE)(pipeline.ingest_run)
replay = task(
    name="replay-partition",
    retries=PARTITION_RETRIES,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)(pipeline.replay_run)
finish_replay = task(name="finish-replay", cache_policy=NO_CACHE)(pipeline.finish_replay)
score = task(name="score", cache_policy=NO_CACHE)(pipeline.score_run)
gate = task(name="gate", cache_policy=NO_CACHE)(pipeline.gate_run)
report = task(name="report", cache_policy=NO_CACHE)(pipeline.report_run)


def _replay_mapped(run: Run, parts: list[int]) -> None:
    replay.map(run=unmapped(run), part=parts).result()


PREFECT_TASKS = Stages(
    ingest=ingest,
    replay_partitions=_replay_mapped,
    finish_replay=finish_replay,
    score=score,
    gate=gate,
    report=report,
)


@flow(name="shadow-eval", log_prints=False, validate_parameters=False)
def shadow_eval(
    spec_path: str, run_id: str | None = None, store: str | None = None, reports: str | None = None
) -> dict[str, Any]:
    """Replay logged traffic against baseline and candidates, then score, gate and report.

    Returns:
        ``{"run_id", "exit_code", "verdict"}`` of the run.
    """
    spec = load_spec(spec_path)
    run = open_run(spec, run_id, store=store)
    with provider_for(spec):
        result = shadow_steps(run, PREFECT_TASKS, reports=reports)
    from evalpipe.flows.artifacts import publish_run

    publish_run(
        spec, run.run_id, "shadow-eval", f"# Shadow evaluation: {result['verdict']}", store=store
    )
    return result
