"""The nightly drift watch's steps, wired once (no Prefect): `nightly_steps`.

A night: the spec's traffic window (`traffic.window.last`) ending at the night's run time, or its
dated path (`logs/{date:%Y-%m-%d}/*.jsonl.gz`), a seeded sample, `shadow_steps` on a run whose
cache is salted with the night (the provider is asked afresh every night; a crashed night resumes
from its own cache and run folder without paying twice), then the night's findings
(`drift.findings`), one alert for what changed, and the night's row in the catalog. A finding
that follows a baseline snapshot change already alerted (the baseline's quality drifting since
that night) joins that change's record (`follows`) and is not alerted again: one alert per
change, however many nights its evidence takes to gather. A night
without traffic is `skipped: no traffic`; a night whose provider is down is `failed: provider`;
neither raises, so the next night runs as usual.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import duckdb
import orjson

from evalpipe.errors import EvalpipeError, InputError, ProviderError
from evalpipe.flows.alerts import alert_payload, post_alert
from evalpipe.flows.drift import (
    ARM_AA,
    ARM_LOGGED_DIFF,
    Finding,
    NightSummary,
    findings,
    said_change,
    to_say,
)
from evalpipe.flows.wiring import Stages, shadow_steps
from evalpipe.logfiles import list_files
from evalpipe.spec import Spec, Window
from evalpipe.store import (
    Night,
    Run,
    find_runs,
    open_run,
    read_night_metrics,
    read_nights,
    record_night,
    store_root,
)

__all__ = [
    "PROVIDER_DOWN_SHARE",
    "NightPlan",
    "night_series",
    "night_spec",
    "nightly_steps",
    "plan_night",
]

log = logging.getLogger(__name__)

PROVIDER_DOWN_SHARE: Final = 0.5
"""A night whose baseline got no answer to more than this share of its requests failed."""

OK: Final = "ok"
NO_TRAFFIC: Final = "skipped: no traffic"
PROVIDER_DOWN: Final = "failed: provider"


@dataclass(frozen=True)
class NightPlan:
    """Which night runs and what it reads."""

    night: date
    as_of: datetime
    """The night's run time: the end of its traffic window."""
    series: str
    path: str
    """The traffic path with the night's date filled in."""
    window: Window | None

    @property
    def salt(self) -> str:
        """The cache salt: one night's answers are never another night's."""
        return f"night:{self.night.isoformat()}"


def night_series(spec: Spec) -> str:
    """The nightly series a spec belongs to: its hash with no traffic files (they change nightly)."""
    body = spec.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _zone(spec: Spec) -> ZoneInfo:
    return ZoneInfo(spec.schedule.timezone if spec.schedule else "UTC")


