"""A run and its cache on a local S3-compatible server: `evalpipe run` killed with -9 in the
middle of replay, resumed on "another machine" (a fresh staging folder) against the same s3://
store, pays for no answer the bucket's cache held, and ends with the tables of a local-store run;
`evalpipe runs` lists it from the bucket's manifests."""

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
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from evalpipe.fake import serving
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run, read_table

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "eval_sets" / "demo"
N = 100
CONCURRENCY = 8
MODELS = ("gpt-4o-mini", "claude-haiku-4-5")

# what differs between two runs of one spec by nature: ids, clocks, the cache, the log's folder
_VARYING = {"run_id", "latency_ms", "ttft_ms", "started_at", "cache_hit", "source_file"}


@pytest.fixture
def fake() -> Iterator[str]:
    with serving(latency_ms=30.0, jitter=0.0) as url:
        yield url


def _spec(folder: Path, fake: str, store: str) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(DEMO / "traffic.jsonl.gz", folder)
    spec = {
        "name": "s3resume",
        "store": store,
        "traffic": {"path": "traffic.jsonl.gz", "sample": {"n": N}},
        "baseline": {
            "provider": "openai",
            "model": MODELS[0],
            "base_url": f"{fake}/v1",
            "compare_logged": False,
        },
        "candidates": [
            {"name": "haiku", "provider": "anthropic", "model": MODELS[1], "base_url": fake}
        ],
        "limits": {"default": {"concurrency": CONCURRENCY}},
        "report": {"out": str(folder / "reports")},
    }
    (folder / "eval.yaml").write_text(yaml.safe_dump(spec))
    return folder / "eval.yaml"


def _cli(*args: str, cwd: Path, staging: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "EVALPIPE_STAGING_DIR": str(staging)}
    return subprocess.Popen(
        [sys.executable, "-m", "evalpipe.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _verdict_exit(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode in (0, 1, 2, 3), err[-3000:]
    return out


def _requests(fake: str) -> int:
    seen = httpx.get(f"{fake}/_fake/traffic").json()
    return sum(seen.get(m, {}).get("requests", 0) for m in MODELS)


def _table(run: Run, name: str) -> pa.Table:
    table = read_table(run.path(name))
    if "metric" in table.column_names:  # measured latency is a clock too
        table = table.filter(pc.invert(pc.starts_with(table["metric"], "latency")))
    keep = [c for c in table.column_names if c not in _VARYING]
    keys = [
        k
        for k in ("candidate", "arm", "metric", "slice_col", "slice_value", "record_id", "repeat")
        if k in keep
    ]
    return table.select(keep).sort_by([(k, "ascending") for k in keys])


def test_killed_run_on_s3_resumes_elsewhere_without_paying_twice_and_equals_a_local_run(
    fake: str, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s3fs

    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    prefix = s3_url.removeprefix("s3://")
    spec = _spec(tmp_path / "s3", fake, s3_url)

    first = _cli("run", str(spec), cwd=tmp_path, staging=tmp_path / "machine-a")
    while _requests(fake) < N // 2:  # about a quarter of the 2 × N requests
        assert first.poll() is None, first.communicate()[1][-3000:]
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    paid_before_kill = _requests(fake)
    assert paid_before_kill < 2 * N
    bucket.invalidate_cache()
    (run_dir,) = bucket.ls(f"{prefix}/runs")
    run_id = run_dir.rsplit("/", 1)[-1]
    cached_in_bucket = len(bucket.find(f"{prefix}/cache"))
    assert cached_in_bucket > 0  # pushed as they were written, before the kill

    # another machine: a fresh staging folder, only the bucket to go by
    resumed = _cli(
        "run", str(spec), "--run-id", run_id, cwd=tmp_path, staging=tmp_path / "machine-b"
    )
    _verdict_exit(resumed)
    paid_on_resume = _requests(fake) - paid_before_kill
    bucket.invalidate_cache()
    manifest = orjson.loads(bucket.cat_file(f"{prefix}/runs/{run_id}/manifest.json"))
    assert all(manifest["stages"][s] == "done" for s in ("ingest", "replay", "score", "gate"))
    hits = sum(c["cache_hits"] for c in manifest["coverage"].values())
    # every request of the resumed run was either sent or answered by the cache, and every
    # answer the bucket's cache held at the kill was a hit, not a request
    assert paid_on_resume + hits == 2 * N
    assert hits >= cached_in_bucket
    assert paid_on_resume <= 2 * N - cached_in_bucket
    assert len(bucket.find(f"{prefix}/cache")) == 2 * N

    local_spec = _spec(tmp_path / "local", fake, str(tmp_path / "local" / "store"))
    _verdict_exit(_cli("run", str(local_spec), cwd=tmp_path, staging=tmp_path / "unused"))
    (local_id,) = os.listdir(tmp_path / "local" / "store" / "runs")
    local = open_run(load_spec(local_spec), local_id)

    monkeypatch.setenv("EVALPIPE_STAGING_DIR", str(tmp_path / "machine-c"))
    on_s3 = open_run(load_spec(spec), run_id)  # pulled from the bucket
    assert on_s3.manifest()["verdict"] == local.manifest()["verdict"]
    assert on_s3.manifest()["candidates"] == local.manifest()["candidates"]
    for name in ("records.parquet", "responses", "scores", "gate.parquet"):
        a, b = _table(on_s3, name), _table(local, name)
        assert a.num_rows == b.num_rows > 0, name
        differ = [c for c in a.column_names if not a[c].equals(b[c])]
        assert differ == [], name

    listed = _cli("runs", "--store", s3_url, cwd=tmp_path, staging=tmp_path / "machine-d")
    out, err = listed.communicate(timeout=120)
    assert listed.returncode == 0, err[-3000:]
    (line,) = out.strip().splitlines()
    assert line.startswith(f"{run_id}  s3resume  ")
    assert f"haiku {manifest['candidates']['haiku']['verdict']}" in line

    trends = _cli(
        "report",
        "--trends",
        "s3resume",
        "--store",
        s3_url,
        "--out",
        str(tmp_path / "trends"),
        cwd=tmp_path,
        staging=tmp_path / "machine-e",
    )
    out, err = trends.communicate(timeout=120)
    assert trends.returncode == 0, err[-3000:]
    assert (tmp_path / "trends" / "trends" / "s3resume.html").is_file()
