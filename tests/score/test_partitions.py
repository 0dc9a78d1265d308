"""Scoring per partition (pipeline.score_partition / finish_score): the parts together equal the
whole table scored at once, a judge's sample is drawn over the whole run, and a resumed run
scores only the partitions not committed yet."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.replay.cache import ResponseCache
from evalpipe.score import score_responses
from evalpipe.spec import load_spec
from evalpipe.store import Run, open_run
from evalpipe.tables import SCORES

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"
KEYS = [(k, "ascending") for k in ("arm", "metric", "record_id", "repeat", "scorer")]


def _replayed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The demo on 160 records in 4 partitions of 40, replayed, its judge sampling 50."""
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    shutil.copy(DEMO / "triage.schema.json", tmp_path)
    spec = yaml.safe_load((DEMO / "eval.yaml").read_text())
    del spec["eval_sets"]  # the traffic alone (the edge cases live beside the demo's folder)
    spec.update(store=str(tmp_path / "store"))
    spec["traffic"]["sample"] = {"n": 160}
    spec["judges"][0]["sample"] = 50
    spec["baseline"]["compare_logged"] = True  # the logged arm is scored too
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setattr(pipeline, "PARTITION_SIZE", 40)
    run = open_run(load_spec(tmp_path / "eval.yaml"), None)
    pipeline.ingest_run(run)
    assert len(pipeline.partitions(run)) == 4
    pipeline.replay_run(run)
    return run


def _whole(run: Run) -> pa.Table:
    """The run's responses scored as one table (judges answer from the cache)."""
    return score_responses(
        run.read_responses(),
        run.read_records(),
        run.spec,
        run_id=run.run_id,
        cache=ResponseCache(run.cache_dir, run.spec.cache),
    )


def test_partitions_equal_the_whole_table(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _replayed(tmp_path, monkeypatch)
    rows = pipeline.score_run(run)

    parts = sorted(p.name for p in run.scores_dir.glob("part-*.parquet"))
    assert parts == [f"part-{p:05d}.parquet" for p in range(4)]
    scores = run.read_scores()
    assert scores.schema.equals(SCORES)
    assert rows == scores.num_rows > 0
    assert scores.sort_by(KEYS).equals(_whole(run).sort_by(KEYS))
    # the judge's 50 records are the whole run's sample, spread over the partitions
    judged = scores.filter(
        pc.and_(pc.equal(scores["metric"], "helpfulness"), pc.equal(scores["kind"], "judge"))
    )
    assert pc.count_distinct(judged["record_id"]).as_py() == 50
    # the judge's anchor set is judged once in the run (with partition 0), not per partition
    anchors = scores.filter(pc.equal(scores["kind"], "anchor"))
    assert anchors.num_rows == pc.count_distinct(anchors["record_id"]).as_py() == 12
    assert {"logged", "baseline"} <= set(scores["arm"].to_pylist())
    # the judges' spend is each part's own, summed
    spent = run.manifest()["cost_usd"]
    assert spent["judges"] == pytest.approx(sum(run.scored_parts().values()), abs=1e-6)
    assert spent["judges"] > 0
    assert spent["total"] == pytest.approx(spent["replay"] + spent["judges"], abs=1e-6)


def test_resume_scores_only_the_missing_partitions(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _replayed(tmp_path, monkeypatch)
    for p in (0, 2):  # a run killed after two of its four partitions
        pipeline.score_partition(run, p)
    assert sorted(run.scored_parts()) == [0, 2]
    assert pipeline.score_partitions(run) == [1, 3]
    before = {p: run.score_part_path(p).stat().st_mtime_ns for p in (0, 2)}
    # a committed partition asked again is not scored again
    again = pipeline.score_partition(run, 0)
    first = run.read_scores().filter(
        pc.or_(
            pc.is_in(
                run.read_scores()["record_id"], value_set=run.read_records(0, 40)["record_id"]
            ),
            pc.equal(run.read_scores()["kind"], "anchor"),  # (judged with partition 0)
        )
    )
    assert again == first.num_rows

    pipeline.score_run(run)

    assert {p: run.score_part_path(p).stat().st_mtime_ns for p in (0, 2)} == before
    assert sorted(run.scored_parts()) == [0, 1, 2, 3]
    assert run.stage_done("score")
    assert run.read_scores().sort_by(KEYS).equals(_whole(run).sort_by(KEYS))


def test_judge_sample_is_drawn_once_from_lean_columns(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Partitions scoring side by side wait for one draw of the judge's sample (each drawing
    its own held the run's records once per thread: 5 GB at a million records), and the draw
    reads the records' slice values, not their attribute and label maps."""
    from evalpipe.score import judges

    run = _replayed(tmp_path, monkeypatch)
    judge = run.spec.judges[0]
    frame = pipeline._sample_frame(run)
    assert frame.column_names == ["record_id", "feature", "tenant"]  # no maps held
    whole = judges.judge_sample(run.read_records(), judge, run.spec)
    assert judges.judge_sample(frame, judge, run.spec).equals(whole)

    real, drawn = judges.judge_sample, []

    def slow_draw(*args: object, **kwargs: object) -> pa.Array:
        drawn.append(1)
        time.sleep(0.3)  # (the other partitions' threads arrive while it draws)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(judges, "judge_sample", slow_draw)
    pipeline.score_run(run)  # 4 partitions with a judge: side by side in threads

    assert len(drawn) == 1
    sample = pq.read_table(run.scores_dir / "sample-helpfulness.parquet")["record_id"]
    assert sample.combine_chunks().equals(whole)
