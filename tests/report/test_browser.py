"""The report in a real headless Chromium: readable, inert (no script ran), and offline.

Needs Chromium at /usr/bin/chromium (Debian: `apt-get install -y chromium`); skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalpipe.report import write_report, write_runs_index

from .conftest import HOSTILE_NAME, HOSTILE_SLICE, HOSTILE_TITLE, HandRun, hand_run, hostile_run
from .synth import XSS_SCRIPT, SynthRun

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
    """Chromium for this module's tests (module scope: the sync Playwright session keeps an event
    loop running on the main thread until it stops, where later tests' `asyncio.run` fails)."""
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

    def __init__(self, browser: Any, path: Path, width: int = 1366) -> None:
        self.url = path.resolve().as_uri()
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", on_dialog)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
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


def test_no_console_errors(visit: Visit) -> None:
    assert visit.errors == []


# --- hostile text everywhere ------------------------------------------------------------------

_ON_ATTRIBUTES = """() => [...document.querySelectorAll('*')].flatMap(
    e => [...e.attributes].filter(a => a.name.startsWith('on')).map(a => e.tagName + ' ' + a.name))"""


def test_xss_corpus_executes_nothing(browser: Any, tmp_path: Path) -> None:
    run = hostile_run()
    path = write_report(tmp_path / "hostile", **run.kwargs()).index_html
    v = Visit(browser, path)
    try:
        page = v.page
        page.mouse.move(200, 300)
        for details in page.locator("details").all():  # open everything hidden, hover it all
            details.evaluate("d => { d.open = true; }")
        page.locator("article.example").first.hover()
        page.wait_for_timeout(200)
        assert page.title() == f"{run.gate.verdict} · {HOSTILE_TITLE} · evalpipe"
        assert v.dialogs == [] and v.errors == []
        assert v.requests == [v.url]
        assert page.locator("script, iframe, img, link, object, embed").count() == 0
        assert page.evaluate(_ON_ATTRIBUTES) == []
        text = page.locator("body").inner_text()
        for shown in (HOSTILE_NAME, HOSTILE_SLICE, HOSTILE_TITLE, "{{ 7*7 }}"):
            assert shown in text  # shown as text, verbatim
        assert page.locator(f'article.card[data-candidate="{HOSTILE_NAME}"]').count() == 1
    finally:
        v.context.close()


# --- a realistic run: charts, contrast, 1280 px, print, filter, sort ----------------------------


@pytest.fixture(scope="module")
def synth_visit(
    browser: Any, synth_run: SynthRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Visit]:
    out = tmp_path_factory.mktemp("synth")
    r = synth_run
    path = write_report(
        out / r.gate.run_id,
        gate=r.gate,
        spec=r.spec,
        records=r.records,
        responses=r.responses,
        scores=r.scores,
        manifest=r.manifest,
    ).index_html
    v = Visit(browser, path)
    v.context.close()
    v = Visit(browser, path, width=1280)
    try:
        yield v
    finally:
        v.context.close()


def test_realistic_page_loads_nothing_and_logs_no_error(synth_visit: Visit) -> None:
    assert synth_visit.requests == [synth_visit.url]
    assert synth_visit.errors == [] and synth_visit.dialogs == []


def test_usable_at_1280_px_with_verdicts_and_forest_plots_above_the_fold(
    synth_visit: Visit,
) -> None:
    page = synth_visit.page
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # no sideways scroll
    for card in page.locator("article.card").all():
        assert card.locator(".word").bounding_box()["y"] < 300
        assert card.locator("p.reason").bounding_box()["y"] < 400
        assert card.locator("figure.forest").first.bounding_box()["y"] < 900


