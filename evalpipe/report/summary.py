"""summary.md: the verdicts and metric tables in Markdown, for a CI job summary or a PR comment."""

from __future__ import annotations

import html
import re
from typing import Final

from evalpipe.report.html import PageData

__all__ = ["md_escape", "render_summary"]

ICONS: Final[dict[str, str]] = {
    "GO": "🟢",
    "NO-GO": "🔴",
    "NOT-PROVEN": "🟡",
    "INVALID": "🟣",
}

# Enough to keep untrusted text literal: no emphasis, code, link, HTML, table cell, entity or
# math (GitHub reads `$2.85 … ($3.28` as an inline formula).
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")
SLICES_SHOWN: Final = 10
MAX_BYTES: Final = 64_000
"""A GitHub PR comment holds 65,536 characters; a step summary 1 MiB. Stay under both."""
REASON_CHARS: Final = 600


def md_escape(text: str) -> str:
    """Untrusted text as literal Markdown: specials backslash-escaped, one line."""
    flat = " ".join(str(text).split())
    return _SPECIAL.sub(r"\\\1", flat)


def render_summary(page: PageData, *, report_path: str = "index.html") -> str:
    """The Markdown document (GitHub-flavoured tables; each metric table folds in `<details>`).

    It stays under `MAX_BYTES`: when the full document is larger, the metric tables are left
    out (GO candidates' first), then the flagged slices, then reasons are cut; the verdicts and
    the link to the report always remain.
    """
    tables = [s.card.name for s in page.sections]
    go_last = sorted(
        tables, key=lambda n: next(c.verdict for c in page.cards if c.name == n) != "GO"
    )
    for drop in range(len(tables) + 1):
        text = _render(page, report_path, set(go_last[:drop]), slices=True, cut=False)
        if len(text.encode()) <= MAX_BYTES:
            return text
    text = _render(page, report_path, set(tables), slices=False, cut=False)
    if len(text.encode()) <= MAX_BYTES:
        return text
    return _render(page, report_path, set(tables), slices=False, cut=True)


def _short(text: str, cut: bool) -> str:
    if not cut or len(text) <= REASON_CHARS:
        return text
    return text[:REASON_CHARS] + "… (cut: the full reason is in the report)"


def _render(page: PageData, report_path: str, without: set[str], *, slices: bool, cut: bool) -> str:
    e = md_escape
    lines = [
        f"## {ICONS.get(page.verdict, '')} evalpipe: {e(page.title)} — **{page.verdict}**",
        "",
        f"{e(page.compared)} Run {e(page.run_id)}, {e(page.created_text)}.",
        "",
        "| Candidate | Verdict | Reason |",
        "|---|---|---|",
    ]
    for card in page.cards:
        lines.append(
            f"| {e(card.name)} | {ICONS.get(card.verdict, '')} **{card.verdict}** | "
            f"{e(_short(card.reason, cut))} |"
        )
    extra = [(c.name, t) for c in page.cards for t in (c.need, c.money) if t]
    if extra:
        lines.append("")
        lines += [f"- **{e(name)}**: {e(_short(t, cut))}" for name, t in extra]
    if without:
        lines += ["", f"Metric tables of {len(without):,} candidates are in the HTML report."]
    for section in page.sections:
        card = section.card
        if card.name in without:
            continue
        lines += [
            "",
            "<details open>" if card.verdict != "GO" else "<details>",
            # Raw HTML: Markdown escapes do not apply inside it.
            f"<summary>{ICONS.get(card.verdict, '')} {html.escape(card.name)}: {card.verdict}, "
            "metric by metric</summary>",
            "",
            "| Metric | Baseline | Candidate | Change | 95% CI | Allowed | Verdict | n |",
            "|---|---:|---:|---:|---|---|---|---:|",
        ]
        for v in section.metrics:
            verdict = f"**{v.verdict}**" if v.verdict else "info"
            lines.append(
                f"| {e(v.label)} | {e(v.baseline)} | {e(v.candidate)} | {e(v.change)} | "
                f"{e(v.ci)} | {e(v.allowed)} | {verdict} | {v.n:,} |"
            )
        for w in card.warnings:
            lines += ["", f"⚠️ {e(w)}"]
        lines += ["", "</details>"]
    if page.slices and slices:
        lines += [
            "",
            "### Flagged slices",
            "",
            "| Candidate | Slice | Metric | Change | 95% CI | q | Status |",
            "|---|---|---|---:|---|---:|---|",
        ]
        for s in page.slices[:SLICES_SHOWN]:
            lines.append(
                f"| {e(s.candidate)} | {e(s.view.slice or '')} | {e(s.view.label)} | "
                f"{e(s.view.change)} | {e(s.view.ci)} | {e(s.view.q)} | {e(s.view.flag or '')} |"
            )
        if len(page.slices) > SLICES_SHOWN:
            lines += ["", f"… and {len(page.slices) - SLICES_SHOWN:,} more in the HTML report."]
        for warning in page.simpson:
            lines += ["", f"⚠️ Simpson's warning: {e(warning)}"]
    lines += [
        "",
        f"Cost of this evaluation: {e(page.cost_total)}. "
        f"Full report with examples: {e(report_path)}",
        "",
    ]
    return "\n".join(lines)
