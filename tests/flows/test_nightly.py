"""The nightly drift watch: real runs against the fake provider, a real webhook on 127.0.0.1,
the real catalog."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from evalpipe.flows.watch import nightly_steps, plan_night
from evalpipe.flows.wiring import IN_PROCESS
from evalpipe.spec import load_spec
from evalpipe.store import read_nights, store_root
from tests.flows.conftest import Webhook
from tests.flows.nights import nightly_spec

NIGHT_ENV = "EVALPIPE_FAKE_NIGHT"


def _night(spec_path: Path, night: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv(NIGHT_ENV, night)
    return nightly_steps(load_spec(spec_path), IN_PROCESS, night=date.fromisoformat(night))


def test_snapshot_change_on_night_three_posts_exactly_one_alert_under_prefect(
    fake_provider: str,
    prefect_harness: None,
    webhook: Webhook,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evalpipe.flows import nightly_watch

    path = nightly_spec(tmp_path, drift_night="2026-11-04", alerts={"webhook_url": webhook.url})
    results = []
    for night in ("2026-11-02", "2026-11-03", "2026-11-04"):
        monkeypatch.setenv(NIGHT_ENV, night)
        results.append(nightly_watch(str(path), night=night))
        if night != "2026-11-04":
            assert webhook.posts == [], night
    assert [r["status"] for r in results] == ["ok", "ok", "ok"]
    assert len(webhook.posts) == 1
    post = webhook.posts[0]
    assert "2026-11-04" in post["text"] and "gpt-4o-mini-2024-07-18-rev2" in post["text"]
    assert post["blocks"][0]["type"] == "header"
    assert results[2]["alert"] == "sent"
    assert any(f["key"] == "snapshot:baseline" for f in results[2]["new"])
    nights = read_nights(store_root(load_spec(path).store))
    assert [n.night for n in nights] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert nights[2].snapshots["baseline"]["models"] == ["gpt-4o-mini-2024-07-18-rev2"]
    # keyed artifacts: one key per spec and flow, a version per night
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = ["nightly-test-nightly-summary", "nightly-test-nightly-metrics"]
    keys.append("nightly-test-nightly-report")
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    by_key: dict[str, int] = {}
    for artifact in found:
        by_key[str(artifact.key)] = by_key.get(str(artifact.key), 0) + 1
    assert by_key == {key: 3 for key in keys}


def test_the_same_change_is_not_sent_again_and_a_rerun_night_sends_nothing(
    fake_provider: str, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = nightly_spec(tmp_path, drift_night="2026-11-03", alerts={"webhook_url": webhook.url})
    for night in ("2026-11-02", "2026-11-03", "2026-11-04"):
        _night(path, night, monkeypatch)
    assert len(webhook.posts) == 1  # night 3's change; night 4 sees the same snapshot
    again = _night(path, "2026-11-03", monkeypatch)
    assert again["alert"] == "sent" and len(webhook.posts) == 1
    # every night redraws the spec's trends page, the change marked on its time axis
    page = (tmp_path / "reports" / "trends" / "nightly-test.html").read_text()
    assert all(day in page for day in ("02 Nov", "03 Nov", "04 Nov"))  # the nights, not today


def test_each_night_asks_the_provider_afresh_and_a_rerun_night_pays_nothing(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = nightly_spec(tmp_path, traffic={"path": "traffic.jsonl.gz", "sample": {"n": 30}})
    first = _night(path, "2026-11-02", monkeypatch)
    second = _night(path, "2026-11-03", monkeypatch)  # the same 30 records (no window)
    spec = load_spec(path)
    from evalpipe.store import open_run

    runs = [open_run(spec, str(r["run_id"])) for r in (first, second)]
    for run in runs:
        assert run.manifest()["coverage"]["baseline"]["cache_hits"] == 0
    assert runs[1].manifest()["cache_salt"] == "night:2026-11-03"
    rerun = _night(path, "2026-11-03", monkeypatch)
    assert rerun["run_id"] == second["run_id"]  # resumed, not begun again
    # a night that crashed after replay lost its responses: the re-run pays for none of them
    import shutil

    shutil.rmtree(runs[1].responses_dir)
    pending = dict.fromkeys(("replay", "score", "gate", "report"), "pending")
    runs[1].update_manifest(stages=pending)
    resumed = _night(path, "2026-11-03", monkeypatch)
    assert resumed["run_id"] == second["run_id"] and resumed["status"] == "ok"
    coverage = runs[1].manifest()["coverage"]
    assert coverage["baseline"]["cache_hits"] == coverage["baseline"]["ok"] > 0
    assert runs[1].manifest()["cost_usd"]["replay"] == 0


def test_a_night_without_traffic_is_skipped_and_the_next_night_runs(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic = {"path": "logs/{date:%Y-%m-%d}/*.jsonl.gz", "sample": {"n": 20}}
    path = nightly_spec(tmp_path, traffic=traffic)
    day = tmp_path / "logs" / "2026-11-03"
    day.mkdir(parents=True)
    (tmp_path / "traffic.jsonl.gz").rename(day / "traffic.jsonl.gz")
    spec = load_spec(path)
    skipped = _night(path, "2026-11-02", monkeypatch)
    assert skipped["status"] == "skipped: no traffic" and skipped["run_id"] is None
    ran = _night(path, "2026-11-03", monkeypatch)
    assert ran["status"] == "ok"
    assert [n.status for n in read_nights(store_root(spec.store))] == [
        "skipped: no traffic",
        "ok",
    ]


def test_a_window_that_selects_no_logs_is_skipped(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = nightly_spec(tmp_path)
    assert _night(path, "2026-12-25", monkeypatch)["status"] == "skipped: no traffic"


def test_provider_down_fails_the_night_alerts_once_and_the_next_night_clears_it(
    fake_provider: str, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalpipe.providers.endpoint import FAKE_URL_ENV

    limits = {"default": {"max_retries": 0, "timeout_s": 2}}
    path = nightly_spec(tmp_path, alerts={"webhook_url": webhook.url}, limits=limits)
    assert _night(path, "2026-11-02", monkeypatch)["status"] == "ok"
    monkeypatch.setenv(FAKE_URL_ENV, "http://127.0.0.1:9")  # nothing listens there
    failed = _night(path, "2026-11-03", monkeypatch)
    assert failed["status"] == "failed: provider"
    assert [f["key"] for f in failed["new"]] == ["night:failed"]
    again = _night(path, "2026-11-04", monkeypatch)
    assert again["status"] == "failed: provider" and again["new"] == []
    monkeypatch.setenv(FAKE_URL_ENV, fake_provider)
    back = _night(path, "2026-11-05", monkeypatch)
    assert back["status"] == "ok" and [f["key"] for f in back["cleared"]] == ["night:failed"]
    assert len(webhook.posts) == 2  # failed once, cleared once
    statuses = [n.status for n in read_nights(store_root(load_spec(path).store))]
    assert statuses == ["ok", "failed: provider", "failed: provider", "ok"]


def test_a_webhook_that_answers_500_is_retried_then_logged_and_the_night_is_ok(
    fake_provider: str,
    webhook: Webhook,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alerts = {"webhook_url": webhook.url, "retries": 1}
    path = nightly_spec(tmp_path, drift_night="2026-11-03", alerts=alerts)
    _night(path, "2026-11-02", monkeypatch)
    webhook.status = 500
    result = _night(path, "2026-11-03", monkeypatch)
    assert result["status"] == "ok" and result["alert"] == "failed: HTTP 500"
    assert webhook.attempts == 2
    assert "alert webhook failed after 2 attempts (HTTP 500)" in caplog.text


def test_a_webhook_that_does_not_answer_times_out_and_the_night_is_ok(
    fake_provider: str, webhook: Webhook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts = {"webhook_url": webhook.url, "retries": 0, "timeout_s": 0.3}
    path = nightly_spec(tmp_path, drift_night="2026-11-03", alerts=alerts)
    _night(path, "2026-11-02", monkeypatch)
    webhook.hang = 1.0
    result = _night(path, "2026-11-03", monkeypatch)
    assert result["status"] == "ok" and result["alert"] == "failed: no answer"


def test_window_last_ends_at_the_next_midnight_of_the_schedule_zone(tmp_path: Path) -> None:
    path = nightly_spec(tmp_path, schedule={"cron": "0 3 * * *", "timezone": "Europe/Berlin"})
    plan = plan_night(load_spec(path), date(2026, 11, 3))
    assert plan.window is not None
    assert plan.window.end is not None and plan.window.start is not None
    assert plan.window.end.isoformat() == "2026-11-04T00:00:00+01:00"
    assert (plan.window.end - plan.window.start).total_seconds() == 24 * 3600
    assert plan.salt == "night:2026-11-03"


def test_trends_prints_a_row_per_night_with_the_snapshot_seen(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from evalpipe.cli import app

    path = nightly_spec(tmp_path, drift_night="2026-11-03")
    for night in ("2026-11-02", "2026-11-03"):
        _night(path, night, monkeypatch)
    result = CliRunner().invoke(app, ["trends", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split("\t")[:4] == [
        "night",
        "status",
        "baseline snapshot",
        "baseline valid_json",
    ]
    assert lines[1].startswith("2026-11-02\tok\tgpt-4o-mini-2024-07-18, fp_")
    assert lines[2].startswith("2026-11-03\tok\tgpt-4o-mini-2024-07-18-rev2")
    assert lines[2].endswith("snapshot:baseline")


def test_the_nightly_command_says_a_failed_night_in_one_line_and_exits_4(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from evalpipe.cli import app
    from evalpipe.providers.endpoint import FAKE_URL_ENV

    path = nightly_spec(tmp_path, limits={"default": {"max_retries": 0, "timeout_s": 2}})
    monkeypatch.setenv(FAKE_URL_ENV, "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["nightly", str(path), "--night", "2026-11-03"])
    assert result.exit_code == 4
    assert result.stdout.startswith("Night 2026-11-03: failed: provider (run ")
    assert len(result.stdout.strip().splitlines()) == 3  # the line, the new finding, the alert
    skipped = CliRunner().invoke(app, ["nightly", str(path), "--night", "2026-12-25"])
    assert skipped.exit_code == 0 and "Night 2026-12-25: skipped: no traffic" in skipped.stdout


def test_a_spec_with_an_unparseable_cron_stops_the_nightly_command_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalpipe.cli import main

    path = nightly_spec(tmp_path, schedule={"cron": "every night"})
    with pytest.raises(SystemExit) as stop:
        main(["nightly", str(path)])
    assert stop.value.code == 4
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and "schedule.cron: 'every night' is not a cron expression" in said[0]


def test_the_alert_is_slack_compatible_text_and_blocks() -> None:
    from evalpipe.flows.alerts import alert_payload

    new = [{"text": "baseline answered as a new snapshot"}]
    cleared = [{"text": "the nightly run failed: provider"}]
    body = alert_payload("spec", "night 2026-11-03", new, cleared, report="/r/index.html")
    assert body["text"].startswith("evalpipe spec, night 2026-11-03: 1 new finding, 1 cleared")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert "• cleared: the nightly run failed: provider" in body["blocks"][1]["text"]["text"]


def test_a_baseline_replayed_twice_records_its_aa_noise_floor_each_night(
    fake_provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from evalpipe.flows.watch import night_series
    from evalpipe.store import read_night_metrics

    path = nightly_spec(tmp_path, traffic={"path": "traffic.jsonl.gz", "sample": {"n": 20}})
    spec = yaml.safe_load(path.read_text())
    spec["baseline"]["repeats"] = 2
    spec["baseline"]["params"] = {"temperature": 0.7}
    path.write_text(yaml.safe_dump(spec))
    assert _night(path, "2026-11-02", monkeypatch)["status"] == "ok"
    loaded = load_spec(path)
    rows = read_night_metrics(store_root(loaded.store), night_series(loaded))
    aa = [r for r in rows if r["arm"] == "baseline-aa"]
    assert [r["metric"] for r in aa] == ["diff.exact"] and aa[0]["n"] > 0
    logged = [r for r in rows if r["arm"] == "baseline-logged"]
    assert {r["metric"] for r in logged} == {"valid_json", "no_refusal"}
