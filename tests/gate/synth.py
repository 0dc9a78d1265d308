"""Synthetic runs for gate tests and benches: records, responses and scores built with NumPy.

Everything is vectorised so the same builder makes 500 records for a test and 100,000 for
bench/gate.py. Probabilities are per record; a candidate's regression flips some baseline
passes to fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import RECORDS, RESPONSES, SCORES, conform

_WORDS = (
    "refund order shipping invoice account password billing plan upgrade ticket agent delay "
    "carrier address warranty return label discount coupon login error device sync export"
)


@dataclass
class Check:
    name: str
    base_pass: float = 0.95
    where_feature: str | None = None
    critical: bool = False


@dataclass
class Arm:
    """How a candidate differs from the baseline."""

    regress: dict[str, float] = field(default_factory=dict)
    """Check name → probability that a baseline pass becomes a fail."""
    improve: dict[str, float] = field(default_factory=dict)
    """Check name → probability that a baseline fail becomes a pass."""
    regress_feature: str | None = None
    """Only records of this feature regress (improvements apply everywhere)."""
    own_error: float = 0.0
    infra_error: float = 0.0
    latency_factor: float = 1.0
    cost_factor: float = 1.0
    win: float = 0.5
    """Probability that the candidate wins the pairwise judge (ties 10%)."""


@dataclass
class Run:
    scores: pa.Table
    responses: pa.Table
    records: pa.Table
    spec: Spec


def _map(keys: list[str], columns: list[np.ndarray]) -> pa.MapArray:
    n = len(columns[0])
    k = len(keys)
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    key_arr = pa.array(np.tile(np.array(keys, dtype=object), n), pa.string())
    items = pa.array(np.stack(columns, axis=1).reshape(-1), pa.string())
    return pa.MapArray.from_arrays(offsets, key_arr, items)


def make_run(
    n: int = 500,
    *,
    checks: list[Check] | None = None,
    candidates: dict[str, Arm] | None = None,
    features: tuple[str, ...] = ("triage", "billing", "chat"),
    tenants: int = 6,
    session_size: int = 1,
    seed: int = 0,
    base_own_error: float = 0.0,
    base_infra_error: float = 0.0,
    judge: int | None = None,
    gate: dict[str, Any] | None = None,
    extra_slices: int = 0,
    judges: list[dict[str, Any]] | None = None,
) -> Run:
    """A complete synthetic shadow run.

    Args:
        n: records.
        checks: rule checks (default: valid_json on triage, critical, and concise).
        candidates: name → Arm.
        session_size: records per session (clusters when `gate.cluster` is session_id).
        judge: size of a pairwise judge sample (None: no judge).
        gate: the spec's gate block.
        extra_slices: adds attribute `bucket` with this many values.
    """
    rng = np.random.default_rng(seed)
    checks = (
        checks
        if checks is not None
        else [Check("valid_json", 0.99, "triage", True), Check("concise", 0.9)]
    )
    candidates = candidates if candidates is not None else {"good": Arm()}
    ids = np.array([f"r{i:07d}" for i in range(n)], dtype=object)
    feature = np.array(features, dtype=object)[np.arange(n) % len(features)]
    tenant = np.array([f"t{i}" for i in range(tenants)], dtype=object)[rng.integers(0, tenants, n)]
    attrs = {"feature": feature, "tenant": tenant}
    if extra_slices:
        attrs["bucket"] = np.array([f"b{i:02d}" for i in range(extra_slices)], dtype=object)[
            rng.integers(0, extra_slices, n)
        ]
    records = conform(
        pa.table(
            {
                "record_id": pa.array(ids, pa.string()),
                "request_sha256": pa.array(ids, pa.string()),
                "session_id": pa.array(
                    np.array([f"s{i // session_size:07d}" for i in range(n)], dtype=object),
                    pa.string(),
                ),
                "attributes": _map(list(attrs), list(attrs.values())),
            }
        ),
        RECORDS,
    )

    base_latency = rng.lognormal(6.5, 0.5, n)
    base_cost = rng.uniform(0.0005, 0.002, n)
    arms: dict[str, dict[str, np.ndarray]] = {}
    u_own = rng.random(n)
    u_infra = rng.random(n)
    arms["baseline"] = {
        "own": u_own < base_own_error,
        "infra": (u_infra < base_infra_error) & ~(u_own < base_own_error),
        "latency": base_latency,
        "cost": base_cost,
    }
    for name, arm in candidates.items():
        own = rng.random(n) < arm.own_error
        infra = (rng.random(n) < arm.infra_error) & ~own
        arms[name] = {
            "own": own,
            "infra": infra,
            "latency": base_latency * arm.latency_factor * rng.lognormal(0, 0.1, n),
            "cost": base_cost * arm.cost_factor,
        }

    resp_parts = []
    for name, a in arms.items():
        status = np.where(a["own"] | a["infra"], "error", "ok").astype(object)
        origin = np.where(
            a["own"], "candidate", np.where(a["infra"], "infrastructure", None)
        ).astype(object)
        words = np.array(_WORDS.split(), dtype=object)[rng.integers(0, 24, (n, 6))]
        text = np.array(
            [f"{name} answer {i}: " + " ".join(w) for i, w in enumerate(words)], dtype=object
        )
        text[status != "ok"] = None
        resp_parts.append(
            pa.table(
                {
                    "run_id": pa.array(["run"] * n, pa.string()),
                    "record_id": pa.array(ids, pa.string()),
                    "arm": pa.array([name] * n, pa.string()),
                    "repeat": pa.array(np.zeros(n, dtype=np.int32)),
                    "status": pa.array(status, pa.string()),
                    "error_origin": pa.array(origin, pa.string()),
                    "latency_ms": pa.array(a["latency"]),
                    "cost_usd": pa.array(a["cost"]),
                    "output_text": pa.array(text, pa.string()),
                }
            )
        )
    responses = pa.concat_tables([conform(t, RESPONSES) for t in resp_parts])

    score_parts = []
    for check in checks:
        scope = (
            np.ones(n, dtype=bool)
            if check.where_feature is None
            else feature == check.where_feature
        )
        base_pass = rng.random(n) < check.base_pass
        for name, a in arms.items():
            if name == "baseline":
                passed = base_pass
            else:
                arm = candidates[name]
                flip_down = rng.random(n) < arm.regress.get(check.name, 0.0)
                if arm.regress_feature is not None:
                    flip_down &= feature == arm.regress_feature
                flip_up = rng.random(n) < arm.improve.get(check.name, 0.0)
                passed = np.where(base_pass, ~flip_down, flip_up)
            err = a["own"] | a["infra"]
            value = np.where(err, np.nan, passed.astype(np.float64))[scope]
            score_parts.append(
                _scores(
                    ids[scope], name, check.name, "rule", value, np.where(err, "error", None)[scope]
                )
            )
    if judge is not None:
        sample = np.sort(rng.choice(n, size=min(judge, n), replace=False))
        for name, arm in candidates.items():
            u = rng.random(sample.size)
            w = np.where(u < 0.1, 0.5, np.where(u < 0.1 + 0.9 * arm.win, 1.0, 0.0))
            err = arms[name]["own"][sample] | arms[name]["infra"][sample]
            err |= arms["baseline"]["own"][sample] | arms["baseline"]["infra"][sample]
            value = np.where(err, np.nan, w)
            detail = np.array(
                ['{"orders":[1.0,1.0],"orders_agree":true}'] * sample.size, dtype=object
            )
            t = _scores(
                ids[sample],
                name,
                "helpfulness",
                "judge",
                value,
                np.where(err, "response not ok", None),
            )
            score_parts.append(
                t.set_column(
                    t.schema.get_field_index("detail"), "detail", pa.array(detail, pa.string())
                )
            )
    scores = pa.concat_tables([SCORES.empty_table()] + [conform(t, SCORES) for t in score_parts])

    spec_dict: dict[str, Any] = {
        "name": "synthetic",
        "seed": seed,
        "traffic": {"path": "*.jsonl"},
        "baseline": {"provider": "openai", "model": "base-model"},
        "candidates": [
            {"name": c, "provider": "openai", "model": f"{c}-model"} for c in candidates
        ],
        "checks": [
            {
                "name": c.name,
                "type": "json_valid",
                "critical": c.critical,
                **({"where": {"feature": c.where_feature}} if c.where_feature else {}),
            }
            for c in checks
        ],
        "judges": (
            [
                {
                    "name": "helpfulness",
                    "type": "pairwise",
                    "provider": "openai",
                    "model": "judge-model",
                }
            ]
            if judge is not None
            else []
        )
        + (judges or []),
        "gate": gate or {},
    }
    spec = spec_from_dict(spec_dict, spec_dir=Path(__file__).parent)
    return Run(scores, responses, records, spec)


def _scores(
    ids: np.ndarray, arm: str, metric: str, kind: str, value: np.ndarray, error: np.ndarray
) -> pa.Table:
    m = len(ids)
    passed = pa.array(value, pa.float64(), from_pandas=True)
    return pa.table(
        {
            "run_id": pa.array(["run"] * m, pa.string()),
            "record_id": pa.array(ids, pa.string()),
            "arm": pa.array([arm] * m, pa.string()),
            "repeat": pa.array(np.zeros(m, dtype=np.int32)),
            "scorer": pa.array([metric] * m, pa.string()),
            "kind": pa.array([kind] * m, pa.string()),
            "metric": pa.array([metric] * m, pa.string()),
            "value": passed,
            "passed": pa.compute.cast(passed, pa.bool_())
            if kind == "rule"
            else pa.nulls(m, pa.bool_()),
            "detail": pa.nulls(m, pa.string()),
            "error": pa.array(error, pa.string()),
        }
    )
