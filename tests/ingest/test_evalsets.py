"""Golden eval sets: curated cases read through the traffic adapters, tagged by set, appended to
the records; found by name or path from the spec; the demo's edge-case set is reproducible."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalpipe.errors import InputError, SpecError
from evalpipe.ingest import ingest_paths
from evalpipe.ingest.evalsets import append_records, ingest_eval_set, ingest_eval_sets
from evalpipe.spec import EVAL_SET_COLUMN, spec_from_dict
from evalpipe.tables import QUARANTINE, RECORDS, column_values

REPO = Path(__file__).resolve().parents[2]
EDGE = REPO / "eval_sets" / "demo_edge_cases"


def _chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def _write(path: Path, lines: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


CALLS = [{"name": "get_order", "arguments": {"order_id": "123"}}]


def _cases(folder: Path) -> Path:
    _write(
        folder / "cases.jsonl",
        [
            {"id": "refund", "request": _chat("Refund please"), "reference": "Refund issued.",
             "tags": ["billing", "edge"], "metadata": {"feature": "answer"}},
            {"id": 7, "request": _chat("Where is order 123?"), "reference": CALLS},
            {"id": "no-request", "reference": "x"},
            "{not json",
            {"request": {"model": "claude-haiku-4-5", "system": "Be brief.", "max_tokens": 50,
                         "messages": [{"role": "user", "content": "Hallo"}]}},
        ],
    )  # fmt: skip
    return folder


def test_cases_become_records_tagged_by_their_set(tmp_path: Path) -> None:
    folder = _cases(tmp_path / "golden")
    records, quarantine = ingest_eval_set("golden", folder)
    assert records.schema.equals(RECORDS) and quarantine.schema.equals(QUARANTINE)
    ids = records["record_id"].to_pylist()
    assert ids == ["golden:refund", "golden:7", "golden:cases.jsonl:5"]
    assert column_values(records, EVAL_SET_COLUMN).to_pylist() == ["golden"] * 3
    assert column_values(records, "eval_tags").to_pylist() == ["billing,edge", None, None]
    assert column_values(records, "feature").to_pylist() == ["answer", None, None]
    assert records["reference"].to_pylist()[:2] == [
        "Refund issued.",
        json.dumps(CALLS, separators=(",", ":")),
    ]
    assert records["source_format"].to_pylist() == [
        "openai_chat@1",
        "openai_chat@1",
        "anthropic_messages@1",
    ]
    assert records["source_file"].to_pylist() == [str(folder / "cases.jsonl")] * 3
    assert records["source_line"].to_pylist() == [1, 2, 5]  # the case's own line
    assert records["output_text"].null_count == 3 and records["timestamp"].null_count == 3
    bad = quarantine.to_pylist()
    assert [(q["line"], q["field"]) for q in bad] == [(3, "request"), (4, None)]
    assert all(q["file"] == str(folder / "cases.jsonl") for q in bad)
    assert "needs a `request` object" in bad[0]["reason"]


def test_a_case_file_that_is_not_json_lines_of_cases_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("no cases")
    with pytest.raises(InputError, match="holds no"):
        ingest_eval_set("empty", tmp_path / "empty")


def _spec(tmp_path: Path, **extra: Any) -> Any:
    _write(tmp_path / "t.jsonl", [{"request": _chat("hi"), "metadata": {"request_id": "t1"}}])
    return spec_from_dict(
        {
            "name": "t",
            "traffic": {"path": "t.jsonl"},
            "baseline": {"provider": "openai", "model": "m"},
            "candidates": [{"name": "c", "provider": "openai", "model": "n"}],
            **extra,
        },
        spec_dir=tmp_path,
    )


def test_spec_finds_sets_by_name_upwards_or_by_path_and_slices_them(tmp_path: Path) -> None:
    _cases(tmp_path / "eval_sets" / "golden")
    _write(tmp_path / "extra" / "more.jsonl", [{"id": "a", "request": _chat("A?")}])
    spec_dir = tmp_path / "specs" / "support"
    spec_dir.mkdir(parents=True)
    spec = _spec(
        spec_dir,
        eval_sets=["golden", "../../extra/more.jsonl"],
        gate={"slices": ["feature"]},
    )
    assert spec.eval_set_paths() == [
        ("golden", tmp_path / "eval_sets" / "golden"),
        ("more", spec_dir / "../../extra/more.jsonl"),
    ]
    assert spec.gate.slices == ["feature", EVAL_SET_COLUMN]  # each set is a slice …
    assert spec.gate.gated_slices == [EVAL_SET_COLUMN]  # … that the gate decides
    sets = ingest_eval_sets(spec)
    assert sets.counts == {"golden": 3, "more": 1}
    assert sets.records["record_id"].to_pylist()[-1] == "more:a"
    before = spec.spec_hash()
    _write(tmp_path / "extra" / "more.jsonl", [{"id": "b", "request": _chat("B?")}])
    assert spec.spec_hash() != before  # a changed case reruns, as changed traffic does


def test_spec_errors_name_the_entry(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"eval_sets\[0\]: no eval set `nowhere`"):
        _spec(tmp_path, eval_sets=["nowhere"])
    _cases(tmp_path / "eval_sets" / "golden")
    with pytest.raises(SpecError, match="eval set names must be unique; repeated: golden"):
        _spec(tmp_path, eval_sets=["golden", "./eval_sets/golden"])
    with pytest.raises(SpecError, match="is not a valid eval set name"):
        _spec(tmp_path, eval_sets=["./eval_sets/gol den"])


def test_append_records_keeps_the_row_groups_and_refuses_a_clash(tmp_path: Path) -> None:
    traffic = _write(
        tmp_path / "t.jsonl",
        [{"request": _chat(f"q{i}"), "metadata": {"request_id": f"t{i}"}} for i in range(5)],
    )
    dest = tmp_path / "records.parquet"
    pq.write_table(ingest_paths(traffic).records, dest, row_group_size=2)
    records, _ = ingest_eval_set("golden", _cases(tmp_path / "golden"))
    assert append_records(dest, records) == 8
    out = pq.read_table(dest)
    assert out.schema.equals(RECORDS)
    assert (
        out["record_id"].to_pylist()
        == [f"t{i}" for i in range(5)] + records["record_id"].to_pylist()
    )
    assert pq.ParquetFile(dest).metadata.num_row_groups == 4  # 2 + 2 + 1, then the cases
    with pytest.raises(InputError, match="has the id of a logged record"):
        append_records(dest, records)
    assert pq.read_table(dest).num_rows == 8  # untouched


def test_gzipped_cases_are_read(tmp_path: Path) -> None:
    folder = tmp_path / "gz"
    folder.mkdir()
    with gzip.open(folder / "cases.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": "z", "request": _chat("Zip?")}) + "\n")
    records, quarantine = ingest_eval_set("gz", folder)
    assert records["record_id"].to_pylist() == ["gz:z"] and quarantine.num_rows == 0


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("edge_generate", EDGE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_edge_cases_are_what_their_script_writes_and_cover_the_edges() -> None:
    gen = _generator()
    assert gen.build() == (EDGE / "cases.jsonl").read_bytes()  # committed and reproducible
    records, quarantine = ingest_eval_set("demo_edge_cases", EDGE)
    assert quarantine.num_rows == 0 and records.num_rows == len(gen.CASES) >= 20  # a slice
    tags = {t for tags in column_values(records, "eval_tags").to_pylist() for t in tags.split(",")}
    assert {"empty", "long", "non-english", "injection", "unicode", "json"} <= tags
    requests = [json.loads(r) for r in records["request"].to_pylist()]
    lasts = [
        r["messages"][-1]["content"][0]["text"] if r["messages"][-1]["content"] else ""
        for r in requests
    ]
    assert "" in lasts and max(map(len, lasts)) > 10_000
    assert any("ignore all previous instructions" in t.lower() for t in lasts)
    triage = pa.compute.equal(column_values(records, "feature"), "triage")
    assert records.filter(triage)["reference"].null_count == 0
