"""Reusing a nightly run's baseline answers in a gate run (`evalpipe gate --baseline-run`).

A nightly run replayed the pinned baseline on a traffic sample; a gate run on the same sample,
with the same baseline configuration, would send the very same requests. When the baseline's
configuration, the replay settings and the sample (the logged requests) all match, the gate run
takes the nightly run's cache salt: its baseline requests then hit the cache (no provider call,
nothing spent) and only the candidates are asked. Anything else is paid for as usual, and the
reason is said.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import pyarrow.compute as pc

from evalpipe.errors import StoreError
from evalpipe.pipeline import ingest_run
from evalpipe.spec import Spec
from evalpipe.store import Run, find_runs, open_run, store_root

__all__ = ["Reuse", "find_baseline_run", "reuse_baseline"]

log = logging.getLogger(__name__)


class Reuse(NamedTuple):
    """Whether a gate run reuses a nightly run's baseline answers, and why not when it does not."""

    source: str
    reused: bool
    reason: str


def find_baseline_run(spec: Spec, which: str, *, store: str | None = None) -> Run:
    """The nightly run `which` names: a run id, or `latest` (the newest finished nightly run of
    a spec of the same name).

    Raises:
        StoreError: no such run.
    """
    root = store_root(store or spec.store)
    manifests = find_runs(root)
    if which == "latest":
        nights = [
            m
            for m in manifests
            if (m.get("nightly") or {}).get("status") == "ok" and m.get("spec_name") == spec.name
        ]
        if nights:  # the newest night (run ids begun in one second sort by their hex)
            newest = max(nights, key=lambda m: (m["nightly"].get("night", ""), m["run_id"]))
            return open_run(spec, newest["run_id"], store=store)
    elif any(m.get("run_id") == which for m in manifests):
        return open_run(spec, which, store=store)
    raise StoreError(
        f"--baseline-run {which}: no finished nightly run of {spec.name!r} in {root}; "
        "`evalpipe trends SPEC` lists the nights"
    )


def _baseline_config(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "baseline": spec.get("baseline"),
        "replay": spec.get("replay"),
        "prices": spec.get("prices"),
        "seed": spec.get("seed"),
    }


def reuse_baseline(run: Run, source: Run) -> Reuse:
    """Give `run` (a new gate run) `source`'s cache salt when the two can share baseline answers.

    Ingests `run` first (its sample is compared by the logged requests' hashes).
    """
    theirs = source.manifest()
    if not (source.complete and (theirs.get("nightly") or {}).get("status") == "ok"):
        return Reuse(source.run_id, False, "it is not a finished nightly run")
    ours = run.manifest()
    if _baseline_config(ours.get("spec") or {}) != _baseline_config(theirs.get("spec") or {}):
        return Reuse(source.run_id, False, "the baseline or replay configuration differs")
    ingest_run(run)
    mine = run.read_records()["request_sha256"]
    other = source.read_records()["request_sha256"]
    if sorted(pc.drop_null(mine).to_pylist()) != sorted(pc.drop_null(other).to_pylist()):
        return Reuse(source.run_id, False, "its traffic sample differs from this run's")
    salt = theirs.get("cache_salt") or ""
    run.update_manifest(cache_salt=salt, baseline_reused_from=source.run_id)
    log.info("run %s reuses the baseline answers of nightly run %s", run.run_id, source.run_id)
    return Reuse(source.run_id, True, "")
