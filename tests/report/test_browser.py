"""The report in a real headless Chromium: readable, inert (no script ran), and offline.

Needs Chromium at /usr/bin/chromium (Debian: `apt-get install -y chromium`); skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalpipe.report import write_report, write_runs_index

from .conftest import HandRun, hand_run
from .synth import XSS_SCRIPT

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium not found at /usr/bin/chromium; install it with `apt-get install -y chromium`",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[HandRun, Path]:
    run = hand_run()
    out = tmp_path_factory.mktemp("report")
    return run, write_report(out / run.gate.run_id, **run.kwargs()).index_html


class Visit:
    """A page opened from a file, with every request and dialog it caused."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context = browser.new_context(viewport={"width": 1366, "height": 900})
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", on_dialog)
        self.page.goto(self.url, wait_until="load")
        self.page.wait_for_timeout(300)  # time for an onerror handler to fire, were there one


@pytest.fixture(scope="module")
def visit(browser: Any, report: tuple[HandRun, Path]) -> Iterator[Visit]:
    v = Visit(browser, report[1])
    try:
        yield v
    finally:
        v.context.close()


def test_verdicts_are_visible(visit: Visit) -> None:
    page = visit.page
    assert page.locator("#run-verdict").inner_text() == "INVALID"
    for name, word, icon in (
        ("good", "GO", "✓"),
        ("bad", "NO-GO", "✕"),
        ("unsure", "NOT-PROVEN", "?"),
    ):
        card = page.locator(f'article.card[data-candidate="{name}"] .word')
        assert card.is_visible()
        assert card.locator(".vw").inner_text() == word
        assert card.locator(".icon").inner_text() == icon  # a shape, not only a colour
    colour = page.locator('article.card[data-candidate="bad"] .word').evaluate(
        "e => getComputedStyle(e).color"
    )
    assert colour == "rgb(207, 34, 46)"  # inline CSS applies under the page's CSP


def test_hostile_output_does_not_execute(visit: Visit) -> None:
    page = visit.page
    assert visit.dialogs == []
    assert page.locator("script").count() == 0
    assert page.locator("img").count() == 0
    assert XSS_SCRIPT in page.locator("article.example").first.inner_text() or any(
        XSS_SCRIPT in t for t in page.locator("pre.text").all_inner_texts()
    )


def test_no_request_leaves_the_page(visit: Visit) -> None:
    assert visit.requests == [visit.url]


def test_runs_index_in_the_browser(browser: Any, report: tuple[HandRun, Path]) -> None:
    run, index = report
    root = index.parent.parent
    path = write_runs_index(root, [run.manifest | {"verdict": run.gate.verdict}])
    v = Visit(browser, path)
    try:
        link = v.page.locator(f'a[href="{run.gate.run_id}/index.html"]')
        assert link.is_visible()
        link.click()
        v.page.wait_for_load_state("load")
        assert v.page.locator("#run-verdict").inner_text() == "INVALID"
        assert all(u.startswith("file://") for u in v.requests)
        assert v.dialogs == []
    finally:
        v.context.close()


def test_screenshot(visit: Visit, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    visit.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_collapsed_sections_open_without_script(visit: Visit) -> None:
    page = visit.page
    details = page.locator("details").first
    assert not details.locator("li").first.is_visible()
    details.locator("summary").click()
    assert details.locator("li").first.is_visible()


def test_forest_plots_have_titles_axes_and_units(visit: Visit) -> None:
    page = visit.page
    figures = page.locator("article.card figure.forest")
    assert figures.count() >= 3  # one per candidate with gated metrics
    for i in range(figures.count()):
        fig = figures.nth(i)
        assert "95% CI" in fig.locator("figcaption").inner_text()
        assert "95% CI" in (fig.locator("svg").get_attribute("aria-label") or "")
        axis = fig.locator("text.axis-label").text_content() or ""
        assert "percentage points" in axis or "×" in axis or "points" in axis
        assert fig.locator("line.zero").count() == 1
        assert fig.locator("line.margin").count() >= 1
    need = page.locator('article.card[data-candidate="unsure"] .need')
    assert "800 more records" in need.inner_text()
