"""bfcl@1: the real BFCL v4 files (counts from their README) and the type conversion."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest

from evalpipe.ingest import detect_format, ingest_paths
from evalpipe.ingest.bfcl import json_schema
from tests.ingest.helpers import write_jsonl
from tests.shared import DATA as SHARED_DATA
from tests.shared import absent

DATA = SHARED_DATA / "bfcl"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=absent(DATA, "real BFCL files"))

# README: records, function docs, expected calls per category
EXPECTED = {
    "simple_python": (400, 400, 400),
    "multiple": (200, 557, 200),
    "parallel": (200, 200, 540),
    "parallel_multiple": (200, 520, 607),
    "irrelevance": (240, 240, 0),
    "live_simple": (258, 258, 258),
}


def _types(schema: Any, out: collections.Counter[str]) -> None:
    if isinstance(schema, dict):
        if isinstance(schema.get("type"), str):
            out[schema["type"]] += 1
        for key in ("properties",):
            for prop in (schema.get(key) or {}).values():
                _types(prop, out)
        _types(schema.get("items"), out)


@needs_data
def test_real_bfcl_counts_and_references() -> None:
    result = ingest_paths(DATA)
    t = result.records
    assert result.quarantine.num_rows == 0
    assert t["source_format"].unique().to_pylist() == ["bfcl@1"]
    categories = pc.map_lookup(t["attributes"], "category", "first").to_pylist()
    records: collections.Counter[str] = collections.Counter(categories)
    functions: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    types: collections.Counter[str] = collections.Counter()
    for cat, request, reference in zip(
        categories, t["request"].to_pylist(), t["reference"].to_pylist(), strict=True
    ):
        tools = orjson.loads(request)["tools"]
        functions[cat] += len(tools)
        calls[cat] += len(orjson.loads(reference))
        for tool in tools:
            _types(tool["parameters"], types)
    for cat, (n, fns, expected_calls) in EXPECTED.items():
        assert (records[cat], functions[cat], calls[cat]) == (n, fns, expected_calls), cat
    assert not {"dict", "float", "tuple", "any"} & set(types)
    assert t["model"].null_count == t.num_rows and t["output_text"].null_count == t.num_rows
    parallel_0 = t.filter(pc.equal(t["record_id"], "parallel_0"))
    assert orjson.loads(parallel_0["reference"][0].as_py()) == [
        {"spotify.play": {"artist": ["Taylor Swift"], "duration": [20]}},
        {"spotify.play": {"artist": ["Maroon 5"], "duration": [15]}},
    ]
    with_system = t.filter(pc.equal(t["record_id"], "live_simple_58-27-0"))
    assert orjson.loads(with_system["request"][0].as_py())["system"]


@needs_data
def test_question_file_alone_finds_its_answers() -> None:
    result = ingest_paths(DATA / "BFCL_v4_simple_python.json")
    assert result.records.num_rows == 400
    assert result.records["reference"].null_count == 0
    assert detect_format(DATA / "BFCL_v4_simple_python.json") == "bfcl@1"


def test_types_become_json_schema() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "x": {"type": "float", "description": "d"},
            "pair": {"type": "tuple", "items": {"type": "integer"}},
            "anything": {"type": "any", "description": "free"},
            "nested": {"type": "dict", "properties": {"y": {"type": "float"}}, "optional": True},
            "type": {"type": "string"},
        },
        "required": ["x"],
    }
    assert json_schema(schema) == {
        "type": "object",
        "properties": {
            "x": {"type": "number", "description": "d"},
            "pair": {"type": "array", "items": {"type": "integer"}},
            "anything": {"description": "free"},
            "nested": {"type": "object", "properties": {"y": {"type": "number"}}},
            "type": {"type": "string"},
        },
        "required": ["x"],
    }


def test_synthetic_question_answer_pair_and_bad_role(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "BFCL_v4_demo.json",
        [
            {
                "id": "demo_0",
                "question": [[{"role": "user", "content": "add 1 and 2"}]],
                "function": [
                    {
                        "name": "add",
                        "description": "sum",
                        "parameters": {"type": "dict", "properties": {"a": {"type": "float"}}},
                    }
                ],
            },
            {"id": "demo_1", "question": [[{"role": "oracle", "content": "?"}]], "function": []},
        ],
    )
    (tmp_path / "possible_answer").mkdir()
    write_jsonl(
        tmp_path / "possible_answer" / "BFCL_v4_demo.json",
        [{"id": "demo_0", "ground_truth": [{"add": {"a": [1.0]}}]}],
    )
    result = ingest_paths(tmp_path / "BFCL_v4_demo.json")
    row = result.records.to_pylist()[0]
    assert orjson.loads(row["reference"]) == [{"add": {"a": [1.0]}}]
    assert orjson.loads(row["request"])["tools"][0]["parameters"]["properties"]["a"] == {
        "type": "number"
    }
    assert result.quarantine.to_pylist()[0]["field"] == "question[0][0].role"
