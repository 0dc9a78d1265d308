"""The shadow evaluation flow: `wiring.shadow_steps` with its stages as Prefect tasks.

A partitioned stage (replay, score) maps one task per partition over the flow's task runner: a
Dask or Ray cluster (`flows/runners.py`), whose workers are other processes, or Prefect's thread
pool by default (replay; score stays one task there, see `score`). A partition task therefore
gets only what pickles (the run: its folder and spec; the stage's name; the driver's environment
for its stages) and reads the rest from the run folder.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Final

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from evalpipe import pipeline
from evalpipe.flows.runners import worker_env
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

PARTITIONED: Final[dict[str, Callable[[Run, int], Any]]] = {
    "replay": pipeline.replay_run,
    "score": pipeline.score_partition,
}
"""Stages that run one task per partition, by name: `stage(run, part)`."""


def _partition(stage: str, run: Run, part: int, env: dict[str, str]) -> Any:
    """Partition `part` of `stage` of `run`, in whichever process the task runner chose."""
    os.environ.update(env)  # a worker started before the driver set them, or for another run
    return PARTITIONED[stage](run, part)


def map_partitions(stage: str) -> Callable[[Run, list[int]], None]:
    """`stage`'s partitions (a `PARTITIONED` stage) as mapped tasks on the flow's task runner,
    each retried once unless the user's input failed it; waits for all of them."""
    if stage not in PARTITIONED:
        raise KeyError(f"{stage!r} is not a partitioned stage: {', '.join(PARTITIONED)}")
    one = task(
        name=f"{stage}-partition",
        retries=PARTITION_RETRIES,
        retry_condition_fn=_transient,
        cache_policy=NO_CACHE,
    )(_partition)

    def mapped(run: Run, parts: list[int]) -> None:
        one.map(
            stage=unmapped(stage), run=unmapped(run), part=parts, env=unmapped(worker_env())
        ).result()

    return mapped


finish_replay = task(name="finish-replay", cache_policy=NO_CACHE)(pipeline.finish_replay)
score_whole = task(name="score", cache_policy=NO_CACHE)(pipeline.score_run)
score_partitions = map_partitions("score")
finish_score = task(name="finish-score", cache_policy=NO_CACHE)(pipeline.finish_score)


def score(run: Run) -> int:
    """Score the run: on a Dask or Ray cluster one task per partition on its workers (the
    anchor sets judged with partition 0), then `finish-score`; on Prefect's thread pool one
    `score` task, whose own pool bounds how many partitions are in memory at once (the thread
    pool would start them all). Returns the run's number of score rows."""
    if run.stage_done("score") or not _distributed():
        return int(score_whole(run))
    started = time.perf_counter()
    score_partitions(run, pipeline.score_partitions(run))
    return int(finish_score(run, time.perf_counter() - started))


gate = task(name="gate", cache_policy=NO_CACHE)(pipeline.gate_run)
report = task(name="report", cache_policy=NO_CACHE)(pipeline.report_run)


PREFECT_TASKS = Stages(
    ingest=ingest,
    replay_partitions=map_partitions("replay"),
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
    _share_limits_if_distributed(run)
    with provider_for(spec):
        result = shadow_steps(run, PREFECT_TASKS, reports=reports)
    from evalpipe.flows.artifacts import publish_run

    publish_run(
        spec, run.run_id, "shadow-eval", f"# Shadow evaluation: {result['verdict']}", store=store
    )
    return result


def _share_limits_if_distributed(run: Run) -> None:
    """Mark the run for limits shared across processes (its ledger) when the flow's task runner
    may run partitions in other processes (Dask, Ray): workers read the mark from the manifest."""
    shared = _distributed()
    if shared or run.manifest().get(pipeline.SHARED_LIMITS):
        run.update_manifest(**{pipeline.SHARED_LIMITS: shared})


def _distributed() -> bool:
    """Whether the flow's task runner may run tasks in other processes (Dask, Ray)."""
    ctx = FlowRunContext.get()
    runner = ctx.task_runner if ctx is not None else None
    return runner is not None and not isinstance(runner, ThreadPoolTaskRunner)


def _one_spec(
    spec_path: str, store: str | None, reports: str | None, env: dict[str, str]
) -> dict[str, Any]:
    """One spec's whole run, in whichever process the task runner chose; its partitions replay
    there side by side (threads), within the run's one budget and limits. A failure the user's
    input caused is the run's result (exit 4), so that the other specs' runs go on."""
    from evalpipe.errors import EvalpipeError
    from evalpipe.flows.wiring import run_in_process

    os.environ.update(env)
    try:
        spec = load_spec(spec_path)
        run = open_run(spec, store=store)
        with provider_for(spec):
            result = run_in_process(run, reports=reports)
    except EvalpipeError as exc:
        return {"spec": spec_path, "run_id": None, "exit_code": exc.exit_code, "error": str(exc)}
    return {"spec": spec_path, **result, "error": None}


one_spec = task(name="shadow-run", cache_policy=NO_CACHE)(_one_spec)


@flow(name="shadow-eval-many", log_prints=False, validate_parameters=False)
def shadow_eval_many(
    spec_paths: list[str], store: str | None = None, reports: str | None = None
) -> list[dict[str, Any]]:
    """Run each spec's shadow evaluation as a task of the flow's task runner (spread over a Dask
    or Ray cluster's workers). Runs in one store share its content-addressed cache.

    Returns:
        Per spec, in order: ``{"spec", "run_id", "exit_code", "verdict", "error"}``.
    """
    futures = one_spec.map(
        spec_path=spec_paths,
        store=unmapped(store),
        reports=unmapped(reports),
        env=unmapped(worker_env()),
    )
    return [f.result() for f in futures]
