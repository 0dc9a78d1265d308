"""langfuse@1: observation exports (JSONL, Parquet) and API traces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from evalpipe.ingest import detect_format, ingest_paths
from tests.ingest.helpers import write_jsonl


def _obs(oid: str, **extra: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "id": oid,
        "traceId": "t1",
        "type": "GENERATION",
        "name": "chat",
        "startTime": "2025-03-01T10:00:00.000Z",
        "completionStartTime": "2025-03-01T10:00:00.200Z",
        "endTime": "2025-03-01T10:00:01.000Z",
        "model": "gpt-4o-mini",
        "modelParameters": {"temperature": "0.3", "max_tokens": "200", "top_k": 3},
        "input": orjson.dumps(
            [{"role": "system", "content": "S"}, {"role": "user", "content": f"q {oid}"}]
        ).decode(),
        "output": {"role": "assistant", "content": "answer"},
        "usageDetails": {"input": 11, "output": 4, "total": 15},
        "metadata": {"tenant": "acme", "flags": [1, 2]},
        "level": "DEFAULT",
    }
    obs.update(extra)
    return obs


def test_observation_export(tmp_path: Path) -> None:
    span = _obs("o2", type="SPAN")
    path = write_jsonl(
        tmp_path / "obs.jsonl",
        [_obs("o1"), span, _obs("o1"), _obs("o3", level="ERROR", statusMessage="rate limited")],
    )
    assert detect_format(path) == "langfuse@1"
    result = ingest_paths(path)
    rows = result.records.to_pylist()
    assert [r["record_id"] for r in rows] == ["o1", "o3"]  # the SPAN and the repeated o1 skipped
    assert result.quarantine.num_rows == 0
    assert result.counts["skipped"] == 2
    assert result.skipped_by_reason == {"not a generation": 1, "repeated observation id": 1}
    row = rows[0]
    request = orjson.loads(row["request"])
    assert request["system"] == "S"
    assert request["params"]["temperature"] == 0.3 and request["params"]["max_tokens"] == 200
    assert request["params"]["extra"] == {"top_k": 3}
    assert (row["output_text"], row["input_tokens"], row["output_tokens"]) == ("answer", 11, 4)
    assert (row["latency_ms"], row["ttft_ms"]) == (1000.0, 200.0)
    assert dict(row["attributes"])["flags"] == "[1,2]"
    assert (rows[1]["status"], rows[1]["error_type"]) == ("error", "rate limited")


def test_api_trace_with_scores(tmp_path: Path) -> None:
    trace = {
        "trace": {
            "id": "t1",
            "name": "support",
            "userId": "u1",
            "sessionId": "s1",
            "tags": ["prod"],
            "scores": [{"name": "thumbs", "value": 1}, {"name": "ok", "value": True}],
        },
        "observations": [
            _obs("o1", input={"messages": [{"role": "user", "content": "hi"}]}, output="plain text")
        ],
    }
    path = tmp_path / "traces.json"
    path.write_bytes(orjson.dumps([trace, trace]))
    rows = ingest_paths(path).records.to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["session_id"], row["user_id"], row["output_text"]) == ("s1", "u1", "plain text")
    assert dict(row["labels"]) == {"thumbs": 1.0, "ok": 1.0}
    assert dict(row["attributes"])["trace_name"] == "support"


def test_parquet_export(tmp_path: Path) -> None:
    rows = [_obs("p1"), _obs("p2", type="EVENT")]
    for r in rows:
        for key in ("output", "metadata", "modelParameters", "usageDetails"):
            r[key] = orjson.dumps(r[key]).decode()
    path = tmp_path / "observations.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert detect_format(path) == "langfuse@1"
    result = ingest_paths(path)
    assert result.records["record_id"].to_pylist() == ["p1"]
    assert result.records["output_text"][0].as_py() == "answer"
    assert result.skipped_by_reason == {"not a generation": 1}
