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
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from evalpipe import pipeline
from evalpipe.errors import EvalpipeError
from evalpipe.replay.limits import use_shared_gates

if TYPE_CHECKING:
    from evalpipe.gate.verdict import GateResult
    from evalpipe.spec import Spec
    from evalpipe.store import Run

__all__ = [
    "IN_PROCESS",
    "Stages",
    "WarmImports",
    "gate_steps",
    "prefect_api_configured",
    "provider_for",
    "run_in_process",
    "shadow_steps",
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
    _monitoring(run)
    return {"run_id": run.run_id, "exit_code": result.exit_code, "verdict": result.verdict}


def _monitoring(run: Run) -> None:
    """metrics.prom beside the run's files and report, pushed when a Pushgateway is configured;
    OpenTelemetry evaluation events when `otel.endpoint` is set."""
    from evalpipe.store.prom import push_metrics, write_metrics_prom

    text = write_metrics_prom(run)
    url = run.spec.alerts.pushgateway_url
    if url and "${" not in url:
        push_metrics(url, run.spec.name, text, timeout_s=run.spec.alerts.timeout_s)
    endpoint = run.spec.otel.endpoint
    if endpoint and "${" not in endpoint:
        from evalpipe.store.otel import emit_evaluation_events

        emit_evaluation_events(run, endpoint, timeout_s=run.spec.alerts.timeout_s)


def gate_steps(
    spec: Spec,
    stages: Stages,
    *,
    run_id: str | None = None,
    store: str | None = None,
    reports: str | None = None,
) -> dict[str, Any]:
    """The CI gate: the verdict of `run_id`, else of the spec's newest complete run (nothing
    re-run, no provider call), else of a new run through `shadow_steps`.

    Returns:
        ``{"run_id", "exit_code", "verdict", "reused"}``; `reused` when no stage ran.
    """
    from evalpipe.store import latest_complete_run, open_run

    run = open_run(spec, run_id, store=store) if run_id else latest_complete_run(spec, store=store)
    if run is not None and run.complete:
        result = pipeline.load_gate(run)
        return {
            "run_id": run.run_id,
            "exit_code": result.exit_code,
            "verdict": result.verdict,
            "reused": True,
        }
    run = run or open_run(spec, store=store)
    return {**shadow_steps(run, stages, reports=reports), "reused": False}


@contextmanager
def provider_for(spec: Spec, *, night: str | None = None) -> Iterator[None]:
    """The built-in fake provider while a flow runs, when the spec points at it (as the CLI
    starts it for its commands); for a given night, the fake answers for that night."""
    if not pipeline.needs_fake_provider(spec):
        yield
        return
    from evalpipe.fake import builtin_fake
    from evalpipe.fake.behaviours import NIGHT_ENV

    before = os.environ.get(NIGHT_ENV)
    if night:
        os.environ[NIGHT_ENV] = night
    try:
        with builtin_fake():
            yield
    finally:
        if night:
            if before is None:
                os.environ.pop(NIGHT_ENV, None)
            else:
                os.environ[NIGHT_ENV] = before


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


class WarmImports:
    """The later stages' imports (and the report's templates), loaded in a background thread in
    two waves.

    The SDKs and SciPy take over a second to import. Replay's modules (the engine and the arms'
    SDKs) load while the main thread starts servers and ingests; the rest (score, gate, report)
    once replay has begun, while it waits on the network. A stage waits for its wave before it
    runs: two threads importing one package at once can see it half made when it has circular
    imports (the SDKs do), so no stage imports what a wave is still loading.
    """

    def __init__(self, spec: Spec) -> None:
        import evalpipe.ingest  # noqa: F401  (ingest runs meanwhile: its imports come first)

        providers = {a.provider for a in spec.arms()} | {j.provider for j in spec.judges}
        self._replay = ["evalpipe.replay.engine"]
        self._replay += ["evalpipe.providers.anthropic"] if "anthropic" in providers else []
        self._replay += ["evalpipe.providers.openai"] if providers - {"anthropic"} else []
        self._rest = ["evalpipe.score", "evalpipe.gate", "evalpipe.report"]
        self._replay_loaded = threading.Event()
        self._replay_begun = threading.Event()
        self._thread = threading.Thread(
            target=self._load, name="evalpipe-warm-imports", daemon=True
        )
        self._thread.start()

    def _load(self) -> None:
        self._import(self._replay)
        self._replay_loaded.set()
        self._replay_begun.wait()
        self._import(self._rest)
        try:
            from evalpipe.report.html import compile_templates

            compile_templates()
        except Exception:  # the report stage compiles them again and reports a real failure
            log.debug("warm-up compile of the report templates failed", exc_info=True)

    @staticmethod
    def _import(names: list[str]) -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the stage imports it again and reports a real failure
                log.debug("warm-up import of %s failed", name, exc_info=True)

    def before_replay(self) -> None:
        """Wait for replay's modules; then let the rest load while replay runs."""
        self._replay_loaded.wait()
        self._replay_begun.set()

    def before_rest(self) -> None:
        """Wait for every module."""
        self.before_replay()
        self._thread.join()

    def stages(self, stages: Stages) -> Stages:
        """`stages`, each waiting for the modules it needs (ingest needs none of them)."""

        def after(wait: Callable[[], None], fn: Callable[..., T]) -> Callable[..., T]:
            def wrapped(*args: Any, **kwargs: Any) -> T:
                wait()
                return fn(*args, **kwargs)

            return wrapped

        return Stages(
            ingest=stages.ingest,
            replay_partitions=after(self.before_replay, stages.replay_partitions),
            finish_replay=after(self.before_replay, stages.finish_replay),
            score=after(self.before_rest, stages.score),
            gate=after(self.before_rest, stages.gate),
            report=after(self.before_rest, stages.report),
        )


def run_in_process(
    run: Run, *, reports: str | None = None, warming: WarmImports | None = None
) -> dict[str, Any]:
    """The shadow evaluation of `run` without Prefect (see the module's docstring).

    Args:
        warming: the stages' imports, loading in the background (`WarmImports`).
    """
    stages = IN_PROCESS if warming is None else warming.stages(IN_PROCESS)
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


def prefect_shared_gate(
    *, provider: str, host: str, model: str, rpm: int | None, tpm: int | None
) -> Callable[[int], Awaitable[None]] | None:
    """The Prefect rate limits every flow shares for an endpoint (`limits.shared`; imports Prefect
    only then), or None when no Prefect API is configured."""
    if not prefect_api_configured():
        return None
    from evalpipe.flows.shared_limits import PrefectRate, bucket

    where = {"provider": provider, "host": host, "model": model}
    gate = PrefectRate(
        bucket("rpm", rpm, **where) if rpm else None,
        bucket("tpm", tpm, **where) if tpm else None,
    )
    return gate.acquire


use_shared_gates(prefect_shared_gate)
