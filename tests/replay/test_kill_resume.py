"""`kill -9` in the middle of replay, then resume: nothing answered is paid for twice.

The requests of both runs together are at most N × arms plus those in flight at the kill; a third
run of the spec sends none (the cache has every answer, also those only journaled before the
kill); the resumed run's tables equal an uninterrupted run's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe import pipeline
from evalpipe.fake import serving
from evalpipe.spec import load_spec
from evalpipe.store import open_run, read_table

from .specs import demo_traffic_spec

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"
N = 100
CONCURRENCY = 8
MODELS = ("gpt-4o-mini", "claude-haiku-4-5")

_CHILD = """
import sys
from evalpipe import pipeline
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import open_run

spec_path, run_id = sys.argv[1], sys.argv[2]
run = open_run(load_spec(spec_path), run_id)
IN_PROCESS.replay_partitions(run, pipeline.partitions(run))
IN_PROCESS.finish_replay(run)
print(run.run_id)
"""


@pytest.fixture
def root() -> Iterator[str]:
    with serving(latency_ms=30.0, jitter=0.0) as url:
        yield url


def _spec(folder: Path, root: str) -> Path:
    return demo_traffic_spec(
        folder,
        root,
        name="kill",
        n=N,
        models=MODELS,
        limits={"default": {"concurrency": CONCURRENCY}},
    )


def _child(spec: Path, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(spec), run_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return out.strip().splitlines()[-1]


def _in_process(spec: Path) -> str:
    """A new run of `spec`, replayed in this process; its run id."""
    from evalpipe.flows.wiring import IN_PROCESS

    run = open_run(load_spec(spec))
    pipeline.ingest_run(run)
    IN_PROCESS.replay_partitions(run, pipeline.partitions(run))
    IN_PROCESS.finish_replay(run)
    return run.run_id


def _requests(root: str) -> int:
    seen = httpx.get(f"{root}/_fake/traffic").json()
    return sum(seen.get(m, {}).get("requests", 0) for m in MODELS)


def _table(run_dir: Path, spec: Path, run_id: str) -> pa.Table:
    run = open_run(load_spec(spec), run_id)
    t = read_table(run.path("responses"))
    t = t.filter(pc.not_equal(t["arm"], "logged"))
    cols = ["record_id", "arm", "status", "output_text", "input_tokens", "output_tokens"]
    return t.select(cols).sort_by([("arm", "ascending"), ("record_id", "ascending")])


def test_kill_9_then_resume_pays_once_and_a_third_run_sends_nothing(
    root: str, tmp_path: Path
) -> None:
    spec = _spec(tmp_path / "killed", root)
    run = open_run(load_spec(spec))
    pipeline.ingest_run(run)
    first = _child(spec, run.run_id)
    while _requests(root) < N // 2:  # about a quarter of the 2 × N requests
        assert first.poll() is None, first.communicate()[1][-2000:]
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _requests(root)
    assert killed_at < 2 * N
    # the cache is written by a background thread: a kill may lose what it had not written yet
    shutil.rmtree(run.cache_dir, ignore_errors=True)

    assert _finish(_child(spec, run.run_id)) == run.run_id
    resumed = _requests(root)
    # in flight at the kill: at most the concurrency of each model
    assert resumed <= 2 * N + CONCURRENCY * len(MODELS)
    table = _table(tmp_path, spec, run.run_id)
    assert table.num_rows == 2 * N
    assert set(table["status"].to_pylist()) == {"ok"}
    assert (
        pc.count_distinct(
            pc.binary_join_element_wise(table["arm"], table["record_id"], ":")
        ).as_py()
        == 2 * N
    )

    third = _in_process(spec)
    assert _requests(root) == resumed  # every answer came from the cache

    clean = _spec(tmp_path / "clean", root)
    uninterrupted = _in_process(clean)
    assert _table(tmp_path, clean, uninterrupted).equals(table)
    assert _table(tmp_path, spec, third).equals(table)
