"""Run folders, manifests, atomic Parquet, and the DuckDB catalog rebuilt from the folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from evalpipe.errors import StoreError
from evalpipe.spec import spec_from_dict
from evalpipe.store import (
    Night,
    latest_complete_run,
    list_runs,
    open_run,
    read_night_metrics,
    read_nights,
    read_table,
    rebuild_catalog,
    record_night,
    update_catalog,
    write_table_atomic,
)
from evalpipe.tables import GATE, from_rows


@pytest.fixture
def spec(tmp_path: Path):
    (tmp_path / "t.jsonl").write_text("{}\n")
    return spec_from_dict(
        {
            "name": "shop",
            "store": str(tmp_path / "store"),
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
        },
        spec_dir=tmp_path,
    )


def _finish(run) -> None:
    for stage in ("ingest", "replay", "score", "gate"):
        run.mark_stage(stage, 0.1)
    gate = from_rows(
        [
            {
                "run_id": run.run_id,
                "candidate": "c",
                "metric": "valid_json",
                "verdict": "GO",
                "n": 10,
            }
        ],
        GATE,
    )
    write_table_atomic(gate, run.path("gate.parquet"))
    run.update_manifest(
        verdict="GO",
        exit_code=0,
        counts={"records": 10},
        candidates={"c": {"verdict": "GO", "reason": "no regression"}},
        cost_usd={"total": 0.25},
    )


def test_run_ids_sort_by_time_and_name_the_spec(spec) -> None:
    run = open_run(spec)
    assert re.fullmatch(r"\d{8}-\d{6}-shop-[0-9a-f]{6}", run.run_id)
    m = run.manifest()
    assert m["spec_hash"] == spec.spec_hash() and m["seed"] == spec.seed and m["evalpipe_version"]


def test_unknown_run_id_is_a_store_error(spec) -> None:
    with pytest.raises(StoreError, match="no run"):
        open_run(spec, "20260101-000000-shop-abcdef")


def test_latest_complete_run_ignores_unfinished_runs(spec) -> None:
    first = open_run(spec)
    _finish(first)
    second = open_run(spec)  # started, never finished
    second.mark_stage("ingest", 0.1)
    found = latest_complete_run(spec)
    assert found is not None and found.run_id == first.run_id


def test_catalog_indexes_runs_and_rebuilds_from_folders(spec) -> None:
    run = open_run(spec)
    _finish(run)
    update_catalog(run)
    db = run.root / "catalog.duckdb"
    with duckdb.connect(str(db)) as con:
        assert con.sql("SELECT run_id, verdict, records FROM runs").fetchall() == [
            (run.run_id, "GO", 10)
        ]
        assert con.sql("SELECT metric, verdict FROM run_metrics").fetchall() == [
            ("valid_json", "GO")
        ]
    db.unlink()
    assert rebuild_catalog(run.root, spec) == 1
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM run_metrics").fetchall() == [(1,)]


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    t = pa.table({"a": [1, 2]})
    write_table_atomic(t, tmp_path / "x.parquet")
    assert read_table(tmp_path / "x.parquet").equals(t)
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_write_rows_then_read_rows_by_range(tmp_path: Path) -> None:
    import numpy as np
    import pyarrow.parquet as pq

    from evalpipe.store import parquet_rows, read_rows, write_rows_atomic

    schema = pa.schema([("i", pa.int64()), ("s", pa.string())])
    parts = []
    for k in range(3):  # three parts of 10 rows, in row groups of 4
        values = list(range(10 * k, 10 * k + 10))
        part = tmp_path / f"part-{k}.parquet"
        table = pa.table({"i": values, "s": [f"v{v}" for v in values]}, schema=schema)
        pq.write_table(table, part, row_group_size=4)
        parts.append(part)
    rows = np.array([1, 3, 9, 10, 11, 12, 19, 20, 27, 28, 29])
    out = tmp_path / "out.parquet"
    assert write_rows_atomic(parts, rows, out, schema, row_group_size=5) == len(rows)
    assert pq.read_table(out)["i"].to_pylist() == rows.tolist()
    meta = pq.ParquetFile(out).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [5, 5, 1]
    # a range read touches only the row groups that hold it, and returns exactly that range
    assert read_rows(out, 4, 7)["i"].to_pylist() == rows[4:7].tolist()
    assert read_rows(out, 9, 100, columns=["s"])["s"].to_pylist() == ["v28", "v29"]
    assert read_rows(out, 50, 60).num_rows == 0
    # nothing selected: an empty file with the schema
    assert (
        write_rows_atomic(parts, np.array([], dtype=np.int64), out, schema, row_group_size=5) == 0
    )
    assert pq.read_table(out).schema.names == ["i", "s"]
    assert read_rows(out, 0, 5).num_rows == 0 and parquet_rows(out) == 0


def test_read_rows_every_range_and_a_rewritten_file(tmp_path: Path) -> None:
    """Row-group bounds come from a cached footer: every range is exact, and a file written
    again at the same path is read as it is now."""
    import pyarrow.parquet as pq

    from evalpipe.store import parquet_rows, read_rows

    out = tmp_path / "t.parquet"
    pq.write_table(pa.table({"i": list(range(13))}), out, row_group_size=4)  # 4, 4, 4, 1
    for start in range(15):
        for stop in range(start, 16):
            got = read_rows(out, start, stop)["i"].to_pylist()
            assert got == list(range(13))[start:stop], (start, stop)
    assert parquet_rows(out) == 13
    pq.write_table(pa.table({"i": list(range(100, 113))}), tmp_path / "u.parquet")
    (tmp_path / "u.parquet").replace(out)
    assert read_rows(out, 11, 13)["i"].to_pylist() == [111, 112]
    pq.write_table(pa.table({"i": list(range(5))}), out, row_group_size=2)
    assert parquet_rows(out) == 5 and read_rows(out, 3, 9)["i"].to_pylist() == [3, 4]


def test_atomic_path_leaves_nothing_behind_when_the_write_fails(tmp_path: Path) -> None:
    from evalpipe.store import atomic_path

    target = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")
    assert not target.exists() and list(target.parent.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(target.parent.iterdir()) == [target]


def test_spec_hash_follows_the_files_a_traffic_glob_selects(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text('{"a": 1}\n')
    data = {
        "name": "shop",
        "traffic": {"path": "logs/*.jsonl"},
        "baseline": {"provider": "openai", "model": "m"},
        "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
    }
    first = spec_from_dict(data, spec_dir=tmp_path).spec_hash()
    (logs / "b.jsonl").write_text('{"b": 2}\n')  # a new day's log
    second = spec_from_dict(data, spec_dir=tmp_path).spec_hash()
    assert second != first
    (logs / "a.jsonl").write_text('{"a": 3}\n')  # rewritten in place, same size
    os.utime(logs / "a.jsonl", ns=(1, 1))
    third = spec_from_dict(data, spec_dir=tmp_path).spec_hash()
    assert third != second
    (logs / "notes.txt").write_text("not a log")  # the glob does not select it
    assert spec_from_dict(data, spec_dir=tmp_path).spec_hash() == third


def test_list_runs_reads_the_catalog_newest_first_with_verdicts_per_candidate(spec) -> None:
    runs = []
    for _ in range(3):
        run = open_run(spec)
        _finish(run)
        update_catalog(run)
        runs.append(run)
    other = open_run(spec.model_copy(update={"name": "other"}))
    _finish(other)
    other.update_manifest(candidates={"c": {"verdict": "NO-GO", "reason": "worse"}})
    update_catalog(other)
    root = runs[0].root
    listed = list_runs(root)
    assert [r.run_id for r in listed] == [r.run_id for r in reversed([*runs, other])]
    first = next(r for r in listed if r.run_id == runs[0].run_id)
    assert (first.spec_name, first.verdicts, first.cost_usd, first.records) == (
        "shop",
        {"c": "GO"},
        0.25,
        10,
    )
    assert first.created is not None
    assert [r.run_id for r in list_runs(root, spec_name="other")] == [other.run_id]
    assert len(list_runs(root, spec_name="shop", limit=2)) == 2


def test_list_runs_of_a_missing_or_empty_store_is_empty(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nowhere") == []
    (tmp_path / "empty").mkdir()
    duckdb.connect(str(tmp_path / "empty" / "catalog.duckdb")).close()
    assert list_runs(tmp_path / "empty") == []


def test_an_older_catalog_gains_the_candidate_verdicts(spec) -> None:
    run = open_run(spec)
    _finish(run)
    with duckdb.connect(str(run.root / "catalog.duckdb")) as con:  # the catalog before verdicts
        con.execute(
            "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, spec_name VARCHAR, spec_hash VARCHAR, "
            "created VARCHAR, verdict VARCHAR, exit_code INTEGER, records BIGINT, "
            "cost_usd DOUBLE, evalpipe_version VARCHAR)"
        )
        con.execute(
            "INSERT INTO runs (run_id, verdict) VALUES ('20200101-000000-shop-aaaaaa', 'GO')"
        )
    assert list_runs(run.root)[0].verdicts == {}
    update_catalog(run)
    assert [r.verdicts for r in list_runs(run.root)] == [{"c": "GO"}, {}]


def test_unknown_run_id_names_the_runs_command(spec) -> None:
    with pytest.raises(StoreError, match=r"`evalpipe runs --store .*` lists them"):
        open_run(spec, "20260101-000000-shop-abcdef")


def test_nights_are_files_in_the_store_and_the_catalog_rebuilds_them(spec) -> None:
    root = open_run(spec).root
    night = Night(
        series="s1",
        spec_name="nightly",
        night="2026-11-03",
        run_id=None,
        status="skipped: no traffic",
        as_of="2026-11-03T03:00:00+00:00",
        records=0,
        snapshots={"baseline": {"models": ["m-1"], "fingerprints": []}},
        verdicts={"cand": "GO"},
        findings=[{"key": "drift:ok", "kind": "drift", "event": False, "text": "t"}],
        alerted={},
        alert_status="none",
    )
    metrics = [{"arm": "baseline", "metric": "ok", "n": 10, "mean": 0.9, "var": 0.009}]
    record_night(root, night, metrics)
    assert (root / "nights" / "s1" / "2026-11-03.json").is_file()
    (root / "catalog.duckdb").unlink()
    assert read_nights(root) == []
    rebuild_catalog(root, spec)
    assert read_nights(root) == [night]
    assert [m["mean"] for m in read_night_metrics(root, "s1")] == [0.9]


def test_latest_complete_run_is_the_last_started_even_within_one_second(spec) -> None:
    runs = [open_run(spec) for _ in range(4)]  # all in the same second, random id suffixes
    for run in runs:
        _finish(run)
    found = latest_complete_run(spec, store=str(runs[0].root))
    assert found is not None and found.run_id == runs[-1].run_id
