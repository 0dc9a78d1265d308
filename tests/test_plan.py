"""The dry run's plan: what it counts, and that it sizes with the gate's own margins."""

from __future__ import annotations

import json
from pathlib import Path

from evalpipe.gate.catalogue import gate_metrics
from evalpipe.plan import plan_run
from evalpipe.spec import spec_from_dict


def _traffic(path: Path, n: int) -> None:
    lines = []
    for i in range(n):
        lines.append(
            {
                "request": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"Q{i}"}],
                },
                "response": {
                    "id": f"c{i}",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "{}"},
                            "finish_reason": "stop",
                        }
                    ],
                },
            }
        )
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_plan_sizes_each_check_with_the_margin_the_gate_applies(tmp_path: Path) -> None:
    _traffic(tmp_path / "traffic.jsonl", 20)
    spec = spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": "traffic.jsonl"},
            "baseline": {"provider": "openai", "model": "gpt-4o-mini"},
            "candidates": [{"name": "c", "provider": "openai", "model": "gpt-4.1-mini"}],
            "checks": [
                # the check's own margin and a gate.margins override: the override wins
                {"name": "json", "type": "json_valid", "margin": 0.03},
                {"name": "crit", "type": "json_valid", "critical": True},
                {"name": "plain", "type": "json_valid"},
            ],
            "gate": {"margins": {"json": 0.01, "error_rate": 0.02}},
        },
        spec_dir=tmp_path,
    )
    plan = plan_run(spec)
    gated = {m.name: m.margin for m in gate_metrics(spec) if m.gated}
    sized = {need.metric: need.margin for need in plan.needs}
    assert sized == {name: gated[name] for name in sized}
    assert sized["json"] == 0.01 and sized["crit"] == 0.005 and sized["plain"] == 0.02
