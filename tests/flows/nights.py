"""A small nightly spec over the demo's week of traffic (174–217 records a day)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"

DRIFTING_BASELINE = "gpt-4o-mini-2024-07-18@drift-{night}"


def nightly_spec(tmp_path: Path, *, drift_night: str = "2099-01-01", **extra: Any) -> Path:
    """Write eval.yaml (+ the demo's traffic) into tmp_path; the baseline drifts on drift_night."""
    shutil.copy(DEMO / "traffic.jsonl.gz", tmp_path)
    spec: dict[str, Any] = {
        "name": "nightly-test",
        "seed": 7,
        "store": str(tmp_path / "store"),
        "traffic": {
            "path": "traffic.jsonl.gz",
            "window": {"last": "24h"},
            "sample": {"n": 40, "stratify": ["feature"]},
        },
        "baseline": {
            "name": "prod",
            "provider": "openai",
            "model": DRIFTING_BASELINE.format(night=drift_night),
            "base_url": "builtin:fake",
        },
        "candidates": [
            {
                "name": "haiku",
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": "builtin:fake",
            }
        ],
        "checks": [
            {"name": "valid_json", "type": "json_valid", "where": {"feature": "triage"}},
            {"name": "no_refusal", "type": "not_refusal"},
        ],
        "diffs": ["exact"],
        "report": {"out": str(tmp_path / "reports")},
    }
    for key, value in extra.items():
        spec[key] = value
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path
