"""The trends page of a spec over simulated nights, and `evalpipe report --trends`."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalpipe.cli import main
from evalpipe.report import write_runs_index, write_trends
from evalpipe.report.trends import trends

from .nights import SPEC, make_nights


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nights") / "store"
    make_nights(root, 90)
    return root


def test_trends_mark_verdict_and_snapshot_changes(store: Path) -> None:
    t = trends(store, SPEC)
    assert t is not None and t.nights == 90
    texts = [e.text for e in t.events]
    assert texts[0] == (
        "claude-haiku snapshot claude-haiku-4-5-20251001 → claude-haiku-4-5-20260115"
    )
    assert t.events[0].night == "31 Oct"  # night 60
    assert any(x.startswith("claude-haiku: GO → ") for x in texts)
    assert not any(x.startswith("gpt-4.1-mini") for x in texts)  # steady
    assert dict((c, v) for c, v, _ in t.latest) == {"claude-haiku": "NO-GO", "gpt-4.1-mini": "GO"}


def test_trends_chart_every_gated_metric_with_cis_margins_and_axes(store: Path) -> None:
    t = trends(store, SPEC)
    assert t is not None
    assert [c.title for c in t.charts] == [
        "helpfulness night by night, 95% CI",
        "valid_json night by night, 95% CI",
    ]
    for chart in t.charts:
        assert "percentage points" in chart.axis and chart.unit == "pp"
        assert {s.name for s in chart.series} == {"claude-haiku", "gpt-4.1-mini"}
        assert all(s.band and len(s.markers) == 90 for s in chart.series)
        assert [label for _, label, _, _ in chart.rules] == ["no change", "margin"]
        assert len(chart.events) == len(t.events)
    assert [c.unit for c in t.money] == ["$ per request", "ms"]
    assert [s.name for s in t.money[0].series] == ["baseline", "claude-haiku", "gpt-4.1-mini"]


def test_no_trends_without_runs(tmp_path: Path) -> None:
    assert trends(tmp_path, SPEC) is None
    assert write_trends(tmp_path, SPEC, tmp_path / "reports") is None


def test_report_trends_command_writes_the_page_and_links_it(store: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "--trends", SPEC, "--store", str(store), "--out", str(tmp_path)])
    assert exc.value.code == 0
    page = tmp_path / "trends" / f"{SPEC}.html"
    html = page.read_text()
    assert "Trends: support-nightly" in html and "What changed" in html
    index = (tmp_path / "index.html").read_text()
    assert f'href="trends/{SPEC}.html"' in index


def test_runs_index_without_trends_has_no_trend_links(tmp_path: Path) -> None:
    html = write_runs_index(tmp_path, []).read_text()
    assert "Trends per spec" not in html


def test_report_trends_takes_the_spec_file_as_every_command_does(
    store: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "eval.yaml"
    spec.write_text(
        f"name: {SPEC}\nstore: {store}\ntraffic: {{path: t.jsonl}}\n"
        "baseline: {provider: openai, model: m}\n"
        "candidates: [{name: c, provider: openai, model: n}]\n"
        f"report: {{out: {tmp_path / 'out'}}}\n"
    )
    (tmp_path / "t.jsonl").write_text("{}\n")
    with pytest.raises(SystemExit) as exc:
        main(["report", "--trends", str(spec)])
    assert exc.value.code == 0
    assert "Trends: support-nightly" in (tmp_path / "out" / "trends" / f"{SPEC}.html").read_text()
