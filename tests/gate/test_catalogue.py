"""The catalogue of metrics and margins: one list for plan, gate and report."""

from __future__ import annotations

from pathlib import Path

from evalpipe.gate.catalogue import DEFAULT_MARGINS, SOURCES, gate_metrics
from evalpipe.report.document import verdict_schema
from evalpipe.spec import spec_from_dict
from evalpipe.tables import GATE


def _spec(**gate: object) -> object:
    return spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": "*.jsonl"},
            "baseline": {"provider": "openai", "model": "b"},
            "candidates": [{"name": "c", "provider": "openai", "model": "c"}],
            "checks": [
                {"name": "json", "type": "json_valid", "margin": 0.03},
                {"name": "crit", "type": "json_valid", "critical": True},
            ],
            "judges": [
                {
                    "name": "tone",
                    "type": "pointwise",
                    "provider": "openai",
                    "model": "j",
                    "scale": [1, 5],
                },
                {"name": "pref", "type": "pairwise", "provider": "openai", "model": "j"},
            ],
            "gate": gate,
        },
        spec_dir=Path("."),
    )


def test_margins_defaults_and_overrides() -> None:
    metrics = {m.name: m for m in gate_metrics(_spec(margins={"json": 0.01}, cost_ratio_max=1.2))}
    assert metrics["json"].margin == 0.01  # gate.margins wins over the check's own
    assert metrics["crit"].margin == DEFAULT_MARGINS["critical"] and metrics["crit"].critical
    assert metrics["tone"].margin == DEFAULT_MARGINS["pointwise"] * 4  # share of the 1–5 range
    assert metrics["pref"].margin == DEFAULT_MARGINS["pairwise"]
    assert metrics["error_rate"].margin == DEFAULT_MARGINS["error_rate"]
    assert metrics["cost"].gated and abs((metrics["cost"].margin or 0) - 0.2) < 1e-12
    assert not metrics["latency_p95"].gated and metrics["latency_p95"].margin is None


def test_sources_are_one_list_in_the_table_and_the_schema() -> None:
    assert "source" in GATE.names and "flagged" in GATE.names
    metric = verdict_schema()["$defs"]["metric"]
    assert tuple(metric["properties"]["source"]["enum"]) == SOURCES
    assert {m.source for m in gate_metrics(_spec())} <= set(SOURCES)
