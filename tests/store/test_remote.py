"""A store on a local S3-compatible server: pushed files then the manifest, pulled on another
machine (another staging folder), the catalog rebuilt from the bucket, the cache shared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from evalpipe.errors import StoreError
from evalpipe.replay.cache import ResponseCache
from evalpipe.spec import spec_from_dict
from evalpipe.store import (
    find_runs,
    latest_complete_run,
    list_runs,
    open_run,
    read_table,
    rebuild_catalog,
    store_root,
    write_table_atomic,
)
from evalpipe.tables import GATE, from_rows


def _spec(tmp_path: Path, store: str):
    (tmp_path / "t.jsonl").write_text("{}\n")
    return spec_from_dict(
        {
            "name": "shop",
            "store": store,
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
        },
        spec_dir=tmp_path,
    )


def _bucket():
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True)


def _key(url: str, rel: str) -> str:
    return f"{url.removeprefix('s3://')}/{rel}"


def _finish(run) -> None:
    for stage in ("ingest", "replay", "score"):
        run.mark_stage(stage, 0.1)
    gate = from_rows(
        [{"run_id": run.run_id, "candidate": "c", "metric": "ok", "verdict": "GO", "n": 10}],
        GATE,
    )
    write_table_atomic(gate, run.path("gate.parquet"))
    run.update_manifest(verdict="GO", exit_code=0, candidates={"c": {"verdict": "GO"}})
    run.mark_stage("gate", 0.1)


def test_a_run_is_pushed_files_first_and_pulled_whole_on_another_machine(
    s3_url: str, staging: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = _spec(tmp_path, s3_url)
    run = open_run(spec)
    assert run.root.is_relative_to(tmp_path / "staging-a")
    bucket = _bucket()
    manifest = _key(s3_url, f"runs/{run.run_id}/manifest.json")
    assert orjson.loads(bucket.cat_file(manifest))["run_id"] == run.run_id

    run.responses_dir.mkdir(parents=True)
    (run.responses_dir / "journal-baseline-r0-p00000.jsonl").write_text('{"a": 1}\n')
    _finish(run)
    on_bucket = {p.rsplit("/", 1)[-1] for p in bucket.find(_key(s3_url, f"runs/{run.run_id}"))}
    # the journal of an unfinished partition stays in the staging folder
    assert on_bucket == {"manifest.json", "gate.parquet"}
    # the manifest is the commit: written after the files it speaks for
    assert (
        bucket.info(manifest)["LastModified"]
        >= bucket.info(_key(s3_url, f"runs/{run.run_id}/gate.parquet"))["LastModified"]
    )

    staging("b")  # another machine: nothing staged yet
    again = open_run(spec, run.run_id)
    assert again.root != run.root and again.root.is_relative_to(tmp_path / "staging-b")
    assert again.manifest() == run.manifest()
    assert read_table(again.path("gate.parquet")).equals(read_table(run.path("gate.parquet")))
    assert not again.responses_dir.exists()
    found = latest_complete_run(spec)
    assert found is not None and found.run_id == run.run_id


def test_the_catalog_is_rebuilt_from_the_manifests_in_the_bucket(
    s3_url: str, staging: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = _spec(tmp_path, s3_url)
    done = open_run(spec)
    _finish(done)
    unfinished = open_run(spec)
    unfinished.mark_stage("ingest", 0.1)

    staging("b")
    root = store_root(s3_url)
    assert not (root / "catalog.duckdb").exists()
    # newest first (by creation time)
    assert [m["run_id"] for m in find_runs(root)] == [unfinished.run_id, done.run_id]
    listed = list_runs(root)
    assert [(r.run_id, r.verdicts) for r in listed] == [(done.run_id, {"c": "GO"})]
    # a run finished elsewhere (machine a) shows up at the next listing
    _finish(unfinished)
    assert {r.run_id for r in list_runs(store_root(s3_url))} == {done.run_id, unfinished.run_id}
    assert rebuild_catalog(store_root(s3_url), spec) == 2


def test_the_cache_is_pushed_as_written_and_read_from_the_bucket_on_a_miss(
    s3_url: str, staging: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = _spec(tmp_path, s3_url)
    run = open_run(spec)
    remote = run.remote
    assert remote is not None
    cache = ResponseCache(run.cache_dir, remote=remote)
    entries = {f"{i:02x}" + "ab" * 31: {"output_text": f"answer {i}"} for i in range(70)}
    for key, value in entries.items():
        cache.put(key, value)
    cache.flush()
    bucket = _bucket()
    assert len(bucket.find(_key(s3_url, "cache"))) == 70

    staging("b")
    other = open_run(spec, run.run_id)
    assert other.remote is not None and other.remote is not remote
    fresh = ResponseCache(other.cache_dir, remote=other.remote)
    key = next(iter(entries))
    assert fresh.get(key) == entries[key]
    fresh.flush()
    assert fresh._read(key) is not None  # kept here, in the local SQLite file
    assert fresh.get("ff" + "00" * 31) is None
    # a cache that does not read (write_only) never asks
    assert ResponseCache(other.cache_dir, "write_only", remote=other.remote).get(key) is None


def test_a_missing_run_or_bucket_is_one_store_error_naming_the_url(
    s3_url: str, tmp_path: Path, staging: Callable[[str], Path]
) -> None:
    spec = _spec(tmp_path, s3_url)
    with pytest.raises(StoreError, match=rf"no run 'nope' in {s3_url}/runs"):
        open_run(spec, "nope")
    missing = _spec(tmp_path, "s3://no-such-bucket-here/x")
    with pytest.raises(
        StoreError, match=r"store s3://no-such-bucket-here/x: writing run .* failed"
    ):
        open_run(missing)
    odd = _spec(tmp_path, "nosuchscheme://x/y")
    with pytest.raises(StoreError, match="store nosuchscheme://x/y"):
        open_run(odd)


def test_a_local_store_has_no_remote_and_imports_no_filesystem(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from evalpipe.spec import spec_from_dict; "
        "from evalpipe.store import open_run, find_runs; "
        f"Path({str(tmp_path)!r}, 't.jsonl').write_text('{{}}\\n'); "
        "s = spec_from_dict({'name': 's', 'store': 'st', 'traffic': {'path': 't.jsonl'}, "
        "'baseline': {'provider': 'openai', 'model': 'm'}, 'candidates': [{'name': 'c', "
        f"'provider': 'openai', 'model': 'n'}}]}}, spec_dir=Path({str(tmp_path)!r})); "
        "r = open_run(s, store=str(Path(" + repr(str(tmp_path)) + ", 'st'))); "
        "assert r.remote is None; find_runs(r.root); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fsspec', 's3fs', 'botocore', 'aiobotocore') or m == 'evalpipe.store.remote'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def test_pushed_parts_are_whole_objects(
    s3_url: str, staging: Callable[[str], Path], tmp_path: Path
) -> None:
    spec = _spec(tmp_path, s3_url)
    run = open_run(spec)
    part = run.responses_dir / "part-baseline-r0-p00000.parquet"
    table = pa.table({"a": list(range(1000))})
    write_table_atomic(table, part)
    run.publish(part)
    staging("b")
    again = open_run(spec, run.run_id)
    assert read_table(again.responses_dir).equals(table)


def test_nights_are_files_in_the_bucket_and_read_back_on_another_machine(
    s3_url: str, staging: Callable[[str], Path], tmp_path: Path
) -> None:
    from evalpipe.store import Night, read_night_metrics, read_nights, record_night

    night = Night(
        series="s1",
        spec_name="shop",
        night="2026-11-03",
        run_id=None,
        status="skipped: no traffic",
        as_of="2026-11-03T03:00:00+00:00",
        records=0,
        snapshots={},
        verdicts={},
        findings=[],
        alerted={},
        alert_status="none",
    )
    metric = {"arm": "baseline", "metric": "ok", "n": 40, "mean": 0.9, "var": 0.002}
    assert read_nights(store_root(s3_url)) == []  # (no catalog in the bucket yet)
    record_night(store_root(s3_url), night, [metric])
    assert _bucket().find(_key(s3_url, "nights")) == [_key(s3_url, "nights/s1/2026-11-03.json")]
    staging("b")
    root = store_root(s3_url)
    assert read_nights(root, series="s1") == [night]
    assert [m["mean"] for m in read_night_metrics(root, "s1")] == [0.9]
    # the runs tables are rebuilt from the manifests beside them, the nights from their files
    assert list_runs(root) == []
    assert read_nights(root, series="s1") == [night]
    (root / "catalog.duckdb").unlink()
    assert read_nights(root, series="s1") == [night]
    later = Night(**{**night.__dict__, "night": "2026-11-04"})
    record_night(root, later, [])
    staging("a")
    assert [n.night for n in read_nights(store_root(s3_url), series="s1")] == [
        "2026-11-03",
        "2026-11-04",
    ]


def test_without_s3fs_an_s3_store_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['s3fs'] = None; from evalpipe.cli import main; "
        "main(['runs', '--store', 's3://some-bucket/x'])"
    )
    env = {**os.environ, "EVALPIPE_STAGING_DIR": str(tmp_path / "staging")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert proc.returncode == 4
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: store s3://some-bucket/x: its filesystem is not installed")
    assert "pip install 'evalpipe[s3]'" in line
