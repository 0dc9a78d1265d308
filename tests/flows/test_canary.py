"""The canary ramp: logged cohorts over three steps, a regression planted in the third."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import yaml
from typer.testing import CliRunner

from evalpipe.cli import app
from evalpipe.flows.ramp import canary_status, canary_steps
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from tests.flows.conftest import Webhook

START = datetime(2026, 11, 1, tzinfo=UTC)
UNTIL = ["2026-11-01T16:00:00Z", "2026-11-02T08:00:00Z", "2026-11-03T04:00:00Z"]


def _logs(path: Path, *, broken_from: datetime, share: float = 0.4) -> None:
    """3,000 requests a minute apart; users split A/B by parity; 5% of answers break JSON, and
    `share` more of B's from `broken_from` on."""
    rng = random.Random(3)
    lines = []
    for i in range(3000):
        user = f"u{rng.randrange(900)}"
        variant = "B" if int(user[1:]) % 2 else "A"
        when = START + timedelta(minutes=i)
        broken = variant == "B" and when >= broken_from and rng.random() < share
        ok = not broken and rng.random() >= 0.05  # both cohorts fail 5% anyway
        content = '{"category": "billing"}' if ok else 'Sure! {"category": '
        lines.append(
            {
                "request": {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"t{i}"}],
                },
                "response": {
                    "id": f"chatcmpl-{i}",
                    "object": "chat.completion",
                    "model": "gpt-4o-mini-2024-07-18",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
                },
                "latency_ms": 500 + rng.random() * 300,
                "timestamp": when.isoformat().replace("+00:00", "Z"),
                "metadata": {"variant": variant, "user_id": user},
            }
        )
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def _spec(tmp_path: Path, *, broken_from: datetime) -> Path:
    _logs(tmp_path / "canary.jsonl", broken_from=broken_from)
    spec = {
        "name": "canary-ramp",
        "mode": "canary",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "canary.jsonl"},
        "checks": [{"name": "valid_json", "type": "json_valid", "critical": True}],
        "diffs": [],
        "report": {"out": str(tmp_path / "reports")},
        "gate": {
            "arm_column": "attributes.variant",
            "control": "A",
            "treatment": "B",
            "unit": "user_id",
            "ramp": [{"weight": 0.5, "until": u} for u in UNTIL],
        },
    }
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_the_canary_flow_walks_three_steps_and_rolls_back_where_the_regression_is(
    prefect_harness: None, tmp_path: Path
) -> None:
    from evalpipe.flows import canary_ramp

    path = _spec(tmp_path, broken_from=datetime(2026, 11, 2, 8, tzinfo=UTC))
    decisions = canary_ramp(str(path))
    assert [d["step"] for d in decisions] == [1, 2, 3]
    assert [d["decision"] for d in decisions][:2] != ["rollback", "rollback"]
    assert "rollback" not in [d["decision"] for d in decisions[:2]]
    assert decisions[2]["decision"] == "rollback" and decisions[2]["exit_code"] == 1
    assert "valid_json" in decisions[2]["reason"]
    status = canary_status(load_spec(path))
    assert status["decision"] == "rollback" and status["step"] == 3


def test_canary_step_exit_codes_and_status_json(tmp_path: Path) -> None:
    path = _spec(tmp_path, broken_from=datetime(2026, 11, 1, 0, tzinfo=UTC))
    runner = CliRunner()
    first = runner.invoke(app, ["canary", str(path), "--step", "1"])
    assert first.exit_code == 1, first.output  # broken from the start: rolled back at step 1
    assert first.output.startswith("step 1 of 3 (50%): rollback")
    status = runner.invoke(app, ["canary-status", str(path)])
    doc = orjson.loads(status.output)
    assert doc["decision"] == "rollback" and doc["step"] == 1 and doc["exit_code"] == 1
    bad = runner.invoke(app, ["canary", str(path), "--step", "4"])
    assert bad.exit_code != 0


def test_a_changed_decision_is_posted_once_to_the_webhook(tmp_path: Path, webhook: Webhook) -> None:
    path = _spec(tmp_path, broken_from=datetime(2026, 11, 1, 0, tzinfo=UTC))
    text = path.read_text() + f"alerts: {{webhook_url: '{webhook.url}'}}\n"
    path.write_text(text)
    spec = load_spec(path)
    (first,) = canary_steps(spec, IN_PROCESS, step=1)
    assert first["decision"] == "rollback" and first["alert"] == "sent"
    canary_steps(spec, IN_PROCESS, step=1)  # the same decision again: not sent again
    assert len(webhook.posts) == 1
    assert "canary step 1 of 3: rollback" in webhook.posts[0]["text"]


def test_canary_status_before_any_step_is_none(tmp_path: Path) -> None:
    path = _spec(tmp_path, broken_from=datetime(2030, 1, 1, tzinfo=UTC))
    assert canary_status(load_spec(path))["decision"] == "none"


def test_an_equal_cohort_is_never_rolled_back(tmp_path: Path) -> None:
    path = _spec(tmp_path, broken_from=datetime(2030, 1, 1, tzinfo=UTC))
    decisions = canary_steps(load_spec(path), IN_PROCESS)
    assert "rollback" not in [d["decision"] for d in decisions]


def test_canary_status_is_the_newest_decision_whatever_the_run_ids_say(tmp_path: Path) -> None:
    from evalpipe.flows.watch import night_series
    from evalpipe.store import write_json_atomic

    path = _spec(tmp_path, broken_from=datetime(2030, 1, 1, tzinfo=UTC))
    spec = load_spec(path)
    # two steps decided in one second: their run ids sort by their random hex
    for run_id, step, decided in (
        ("20261101-000000-canary-ramp-ffffff", 2, "2026-11-01T00:00:00.100000+00:00"),
        ("20261101-000000-canary-ramp-000000", 3, "2026-11-01T00:00:00.900000+00:00"),
    ):
        canary = {"series": night_series(spec), "step": step, "decision": "hold"}
        manifest = {"run_id": run_id, "canary": {**canary, "decided_at": decided}}
        write_json_atomic(manifest, tmp_path / "store" / "runs" / run_id / "manifest.json")
    assert canary_status(spec)["step"] == 3
