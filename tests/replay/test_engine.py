"""Replay through the real SDKs against the fake provider: journal resume, budget, skips, errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from evalpipe.errors import ProviderError
from evalpipe.replay.cache import ResponseCache
from evalpipe.replay.engine import replay_records
from evalpipe.spec import spec_from_dict
from evalpipe.store import read_table
from evalpipe.tables import RECORDS, RESPONSES, from_rows


def _records(n: int, *, extra: dict | None = None) -> pa.Table:
    rows = []
    for i in range(n):
        req = {
            "system": "You are a helpful support assistant.",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": f"Where is my order #{1000 + i}?"}],
                }
            ],
            "params": {"max_tokens": 300, **(extra or {})},
        }
        rows.append(
            {
                "record_id": f"r{i:03d}",
                "request": orjson.dumps(req).decode(),
                "provider": "openai",
                "replayable": True,
            }
        )
    return from_rows(rows, RECORDS)


def _spec(
    tmp_path: Path,
    candidate_model: str = "claude-haiku-4-5",
    candidate_provider: str = "anthropic",
    **extra: object,
):
    (tmp_path / "t.jsonl").write_text("{}\n")
    data = {
        "name": "t",
        "traffic": {"path": "t.jsonl"},
        "baseline": {
            "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18",
            "base_url": "builtin:fake",
        },
        "candidates": [
            {
                "name": "cand",
                "provider": candidate_provider,
                "model": candidate_model,
                "base_url": "builtin:fake",
            }
        ],
        "limits": {"default": {"concurrency": 8, "max_retries": 3}},
        **extra,
    }
    return spec_from_dict(data, spec_dir=tmp_path)


def test_replays_every_arm_through_both_sdks(fake_provider: str, tmp_path: Path) -> None:
    out = replay_records(
        _records(12), _spec(tmp_path), run_id="run", responses_dir=tmp_path / "resp"
    )
    assert out.schema.equals(RESPONSES)
    assert out.num_rows == 24
    assert pc.all(pc.equal(out["status"], "ok")).as_py()
    by_arm = {r["arm"]: r for r in out.to_pylist()}
    assert by_arm["baseline"]["response_model"] == "gpt-4o-mini-2024-07-18"
    assert by_arm["cand"]["response_model"].startswith("claude-haiku-4-5")
    assert by_arm["cand"]["input_tokens"] > 0 and by_arm["cand"]["output_tokens"] > 0
    assert by_arm["baseline"]["cost_usd"] > 0
    parts = sorted(p.name for p in (tmp_path / "resp").iterdir())
    assert parts == [
        "part-baseline-r0-p00000.parquet",
        "part-cand-r0-p00000.parquet",
    ]  # journals compacted
    assert read_table(tmp_path / "resp", RESPONSES).num_rows == 24


def test_resume_keeps_journaled_answers_and_ignores_a_torn_line(
    fake_provider: str, tmp_path: Path
) -> None:
    resp = tmp_path / "resp"
    resp.mkdir()
    kept = {
        "run_id": "run",
        "record_id": "r000",
        "arm": "baseline",
        "repeat": 0,
        "status": "ok",
        "output_text": "FROM THE JOURNAL",
        "started_at": "2026-11-25T10:00:00+00:00",
    }
    (resp / "journal-baseline-r0-p00000.jsonl").write_bytes(
        orjson.dumps(kept) + b"\n" + b'{"record_id": "r00'
    )
    out = replay_records(_records(3), _spec(tmp_path), run_id="run", responses_dir=resp)
    base = {r["record_id"]: r["output_text"] for r in out.to_pylist() if r["arm"] == "baseline"}
    assert base["r000"] == "FROM THE JOURNAL"
    assert base["r001"] and base["r001"] != "FROM THE JOURNAL"
    assert not list(resp.glob("journal-*"))


def test_cache_makes_a_repeat_free(fake_provider: str, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache")
    first = replay_records(_records(5), _spec(tmp_path), run_id="a", cache=cache)
    second = replay_records(_records(5), _spec(tmp_path), run_id="b", cache=cache)
    assert not any(first["cache_hit"].to_pylist())
    assert all(second["cache_hit"].to_pylist())
    assert second["output_text"].to_pylist() == first["output_text"].to_pylist()


def test_the_builtin_fake_on_another_port_is_the_same_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`base_url: builtin:fake` starts a fake on a free port each run: a repeat on another
    port is answered from the cache (the key names the fake, not where it listened)."""
    from evalpipe.fake import serving
    from evalpipe.providers.endpoint import FAKE_URL_ENV

    cache = ResponseCache(tmp_path / "cache")
    with serving(latency_ms=1.0) as first_root:
        monkeypatch.setenv(FAKE_URL_ENV, first_root)
        first = replay_records(_records(4), _spec(tmp_path), run_id="a", cache=cache)
    with serving(latency_ms=1.0) as second_root:
        assert second_root != first_root
        monkeypatch.setenv(FAKE_URL_ENV, second_root)
        second = replay_records(_records(4), _spec(tmp_path), run_id="b", cache=cache)
        seen = httpx.get(f"{second_root}/_fake/traffic").json()
    assert not any(first["cache_hit"].to_pylist())
    assert all(second["cache_hit"].to_pylist())
    assert sum(m.get("requests", 0) for m in seen.values() if isinstance(m, dict)) == 0


