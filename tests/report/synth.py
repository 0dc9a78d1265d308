"""A realistic synthetic run for report tests, the screenshot and bench/report.py.

A support assistant over three features (triage answers in JSON) and eight tenants, replayed
against a baseline and three candidates: one that is GO (but worse on one tenant: Simpson's
case), one that breaks JSON on triage and answers longer (NO-GO), and a cheap one too close
to call (NOT-PROVEN). Scores follow from the generated texts' flags; the gate is the real one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from evalpipe.gate import gate_scores
from evalpipe.gate.verdict import GateResult
from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import RECORDS, RESPONSES, SCORES, conform

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"

_ASKS = {
    "triage": [
        "My order #{n} arrived with a cracked screen. Can I get a replacement? Reach me at {email}.",
        "I was charged twice for invoice INV-{n}. Please fix this, my card is 4111 1111 1111 1111.",
        "The tracking page for order {n} has said 'label created' for nine days.",
        "I can't log in since the password reset, it says my account {n} is locked.",
    ],
    "billing": [
        "How do I switch from the monthly to the annual plan without losing my discount?",
        "Can you send me a copy of last month's invoice? My email is {email}.",
        "Why did my bill go up by $12 this month? Account {n}.",
    ],
    "chat": [
        "Do you ship to Norway, and how long does it usually take?",
        "What is your warranty on refurbished laptops?",
        "Can I change the delivery address after the order is placed? Call me on +1 415 555 0{n3}.",
    ],
}
_REPLIES = {
    "billing": "I've checked account {n}: the increase comes from the end of your promotional price. "
    "You can switch to the annual plan under Settings → Billing and keep 15% off.",
    "chat": "Yes — we ship to most of Europe, usually within 3–5 working days. "
    "Refurbished laptops carry a 12-month warranty; you can change the address until dispatch.",
}
_PADDING = (
    " To make sure everything is covered, here is a summary of the steps we discussed, what "
    "happens next, the timelines you can expect, and a few additional tips that may be useful "
    "if anything else comes up with your order, your account or your billing in the future."
)


@dataclass
class SynthRun:
    spec: Spec
    records: pa.Table
    responses: pa.Table
    scores: pa.Table
    gate: GateResult
    manifest: dict[str, Any]


def _spec(n_judge: int) -> Spec:
    return spec_from_dict(
        {
            "name": "support-assistant",
            "seed": 7,
            "traffic": {"path": "*.jsonl"},
            "baseline": {
                "name": "prod-gpt-4o-mini",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "version": "support-v7",
            },
            "candidates": [
                {
                    "name": "claude-haiku",
                    "provider": "anthropic",
                    "model": "claude-haiku-4-5",
                    "version": "support-v7",
                },
                {
                    "name": "gpt-4.1-mini",
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "version": "support-v8 / 2026-11-20",
                },
                {"name": "nano-fast", "provider": "openai", "model": "gpt-4.1-nano"},
            ],
            "checks": [
                {
                    "name": "valid_json",
                    "type": "json_valid",
                    "where": {"feature": "triage"},
                },
                {"name": "concise", "type": "max_chars", "value": 420},
                {"name": "not_refusal", "type": "not_refusal"},
            ],
            "judges": [
                {
                    "name": "helpfulness",
                    "type": "pairwise",
                    "provider": "openai",
                    "model": "gpt-4.1",
                    "sample": n_judge,
                }
            ],
            "gate": {"cluster": "session_id", "slices": ["feature", "tenant"]},
            "report": {
                "title": "Move the support assistant off gpt-4o-mini?",
                "top_examples": 4,
            },
        },
        spec_dir=Path(__file__).parent,
    )


def _map(keys: list[str], columns: list[np.ndarray]) -> pa.MapArray:
    n, k = len(columns[0]), len(keys)
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    key_arr = pa.array(np.tile(np.array(keys, dtype=object), n), pa.string())
    items = pa.array(np.stack(columns, axis=1).reshape(-1), pa.string())
    return pa.MapArray.from_arrays(offsets, key_arr, items)


def _scores(ids: np.ndarray, arm: str, metric: str, kind: str, value: np.ndarray) -> pa.Table:
    m = len(ids)
    v = pa.array(value, pa.float64(), from_pandas=True)
    return conform(
        pa.table(
            {
                "run_id": pa.array(["synth"] * m, pa.string()),
                "record_id": pa.array(ids, pa.string()),
                "arm": pa.array([arm] * m, pa.string()),
                "repeat": pa.array(np.zeros(m, dtype=np.int32)),
                "scorer": pa.array([metric] * m, pa.string()),
                "kind": pa.array([kind] * m, pa.string()),
                "metric": pa.array([metric] * m, pa.string()),
                "value": v,
                "passed": pa.compute.cast(v, pa.bool_())
                if kind == "rule"
                else pa.nulls(m, pa.bool_()),
                "detail": pa.array(
                    ['{"orders_agree":true}' if kind == "judge" else None] * m, pa.string()
                ),
            }
        ),
        SCORES,
    )


def make_run(
    n: int = 1200, *, seed: int = 7, n_judge: int = 500, xss: bool = True, tenants: int = 8
) -> SynthRun:
    """A complete run of `n` records over 3 features and `tenants` tenants, gated by the real gate."""
    rng = np.random.default_rng(seed)
    spec = _spec(min(n_judge, n))
    ids = np.array([f"rec-{i:06d}" for i in range(n)], dtype=object)
    feature = rng.choice(
        np.array(["triage", "billing", "chat"], dtype=object), n, p=[0.4, 0.3, 0.3]
    )
    letters = "abcdefghijklmnopqrstuvwxyz"[:tenants]
    tenant = np.array([f"tenant-{c}" for c in letters], dtype=object)[rng.integers(0, tenants, n)]
    session = np.array([f"s{i // 3:05d}" for i in range(n)], dtype=object)
    num = rng.integers(10000, 99999, n)
    asks = []
    for i in range(n):
        options = _ASKS[feature[i]]
        text = options[i % len(options)].format(
            n=num[i], n3=num[i] % 1000, email=f"customer{num[i]}@example.com"
        )
        asks.append(text)
    if xss and n > 5:
        asks[5] = f"Ignore that. {XSS_SCRIPT} {XSS_IMG} what is my order status?"
        feature[5] = "triage"
    requests = [
        json.dumps(
            {
                "system": "You are the support assistant of Acme Shop.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": a}]}],
                "params": {"max_tokens": 512, "temperature": 0.2},
            }
        )
        for a in asks
    ]
    t0 = datetime(2026, 11, 24, tzinfo=UTC)
    records = conform(
        pa.table(
            {
                "record_id": pa.array(ids, pa.string()),
                "request_sha256": pa.array(ids, pa.string()),
                "timestamp": pa.array([t0 + timedelta(seconds=30 * i) for i in range(n)]),
                "provider": pa.array(["openai"] * n, pa.string()),
                "model": pa.array(["gpt-4o-mini"] * n, pa.string()),
                "request": pa.array(requests, pa.string()),
                "session_id": pa.array(session, pa.string()),
                "attributes": _map(["feature", "tenant"], [feature, tenant]),
                "replayable": pa.array(np.ones(n, dtype=bool)),
            }
        ),
        RECORDS,
    )

    triage = feature == "triage"
    base_json_ok = rng.random(n) > 0.01
    base_long = rng.random(n) < 0.05
    base_refuse = rng.random(n) < 0.01
    base_latency = rng.lognormal(6.6, 0.45, n)
    base_cost = rng.uniform(0.0003, 0.0011, n)
    arms: dict[str, dict[str, Any]] = {
        "baseline": dict(
            json_ok=base_json_ok,
            long=base_long,
            refuse=base_refuse,
            latency=base_latency,
            cost=base_cost,
            snapshot="gpt-4o-mini-2024-07-18",
        ),
        "logged": dict(
            json_ok=base_json_ok,
            long=base_long,
            refuse=base_refuse,
            latency=base_latency * 1.02,
            cost=base_cost,
            snapshot="gpt-4o-mini-2024-07-18",
        ),
    }
    # GO overall, improves concise everywhere but tenant-c, where answers got longer (Simpson).
    long_good = np.where(
        tenant == "tenant-c", base_long | (rng.random(n) < 0.25), base_long & (rng.random(n) < 0.3)
    )
    arms["claude-haiku"] = dict(
        json_ok=base_json_ok | (rng.random(n) < 0.5),
        long=long_good,
        refuse=base_refuse & (rng.random(n) < 0.5),
        latency=base_latency * 0.85 * rng.lognormal(0, 0.1, n),
        cost=base_cost * 1.1,
        snapshot="claude-haiku-4-5-20251001",
        win=0.55,
    )
    arms["gpt-4.1-mini"] = dict(
        json_ok=base_json_ok & ~(triage & (rng.random(n) < 0.08)),
        long=base_long | (rng.random(n) < 0.14),
        refuse=base_refuse,
        latency=base_latency * 1.3 * rng.lognormal(0, 0.1, n),
        cost=base_cost * 0.8,
        snapshot="gpt-4.1-mini-2025-04-14",
        win=0.38,
    )
    arms["nano-fast"] = dict(
        json_ok=base_json_ok & ~(rng.random(n) < 0.002),
        long=base_long | (rng.random(n) < 0.012),
        refuse=base_refuse,
        latency=base_latency * 0.55 * rng.lognormal(0, 0.1, n),
        cost=base_cost * 0.25,
        snapshot="gpt-4.1-nano-2025-04-14",
        win=0.47,
    )

    resp_parts, score_parts = [], []
    infra = rng.random(n) < 0.003
    own_err = (rng.random(n) < 0.006) & ~infra
    for arm, a in arms.items():
        texts = []
        for i in range(n):
            if a["refuse"][i]:
                t = "I'm sorry, but I can't help with that request."
            elif feature[i] == "triage":
                body = json.dumps(
                    {
                        "category": ["damaged", "billing", "shipping", "account"][i % 4],
                        "priority": "high" if num[i] % 3 == 0 else "normal",
                        "reply": f"Thanks for reaching out about {num[i]} — I've opened a ticket and a "
                        "replacement ships within 2 days.",
                    },
                    ensure_ascii=False,
                )
                t = body if a["json_ok"][i] else "Sure! Here is the triage:\n" + body[:-1] + ",}"
            else:
                t = _REPLIES.get(feature[i], "").format(n=num[i])
            if a["long"][i]:
                t += _PADDING * 2
            texts.append(t)
        status = np.array(["ok"] * n, dtype=object)
        origin = np.array([None] * n, dtype=object)
        err_type = np.array([None] * n, dtype=object)
        if arm == "gpt-4.1-mini":
            status[own_err], origin[own_err], err_type[own_err] = (
                "error",
                "candidate",
                "BadRequestError",
            )
        if arm not in ("logged",):
            status[infra], origin[infra], err_type[infra] = (
                "error",
                "infrastructure",
                "RateLimitError",
            )
        text = np.array(texts, dtype=object)
        text[status != "ok"] = None
        resp_parts.append(
            conform(
                pa.table(
                    {
                        "run_id": pa.array(["synth"] * n, pa.string()),
                        "record_id": pa.array(ids, pa.string()),
                        "arm": pa.array([arm] * n, pa.string()),
                        "repeat": pa.array(np.zeros(n, dtype=np.int32)),
                        "response_model": pa.array([a["snapshot"]] * n, pa.string()),
                        "output_text": pa.array(text, pa.string()),
                        "latency_ms": pa.array(a["latency"]),
                        "cost_usd": pa.array(a["cost"]),
                        "status": pa.array(status, pa.string()),
                        "error_origin": pa.array(origin, pa.string()),
                        "error_type": pa.array(err_type, pa.string()),
                        "cache_hit": pa.array(rng.random(n) < 0.1),
                    }
                ),
                RESPONSES,
            )
        )
        ok = status == "ok"
        lengths = np.array([len(t) for t in texts])
        for metric, passed, scope in (
            ("valid_json", a["json_ok"], triage),
            ("concise", lengths <= 420, np.ones(n, dtype=bool)),
            ("not_refusal", ~a["refuse"], np.ones(n, dtype=bool)),
        ):
            value = np.where(ok, passed.astype(np.float64), np.nan)
            score_parts.append(_scores(ids[scope], arm, metric, "rule", value[scope]))
        if arm not in ("baseline", "logged"):
            base_len = np.array([len(t) for t in arms["baseline"].get("_texts", texts)])
            exact = np.array(texts, dtype=object) == np.array(
                arms["baseline"]["_texts"], dtype=object
            )
            score_parts.append(_scores(ids[ok], arm, "diff.exact", "diff", exact[ok].astype(float)))
            score_parts.append(
                _scores(
                    ids[ok],
                    arm,
                    "diff.similarity",
                    "diff",
                    np.where(exact, 1.0, rng.uniform(0.55, 0.95, n))[ok],
                )
            )
            score_parts.append(
                _scores(ids[ok], arm, "diff.length_ratio", "diff", (lengths / base_len)[ok])
            )
            sample = np.sort(rng.choice(n, size=min(n_judge, n), replace=False))
            u = rng.random(sample.size)
            w = np.where(u < 0.1, 0.5, np.where(u < 0.1 + 0.9 * a["win"], 1.0, 0.0))
            w = np.where(ok[sample], w, np.nan)
            score_parts.append(_scores(ids[sample], arm, "helpfulness", "judge", w))
        a["_texts"] = texts
    responses = pa.concat_tables(resp_parts)
    scores = pa.concat_tables(score_parts)
    gate = gate_scores(
        scores,
        responses,
        records,
        spec,
        run_id="20261125-094539-support-assistant-3f9a1c",
        bootstrap_b=400,
        slice_bootstrap_b=100,
    )
    manifest = {
        "run_id": gate.run_id,
        "spec_name": spec.name,
        "spec_hash": "9c1e4f2a7b3d5e60",
        "created": "2026-11-25T09:45:39+00:00",
        "evalpipe_version": "0.1.0",
        "seed": spec.seed,
        "git_sha": "4be1d0c9a2f37e11d0a6",
        "counts": {"records": n, "quarantined": 1},
        "cost_usd": {"replay": 3.4172, "judges": 1.2051, "total": 4.6223},
        "timings": {"ingest": 0.84, "replay": 41.2, "score": 9.7, "gate": 1.3},
        "models_seen": {arm: [a["snapshot"]] for arm, a in arms.items()},
    }
    return SynthRun(spec, records, responses, scores, gate, manifest)
