"""Canary mode: unpaired estimators against hand figures, SRM, and the ramp decision."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from evalpipe.gate import gate_scores
from evalpipe.gate.canary import (
    gate_canary,
    msprt_half_width,
    newcombe_hybrid,
    rate_ratio_exact,
    srm_p,
)
from evalpipe.spec import spec_from_dict
from evalpipe.tables import GATE, RECORDS, SCORES, conform

START = datetime(2026, 11, 1, tzinfo=UTC)
RAMP = [(0.1, 1), (0.3, 2), (0.5, 3)]  # (treatment weight, until day)


def test_newcombe_hybrid_matches_newcombe_1998_example() -> None:
    # Newcombe (1998), independent proportions: 56/70 − 48/80, method 10: 0.0524 to 0.3339.
    est, lo, hi = newcombe_hybrid(56, 70, 48, 80)
    assert float(est) == pytest.approx(0.2)
    assert (round(float(lo), 4), round(float(hi), 4)) == (0.0524, 0.3339)


def test_msprt_half_width_by_hand() -> None:
    # V = 1e-4, τ² = 4e-4 (δ = 0.02), a = 0.05:
    # h = √(1e-4 · 5e-4 / 4e-4 · ln(5e-4 / (1e-4 · 0.0025))) = √(1.25e-4 · ln 2000) = 0.030824
    assert float(msprt_half_width(1e-4, 4e-4, 0.05)) == pytest.approx(0.030824, abs=1e-6)
    # It is wider than the fixed-sample 95% half-width (1.96 · 0.01) at every look.
    assert float(msprt_half_width(1e-4, 4e-4, 0.05)) > 1.96 * 0.01


def test_rate_ratio_exact_conditional_interval() -> None:
    rr, lo, hi = rate_ratio_exact(10, 1000, 5, 2000)
    ci = stats.binomtest(10, 15).proportion_ci(0.95, method="exact")
    assert rr == pytest.approx(4.0)
    assert lo == pytest.approx(ci.low / (1 - ci.low) * 2)
    assert hi == pytest.approx(ci.high / (1 - ci.high) * 2)


def test_srm_chi_square_by_hand() -> None:
    assert srm_p(1000, 1000, 0.5) == pytest.approx(1.0)
    # (1100 − 1000)²/1000 + (900 − 1000)²/1000 = 20 on 1 df
    assert srm_p(1100, 900, 0.5) == pytest.approx(stats.chi2.sf(20, 1))
    assert srm_p(905, 95, 0.1) > 0.5


def _canary(
    treat_pass: float, *, users: int = 3000, per_user: int = 3, srm: bool = False, seed: int = 0
) -> tuple[pa.Table, pa.Table, object]:
    rng = np.random.default_rng(seed)
    rows_ids, variants, user_ids, times, latency, passed = [], [], [], [], [], []
    bucket = rng.random(users)  # a user's fixed place on the ramp
    i = 0
    for weight, day in RAMP:
        t0 = START + timedelta(days=day - 1)
        cut = weight * (1.3 if srm else 1.0)
        for u in range(users):
            treat = bucket[u] < cut
            for _ in range(per_user):
                rows_ids.append(f"r{i:08d}")
                variants.append("B" if treat else "A")
                user_ids.append(f"u{u:05d}")
                times.append(t0 + timedelta(seconds=int(rng.integers(0, 86_000))))
                latency.append(float(rng.lognormal(6.5, 0.4)))
                passed.append(float(rng.random() < (treat_pass if treat else 0.98)))
                i += 1
    n = len(rows_ids)
    attrs = pa.array([[("variant", v)] for v in variants], pa.map_(pa.string(), pa.string()))
    records = conform(
        pa.table(
            {
                "record_id": rows_ids,
                "timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                "user_id": user_ids,
                "attributes": attrs,
                "status": ["ok"] * n,
                "latency_ms": latency,
            }
        ),
        RECORDS,
    )
    scores = conform(
        pa.table(
            {
                "record_id": rows_ids,
                "arm": ["logged"] * n,
                "repeat": pa.array(np.zeros(n, np.int32)),
                "kind": ["rule"] * n,
                "metric": ["valid_json"] * n,
                "value": passed,
            }
        ),
        SCORES,
    )
    spec = spec_from_dict(
        {
            "name": "canary",
            "mode": "canary",
            "traffic": {"path": "*.jsonl"},
            "candidates": [{"name": "next", "provider": "openai", "model": "m"}],
            "checks": [{"name": "valid_json", "type": "json_valid"}],
            "gate": {
                "arm_column": "attributes.variant",
                "control": "A",
                "treatment": "B",
                "unit": "user_id",
                "ramp": [
                    {"weight": w, "until": (START + timedelta(days=d)).isoformat()} for w, d in RAMP
                ],
            },
        },
        spec_dir=Path(__file__).parent,
    )
    return records, scores, spec


def test_equal_canary_promotes() -> None:
    records, scores, spec = _canary(0.98, seed=1)
    result = gate_canary(records, scores, spec, run_id="c", bootstrap_b=200)  # type: ignore[arg-type]
    assert result.table.schema.equals(GATE)
    cv = result.for_candidate("next")
    assert cv.verdict == "GO", cv.reason
    assert cv.canary_step is not None and cv.canary_step["decision"] == "promote"
    assert cv.reason.startswith("GO: promote after ramp step ")


def test_regressed_canary_rolls_back_and_shadow_entry_dispatches() -> None:
    records, scores, spec = _canary(0.90, seed=2)
    result = gate_scores(scores, pa.table({}), records, spec, run_id="c")  # type: ignore[arg-type]
    cv = result.for_candidate("next")
    assert cv.verdict == "NO-GO"
    assert cv.canary_step is not None and cv.canary_step["decision"] == "rollback"
    assert cv.reason.startswith("NO-GO: roll back at ramp step ")
    assert "valid_json fell from 98." in cv.reason
    row = next(r for r in result.table.to_pylist() if r["metric"] == "valid_json")
    assert row["ci_high"] < -0.02 and row["verdict"] == "NO-GO"
    assert not math.isnan(row["p_value"])


def test_sample_ratio_mismatch_is_invalid() -> None:
    records, scores, spec = _canary(0.98, srm=True, seed=3)
    cv = gate_canary(records, scores, spec, run_id="c", bootstrap_b=50).for_candidate("next")  # type: ignore[arg-type]
    assert cv.verdict == "INVALID"
    assert "sample-ratio mismatch in ramp step 1" in cv.reason
