"""Diffs of candidates against baseline repeat 0."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from evalpipe.score.diffs import score_diffs
from evalpipe.tables import RESPONSES, SCORES, from_rows


def test_diffs_pair_each_candidate_with_the_baseline() -> None:
    rows = [
        {
            "record_id": "a",
            "arm": "baseline",
            "repeat": 0,
            "status": "ok",
            "output_text": '{"x": 1, "y": 2}',
        },
        {
            "record_id": "b",
            "arm": "baseline",
            "repeat": 0,
            "status": "ok",
            "output_text": "hello world",
        },
        {
            "record_id": "a",
            "arm": "cand",
            "repeat": 0,
            "status": "ok",
            "output_text": '{"y": 3, "x": 1}',
        },
        {
            "record_id": "b",
            "arm": "cand",
            "repeat": 0,
            "status": "ok",
            "output_text": "hello world, and more",
        },
        {
            "record_id": "a",
            "arm": "baseline",
            "repeat": 1,
            "status": "ok",
            "output_text": '{"x": 1, "y": 2}',
        },
        {"record_id": "b", "arm": "logged", "repeat": 0, "status": "ok", "output_text": "hello"},
        {"record_id": "b", "arm": "broken", "repeat": 0, "status": "error", "output_text": None},
    ]
    out = score_diffs(
        from_rows(rows, RESPONSES),
        ["exact", "similarity", "length_ratio", "json_structure"],
        run_id="r",
    )
    assert out.schema.equals(SCORES)
    assert set(out["arm"].to_pylist()) == {"cand", "baseline"}  # logged and errors are not diffed
    got = {(r["arm"], r["record_id"], r["metric"]): r["value"] for r in out.to_pylist()}
    assert got[("cand", "a", "diff.exact")] == 0.0
    assert got[("baseline", "a", "diff.exact")] == 1.0  # the A/A repeat
    assert got[("cand", "a", "diff.json_structure")] == 1.0
    assert got[("cand", "b", "diff.json_structure")] is None
    assert got[("cand", "b", "diff.length_ratio")] == pytest.approx(21 / 11)
    assert 0.6 < got[("cand", "b", "diff.similarity")] < 1.0
    assert pc.all(pc.equal(out["kind"], "diff")).as_py()