def test_budget_stops_cleanly_with_skipped_rows(fake_provider: str, tmp_path: Path) -> None:
    spec = _spec(tmp_path, budget_usd=0.004)
    out = replay_records(_records(40), spec, run_id="run")
    status = out["status"].to_pylist()
    assert "skipped" in status and "ok" in status
    skipped = out.filter(pc.equal(out["status"], "skipped"))
    assert set(skipped["error_type"].to_pylist()) == {"BudgetExhausted"}
    assert pc.sum(out["cost_usd"]).as_py() <= 0.004
    # a record is answered on both arms or on neither: the budget buys pairs
    by_record: dict[str, set[str]] = {}
    for r in out.select(["record_id", "status"]).to_pylist():
        by_record.setdefault(r["record_id"], set()).add(r["status"])
    assert all(len(v) == 1 for v in by_record.values())


def test_a_record_too_dear_for_every_arm_is_not_started(fake_provider: str, tmp_path: Path) -> None:
    # 0.0005 would buy the baseline's answer but not the candidate's (max_tokens 300 on Haiku)
    out = replay_records(_records(5), _spec(tmp_path, budget_usd=0.0005), run_id="run")
    assert set(out["status"].to_pylist()) == {"skipped"}
    assert pc.sum(out["cost_usd"]).as_py() in (None, 0)


def test_untranslatable_and_unreplayable_requests_are_skipped(
    fake_provider: str, tmp_path: Path
) -> None:
    recs = _records(2, extra={"extra": {"n": 2}})
    recs = recs.set_column(
        recs.schema.get_field_index("replayable"), "replayable", pa.array([True, False])
    )
    recs = recs.set_column(
        recs.schema.get_field_index("replay_issue"), "replay_issue", pa.array([None, "redacted"])
    )
    out = replay_records(recs, _spec(tmp_path), run_id="run")
    got = {(r["arm"], r["record_id"]): (r["status"], r["error_message"]) for r in out.to_pylist()}
    assert got[("cand", "r000")] == ("skipped", "untranslatable: n > 1")
    assert got[("cand", "r001")] == ("skipped", "redacted")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_flaky_provider_recovers_through_sdk_retries(
    fake_provider: str, tmp_path: Path, provider: str
) -> None:
    spec = _spec(tmp_path, candidate_model="fake-flaky", candidate_provider=provider)
    out = replay_records(_records(30), spec, run_id="run")
    cand = out.filter(pc.equal(out["arm"], "cand"))
    assert pc.all(pc.equal(cand["status"], "ok")).as_py()
    assert max(cand["attempts"].to_pylist()) >= 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_unknown_model_raises_provider_error(
    fake_provider: str, tmp_path: Path, provider: str
) -> None:
    spec = _spec(tmp_path, candidate_model="claude-imaginary-9", candidate_provider=provider)
    with pytest.raises(ProviderError) as info:
        replay_records(_records(3), spec, run_id="run")
    assert info.value.arm == "cand" and info.value.model == "claude-imaginary-9"
    assert "model" in info.value.fix


def test_tool_calls_come_back_under_the_logged_tool_names(
    fake_provider: str, tmp_path: Path
) -> None:
    req = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Look up order #1234 please"}]}
        ],
        "tools": [
            {
                "name": "orders.lookup",
                "description": "Find an order",
                "parameters": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}},
                    "required": ["id"],
                },
            }
        ],
        "tool_choice": "required",
        "params": {"max_tokens": 200},
    }
    recs = from_rows(
        [
            {
                "record_id": "r0",
                "request": orjson.dumps(req).decode(),
                "provider": "openai",
                "replayable": True,
            }
        ],
        RECORDS,
    )
    out = replay_records(recs, _spec(tmp_path), run_id="run")
    assert pc.all(pc.equal(out["status"], "ok")).as_py()
    for calls in out["output_tool_calls"].to_pylist():
        assert calls is not None
        assert {c["name"] for c in orjson.loads(calls)} == {"orders.lookup"}
