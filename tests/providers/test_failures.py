"""Answers that break a provider call become error rows of that request; the run goes on.

Before: a 200 whose body was not the API's answer ended the whole run (exit 4,
`JSONDecodeError` or `AttributeError: 'str' object has no attribute 'choices'`), and a body of
another schema was read as an empty answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.providers.calls import INVALID_BODY, server_delay_s
from evalpipe.providers.endpoint import INVALID_BODY_RETRIES
from evalpipe.replay.engine import replay_records
from evalpipe.spec import spec_from_dict
from evalpipe.tables import RECORDS, from_rows
from tests.providers.misbehaving import misbehaving_server

N = 3


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with misbehaving_server() as root:
        yield root


def _records() -> pa.Table:
    rows = []
    for i in range(N):
        request = {
            "messages": [{"role": "user", "content": [{"type": "text", "text": f"Order {i}?"}]}],
            "params": {"max_tokens": 50},
        }
        rows.append(
            {
                "record_id": f"r{i}",
                "request": orjson.dumps(request).decode(),
                "provider": "openai",
                "replayable": True,
            }
        )
    return from_rows(rows, RECORDS)


def _arm(root: str, model: str, provider: str = "openai") -> dict[str, Any]:
    base_url = root if provider == "anthropic" else f"{root}/v1"
    name = f"{provider}-{model}"
    return {"name": name, "provider": provider, "model": model, "base_url": base_url}


BROKEN = [
    ("text-200", INVALID_BODY),
    ("bad-json-200", INVALID_BODY),
    ("wrong-shape-200", INVALID_BODY),
    ("reset", "APIConnectionError"),
    ("hang", "APITimeoutError"),
]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_broken_answers_are_error_rows_and_the_run_goes_on(
    server: str, provider: str, tmp_path: Path
) -> None:
    (tmp_path / "t.jsonl").write_text("{}\n")
    spec = spec_from_dict(
        {
            "name": "broken",
            "traffic": {"path": "t.jsonl"},
            "baseline": {k: v for k, v in _arm(server, "good", provider).items() if k != "name"},
            "candidates": [_arm(server, model, provider) for model, _ in BROKEN],
            "limits": {"default": {"timeout_s": 1, "max_retries": 1}},
        },
        spec_dir=tmp_path,
    )
    out = replay_records(_records(), spec, run_id=f"broken-{provider}")
    rows = {(r["arm"], r["record_id"]): r for r in out.to_pylist()}
    assert len(rows) == N * (1 + len(BROKEN))
    for i in range(N):
        assert rows[("baseline", f"r{i}")]["status"] == "ok"
        assert rows[("baseline", f"r{i}")]["output_text"] == "All good."
        for model, error_type in BROKEN:
            row = rows[(f"{provider}-{model}", f"r{i}")]
            assert row["status"] == "error", (model, row)
            assert row["error_type"] == error_type
            assert row["error_origin"] is not None
            assert not row["output_text"]
    invalid = rows[(f"{provider}-bad-json-200", "r0")]
    assert invalid["http_status"] == 200
    assert invalid["error_message"].startswith("the 200 response is not")
    assert invalid["attempts"] == 1 + INVALID_BODY_RETRIES  # retried as transient, then given up


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_unreadable_body_once_is_retried_into_an_answer(
    server: str, provider: str, tmp_path: Path
) -> None:
    (tmp_path / "t.jsonl").write_text("{}\n")
    spec = spec_from_dict(
        {
            "name": "once",
            "traffic": {"path": "t.jsonl"},
            "baseline": {k: v for k, v in _arm(server, "good", provider).items() if k != "name"},
            "candidates": [_arm(server, "garbage-once", provider)],
        },
        spec_dir=tmp_path,
    )
    replayed = replay_records(_records(), spec, run_id=f"once-{provider}")
    out = replayed.filter(pc.equal(replayed["arm"], f"{provider}-garbage-once"))
    assert out["status"].to_pylist() == ["ok"] * N
    assert out["output_text"].to_pylist() == ["All good."] * N
    assert out["attempts"].to_pylist() == [2] * N


def test_the_wait_a_server_asks_for_is_read_from_its_headers() -> None:
    h = httpx.Headers
    assert server_delay_s(h({"retry-after-ms": "250", "retry-after": "3"})) == 0.25
    assert server_delay_s(h({"retry-after": "3"})) == 3.0
    assert server_delay_s(h({"retry-after": "0", "retry-after-ms": "0"})) == 0.0
    both = {"x-ratelimit-reset-requests": "1m6s", "x-ratelimit-reset-tokens": "20ms"}
    assert server_delay_s(h(both)) == 66.0  # none says which is exhausted: the later
    exhausted = {**both, "x-ratelimit-remaining-tokens": "0"}
    assert server_delay_s(h(exhausted)) == pytest.approx(0.02)
    later = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    delay = server_delay_s(h({"anthropic-ratelimit-requests-reset": later}))
    assert delay is not None and 28 < delay <= 30
    assert server_delay_s(h({"retry-after": "soon"})) is None
    assert server_delay_s(h({})) is None
