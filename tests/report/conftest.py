"""A small run built by hand: four candidates, one per verdict, and a hostile model output."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalpipe.gate.verdict import CandidateVerdict, GateResult
from evalpipe.spec import Spec, spec_from_dict
from evalpipe.tables import GATE, RECORDS, RESPONSES, SCORES, from_rows

from .synth import XSS_IMG, XSS_SCRIPT, SynthRun, make_run

RUN_ID = "20261125-094539-shop-abc123"
NO_GO_REASON = (
    "NO-GO: valid_json on triage fell from 99.0% to 91.0% (−8.0 pp, 95% CI −10.3 to −5.1; "
    "37 requests regressed, 2 improved)."
)
HOSTILE = f"Here you go {XSS_SCRIPT} and {XSS_IMG} — mail me at jane.doe@example.com"


@dataclass
class HandRun:
    spec: Spec
    records: pa.Table
    responses: pa.Table
    scores: pa.Table
    gate: GateResult
    manifest: dict[str, Any]

    def kwargs(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "spec": self.spec,
            "records": self.records,
            "responses": self.responses,
            "scores": self.scores,
            "manifest": self.manifest,
        }


def _spec() -> Spec:
    arm = {"provider": "openai"}
    return spec_from_dict(
        {
            "name": "shop",
            "traffic": {"path": "*.jsonl"},
            "baseline": {**arm, "model": "gpt-4o-mini"},
            "candidates": [
                {**arm, "name": "good", "model": "gpt-4.1", "version": "v2"},
                {**arm, "name": "bad", "model": "gpt-4.1-mini"},
                {**arm, "name": "unsure", "model": "gpt-4.1-nano"},
                {**arm, "name": "broken", "model": "o4-mini"},
            ],
            "checks": [
                {"name": "valid_json", "type": "json_valid", "where": {"feature": "triage"}}
            ],
            "judges": [
                {"name": "helpfulness", "type": "pairwise", "provider": "openai", "model": "j"}
            ],
            "gate": {"slices": ["feature"]},
            "report": {"title": "Switch the shop bot?", "top_examples": 3},
        },
        spec_dir=Path(__file__).parent,
    )


def _request(text: str) -> str:
    return json.dumps(
        {
            "system": "You are helpful.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "earlier question"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "earlier answer"}]},
                {"role": "user", "content": [{"type": "text", "text": text}]},
            ],
        }
    )


def _gate_row(candidate: str, metric: str, verdict: str | None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": RUN_ID,
        "candidate": candidate,
        "metric": metric,
        "kind": "pass_rate",
        "source": "rule",
        "flagged": False,
        "gated": True,
        "critical": False,
        "n": 400,
        "clusters": 400,
        "baseline": 0.99,
        "candidate_value": 0.99,
        "estimate": 0.0,
        "ci_low": -0.01,
        "ci_high": 0.01,
        "margin": 0.02,
        "p_value": 0.001,
        "p_adjusted": 0.002,
        "regressed": 1,
        "improved": 1,
        "verdict": verdict,
        "reason": f"{verdict}: {metric} of {candidate}." if verdict else f"{metric} shown.",
    }
    row.update(kw)
    return row


def _gate_table() -> pa.Table:
    rows = [
        _gate_row("good", "valid_json", "GO"),
        _gate_row(
            "good",
            "helpfulness",
            "GO",
            kind="win_rate",
            source="pairwise",
            baseline=0.5,
            candidate_value=0.55,
            estimate=0.05,
            ci_low=0.01,
            ci_high=0.09,
            margin=0.05,
        ),
        _gate_row(
            "good",
            "latency_p95",
            None,
            kind="ratio",
            source="latency",
            gated=False,
            baseline=800.0,
            candidate_value=720.0,
            estimate=0.9,
            ci_low=0.85,
            ci_high=0.95,
            margin=None,
        ),
        _gate_row(
            "good",
            "diff.exact",
            None,
            kind="mean",
            source="diff",
            gated=False,
            baseline=None,
            candidate_value=0.62,
            estimate=None,
            ci_low=None,
            ci_high=None,
            margin=None,
        ),
        # Simpson's case: the total is GO, one slice is flagged.
        _gate_row(
            "good",
            "valid_json",
            None,
            slice_col="feature",
            slice_value="<b>vip</b>",
            n=60,
            estimate=-0.09,
            ci_low=-0.15,
            ci_high=-0.03,
            q_value=0.01,
            flagged=True,
        ),
        _gate_row(
            "bad",
            "valid_json",
            "NO-GO",
            baseline=0.99,
            candidate_value=0.91,
            estimate=-0.08,
            ci_low=-0.103,
            ci_high=-0.051,
            regressed=37,
            improved=2,
            p_adjusted=1e-6,
            reason=NO_GO_REASON,
        ),
        _gate_row(
            "bad",
            "helpfulness",
            "NOT-PROVEN",
            kind="win_rate",
            source="pairwise",
            baseline=0.5,
            candidate_value=0.47,
            estimate=-0.03,
            ci_low=-0.08,
            ci_high=0.02,
            margin=0.05,
        ),
        _gate_row(
            "bad",
            "error_rate",
            "GO",
            source="error_rate",
            baseline=0.001,
            candidate_value=0.002,
            estimate=-0.001,
            ci_low=-0.004,
            ci_high=0.002,
            margin=0.01,
        ),
        _gate_row(
            "unsure",
            "valid_json",
            "NOT-PROVEN",
            estimate=-0.01,
            ci_low=-0.03,
            ci_high=0.01,
            reason="NOT-PROVEN: valid_json leans GO; need ~400 more records.",
            n_needed=1200,
        ),
        _gate_row("broken", "valid_json", "GO"),
    ]
    return from_rows(rows, GATE)


def _tables() -> tuple[pa.Table, pa.Table, pa.Table]:
    ids = ["r1", "r2", "r3", "r4"]
    records = from_rows(
        [
            {
                "record_id": rid,
                "request_sha256": rid,
                "request": _request(text),
                "attributes": [("feature", feat), ("tenant", "t1")],
            }
            for rid, text, feat in zip(
                ids,
                [
                    "Where is order 1234? My phone is +1 415 555 0134.",
                    "Refund please",
                    "Hello",
                    f"Name: {XSS_SCRIPT}",
                ],
                ["triage", "triage", "chat", "triage"],
                strict=True,
            )
        ],
        RECORDS,
    )
    resp_rows = []
    for arm in ("baseline", "good", "bad", "unsure", "broken", "logged"):
        for rid in ids:
            text = '{"ok": true}'
            status, origin = "ok", None
            if arm == "bad" and rid == "r1":
                text = HOSTILE
            if arm == "bad" and rid == "r2":
                text, status, origin = None, "error", "candidate"
            if arm == "broken" and rid in ("r1", "r2"):
                text, status, origin = None, "error", "infrastructure"
            resp_rows.append(
                {
                    "run_id": RUN_ID,
                    "record_id": rid,
                    "arm": arm,
                    "repeat": 0,
                    "status": status,
                    "error_origin": origin,
                    "error_type": None if status == "ok" else "BadRequestError",
                    "output_text": text,
                    "response_model": f"{arm}-2026-01-01",
                    "latency_ms": 500.0,
                    "cost_usd": 0.001,
                    "cache_hit": rid == "r4",
                }
            )
    responses = from_rows(resp_rows, RESPONSES)
    score_rows = []
    for arm in ("baseline", "good", "bad"):
        for rid in ("r1", "r2", "r4"):
            passed = not (arm == "bad" and rid == "r1")
            if arm == "bad" and rid == "r2":
                passed = None  # an error row: scoring leaves it null
            score_rows.append(
                {
                    "run_id": RUN_ID,
                    "record_id": rid,
                    "arm": arm,
                    "repeat": 0,
                    "kind": "rule",
                    "metric": "valid_json",
                    "scorer": "valid_json",
                    "value": None if passed is None else float(passed),
                    "passed": passed,
                }
            )
    # The judge preferred the baseline on r3.
    score_rows.append(
        {
            "run_id": RUN_ID,
            "record_id": "r3",
            "arm": "bad",
            "repeat": 0,
            "kind": "judge",
            "metric": "helpfulness",
            "scorer": "helpfulness",
            "value": 0.0,
        }
    )
    # The judge preferred `good` on r3, and said why (with PII and markup in its words).
    score_rows.append(
        {
            "run_id": RUN_ID,
            "record_id": "r3",
            "arm": "good",
            "repeat": 0,
            "kind": "judge",
            "metric": "helpfulness",
            "scorer": "helpfulness",
            "value": 1.0,
            "detail": json.dumps(
                {
                    "orders": [1.0, 1.0],
                    "orders_agree": True,
                    "rationale": f"Clearer {XSS_IMG}; ask jane.doe@example.com",
                }
            ),
        }
    )
    return records, responses, from_rows(score_rows, SCORES)


def hand_run() -> HandRun:
    records, responses, scores = _tables()
    candidates = [
        CandidateVerdict("good", "GO", "GO: every gated metric is within its margin.", n=400),
        CandidateVerdict("bad", "NO-GO", NO_GO_REASON, n=400, slices_flagged=[]),
        CandidateVerdict(
            "unsure",
            "NOT-PROVEN",
            "NOT-PROVEN: valid_json leans GO; need ~400 more records.",
            n=400,
            warnings=["only 12 clusters of session_id: intervals may be too narrow"],
        ),
        CandidateVerdict(
            "broken",
            "INVALID",
            "INVALID: 50.0% of broken's requests ended in infrastructure errors after retries "
            "(limit 5%).",
            invalid_reasons=["50.0% of broken's requests ended in infrastructure errors"],
            n=2,
        ),
    ]
    gate = GateResult(RUN_ID, _gate_table(), candidates)
    manifest = {
        "run_id": RUN_ID,
        "spec_name": "shop",
        "spec_hash": "abcdef0123456789",
        "created": "2026-11-25T09:45:39+00:00",
        "evalpipe_version": "0.1.0",
        "seed": 0,
        "git_sha": None,
        "counts": {"records": 4, "quarantined": 1},
        "cost_usd": {"replay": 0.02, "judges": 0.01, "total": 0.03},
        "timings": {"ingest": 0.1, "replay": 2.5},
        "models_seen": {"baseline": ["gpt-4o-mini-2024-07-18"]},
    }
    return HandRun(_spec(), records, responses, scores, gate, manifest)


@pytest.fixture
def run() -> HandRun:
    return hand_run()


@pytest.fixture(scope="session")
def synth_run() -> SynthRun:
    """A realistic 600-record run, gated by the real gate (built once)."""
    return make_run(600, n_judge=300)


XSS_CORPUS = [
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    '"><svg onload=alert(1)>',
    "</script><script>alert(1)</script>",
    "<!--<script>alert(1)//-->",
    "</style><script>alert(1)</script>",
    '<iframe src="http://127.0.0.1:9/"></iframe>',
    "<link rel=stylesheet href=http://127.0.0.1:9/x.css>",
    "' onmouseover='alert(1)' x='",
    "javascript:alert(1)",
    "{{ 7*7 }}{% raw %}",
]
"""Payloads for every untrusted text the page shows."""
HOSTILE_NAME = "<img src=x onerror=alert(1)>bad"
HOSTILE_SLICE = "</script><svg onload=alert(2)>"
HOSTILE_TITLE = "<script>alert(3)</script> Switch?"


def _swap(table: pa.Table, column: str, old: str, new: str) -> pa.Table:
    values = [new if v == old else v for v in table[column].to_pylist()]
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def hostile_run() -> HandRun:
    """`hand_run` with XSS payloads in outputs, requests, a slice, a candidate name and the title.

    The spec is copied without validation (its names would refuse the payload), as a report
    must stay inert whatever its tables hold.
    """
    run = hand_run()
    payload = " ".join(XSS_CORPUS)
    spec = run.spec
    cands = [
        c.model_copy(update={"name": HOSTILE_NAME}) if c.name == "bad" else c
        for c in spec.candidates
    ]
    spec = spec.model_copy(
        update={
            "candidates": cands,
            "report": spec.report.model_copy(update={"title": HOSTILE_TITLE}),
        }
    )
    records = run.records.to_pylist()
    for r in records:
        r["request"] = _request(payload)
        r["attributes"] = [(k, HOSTILE_SLICE if k == "feature" else v) for k, v in r["attributes"]]
    responses = _swap(run.responses, "arm", "bad", HOSTILE_NAME)
    texts = [
        payload if a == HOSTILE_NAME else t
        for a, t in zip(
            responses["arm"].to_pylist(), responses["output_text"].to_pylist(), strict=True
        )
    ]
    i = responses.schema.get_field_index("output_text")
    responses = responses.set_column(i, responses.schema.field(i), pa.array(texts, pa.string()))
    gate = _swap(run.gate.table, "candidate", "bad", HOSTILE_NAME)
    slice_row = (
        gate.filter(pa.compute.equal(gate["candidate"], HOSTILE_NAME)).slice(0, 1).to_pylist()
    )
    for row in slice_row:
        row.update(
            slice_col="feature", slice_value=HOSTILE_SLICE, flagged=True, verdict=None, q_value=0.01
        )
    gate = pa.concat_tables([gate, from_rows(slice_row, GATE)])
    candidates = [
        CandidateVerdict(HOSTILE_NAME, c.verdict, c.reason + " " + payload, n=c.n)
        if c.candidate == "bad"
        else c
        for c in run.gate.candidates
    ]
    return HandRun(
        spec,
        from_rows(records, RECORDS),
        responses,
        _swap(run.scores, "arm", "bad", HOSTILE_NAME),
        GateResult(RUN_ID, gate, candidates),
        run.manifest | {"models_seen": {HOSTILE_NAME: [payload]}},
    )


def part_file_views(
    con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table], folder: Path
) -> None:
    """Each table as two part files under `folder/<name>/` (as replay and score write them), and
    a view `<name>_all` over them in `con` (what pipeline.report_run hands the report)."""
    for name, table in tables.items():
        (folder / name).mkdir(parents=True)
        half = table.num_rows // 2
        pq.write_table(table.slice(half), folder / name / "part-00000.parquet")
        pq.write_table(table.slice(0, half), folder / name / "part-00001.parquet")
        con.execute(
            f"CREATE VIEW {name}_all AS SELECT * FROM read_parquet('{folder / name}/part-*.parquet')"
        )
