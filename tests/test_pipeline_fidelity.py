"""A run says what its replay did not send as logged, and why it skipped requests: in the manifest,
in `evalpipe run`'s run facts and in the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from evalpipe import pipeline
from evalpipe.cli import _print_run_facts
from evalpipe.providers.params import ANTHROPIC_MESSAGES
from evalpipe.spec import load_spec
from evalpipe.store import open_run, read_table


def _observation(oid: str, params: dict[str, Any], messages: list[dict[str, str]]) -> bytes:
    return orjson.dumps(
        {
            "id": oid,
            "traceId": f"t-{oid}",
            "type": "GENERATION",
            "startTime": "2025-06-01T10:00:00.000Z",
            "endTime": "2025-06-01T10:00:01.000Z",
            "model": "gpt-4o-mini",
            "modelParameters": params,
            "input": messages,
            "output": {"role": "assistant", "content": "It shipped yesterday."},
        }
    )


ASK = [{"role": "user", "content": "Where is my order #4821?"}]


@pytest.fixture
def run_dir(fake_provider: str, tmp_path: Path) -> Path:
    logged = {"temperature": "0.2", "max_tokens": "200"}
    lines = [
        # differs from the next record only by a framework setting the replay cannot send
        _observation("a", {**logged, "maxRetries": 2}, ASK),
        _observation("b", {**logged, "maxRetries": "2", "http_options": {"timeout": 30}}, ASK),
        _observation("c", logged, ASK),
        _observation("d", logged, [{"role": "system", "content": "Route: billing or tech?"}]),
    ]
    (tmp_path / "observations.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    spec = {
        "name": "fidelity",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "observations.jsonl"},
        "baseline": {"provider": "openai", "model": "gpt-4o-mini", "base_url": "builtin:fake"},
        "candidates": [
            {
                "name": "claude",
                "provider": "anthropic",
                "model": "claude-haiku-4-5",
                "base_url": "builtin:fake",
            }
        ],
        "report": {"out": str(tmp_path / "reports")},
    }
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def test_run_facts_say_what_was_not_sent_and_why_requests_were_skipped(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = open_run(load_spec(run_dir / "eval.yaml"))
    pipeline.ingest_run(run)
    pipeline.replay_run(run)
    manifest = run.manifest()
    assert manifest["params_not_replayed"]["baseline"] == {"maxRetries": 2, "http_options": 1}
    # a system prompt alone is a request on OpenAI; on Anthropic no message is left once it moves
    assert manifest["skipped"] == {
        "claude": {"untranslatable: no message left once the system prompt moves to `system`": 1}
    }
    responses = read_table(run.path("responses"))
    lost = {
        r["record_id"]: r["params_not_replayed"]
        for r in responses.to_pylist()
        if r["arm"] == "baseline"
    }
    assert orjson.loads(lost["a"]) == [{"param": "maxRetries", "reason": "framework setting"}]
    assert lost["c"] is None and lost["d"] is None

    _print_run_facts(manifest)
    facts = capsys.readouterr().out
    assert "2 records: `http_options`, `maxRetries` not sent — framework setting" in facts
    if "temperature" not in ANTHROPIC_MESSAGES:  # anthropic 2.x sends no sampling parameters
        assert "3 records on claude: `temperature` not sent — no equivalent on Anthropic" in facts
    assert (
        "Skipped — untranslatable on claude: no message left once the system prompt moves to "
        "`system` 1." in facts
    )

    pipeline.score_run(run)
    result = pipeline.gate_run(run)
    page = pipeline.report_run(run, result).read_text()
    assert "Not sent as logged" in page
    assert "<code>http_options</code>, <code>maxRetries</code> not sent" in page
    assert "untranslatable on claude: no message left once the system prompt moves" in page
