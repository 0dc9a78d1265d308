"""A replay spec on the demo's traffic: the baseline on OpenAI, one candidate on Anthropic."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

DEMO = Path(__file__).resolve().parents[2] / "eval_sets" / "demo"


def demo_traffic_spec(
    folder: Path, root: str, *, name: str, n: int, models: tuple[str, str], **extra: Any
) -> Path:
    """`folder/eval.yaml` replaying `n` demo records on `models` (OpenAI, Anthropic) at `root`;
    `extra` are further top-level spec fields."""
    folder.mkdir(parents=True)
    shutil.copy(DEMO / "traffic.jsonl.gz", folder)
    spec = {
        "name": name,
        "store": str(folder / "store"),
        "traffic": {"path": "traffic.jsonl.gz", "sample": {"n": n}},
        "baseline": {
            "provider": "openai",
            "model": models[0],
            "base_url": f"{root}/v1",
            "compare_logged": False,
        },
        "candidates": [
            {"name": "haiku", "provider": "anthropic", "model": models[1], "base_url": root}
        ],
        **extra,
    }
    (folder / "eval.yaml").write_text(yaml.safe_dump(spec))
    return folder / "eval.yaml"