def plan_night(spec: Spec, night: date | None = None, *, now: datetime | None = None) -> NightPlan:
    """The night to run: `night` (its window ends at the next midnight in the schedule's zone),
    else the night of `now` (default: the current time), whose window ends now."""
    zone = _zone(spec)
    if night is None:
        as_of = (now or datetime.now(UTC)).astimezone(zone)
        night = as_of.date()
    else:
        as_of = datetime.combine(night + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    traffic = spec.traffic
    window = traffic.window
    if window is not None and window.last is not None:
        window = Window(start=as_of - window.last, end=as_of)
    path = traffic.path.format(date=night) if "{" in traffic.path else traffic.path
    return NightPlan(night, as_of.astimezone(UTC), night_series(spec), path, window)


def night_spec(spec: Spec, plan: NightPlan) -> Spec:
    """The spec as the night runs it: its window and path filled in."""
    traffic = spec.traffic.model_copy(update={"path": plan.path, "window": plan.window})
    return spec.model_copy(update={"traffic": traffic})


def _night_run(spec: Spec, plan: NightPlan, store: str | None) -> Run:
    """The night's run: resumed when one was begun (its cache entries are reused), else new."""
    root = store_root(store or spec.store)
    for manifest in find_runs(root):
        tag = manifest.get("nightly") or {}
        if tag.get("series") == plan.series and tag.get("night") == plan.night.isoformat():
            log.info("night %s: resuming run %s", plan.night, manifest["run_id"])
            return open_run(spec, manifest["run_id"], store=store)
    run = open_run(spec, store=store)
    run.update_manifest(
        cache_salt=plan.salt,
        nightly={
            "series": plan.series,
            "night": plan.night.isoformat(),
            "as_of": plan.as_of.isoformat(timespec="seconds"),
        },
    )
    return run


def _has_traffic(spec: Spec) -> bool:
    try:
        list_files(spec.resolve_input(spec.traffic.path))
    except InputError:
        return False
    return True


def _night_metrics(run: Run) -> list[dict[str, Any]]:
    """Per arm and rule check: n, mean, variance of the mean; the paired baseline − logged
    difference; the baseline's diff metrics against itself (A/A)."""
    checks = [c.name for c in run.spec.checks]
    scores = run.read_scores().select(["record_id", "arm", "repeat", "kind", "metric", "value"])
    with duckdb.connect() as con:
        con.register("s", scores)
        con.execute("CREATE TEMP TABLE checks (metric VARCHAR)")
        con.executemany("INSERT INTO checks VALUES (?)", [[c] for c in checks])
        rows = con.sql(
            f"""
            WITH v AS (SELECT * FROM s WHERE value IS NOT NULL)
            SELECT arm, metric, count(*) AS n, avg(value) AS mean,
                   coalesce(var_samp(value), 0) / count(*) AS var
            FROM v WHERE repeat = 0 AND metric IN (SELECT metric FROM checks) GROUP BY ALL
            UNION ALL
            SELECT '{ARM_LOGGED_DIFF}', b.metric, count(*), avg(b.value - l.value),
                   coalesce(var_samp(b.value - l.value), 0) / count(*)
            FROM v b JOIN v l USING (record_id, metric)
            WHERE b.arm = 'baseline' AND b.repeat = 0 AND l.arm = 'logged'
              AND b.metric IN (SELECT metric FROM checks) GROUP BY ALL
            UNION ALL
            SELECT '{ARM_AA}', metric, count(*), avg(value),
                   coalesce(var_samp(value), 0) / count(*)
            FROM v WHERE arm = 'baseline' AND repeat >= 1 AND kind = 'diff' GROUP BY ALL
            ORDER BY 1, 2
            """
        ).fetchall()
    return [
        {"arm": arm, "metric": m, "n": int(n), "mean": float(mean), "var": float(var)}
        for arm, m, n, mean, var in rows
    ]


def _snapshots(run: Run) -> dict[str, dict[str, list[str]]]:
    """Per replayed arm, the response models and system fingerprints its answers carried."""
    responses = run.read_responses().select(
        ["arm", "status", "response_model", "system_fingerprint"]
    )
    with duckdb.connect() as con:
        con.register("r", responses)
        rows = con.sql(
            "SELECT arm, list(DISTINCT response_model ORDER BY response_model) "
            "FILTER (WHERE response_model IS NOT NULL), "
            "list(DISTINCT system_fingerprint ORDER BY system_fingerprint) "
            "FILTER (WHERE system_fingerprint IS NOT NULL) "
            "FROM r WHERE status = 'ok' AND arm <> 'logged' GROUP BY arm ORDER BY arm"
        ).fetchall()
    return {arm: {"models": m or [], "fingerprints": f or []} for arm, m, f in rows}


def _provider_down(run: Run) -> bool:
    base = (run.manifest().get("coverage") or {}).get("baseline") or {}
    asked = int(base.get("ok") or 0) + int(base.get("errored") or 0)
    return asked > 0 and int(base.get("errored") or 0) / asked > PROVIDER_DOWN_SHARE


def _summaries(
    root: Any, series: str, nights: list[Night], tonight: NightSummary | None
) -> list[NightSummary]:
    by_night: dict[str, dict[tuple[str, str], tuple[int, float, float]]] = {}
    for m in read_night_metrics(root, series):
        by_night.setdefault(m["night"], {})[(m["arm"], m["metric"])] = (
            int(m["n"]),
            float(m["mean"]),
            float(m["var"]),
        )
    out = [
        NightSummary(n.night, by_night.get(n.night, {}), n.snapshots, n.verdicts)
        for n in nights
        if n.status == OK
    ]
    return out + ([tonight] if tonight else [])


def _said_changes(nights: list[Night]) -> set[str]:
    """Nights whose alert said a baseline snapshot change."""
    return {n.night for n in nights if said_change(n.alerted)}


def _margins(spec: Spec) -> dict[str, float]:
    from evalpipe.gate.catalogue import gate_metrics

    return {
        m.name: float(m.margin)
        for m in gate_metrics(spec)
        if m.source == "rule" and m.margin is not None
    }


def _failure(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return PROVIDER_DOWN
    return f"failed: {type(exc).__name__}"


def _write_trends(root: Path, spec: Spec, reports: str | None) -> None:
    """The spec's trends page, night by night (a failure to draw it never fails the night)."""
    from evalpipe.report import write_trends

    try:
        write_trends(root, spec.name, Path(reports or spec.report.out).resolve())
    except Exception:
        log.warning("night: the trends page of %s was not written", spec.name, exc_info=True)


def nightly_steps(
    spec: Spec,
    stages: Stages,
    *,
    night: date | None = None,
    now: datetime | None = None,
    store: str | None = None,
    reports: str | None = None,
) -> dict[str, Any]:
    """Run one night of the drift watch (see the module's docstring).

    Returns:
        ``{"night", "status", "run_id", "findings", "new", "cleared", "alert"}``; `findings`
        are the findings active after the night, `new` and `cleared` what its alert said.
    """
    started = time.perf_counter()
    plan = plan_night(spec, night, now=now)
    root = store_root(store or spec.store)
    earlier = [n for n in read_nights(root, series=plan.series) if n.night < plan.night.isoformat()]
    again = [n for n in read_nights(root, series=plan.series) if n.night == plan.night.isoformat()]
    nspec = night_spec(spec, plan)
    run: Run | None = None
    status, metrics, snapshots, verdicts, records = OK, [], {}, {}, 0
    if not _has_traffic(nspec):
        status = NO_TRAFFIC
    else:
        run = _night_run(nspec, plan, store)
        try:
            stages.ingest(run)
            records = int(run.manifest().get("counts", {}).get("records") or 0)
            if records == 0:
                status = NO_TRAFFIC
            else:
                shadow_steps(run, stages, reports=reports)
                status = PROVIDER_DOWN if _provider_down(run) else OK
        except EvalpipeError as exc:
            status = _failure(exc)
            log.error("night %s: %s", plan.night, exc)
        except Exception as exc:  # a night never takes the series down: say it, record it
            status = _failure(exc)
            log.error("night %s: %s: %s", plan.night, type(exc).__name__, exc)
    if status == OK and run is not None:
        metrics = _night_metrics(run)
        snapshots = _snapshots(run)
        verdicts = {c: v["verdict"] for c, v in (run.manifest().get("candidates") or {}).items()}
    if status != OK:
        log.warning("night %s: %s", plan.night, status)
    tonight = (
        NightSummary(
            plan.night.isoformat(),
            {(m["arm"], m["metric"]): (m["n"], m["mean"], m["var"]) for m in metrics},
            snapshots,
            verdicts,
        )
        if status == OK
        else None
    )
    summaries = _summaries(root, plan.series, earlier, tonight)
    before = {f["key"]: f for f in (earlier[-1].findings if earlier else [])}
    if tonight is not None:
        found = findings(summaries, _margins(spec), alpha=spec.gate.alpha)
        states = {f.key: f.as_dict() for f in found if not f.event}
        events = [f.as_dict() for f in found if f.event]
    else:  # nothing measured: earlier states stand; the failure is a state of its own
        states = {k: f for k, f in before.items() if not f.get("event")}
        if status != NO_TRAFFIC:  # (no traffic says nothing of the provider)
            states["night:failed"] = Finding(
                "night:failed", "night", False, f"the nightly run {status}"
            ).as_dict()
        events = []
    new, cleared = to_say(before, states, events, _said_changes(earlier))
    alert_status, alerted = "none", {}
    if again and again[0].alert_status == "sent":
        alert_status, alerted = "sent", again[0].alerted  # a re-run of a night says nothing new
    elif new or cleared:
        alerted = {"new": new, "cleared": cleared}
        url = spec.alerts.webhook_url
        if url and "${" not in url:
            report = str(run.manifest().get("report") or "") if run is not None else ""
            alert_status = post_alert(
                url,
                alert_payload(
                    spec.name, f"night {plan.night.isoformat()}", new, cleared, report=report
                ),
                retries=spec.alerts.retries,
                timeout_s=spec.alerts.timeout_s,
            )
        else:
            alert_status = "no webhook"
    active = [*states.values(), *events]
    record_night(
        root,
        Night(
            series=plan.series,
            spec_name=spec.name,
            night=plan.night.isoformat(),
            run_id=run.run_id if run is not None else None,
            status=status,
            as_of=plan.as_of.isoformat(timespec="seconds"),
            records=records,
            snapshots=snapshots,
            verdicts=verdicts,
            findings=active,
            alerted=alerted,
            alert_status=alert_status,
        ),
        metrics,
    )
    if run is not None:
        run.update_manifest(nightly={"status": status, "alert": alert_status})
    _write_trends(root, spec, reports)
    log.info("night %s: %s in %.1f s", plan.night, status, time.perf_counter() - started)
    return {
        "night": plan.night.isoformat(),
        "status": status,
        "run_id": run.run_id if run is not None else None,
        "findings": active,
        "new": new,
        "cleared": cleared,
        "alert": alert_status,
    }
