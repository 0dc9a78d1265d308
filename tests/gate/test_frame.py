"""The gate's frame read out of core (DuckDB over a run's Parquet part files, `GateTables.from_files`)
holds the same per-record figures as the tables in memory, and gates to the same result."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalpipe.gate import gate_scores
from evalpipe.gate.frame import OK, OWN_ERROR, GateTables, frame_of, record_columns
from evalpipe.gate.shadow import gate_tables
from tests.gate.synth import Arm, make_run
from tests.gate.synth import Run as SynthRun


def _write_parts(table: pa.Table, folder: Path, parts: int, seed: int) -> str:
    """`table` shuffled and cut into `parts` Parquet files (as score and replay write them)."""
    folder.mkdir(parents=True)
    order = np.random.default_rng(seed).permutation(table.num_rows)
    shuffled = table.take(pa.array(order))
    step = -(-table.num_rows // parts)
    for p in range(parts):
        pq.write_table(shuffled.slice(p * step, step), folder / f"part-{p:05d}.parquet")
    return str(folder / "part-*.parquet")


def _on_disk(tmp_path: Path, run: SynthRun) -> GateTables:
    pq.write_table(run.records, tmp_path / "records.parquet")
    return GateTables.from_files(
        _write_parts(run.scores, tmp_path / "scores", 4, 1),
        _write_parts(run.responses, tmp_path / "responses", 3, 2),
        tmp_path / "records.parquet",
        run.spec,
    )


def _synth() -> SynthRun:
    return make_run(
        400,
        candidates={
            "good": Arm(latency_factor=0.9, win=0.55),
            "bad": Arm(regress={"valid_json": 0.1}, own_error=0.05, infra_error=0.01),
        },
        session_size=3,
        judge=150,
        gate={"cluster": "session_id", "slices": ["feature"], "gated_slices": ["feature"]},
        base_infra_error=0.01,
    )


def test_figures_read_from_parquet_equal_the_tables(tmp_path: Path) -> None:
    run = _synth()
    tables = _on_disk(tmp_path, run)
    assert set(tables.records.column_names) == set(record_columns(run.spec))
    frame = frame_of(tables, run.spec)
    ids = run.records["record_id"].combine_chunks().sort()
    assert frame.record_ids.equals(ids)

    resp = run.responses.filter(pc.equal(run.responses["repeat"], 0))
    for arm in ("baseline", "good", "bad"):
        mine = resp.filter(pc.equal(resp["arm"], arm))
        pos = np.asarray(pc.index_in(mine["record_id"], value_set=ids))
        status = mine["status"].to_pylist()
        origin = mine["error_origin"].to_pylist()
        data = frame.arms[arm]
        for i, s, o in zip(pos, status, origin, strict=True):
            want = OK if s == "ok" else OWN_ERROR if o == "candidate" else 3 if s == "error" else 0
            assert data.state[i] == want
        ok = np.asarray(pc.equal(mine["status"], "ok"))
        latency = np.asarray(pc.fill_null(mine["latency_ms"], np.nan), dtype=float)
        np.testing.assert_array_equal(data.latency[pos[ok]], latency[ok])
        cost = np.asarray(pc.fill_null(mine["cost_usd"], np.nan), dtype=float)
        np.testing.assert_array_equal(data.cost[pos], cost)
        texts = data.text.to_pylist()
        for i, t, good in zip(pos, mine["output_text"].to_pylist(), ok, strict=True):
            assert texts[i] == (t if good else None)

    scores = run.scores.filter(pc.equal(run.scores["repeat"], 0))
    metrics = sorted(set(run.scores["metric"].to_pylist()))
    assert frame.scores.metrics == metrics
    for metric in metrics:
        for arm in ("baseline", "good", "bad", "logged"):
            got = frame.scores.get(metric, arm)
            rows = scores.filter(
                pc.and_(pc.equal(scores["metric"], metric), pc.equal(scores["arm"], arm))
            )
            if arm == "logged":  # not an arm the gate compares
                assert not got.has_row.any()
                continue
            pos = np.asarray(pc.index_in(rows["record_id"], value_set=ids))
            assert got.has_row.sum() == rows.num_rows
            want = np.asarray(pc.fill_null(rows["value"], np.nan), dtype=float)
            np.testing.assert_array_equal(got.value[pos], want)


def test_gate_over_parquet_equals_gate_in_memory(tmp_path: Path) -> None:
    run = _synth()
    in_memory = gate_scores(run.scores, run.responses, run.records, run.spec, run_id="r")
    tables = _on_disk(tmp_path, run)
    try:
        out_of_core = gate_tables(tables, run.spec, run_id="r")
    finally:
        tables.close()
    assert out_of_core.verdict == in_memory.verdict
    assert [c.verdict for c in out_of_core.candidates] == [c.verdict for c in in_memory.candidates]
    assert out_of_core.candidates == in_memory.candidates
    assert out_of_core.table.equals(in_memory.table)
    assert {c.verdict for c in in_memory.candidates} >= {"NO-GO"}


def test_files_are_read_within_duckdbs_memory_and_the_records_let_go(tmp_path: Path) -> None:
    """DuckDB holds at most GATE_MEMORY_LIMIT of a run's files (it spills to the temporary
    folder beyond), and once the frame and the validity checks have read the records the gate
    does not keep them (a million records' maps are ~250 MB)."""
    from evalpipe.gate.frame import GATE_MEMORY_LIMIT

    run = _synth()
    tables = _on_disk(tmp_path, run)
    try:
        ((limit, spill),) = tables.con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchall()
        assert limit == _memory_limit({"memory_limit": GATE_MEMORY_LIMIT}) != _memory_limit({})
        assert spill.endswith("evalpipe-duckdb")
        assert tables.records.num_rows == run.records.num_rows
        gate_tables(tables, run.spec, run_id="r")
        assert tables.records.num_rows == 0
    finally:
        tables.close()


def _memory_limit(config: dict[str, str]) -> str:
    """DuckDB's memory_limit setting as it shows it, on a connection opened with `config`."""
    with duckdb.connect(config=config) as con:
        ((limit,),) = con.execute("SELECT current_setting('memory_limit')").fetchall()
    return str(limit)


def test_an_arms_texts_are_one_per_record_with_or_without_a_duplicate_row(tmp_path: Path) -> None:
    """Texts stream as the rows are when each record has one ok row (as replay writes them);
    a record with two ok rows of an arm (e.g. files of an older run) still counts once."""
    run = _synth()
    resp = run.responses
    ok = resp.filter(pc.and_(pc.equal(resp["arm"], "good"), pc.equal(resp["status"], "ok"))).filter(
        pc.equal(pc.field("repeat"), 0)
    )
    n_ok = ok.num_rows
    twice = pa.concat_tables([resp, ok.slice(0, 25)])
    figures = []
    for name, responses in (("plain", resp), ("twice", twice)):
        folder = tmp_path / name
        folder.mkdir()
        pq.write_table(run.records, folder / "records.parquet")
        tables = GateTables.from_files(
            _write_parts(run.scores, folder / "scores", 2, 1),
            _write_parts(responses, folder / "responses", 3, 2),
            folder / "records.parquet",
            run.spec,
        )
        texts = frame_of(tables, run.spec).arms["good"].texts
        assert ("GROUP BY" in texts._ok) == (name == "twice")
        everyone = np.arange(texts.n, dtype=np.int64)
        streamed = sorted(t for b in texts.batches_at(everyone, rows=7) for t in b.to_pylist())
        some = np.arange(0, texts.n, 3, dtype=np.int64)
        read = texts.read().to_pylist()
        figures.append(
            (
                streamed,
                sorted(t for b in texts.batches_at(some) for t in b.to_pylist()),
                read,
                texts.count_matching("."),
            )
        )
        assert len(streamed) == n_ok and sum(t is not None for t in read) == n_ok
        assert sorted(t for t in read[::3] if t is not None) == figures[-1][1]
        tables.close()
    assert figures[0] == figures[1]
