"""The shadow evaluation's steps, wired once, and the runner that runs them without Prefect.

`shadow_steps` is the one order of stages: ingest → replay (per partition) → score → gate →
report. The Prefect flow (`shadow_eval`) runs it with its stages as Prefect tasks, recorded on the
configured API. Without a Prefect API (no `PREFECT_API_URL`), `IN_PROCESS` runs the same stage
functions with the same task semantics (partitions mapped over a thread pool, a failed partition
retried once unless the user's input caused it), and no API server is started: Prefect's
temporary server costs about 8 s a process, more than a small run's stages.

Nothing here imports Prefect.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from evalpipe import pipeline
from evalpipe.errors import EvalpipeError

if TYPE_CHECKING:
    from evalpipe.gate.verdict import GateResult
    from evalpipe.spec import Spec
    from evalpipe.store import Run

__all__ = [
    "IN_PROCESS",
    "Stages",
    "prefect_api_configured",
    "run_in_process",
    "shadow_steps",
    "warm_imports",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

PARTITION_RETRIES: Final = 1
"""Retries of a replay partition that failed for a reason other than the user's input."""

_MAX_PARTITION_THREADS: Final = 8


@dataclass(frozen=True)
class Stages:
    """How each step runs: plain calls, or Prefect tasks."""

    ingest: Callable[[Run], Any]
    replay_partitions: Callable[[Run, list[int]], Any]
    finish_replay: Callable[[Run], Any]
    score: Callable[[Run], Any]
    gate: Callable[[Run], GateResult]
    report: Callable[..., Any]


def shadow_steps(run: Run, stages: Stages, *, reports: str | None = None) -> dict[str, Any]:
    """Ingest, replay, score, gate and report `run`; each stage does only what is missing.

    Returns:
        ``{"run_id", "exit_code", "verdict"}`` of the run.
    """
    stages.ingest(run)
    if not run.stage_done("replay"):
        stages.replay_partitions(run, pipeline.partitions(run))
        stages.finish_replay(run)
    stages.score(run)
    result = stages.gate(run)
    stages.report(run, result, out=reports)
    return {"run_id": run.run_id, "exit_code": result.exit_code, "verdict": result.verdict}


def is_transient(exc: BaseException) -> bool:
    """Whether a failed task may be retried: not when the user's input caused it."""
    return not isinstance(exc, EvalpipeError)


def _replay_in_threads(run: Run, parts: list[int]) -> None:
    """Replay partitions side by side, as Prefect's default thread-pool task runner does."""

    def one(part: int) -> int:
        for attempt in range(PARTITION_RETRIES + 1):
            try:
                return pipeline.replay_run(run, part)
            except Exception as exc:
                if attempt == PARTITION_RETRIES or not is_transient(exc):
                    raise
                log.warning("replay partition %d failed (%s); retrying", part, exc)
        raise AssertionError("unreachable")

    if len(parts) == 1:
        one(parts[0])
        return
    with ThreadPoolExecutor(min(len(parts), _MAX_PARTITION_THREADS)) as pool:
        for _ in pool.map(one, parts):  # the first failure is raised; the rest are not lost
            pass


IN_PROCESS: Final = Stages(
    ingest=pipeline.ingest_run,
    replay_partitions=_replay_in_threads,
    finish_replay=pipeline.finish_replay,
    score=pipeline.score_run,
    gate=pipeline.gate_run,
    report=pipeline.report_run,
)


def warm_imports(spec: Spec) -> threading.Thread:
    """Start importing the modules the stages after ingest need, in a background thread.

    The SDKs and SciPy take over a second to import; meanwhile the main thread starts servers
    and ingests, mostly without the GIL. Join the thread before any of those stages runs: two
    threads importing one package with circular imports (the SDKs have them) can see it half
    made. `run_in_process(warming=…)` does so.
    """
    import evalpipe.ingest  # noqa: F401  (ingest runs meanwhile: its imports come first, here)

    modules = ["evalpipe.replay.engine"]
    providers = {a.provider for a in spec.arms()} | {j.provider for j in spec.judges}
    modules += ["evalpipe.providers.anthropic"] if "anthropic" in providers else []
    modules += ["evalpipe.providers.openai"] if providers - {"anthropic"} else []
    modules += ["evalpipe.score", "evalpipe.gate", "evalpipe.report"]

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # the stage imports it again and reports a real failure
                log.debug("warm-up import of %s failed", name, exc_info=True)

    thread = threading.Thread(target=load, name="evalpipe-warm-imports", daemon=True)
    thread.start()
    return thread


def _after(warming: threading.Thread, fn: Callable[..., T]) -> Callable[..., T]:
    def wrapped(*args: Any, **kwargs: Any) -> T:
        warming.join()
        return fn(*args, **kwargs)

    return wrapped


def run_in_process(
    run: Run, *, reports: str | None = None, warming: threading.Thread | None = None
) -> dict[str, Any]:
    """The shadow evaluation of `run` without Prefect (see the module's docstring).

    Args:
        warming: a `warm_imports` thread, joined before the first stage after ingest.
    """
    stages = IN_PROCESS
    if warming is not None:
        stages = Stages(
            ingest=IN_PROCESS.ingest,
            replay_partitions=_after(warming, IN_PROCESS.replay_partitions),
            finish_replay=_after(warming, IN_PROCESS.finish_replay),
            score=_after(warming, IN_PROCESS.score),
            gate=_after(warming, IN_PROCESS.gate),
            report=_after(warming, IN_PROCESS.report),
        )
    return shadow_steps(run, stages, reports=reports)


def prefect_api_configured() -> bool:
    """Whether a Prefect API is configured: `PREFECT_API_URL` in the environment or the active
    Prefect profile, or (when Prefect is already loaded, as under its test harness) its settings.

    Read without importing Prefect, which takes most of a second.
    """
    if os.environ.get("PREFECT_API_URL"):
        return True
    if "prefect.settings" in sys.modules:
        from prefect.settings import get_current_settings

        return bool(get_current_settings().api.url)
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        profiles = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    profile = profiles.get("profiles", {}).get(active, {})
    return bool(isinstance(profile, dict) and profile.get("PREFECT_API_URL"))
