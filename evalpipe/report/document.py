"""verdict.json: the run's decision for machines, validated by `verdict.schema.json` (FORMATS.md)."""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources
from typing import Any, Final

import jsonschema
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate.verdict import EXIT_CODES, GateResult
from evalpipe.report.coverage import ArmCoverage, arm_coverage
from evalpipe.report.figures import slice_rows
from evalpipe.spec import Arm, Spec
from evalpipe.version import __version__

__all__ = ["SCHEMA_VERSION", "build_verdict", "validate_verdict", "verdict_schema"]

SCHEMA_VERSION: Final = 1

_METRIC_FIELDS: Final = (
    "metric",
    "kind",
    "source",
    "gated",
    "critical",
    "n",
    "clusters",
    "baseline",
    "candidate_value",
    "estimate",
    "ci_low",
    "ci_high",
    "margin",
    "p_value",
    "p_adjusted",
    "q_value",
    "regressed",
    "improved",
    "mde",
    "n_needed",
    "verdict",
    "reason",
)
_SLICE_FIELDS: Final = (
    "slice_col",
    "slice_value",
    "metric",
    "n",
    "estimate",
    "ci_low",
    "ci_high",
    "q_value",
    "flagged",
    "verdict",
)


@cache
def verdict_schema() -> dict[str, Any]:
    """The JSON Schema of verdict.json (published in the README)."""
    text = resources.files("evalpipe.report").joinpath("verdict.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(verdict_schema())


def validate_verdict(doc: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` when `doc` does not match verdict.schema.json."""
    _validator().validate(doc)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _config(arm: Arm | None, name: str | None) -> dict[str, Any]:
    if arm is None:
        return {"name": name, "model": None, "provider": None, "version": None, "config_hash": None}
    return {
        "name": arm.name if name is None else name,
        "model": arm.model,
        "provider": arm.provider,
        "version": arm.version,
        "config_hash": arm.config_hash(),
    }


def _candidate_arm(spec: Spec, name: str) -> Arm | None:
    return next((c for c in spec.candidates if c.name == name), None)


def _coverage(
    manifest: dict[str, Any], coverage: list[ArmCoverage] | None, records: pa.Table | None
) -> dict[str, Any]:
    counts = manifest.get("counts") or {}
    arms: dict[str, dict[str, int]] = {}
    if coverage is not None:
        arms = {c.arm: c.as_json() for c in coverage}
    else:  # the manifest's replay summary (store.finish_replay)
        for arm, c in (manifest.get("coverage") or {}).items():
            if isinstance(c, dict):
                arms[str(arm)] = {
                    "replayed": int(c.get("replayed", c.get("ok", 0)) or 0),
                    "errored": int(c.get("errored", 0) or 0),
                    "skipped": int(c.get("skipped", 0) or 0),
                    "cache_hits": int(c.get("cache_hits", 0) or 0),
                }
    n_records = records.num_rows if records is not None else counts.get("records")
    return {
        "records": None if n_records is None else int(n_records),
        "quarantined": None if counts.get("quarantined") is None else int(counts["quarantined"]),
        "arms": arms,
    }


def build_verdict(
    gate: GateResult,
    spec: Spec,
    manifest: dict[str, Any],
    *,
    responses: pa.Table | None = None,
    records: pa.Table | None = None,
    coverage: list[ArmCoverage] | None = None,
) -> dict[str, Any]:
    """The verdict.json document of a run (validate it with `validate_verdict`).

    Args:
        gate: the gate's result; its table gives each candidate's metrics and flagged slices.
        spec: the run's spec (arm configurations).
        manifest: the run's manifest (run id, created, counts, cost, versions).
        responses: when given, coverage per arm is counted from it; else from the manifest.
        records: when given, its row count is the number of records.
        coverage: `arm_coverage(responses, spec)` when already computed.
    """
    if coverage is None and responses is not None:
        coverage = arm_coverage(responses, spec)
    table = gate.table
    flagged = slice_rows(table)
    candidates: dict[str, Any] = {}
    for cv in gate.candidates:
        mask = pc.and_(pc.equal(table["candidate"], cv.candidate), pc.is_null(table["slice_col"]))
        totals = table.filter(mask).select(list(_METRIC_FIELDS)).to_pylist()
        candidates[cv.candidate] = {
            "verdict": cv.verdict,
            "exit_code": EXIT_CODES[cv.verdict],
            "reason": cv.reason or cv.verdict,
            "config": _config(_candidate_arm(spec, cv.candidate), cv.candidate),
            "n": int(cv.n),
            "metrics": [{k: _clean(v) for k, v in row.items()} for row in totals],
            "slices_flagged": [
                {k: _clean(row[k]) for k in _SLICE_FIELDS}
                for row in flagged
                if row["candidate"] == cv.candidate
            ],
            "invalid_reasons": list(cv.invalid_reasons),
            "warnings": list(cv.warnings),
            "canary_step": cv.canary_step,
        }
    cost = {str(k): _clean(v) for k, v in (manifest.get("cost_usd") or {}).items()}
    models_seen = manifest.get("models_seen") or {}
    if not models_seen and coverage is not None:
        models_seen = {c.arm: c.models for c in coverage}
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": gate.run_id or str(manifest.get("run_id", "")),
        "spec_name": str(manifest.get("spec_name") or spec.name),
        "spec_hash": manifest.get("spec_hash"),
        "created": manifest.get("created"),
        "mode": spec.mode,
        "verdict": gate.verdict,
        "exit_code": gate.exit_code,
        "baseline": _config(spec.baseline, None if spec.baseline else "baseline"),
        "candidates": candidates,
        "coverage": _coverage(manifest, coverage, records),
        "cost_usd": cost,
        "versions": {
            "evalpipe": str(manifest.get("evalpipe_version") or __version__),
            "spec_hash": manifest.get("spec_hash"),
            "git_sha": manifest.get("git_sha"),
            "seed": int(manifest["seed"]) if manifest.get("seed") is not None else spec.seed,
            "models_seen": {str(k): [str(m) for m in v] for k, v in models_seen.items()},
        },
    }
    return doc
