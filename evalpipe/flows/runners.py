"""Prefect task runners that spread a run's partitioned stages over a cluster (Dask or Ray).

`--task-runner dask` is prefect-dask's `DaskTaskRunner` (a `LocalCluster` unless an address is
given), `--task-runner ray` prefect-ray's `RayTaskRunner` (a local Ray unless an address is given).
Both are optional extras (`pip install 'evalpipe[dask]'`, `'evalpipe[ray]'`).

A partition task runs in another process there: it gets the run (folder path and spec) and the
environment the driver's stages need (`worker_env`), and reaches everything else through the run
folder on disk; the run's budget and rpm/tpm are shared through the run's ledger
(`replay/ledger.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal

from evalpipe.errors import EvalpipeError

__all__ = ["RUNNERS", "TaskRunnerName", "api_for_workers", "task_runner", "worker_env"]

TaskRunnerName = Literal["dask", "ray"]

RUNNERS: Final[tuple[str, ...]] = ("dask", "ray")

THREADS_PER_WORKER: Final = 4
"""Partitions a worker of a local Dask cluster runs side by side. A partition waits on its
providers most of the time (replay's requests, the judges' calls); the default runner keeps up to
8 in flight in one process. With one at a time per worker, 2 workers scored a 20k-record run
2.5 × slower than the default runner."""

WORKER_ENV: Final = ("EVALPIPE_FAKE_URL",)
"""Environment variables the driver sets for its stages (the built-in fake provider's URL) that a
worker started before them must see too."""


def worker_env() -> dict[str, str]:
    """The driver's values of `WORKER_ENV`, to be set in each worker before a partition runs, and
    `EVALPIPE_CACHE_CLAIMS=1`: the workers replay into one cache at once, so each claims a request
    before buying it and the others wait for its answer (`replay.cache`)."""
    from evalpipe.replay.cache import CLAIMS_ENV

    return {k: os.environ[k] for k in WORKER_ENV if os.environ.get(k)} | {CLAIMS_ENV: "1"}


def task_runner(name: str, address: str | None = None, *, workers: int | None = None) -> Any:
    """A Prefect task runner by name: `dask` or `ray`, on a local cluster or at `address`.

    Args:
        workers: worker processes of a local Dask cluster (default: one per core), each running
            `THREADS_PER_WORKER` partitions side by side.

    Raises:
        EvalpipeError: an unknown name, or its extra is not installed.
    """
    if name == "dask":
        try:
            from prefect_dask.task_runners import DaskTaskRunner
        except ImportError:
            raise EvalpipeError(
                "--task-runner dask needs prefect-dask: pip install 'evalpipe[dask]'"
            ) from None
        if address:
            return DaskTaskRunner(address=address)
        kwargs: dict[str, Any] = {
            "processes": True,
            "dashboard_address": ":0",
            "n_workers": workers or os.cpu_count() or 1,
            "threads_per_worker": THREADS_PER_WORKER,
        }
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=kwargs)
    if name == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise EvalpipeError(
                "--task-runner ray needs prefect-ray: pip install 'evalpipe[ray]'"
            ) from None
        init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            return RayTaskRunner(address=address, init_kwargs=init)
        if workers:
            init["num_cpus"] = workers
        return RayTaskRunner(init_kwargs=init)
    raise EvalpipeError(f"--task-runner {name!r}: choose one of {', '.join(RUNNERS)}")


@contextmanager
def api_for_workers() -> Iterator[None]:
    """One Prefect API for the driver and a cluster's workers while the context is open.

    With a Prefect API configured, nothing to do. Without one, Prefect would start a temporary
    server in every process that runs a task: in each Dask or Ray worker too (about 10 s each,
    all on one SQLite database, where they fail with "database is locked"), and the workers'
    task runs would be recorded there, not beside the flow run. So one temporary server starts
    here, its URL in the environment (the workers a local cluster starts inherit it) and in the
    settings (sent with each task to a running cluster's workers, which must reach this
    machine's 127.0.0.1 to report: a cluster elsewhere needs `PREFECT_API_URL` of a server it
    reaches).
    """
    from evalpipe.flows.wiring import prefect_api_configured

    if prefect_api_configured():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer(port=_free_port())  # (not the process's shared instance)
    server.start()
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
        server.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
