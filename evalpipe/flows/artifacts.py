"""Keyed Prefect artifacts of a finished run: summary (markdown), metrics (table), report (link).

The same key every run of a spec and flow, so the Prefect UI lines the versions up night after
night. Called from the flows only, inside a flow run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from evalpipe.spec import Spec
from evalpipe.store import open_run

__all__ = ["artifact_key", "publish_run"]


def artifact_key(spec_name: str, flow: str, what: str) -> str:
    """A Prefect artifact key (lower-case letters, digits and dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{spec_name}-{flow}-{what}".lower()).strip("-")


def publish_run(
    spec: Spec, run_id: str | None, flow: str, headline: str, *, store: str | None = None
) -> None:
    """Publish the run's summary.md (or `headline` alone), its gated metrics and its report link."""
    if run_id is None:
        create_markdown_artifact(
            key=artifact_key(spec.name, flow, "summary"), markdown=headline, description=flow
        )
        return
    run = open_run(spec, run_id, store=store)
    manifest = run.manifest()
    report = Path(str(manifest.get("report") or ""))
    summary = report.parent / "summary.md"
    text = headline + ("\n\n" + summary.read_text() if summary.is_file() else "")
    create_markdown_artifact(
        key=artifact_key(spec.name, flow, "summary"), markdown=text, description=run_id
    )
    if run.path("gate.parquet").exists():
        gate = run.read_gate().to_pylist()
        rows: list[dict[str, Any]] = [
            {
                k: r.get(k)
                for k in (
                    "candidate",
                    "metric",
                    "estimate",
                    "ci_low",
                    "ci_high",
                    "margin",
                    "verdict",
                )
            }
            for r in gate
            if r.get("gated") and r.get("slice_col") is None
        ]
        create_table_artifact(
            key=artifact_key(spec.name, flow, "metrics"), table=rows, description=run_id
        )
    if report.is_file():
        create_link_artifact(
            key=artifact_key(spec.name, flow, "report"),
            link=report.resolve().as_uri(),
            link_text=f"report {run_id}",
            description=run_id,
        )
