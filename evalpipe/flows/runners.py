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
from typing import Any, Final, Literal

from evalpipe.errors import EvalpipeError

__all__ = ["RUNNERS", "TaskRunnerName", "task_runner", "worker_env"]

TaskRunnerName = Literal["dask", "ray"]

RUNNERS: Final[tuple[str, ...]] = ("dask", "ray")

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
        workers: worker processes of a local Dask cluster (default: Dask's, one per core).

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
        kwargs: dict[str, Any] = {"processes": True, "dashboard_address": ":0"}
        if workers:
            kwargs.update(n_workers=workers, threads_per_worker=1)
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
