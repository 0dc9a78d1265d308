"""The shadow evaluation flow: ingest → replay (per partition) → score → gate → report."""

from __future__ import annotations

from typing import Any

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE

from evalpipe import pipeline
from evalpipe.errors import EvalpipeError
from evalpipe.spec import load_spec
from evalpipe.store import open_run


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed task unless it failed on the user's input (spec, auth, unknown model)."""
    try:
        state.result()
    except EvalpipeError:
        return False
    except Exception:
        return True
    return False


# Runs are resumable by their own stage markers; Prefect's input-hash cache stays out of the way.
ingest = task(name="ingest", cache_policy=NO_CACHE)(pipeline.ingest_run)
replay = task(
    name="replay-partition", retries=1, retry_condition_fn=_transient, cache_policy=NO_CACHE
)(pipeline.replay_run)
finish_replay = task(name="finish-replay", cache_policy=NO_CACHE)(pipeline.finish_replay)
score = task(name="score", cache_policy=NO_CACHE)(pipeline.score_run)
gate = task(name="gate", cache_policy=NO_CACHE)(pipeline.gate_run)
report = task(name="report", cache_policy=NO_CACHE)(pipeline.report_run)


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
    ingest(run)
    if not run.stage_done("replay"):
        replay.map(run=unmapped(run), part=pipeline.partitions(run)).result()
        finish_replay(run)
    score(run)
    result = gate(run)
    report(run, result, out=reports)
    return {"run_id": run.run_id, "exit_code": result.exit_code, "verdict": result.verdict}
