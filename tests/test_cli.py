"""The CLI: exit codes and one-line errors, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEMO_TRAFFIC = Path(__file__).resolve().parents[1] / "eval_sets" / "demo" / "traffic.jsonl.gz"


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
    assert proc.stderr.strip() == "error: No such option: --no-such-flag"


def test_unknown_candidate_exits_4(tmp_path: Path) -> None:
    proc = evalpipe("gate", str(_spec(tmp_path)), "--candidate", "nope", cwd=tmp_path)
    assert proc.returncode == 4
    assert "--candidate 'nope' is not in the spec" in proc.stderr


def test_dry_run_counts_and_sends_nothing(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parents[1] / "eval_sets" / "demo" / "eval.yaml"
    proc = evalpipe("run", str(demo), "--dry-run", "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # 1,200 logged + 30 edge cases (eval_sets/demo_edge_cases); the judge: 500 sampled + 30
    # cases, both orders, 2 candidates, and its 12 anchors in both orders
    assert "1,230 records would be replayed (1 input line quarantined)" in proc.stdout
    assert "arm=judge helpfulness" in proc.stdout and "requests=2,144" in proc.stdout
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


def _logged_record() -> dict[str, object]:
    return {
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


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connection is refused
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_base_url_where_nothing_listens_exits_4_naming_it(tmp_path: Path) -> None:
    # before: the SDK's retries on every request, then exit 3 INVALID after about 53 s
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    arm = {"provider": "openai", "model": "gpt-4o-mini", "base_url": url}
    spec = _spec(tmp_path, baseline=arm, candidates=[{"name": "c", **arm}])
    (tmp_path / "traffic.jsonl").write_text(json.dumps(_logged_record()) + "\n")
    proc = evalpipe("run", str(spec), "--store", str(tmp_path / "store"), cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and f"nothing answers at {url}" in lines[0]
    assert "Check base_url" in lines[0]


def test_run_without_a_prefect_api_starts_no_prefect_server(
    fake_provider: str, tmp_path: Path
) -> None:
    """No PREFECT_API_URL: the stages run in process; Prefect is not even imported."""
    shutil.copy(DEMO_TRAFFIC, tmp_path)
    arm = {"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "base_url": "builtin:fake"}
    spec = _spec(
        tmp_path,
        traffic={"path": "traffic.jsonl.gz", "sample": {"n": 20}},
        baseline=arm,
        candidates=[{"name": "c", **arm, "params": {"temperature": 0.5}}],
        gate={"min_n": 5},
    )
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), EVALPIPE_FAKE_URL=fake_provider)
    script = (
        "import sys\n"
        "from evalpipe.cli import main\n"
        "try:\n"
        f"    main(['run', {str(spec)!r}, '--store', {str(tmp_path / 'store')!r}])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, 'prefect loaded:', 'prefect' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert "prefect loaded: False" in proc.stdout, proc.stdout + proc.stderr
    assert "× 2 arms: 40 requests, 40 answered" in proc.stdout
    assert not home.exists()  # no Prefect database, no server
    runs = list((tmp_path / "store" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "gate.parquet").exists()


# --- evalpipe ingest ---------------------------------------------------------------------------


def test_ingest_reports_counts_and_the_bad_line(tmp_path: Path) -> None:
    proc = evalpipe("ingest", str(DEMO_TRAFFIC), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1,200 records ingested from 1 file (openai_chat@1 1,200), 1 quarantined" in proc.stdout
    assert "traffic.jsonl.gz:577: -: not valid JSON" in proc.stderr


def test_ingest_selects_and_writes_records_and_quarantine(tmp_path: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    args = ["--since", "2026-11-02", "--until", "2026-11-03T00:00:00Z", "--dedupe"]
    args += ["--sample", "50", "--stratify", "attributes.feature", "--seed", "7"]
    proc = evalpipe("ingest", str(DEMO_TRAFFIC), *args, "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "50 records selected (" in proc.stdout and "outside the time window" in proc.stdout
    records = pq.read_table(tmp_path / "out" / "records")
    assert records.num_rows == 50
    ts = records["timestamp"]
    assert pc.min(ts).as_py().isoformat() >= "2026-11-02"
    assert pc.max(ts).as_py().isoformat() < "2026-11-03"
    lines = (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["line"] == 577
    # a second ingest into the folder replaces the first: all 1,200, no stale part left
    proc = evalpipe("ingest", str(DEMO_TRAFFIC), "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(tmp_path / "out" / "records").num_rows == 1200


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "yesterday"], "error: Invalid value for --since: 'yesterday' is not a date"),
        (["--format", "nope"], "error: --format: unknown format 'nope'. Known formats: auto,"),
        (["--sample", "0"], "error: Invalid value for '--sample'"),
        (["--out", "a-file"], "error: Invalid value for '--out': dir 'a-file' is a file."),
    ],
)
def test_ingest_bad_options_exit_4_with_one_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "a-file").write_text("")
    proc = evalpipe("ingest", str(DEMO_TRAFFIC), *args, cwd=tmp_path)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr
    assert "Traceback" not in proc.stderr and "(run with --debug" not in proc.stderr


def test_ingest_says_what_it_skipped_and_why(tmp_path: Path) -> None:
    generation = {
        "id": "g1",
        "type": "GENERATION",
        "traceId": "t1",
        "startTime": "2025-03-01T10:00:00Z",
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "hi"}],
        "output": "hello",
    }
    rows = [generation, {**generation, "id": "s1", "type": "SPAN"}]
    rows += [{**generation, "id": "s2", "type": "TOOL"}, generation]
    (tmp_path / "obs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = evalpipe("ingest", "obs.jsonl", "--out", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        "1 record ingested from 1 file (langfuse@1 1), 0 quarantined, "
        "3 skipped (not a generation 2, repeated observation id 1)"
    ) in proc.stdout
    assert [p.name for p in (tmp_path / "out" / "records").iterdir()] == ["part-00000.parquet"]


def test_ingest_of_nothing_usable_exits_4(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    proc = evalpipe("ingest", "empty.jsonl", cwd=tmp_path)
    assert proc.returncode == 4
    assert "error: empty.jsonl: no usable record" in proc.stderr


def test_dry_run_counts_unlogged_answers_at_max_tokens(tmp_path: Path) -> None:
    # a Batch input file alone: requests without answers, so output is priced at max_tokens
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Question {i}?"}],
            },
        }
        for i in range(30)
    ]
    (tmp_path / "batch_input.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    spec = _spec(tmp_path, traffic={"path": "batch_input.jsonl"})
    proc = evalpipe("run", str(spec), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "output tokens=30,720" in proc.stdout  # 30 × the default max_tokens 1,024
    assert "30 records without a logged answer counted at max_tokens (1,024)" in proc.stdout


def test_run_facts_name_what_the_selection_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    from evalpipe.cli import _print_run_facts

    counts = {"records": 0, "quarantined": 1, "out_of_window": 1200, "duplicates_dropped": 0}
    _print_run_facts({"counts": counts, "coverage": {}})
    assert capsys.readouterr().out.strip() == (
        "0 records (1 input line quarantined, 1,200 outside the time window): nothing to replay."
    )
    counts = {"records": 40, "quarantined": 3, "duplicates_dropped": 5, "sampled_out": 955}
    coverage = {
        "baseline": {"ok": 40, "errored": 0, "skipped": 0, "cache_hits": 40},
        "cand": {"ok": 37, "errored": 2, "skipped": 1, "cache_hits": 0},
        "logged": {"ok": 40, "errored": 0, "skipped": 0, "cache_hits": 0},
    }
    _print_run_facts({"counts": counts, "coverage": coverage, "cost_usd": {"total": 0.0123}})
    assert capsys.readouterr().out.strip() == (
        "40 records (3 input lines quarantined, 5 duplicates dropped, 955 sampled out) × 2 arms: "
        "80 requests, 77 answered, 2 failed, 1 skipped, 40 from cache; $0.01 at list prices."
    )


def test_yaml_alias_bomb_exits_4_with_one_line_quickly(tmp_path: Path) -> None:
    layers = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    layers += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    (tmp_path / "eval.yaml").write_text("\n".join(layers) + "\nname: *a9\n")
    proc = evalpipe("gate", "eval.yaml", cwd=tmp_path)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines() == [
        "error: eval.yaml: the YAML expands to more than 100,000 nodes through its aliases. "
        "Write the spec without nested anchors."
    ]


# --- evalpipe runs -----------------------------------------------------------------------------


def test_runs_lists_the_catalog_newest_first_one_line_each(tmp_path: Path) -> None:
    from evalpipe.spec import spec_from_dict
    from evalpipe.store import open_run, update_catalog

    (tmp_path / "t.jsonl").write_text("{}\n")
    data = {
        "name": "shop",
        "store": str(tmp_path / "store"),
        "traffic": {"path": "t.jsonl"},
        "baseline": {"provider": "openai", "model": "m"},
        "candidates": [{"name": "a", "provider": "openai", "model": "n"}],
    }
    ids = []
    for name, verdicts, cost in [
        ("shop", {"a": "GO", "b": "NO-GO"}, 0.0123),
        ("other", {"a": "NOT-PROVEN"}, None),
        ("shop", {"a": "INVALID"}, 1.5),
    ]:
        run = open_run(spec_from_dict({**data, "name": name}, spec_dir=tmp_path))
        run.update_manifest(
            verdict="NO-GO",
            candidates={c: {"verdict": v, "reason": "."} for c, v in verdicts.items()},
            cost_usd={"total": cost},
        )
        update_catalog(run)
        ids.append(run.run_id)
    proc = evalpipe("runs", "--store", "store", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ids[::-1]  # newest (last created) first
    first = next(line for line in lines if line.startswith(ids[0]))
    assert "  shop  " in first and "a GO, b NO-GO" in first and "$0.01" in first
    assert re.search(r"  \d{4}-\d{2}-\d{2} \d{2}:\d{2}  ", first)
    proc = evalpipe("runs", "--store", "store", "--spec", "shop", "--limit", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.strip().splitlines()] == [ids[2]]


def test_runs_of_an_empty_or_missing_store_says_so_in_one_line(tmp_path: Path) -> None:
    proc = evalpipe("runs", "--store", "nowhere", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [
        f"No finished runs in {tmp_path / 'nowhere'} (a run is listed once it finishes)."
    ]
    proc = evalpipe("runs", cwd=tmp_path)
    assert proc.stdout.strip().splitlines() == [
        f"No finished runs in {tmp_path / '.evalpipe'} (a run is listed once it finishes)."
    ]
