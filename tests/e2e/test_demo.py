"""The whole pipeline on the demo set: real SDKs → fake provider over HTTP → Prefect flow → store.

One flow run is shared by the tests of this module (it is the expensive part).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from evalpipe.cli import main
from evalpipe.providers.params import ANTHROPIC_MESSAGES
from evalpipe.spec import load_spec
from evalpipe.store import open_run, read_table
from evalpipe.tables import GATE, RECORDS, RESPONSES, SCORES

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "eval_sets" / "demo"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_run(
    fake_provider: str, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from evalpipe.flows import shadow_eval

    work = tmp_path_factory.mktemp("demo")
    # the demo and the eval sets it names (eval_sets/demo_edge_cases, found beside it)
    shutil.copytree(
        DEMO.parent, work / "eval_sets", ignore=shutil.ignore_patterns("generate.py", "__pycache__")
    )
    spec_path = work / "eval_sets" / "demo" / "eval.yaml"
    state = shadow_eval(str(spec_path), store=str(work / "store"), reports=str(work / "reports"))
    run = open_run(load_spec(spec_path), state["run_id"], store=str(work / "store"))
    return {"state": state, "run": run, "work": work, "spec_path": spec_path}


def _verdicts(run) -> dict[str, dict[str, str]]:
    return run.manifest()["candidates"]


def test_demo_verdicts_are_one_go_and_one_no_go(demo_run: dict[str, Any]) -> None:
    verdicts = _verdicts(demo_run["run"])
    assert verdicts["claude-haiku"]["verdict"] == "GO"
    assert verdicts["gpt-4.1-mini"]["verdict"] == "NO-GO"
    assert "valid_json" in verdicts["gpt-4.1-mini"]["reason"]
    assert "regressed" in verdicts["gpt-4.1-mini"]["reason"]
    assert verdicts["claude-haiku"]["reason"].startswith("GO")
    assert demo_run["state"]["exit_code"] == 1  # worst of the two


def test_malformed_line_is_quarantined_not_fatal(demo_run: dict[str, Any]) -> None:
    run = demo_run["run"]
    lines = (run.quarantine_dir / f"{run.run_id}.jsonl").read_bytes().splitlines()
    assert len(lines) == 1
    row = orjson.loads(lines[0])
    assert row["file"].endswith("traffic.jsonl.gz") and row["line"] > 1 and row["reason"]
    records = read_table(run.path("records.parquet"), RECORDS)
    assert records.num_rows == run.manifest()["counts"]["records"] == 1200 + 30
    assert run.manifest()["source_formats"] == {"openai_chat@1": 1200}  # the traffic's
    assert run.manifest()["eval_sets"] == {"demo_edge_cases": 30}


def test_stored_tables(demo_run: dict[str, Any]) -> None:
    run = demo_run["run"]
    records = read_table(run.path("records.parquet"))
    assert records.schema.equals(RECORDS)
    responses = read_table(run.path("responses"))
    assert responses.schema.equals(RESPONSES)
    n = records.num_rows
    arms = responses.group_by("arm").aggregate([("record_id", "count")]).to_pylist()
    assert {a["arm"]: a["record_id_count"] for a in arms} == {
        "baseline": n,
        "claude-haiku": n,
        "gpt-4.1-mini": n,
        "logged": n,
    }
    replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
    # only the empty-input edge cases cannot be sent to Anthropic (no message is left)
    not_ok = replayed.filter(pc.not_equal(replayed["status"], "ok"))
    assert set(not_ok["arm"].to_pylist()) == {"claude-haiku"}
    assert sorted(not_ok["record_id"].to_pylist()) == [
        "demo_edge_cases:empty-answer",
        "demo_edge_cases:empty-triage",
    ]
    models = set(replayed["response_model"].to_pylist())
    assert {"gpt-4o-mini-2024-07-18", "claude-haiku-4-5", "gpt-4.1-mini-2025-04-14"} <= models
    scores = run.read_scores()
    assert scores.schema.equals(SCORES)
    judged = scores.filter(
        pc.and_(pc.equal(scores["metric"], "helpfulness"), pc.equal(scores["kind"], "judge"))
    )
    assert judged.num_rows == 2 * (500 + 30)  # the sample of the traffic, and every eval case
    anchors = scores.filter(pc.equal(scores["kind"], "anchor"))
    assert anchors.num_rows == 12 and pc.all(anchors["passed"]).as_py()  # a stable judge
    gate = pq.read_table(run.path("gate.parquet"))
    assert gate.schema.equals(GATE)
    regressed = gate.filter(
        pc.and_(
            pc.and_(
                pc.equal(gate["candidate"], "gpt-4.1-mini"), pc.equal(gate["metric"], "valid_json")
            ),
            pc.is_null(gate["slice_col"]),
        )
    )
    row = regressed.to_pylist()[0]
    assert row["verdict"] == "NO-GO" and row["regressed"] > 20 and row["improved"] == 0
    with duckdb.connect(str(run.root / "catalog.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT verdict FROM runs WHERE run_id = ?", [run.run_id]
        ).fetchall() == [("NO-GO",)]


def test_report_files_are_written(demo_run: dict[str, Any]) -> None:
    out = demo_run["work"] / "reports" / demo_run["run"].run_id
    for name in ("index.html", "summary.md", "verdict.json", "junit.xml"):
        assert (out / name).is_file(), name
    verdict = orjson.loads((out / "verdict.json").read_bytes())
    cands = verdict["candidates"]
    got = {c["verdict"] for c in (cands.values() if isinstance(cands, dict) else cands)}
    assert got == {"GO", "NO-GO"}
    assert (demo_run["work"] / "reports" / "index.html").is_file()


def _gate_exit(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)


def test_gate_exit_codes_per_candidate(demo_run: dict[str, Any]) -> None:
    spec, store = str(demo_run["spec_path"]), str(demo_run["work"] / "store")
    assert _gate_exit(["gate", spec, "--store", store, "--candidate", "gpt-4.1-mini"]) == 1
    assert _gate_exit(["gate", spec, "--store", store, "--candidate", "claude-haiku"]) == 0
    assert _gate_exit(["gate", spec, "--store", store]) == 1


def test_a_second_run_is_served_from_the_cache(demo_run: dict[str, Any]) -> None:
    from evalpipe.pipeline import ingest_run, replay_run

    spec = load_spec(demo_run["spec_path"])
    run = open_run(spec, store=str(demo_run["work"] / "store"))
    ingest_run(run)
    replay_run(run)
    responses = read_table(run.path("responses"))
    replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
    sent = replayed.filter(pc.equal(replayed["status"], "ok"))
    assert sent.num_rows == replayed.num_rows - 2 and pc.all(sent["cache_hit"]).as_py()
    assert run.manifest()["cost_usd"]["replay"] == 0


def test_run_facts_line_says_what_was_read_replayed_and_cached(
    demo_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from evalpipe.cli import _print_run_facts
    from evalpipe.pipeline import ingest_run, replay_run

    _print_run_facts(demo_run["run"].manifest())
    line, *rest = capsys.readouterr().out.strip().splitlines()
    fidelity = [f for f in rest if not f.startswith("Throughput: ")]
    assert re.fullmatch(r"Throughput: baseline \d+\.\d/s of .*", rest[-1]), rest
    assert re.fullmatch(
        r"1,230 records \(1 input line quarantined\) × 3 arms: 3,690 requests, "
        r"3,688 answered, 2 skipped; \$\d+\.\d\d at list prices\.",
        line,
    ), line
    # the logged temperature has no equivalent on Anthropic with anthropic 2.x (params.py)
    lost = "1,228 records on claude-haiku: `temperature` not sent — no equivalent on Anthropic"
    skipped = (
        "Skipped — untranslatable on claude-haiku: no message left once the system prompt moves "
        "to `system` 2."
    )
    assert fidelity == ([] if "temperature" in ANTHROPIC_MESSAGES else [lost + " Messages."]) + [
        skipped
    ]
    again = open_run(load_spec(demo_run["spec_path"]), store=str(demo_run["work"] / "store"))
    ingest_run(again)
    replay_run(again)
    _print_run_facts(again.manifest())
    assert "3,688 answered, 2 skipped, 3,688 from cache" in capsys.readouterr().out


def test_unknown_model_stops_the_run_with_exit_4(
    demo_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    spec_path = demo_run["spec_path"]
    bad = spec_path.with_name("bad-model.yaml")
    bad.write_text(spec_path.read_text().replace("gpt-4.1-mini-2025-04-14", "gpt-9-turbo-preview"))
    code = _gate_exit(["gate", str(bad), "--store", str(demo_run["work"] / "store-bad")])
    assert code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "gpt-9-turbo-preview" in err[0] and "does not exist" in err[0]
