"""The CLI: exit codes and one-line errors, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def evalpipe(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evalpipe.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _spec(tmp_path: Path, **changes: object) -> Path:
    (tmp_path / "traffic.jsonl").write_text("{}\n")
    data: dict[str, object] = {
        "name": "t",
        "traffic": {"path": "traffic.jsonl"},
        "baseline": {"provider": "openai", "model": "gpt-4o-mini"},
        "candidates": [{"name": "c", "provider": "openai", "model": "gpt-4.1-mini"}],
    }
    data.update(changes)
    p = tmp_path / "eval.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"seeed": 3}, "eval.yaml seeed: unknown key. Did you mean `seed`?"),
        ({"traffic": {"path": "missing.jsonl"}}, "traffic.path: file not found"),
        (
            {"candidates": [{"name": "c", "provider": "openai", "model": "gpt 4.1 mini!"}]},
            "candidates[0].model: `gpt 4.1 mini!` is not a valid model name",
        ),
    ],
)
def test_bad_spec_exits_4_with_one_line(tmp_path: Path, changes: dict, expected: str) -> None:
    proc = evalpipe("gate", str(_spec(tmp_path, **changes)), cwd=tmp_path)
    assert proc.returncode == 4
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_spec_file_exits_4(tmp_path: Path) -> None:
    proc = evalpipe("gate", "nowhere.yaml", cwd=tmp_path)
    assert proc.returncode == 4
    assert "nowhere.yaml: file not found" in proc.stderr


def test_usage_error_exits_4_not_2(tmp_path: Path) -> None:
    proc = evalpipe("gate", "--no-such-flag", cwd=tmp_path)
    assert proc.returncode == 4
    assert "no such option" in proc.stderr.lower()


def test_unknown_candidate_exits_4(tmp_path: Path) -> None:
    proc = evalpipe("gate", str(_spec(tmp_path)), "--candidate", "nope", cwd=tmp_path)
    assert proc.returncode == 4
    assert "--candidate 'nope' is not in the spec" in proc.stderr


def test_dry_run_counts_and_sends_nothing(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[1] / "eval_sets" / "demo" / "eval.yaml"
    proc = evalpipe("run", str(demo), "--dry-run", "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1,200 records would be replayed (1 input line quarantined)" in proc.stdout
    assert "arm=judge helpfulness" in proc.stdout and "requests=2,000" in proc.stdout
    assert "valid_json: a 1.0 pp margin needs" in proc.stdout
    assert not (tmp_path / "store").exists() and not (tmp_path / ".evalpipe").exists()


def test_missing_api_key_stops_the_run_with_exit_4_and_the_fix(tmp_path: Path) -> None:
    # a real endpoint (nothing is sent: the key is checked before the first request)
    record = {
        "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        "response": {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello!"},
                    "finish_reason": "stop",
                }
            ],
        },
    }
    spec = _spec(tmp_path)
    (tmp_path / "traffic.jsonl").write_text(json.dumps(record) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    proc = evalpipe("run", str(spec), "--store", str(tmp_path / "store"), cwd=tmp_path, env=env)
    assert proc.returncode == 4, proc.stderr
    assert "OPENAI_API_KEY is not set" in proc.stderr
    assert "Export OPENAI_API_KEY with an API key." in proc.stderr
    # one line, not Prefect's account of the failed flow and task with their tracebacks
    assert proc.stderr.strip().splitlines() == [
        "error: baseline (gpt-4o-mini): OPENAI_API_KEY is not set. "
        "Export OPENAI_API_KEY with an API key."
    ]
