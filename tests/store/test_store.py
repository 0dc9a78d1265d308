"""Run folders, manifests, atomic Parquet, and the DuckDB catalog rebuilt from the folders."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from evalpipe.errors import StoreError
from evalpipe.spec import spec_from_dict
from evalpipe.store import (
    latest_complete_run,
    open_run,
    read_table,
    rebuild_catalog,
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
    run.update_manifest(verdict="GO", exit_code=0, counts={"records": 10})


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