_CONTRAST = """() => {
  const parse = c => { const m = c.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bgOf = e => { const layers = [];
    for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    let out = {r: 255, g: 255, b: 255};
    for (const c of layers.reverse()) out = {r: c.r * c.a + out.r * (1 - c.a), g: c.g * c.a + out.g * (1 - c.a), b: c.b * c.a + out.b * (1 - c.a)};
    return out; };
  const bad = [];
  for (const e of document.querySelectorAll('body *')) {
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length) continue;
    const s = getComputedStyle(e);
    if (s.visibility === 'hidden' || s.opacity === '0') continue;
    const svg = e instanceof SVGElement;
    const fg = parse(svg ? s.fill : s.color); if (!fg) continue;
    const bg = svg ? {r: 255, g: 255, b: 255} : bgOf(e);
    const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(s.fontSize), weight = parseInt(s.fontWeight);
    const large = size >= 24 || (size >= 18.66 && weight >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(`${e.tagName}.${e.className.baseVal ?? e.className} "${e.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad; }"""


def test_text_contrast_passes_wcag_aa(synth_visit: Visit) -> None:
    page = synth_visit.page
    for details in page.locator("details").all():
        details.evaluate("d => { d.open = true; }")
    assert page.evaluate(_CONTRAST) == []


def test_charts_have_titles_axes_and_units(synth_visit: Visit) -> None:
    page = synth_visit.page
    for svg in page.locator("figure.forest svg").all():
        assert "95% CI" in (svg.locator("title").first.text_content() or "")
        axis = svg.locator("text.axis-label").text_content() or ""
        assert "percentage points" in axis or "×" in axis or "points" in axis
    for table in page.locator("table.heatmap").all():
        caption = table.locator("caption").inner_text()
        assert "per slice and metric" in caption and "n per cell" in caption


def test_leaderboard_sorts_without_a_server(synth_visit: Visit) -> None:
    page = synth_visit.page
    visible = "table.lb:visible tbody tr"
    first = page.locator(visible).first.get_attribute("data-candidate")
    page.locator('.lb-keys label:text-is("cost per request")').click()
    rows = page.locator(visible)
    assert rows.first.get_attribute("data-candidate") == "nano-fast"  # the cheapest
    assert page.locator("table.lb:visible").count() == 1
    page.locator('.lb-keys label:text-is("Verdict")').click()
    assert page.locator(visible).first.get_attribute("data-candidate") == first


def test_examples_filter_by_metric_and_slice_without_a_server(synth_visit: Visit) -> None:
    page = synth_visit.page
    total = page.locator("article.example:visible").count()
    assert total > 0
    page.locator('.ex-filter label:text-is("helpfulness")').click()
    shown = page.locator("article.example:visible")
    assert 0 < shown.count() < total
    for ex in shown.all():
        assert "helpfulness" in ex.locator(".ex-head").inner_text()
    page.locator('.ex-filter label:text-is("feature=triage")').click()
    for ex in page.locator("article.example:visible").all():
        head = ex.locator(".ex-head").inner_text()
        assert "helpfulness" in head and "feature=triage" in head
    page.locator('.ex-filter label[for="fs-all"]').click()
    page.locator('.ex-filter label[for="fm-all"]').click()
    assert page.locator("article.example:visible").count() == total


def test_prints_legibly(synth_visit: Visit, tmp_path: Path) -> None:
    page = synth_visit.page
    page.emulate_media(media="print")
    try:
        assert (
            page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
        )
        size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 14  # 11 pt
        assert page.locator("table.lb:visible").count() == 1
        pdf = tmp_path / "report.pdf"
        page.pdf(path=str(pdf), format="A4")
        assert pdf.stat().st_size > 20_000
    finally:
        page.emulate_media(media="screen")


def test_trends_page_in_the_browser(browser: Any, tmp_path: Path) -> None:
    from evalpipe.report import write_trends

    from .nights import SPEC, make_nights

    make_nights(tmp_path / "store", 90)
    path = write_trends(tmp_path / "store", SPEC, tmp_path / "reports")
    assert path is not None
    v = Visit(browser, path, width=1280)
    try:
        page = v.page
        assert v.errors == [] and v.dialogs == [] and v.requests == [v.url]
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280
        assert page.locator("figure.trend").count() == 4
        for svg in page.locator("figure.trend svg").all():
            title = svg.locator("title").first.text_content() or ""
            assert "y axis:" in title and "x axis: night" in title
        assert page.locator("ol.events li").count() >= 2
        assert page.evaluate(_CONTRAST) == []
    finally:
        v.context.close()
