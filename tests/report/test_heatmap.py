"""The slice heatmap and the leaderboard of more than two candidates."""

from __future__ import annotations

import pyarrow.compute as pc

from evalpipe.gate.verdict import SEVERITY
from evalpipe.report.heatmap import heatmaps, tint
from evalpipe.report.leaderboard import leaderboard

from .conftest import HandRun
from .synth import SynthRun


def test_heatmap_has_a_cell_per_slice_and_metric_with_n(synth_run: SynthRun) -> None:
    gate = synth_run.gate.table
    names = [c.candidate for c in synth_run.gate.candidates]
    maps = {h.candidate: h for h in heatmaps(gate, names)}
    assert set(maps) == set(names)
    for cand, hm in maps.items():
        sliced = gate.filter(
            pc.and_(pc.equal(gate["candidate"], cand), pc.is_valid(gate["slice_col"]))
        )
        cells = [c for _, row in hm.rows for c in row if c is not None]
        assert len(cells) == sliced.num_rows
        assert sum(c.n for c in cells) == pc.sum(sliced["n"]).as_py()
        assert len(hm.flagged) == sum(c.flagged for c in cells)
        flagged_rows = sliced.filter(pc.fill_null(sliced["flagged"], False)).num_rows
        assert len(hm.flagged) == flagged_rows


def test_a_flagged_cell_is_named_with_its_change_and_n(synth_run: SynthRun) -> None:
    hm = next(
        h for h in heatmaps(synth_run.gate.table, ["claude-haiku"]) if h.candidate == "claude-haiku"
    )
    assert any(f.startswith("tenant=tenant-c · concise (−") and "n " in f for f in hm.flagged)


def test_tint_is_white_at_no_change_red_when_worse_blue_when_better() -> None:
    assert tint(0.0) == "#ffffff"
    assert tint(-1.0) == "#ff8182" and tint(-3.0) == "#ff8182"
    assert tint(1.0) == "#80b5ff"
    assert tint(None) == "#f6f8fa"


def test_leaderboard_only_for_more_than_two_candidates(run: HandRun) -> None:
    assert leaderboard(run.gate.table, {"good": "GO", "bad": "NO-GO"}, None) is None


def test_leaderboard_has_a_sorted_view_per_key(synth_run: SynthRun) -> None:
    verdicts = {c.candidate: c.verdict for c in synth_run.gate.candidates}
    lb = leaderboard(synth_run.gate.table, verdicts, None)
    assert lb is not None
    assert lb.keys[0] == "Verdict" and len(lb.views) == len(lb.keys) == len(lb.columns) + 1
    by_verdict = [SEVERITY[r.verdict] for r in lb.views[0]]
    assert by_verdict == sorted(by_verdict)  # the best verdict first
    concise = lb.keys.index("concise")
    assert lb.views[concise][-1].candidate == "gpt-4.1-mini"  # the worst change last
    cost = lb.keys.index("cost per request")
    assert lb.views[cost][0].candidate == "nano-fast"  # the cheapest first
