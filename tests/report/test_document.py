"""verdict.json: built from the gate and manifest, checked by its JSON Schema."""

from __future__ import annotations

import copy
import json
from importlib import resources

import jsonschema
import pytest

from evalpipe.report import build_verdict, validate_verdict, verdict_schema

from .conftest import HandRun


def test_schema_is_package_data_and_a_valid_schema() -> None:
    text = resources.files("evalpipe.report").joinpath("verdict.schema.json").read_text()
    schema = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert verdict_schema() == schema


def test_document_validates(run: HandRun) -> None:
    doc = build_verdict(run.gate, run.spec, run.manifest, responses=run.responses)
    validate_verdict(doc)
    assert doc["schema_version"] == 1
    assert doc["baseline"]["model"] == "gpt-4o-mini"
    assert doc["versions"]["models_seen"] == {"baseline": ["gpt-4o-mini-2024-07-18"]}
    metric = doc["candidates"]["good"]["metrics"][0]
    assert set(metric) == set(verdict_schema()["$defs"]["metric"]["required"])


@pytest.mark.parametrize(
    "breaks",
    [
        lambda d: d.update(verdict="MAYBE"),
        lambda d: d.update(exit_code=7),
        lambda d: d["candidates"]["bad"].pop("reason"),
        lambda d: d["candidates"]["bad"]["metrics"][0].update(kind="median"),
        lambda d: d.update(surprise=1),
    ],
)
def test_schema_rejects_broken_documents(run: HandRun, breaks: object) -> None:
    doc = copy.deepcopy(build_verdict(run.gate, run.spec, run.manifest))
    breaks(doc)  # type: ignore[operator]
    with pytest.raises(jsonschema.ValidationError):
        validate_verdict(doc)


def test_coverage_from_the_manifest_when_no_responses(run: HandRun) -> None:
    manifest = run.manifest | {
        "coverage": {"baseline": {"ok": 4, "errored": 0, "skipped": 0, "cache_hits": 1}}
    }
    doc = build_verdict(run.gate, run.spec, manifest)
    validate_verdict(doc)
    assert doc["coverage"]["arms"] == {
        "baseline": {"replayed": 4, "errored": 0, "skipped": 0, "cache_hits": 1}
    }
    assert doc["coverage"]["records"] == 4  # from manifest counts


def test_nan_becomes_null(run: HandRun) -> None:
    import pyarrow as pa

    from evalpipe.gate.verdict import GateResult

    table = run.gate.table
    i = table.schema.get_field_index("mde")
    table = table.set_column(i, "mde", pa.array([float("nan")] * table.num_rows))
    doc = build_verdict(GateResult(run.gate.run_id, table, run.gate.candidates), run.spec, {})
    validate_verdict(doc)
    assert doc["candidates"]["good"]["metrics"][0]["mde"] is None
