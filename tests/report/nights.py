"""A store of simulated nights of one spec: manifests and gate tables, as the nightly flow leaves
them. One candidate drifts after a model-snapshot change; another is steady."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq

from evalpipe.tables import GATE, from_rows

SPEC = "support-nightly"
START = datetime(2026, 9, 1, 2, 0, tzinfo=UTC)


def _row(
    night: str, cand: str, metric: str, source: str, est: float, half: float, **kw: Any
) -> dict[str, Any]:
    return {
        "run_id": night,
        "candidate": cand,
        "metric": metric,
        "kind": kw.pop("kind", "pass_rate"),
        "source": source,
        "gated": kw.pop("gated", True),
        "critical": False,
        "n": 1000,
        "estimate": est,
        "ci_low": est - half,
        "ci_high": est + half,
        "margin": kw.pop("margin", 0.02),
        **kw,
    }


def make_nights(root: Path, n: int = 90, *, seed: int = 3) -> list[str]:
    """Write `n` finished nightly runs of `SPEC` into the store at `root`; returns their ids."""
    rng = np.random.default_rng(seed)
    ids = []
    for k in range(n):
        when = START + timedelta(days=k)
        run_id = f"{when:%Y%m%d-%H%M%S}-{SPEC}-{k:06x}"
        drift = -0.004 * max(0, k - 60)  # haiku worsens after its snapshot changes on night 60
        verdicts = {}
        rows = []
        for cand, base in (("claude-haiku", 0.004 + drift), ("gpt-4.1-mini", -0.006)):
            est = base + rng.normal(0, 0.003)
            verdict = (
                "GO" if est - 0.008 > -0.02 else ("NO-GO" if est + 0.008 < -0.02 else "NOT-PROVEN")
            )
            verdicts[cand] = verdict
            rows += [
                _row(run_id, cand, "valid_json", "rule", est, 0.008, verdict=verdict),
                _row(
                    run_id,
                    cand,
                    "helpfulness",
                    "pairwise",
                    0.02 + rng.normal(0, 0.01),
                    0.03,
                    kind="win_rate",
                    margin=0.05,
                    verdict="GO",
                ),
                _row(
                    run_id,
                    cand,
                    "cost",
                    "cost",
                    0.8,
                    0.02,
                    kind="ratio",
                    gated=False,
                    margin=None,
                    baseline=0.0007,
                    candidate_value=0.00056 + rng.normal(0, 2e-5),
                ),
                _row(
                    run_id,
                    cand,
                    "latency_p50",
                    "latency",
                    1.1,
                    0.05,
                    kind="ratio",
                    gated=False,
                    margin=None,
                    baseline=700 + rng.normal(0, 20),
                    candidate_value=760 + rng.normal(0, 25),
                ),
            ]
        d = root / "runs" / run_id
        d.mkdir(parents=True)
        pq.write_table(from_rows(rows, GATE), d / "gate.parquet")
        snapshot = "claude-haiku-4-5-20251001" if k < 60 else "claude-haiku-4-5-20260115"
        worst = (
            "NO-GO"
            if "NO-GO" in verdicts.values()
            else ("NOT-PROVEN" if "NOT-PROVEN" in verdicts.values() else "GO")
        )
        manifest = {
            "run_id": run_id,
            "spec_name": SPEC,
            "created": when.isoformat(),
            "verdict": worst,
            "candidates": {
                c: {"verdict": v, "reason": f"{v}: night {k}."} for c, v in verdicts.items()
            },
            "models_seen": {"baseline": ["gpt-4o-mini-2024-07-18"], "claude-haiku": [snapshot]},
            "counts": {"records": 1000},
            "cost_usd": {"total": 3.2 + rng.normal(0, 0.1)},
        }
        (d / "manifest.json").write_bytes(orjson.dumps(manifest))
        ids.append(run_id)
    return ids
