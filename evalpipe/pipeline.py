"""The `*_run` functions: each reads its inputs from a run folder, calls its stage, writes its output.

The CLI and the Prefect flows call these; tests call the stage functions or these. Every one is
resumable: it returns at once when its stage is already done for the run.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.replay.cache import ResponseCache
from evalpipe.replay.limits import Budget
from evalpipe.spec import BUILTIN_FAKE, Spec
from evalpipe.store import (
    Run,
    find_runs,
    update_catalog,
    write_json_atomic,
    write_table_atomic,
)

if TYPE_CHECKING:  # the stages' own modules load when a stage runs (SDKs, SciPy, Jinja2)
    from evalpipe.gate.verdict import CandidateVerdict, GateResult
    from evalpipe.replay.engine import Progress

__all__ = [
    "PARTITION_SIZE",
    "SHARED_LIMITS",
    "finish_replay",
    "gate_run",
    "ingest_run",
    "load_gate",
    "needs_fake_provider",
    "partition_size",
    "partitions",
    "progress_sink",
    "replay_run",
    "report_run",
    "score_run",
]

log = logging.getLogger(__name__)

PARTITION_SIZE: Final = 1000
"""Records per replay partition (a task each in the flows)."""

SHARED_LIMITS: Final = "limits_across_processes"
"""Manifest key: true while the run's partitions may replay in several processes (a Dask or Ray
task runner); they then share its budget and rpm/tpm through the run's ledger."""

_sinks: list[Callable[[Progress], None]] = []


@contextmanager
def progress_sink(fn: Callable[[Progress], None]) -> Iterator[None]:
    """Receive progress events of every stage while the context is open (the CLI draws them)."""
    _sinks.append(fn)
    try:
        yield
    finally:
        _sinks.remove(fn)


def _emit(event: Progress) -> None:
    for fn in list(_sinks):
        fn(event)


def needs_fake_provider(spec: Spec) -> bool:
    """Whether any arm or judge points at the built-in fake provider."""
    urls = [a.base_url for a in spec.arms()] + [j.base_url for j in spec.judges]
    return BUILTIN_FAKE in urls


def _cache(run: Run) -> ResponseCache:
    return ResponseCache(run.cache_dir, run.spec.cache, remote=run.remote)


# --- ingest ------------------------------------------------------------------------------------


def ingest_run(run: Run) -> dict[str, int]:
    """Ingest the spec's traffic into records.parquet; bad lines go to the store's quarantine.

    Bounded memory however large the logs: the adapters write Parquet parts as they read, the
    selection reads only the few columns it needs, and the kept rows are copied part by part
    into records.parquet, in row groups of PARTITION_SIZE (a replay partition reads one). The
    spec's eval sets are appended after the traffic (no window or sample applies to them).
    """
    from evalpipe.ingest import ingest_selected, selection_of, write_quarantine
    from evalpipe.ingest.evalsets import append_records, ingest_eval_sets

    if run.stage_done("ingest"):
        return dict(run.manifest().get("counts", {}))
    started = time.perf_counter()
    spec = run.spec
    result = ingest_selected(
        spec.resolve_input(spec.traffic.path),
        run.path("records.parquet"),
        format=spec.traffic.format,
        redact_quarantine=spec.redact_pii.quarantine,
        selection=selection_of(spec),
        row_group_size=PARTITION_SIZE,
    )
    quarantine, total, sets = result.quarantine, result.records, {}
    if spec.eval_sets:
        cases = ingest_eval_sets(spec, redact_quarantine=spec.redact_pii.quarantine)
        total = append_records(run.path("records.parquet"), cases.records)
        quarantine, sets = pa.concat_tables([quarantine, cases.quarantine]), cases.counts
    if quarantine.num_rows:
        qpath = write_quarantine(quarantine, run.quarantine_dir / f"{run.run_id}.jsonl")
        log.warning("%d input line(s) quarantined: %s", quarantine.num_rows, qpath)
        run.publish(qpath)
    counts = {**result.counts, "records": total}
    if sets:
        counts["eval_set_records"] = sum(sets.values())
    run.update_manifest(
        partition_size=PARTITION_SIZE,
        counts=counts,
        source_formats=result.records_by_format,
        skipped_by_reason=result.skipped_by_reason,
        **({"eval_sets": sets} if sets else {}),
    )
    run.mark_stage("ingest", time.perf_counter() - started)
    return counts


# --- replay ------------------------------------------------------------------------------------


def partition_size(run: Run) -> int:
    """Records per partition of the run: its records' row groups, as ingest wrote them (read
    from the manifest, so that a worker in another process partitions as the driver did)."""
    return int(run.manifest().get("partition_size") or PARTITION_SIZE)


def partitions(run: Run) -> list[int]:
    """Partition numbers of the run's records (PARTITION_SIZE records each).

    Announces every partition of every arm to the progress sinks first (0 done), so that a
    progress bar shows the whole run's total from the start, not the partitions begun so far.
    Called once by whoever schedules the partitions, before any starts: when they share the
    run's ledger, reservations a crashed earlier attempt left there are dropped.
    """
    n = run.manifest().get("counts", {}).get("records")
    if n is None:
        n = run.record_count()
    size = partition_size(run)
    parts = list(range(max(1, -(-int(n) // size))))
    if not run.stage_done("replay") and run.spec.mode != "canary":
        from evalpipe.replay.engine import Progress

        if _shared_limits(run):
            from evalpipe.replay.ledger import LEDGER_FILE, clear_reservations

            clear_reservations(run.path(LEDGER_FILE), _spent(run))

        for arm in run.spec.arms():
            key = "baseline" if arm is run.spec.baseline else arm.name
            for p in parts:
                _emit(Progress("replay", key, 0, min(size, int(n) - p * size), 0.0, p))
    return parts


def _salt(run: Run) -> str:
    return str(run.manifest().get("cache_salt") or "")


_budgets: dict[tuple[str, str], Budget] = {}
_budgets_lock = threading.Lock()


def _shared_limits(run: Run) -> bool:
    return bool(run.manifest().get(SHARED_LIMITS))


def _spent(run: Run) -> float:
    return float(run.manifest().get("cost_usd", {}).get("total") or 0.0)


def _replay_budget(run: Run) -> Budget:
    """The run's one replay budget, shared by the partitions replaying in this process.

    Partitions run as concurrent tasks; each with a budget of its own could spend the whole
    cap. When they run in several processes (Dask, Ray: `SHARED_LIMITS`), every process reserves
    from the run's ledger, and counts its endpoints' rpm/tpm there too.
    """
    key = (str(run.root), run.run_id)
    with _budgets_lock:
        if key not in _budgets:
            if _shared_limits(run):
                from evalpipe.replay.ledger import LEDGER_FILE, LedgerBudget
                from evalpipe.replay.limits import share_limits

                ledger = run.path(LEDGER_FILE)
                share_limits(run.run_id, ledger)
                _budgets[key] = LedgerBudget(ledger, run.spec.budget_usd, _spent(run))
            else:
                _budgets[key] = Budget(run.spec.budget_usd, _spent(run))
        return _budgets[key]


def replay_run(run: Run, part: int | None = None) -> int:
    """Replay one partition (or all) of the run's records against every arm; returns rows written."""
    if run.stage_done("replay") or run.spec.mode == "canary":
        return 0  # canary mode compares what production served: nothing to replay
    from evalpipe.replay.engine import replay_records

    started = time.perf_counter()
    spec = run.spec
    out_dir = run.responses_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = _replay_budget(run)
    parts = partitions(run) if part is None else [part]
    size = partition_size(run)
    written = 0
    for p in parts:
        chunk = run.read_records(p * size, (p + 1) * size, request_raw=True)
        table = replay_records(
            chunk,
            spec,
            run_id=run.run_id,
            responses_dir=out_dir,
            part=p,
            cache=_cache(run),
            cache_salt=_salt(run),
            budget=budget,
            on_progress=_emit,
        )
        written += table.num_rows
        if run.remote is not None:  # the partition's parts, each a finished unit of work
            run.publish(*sorted(out_dir.glob(f"part-*-p{p:05d}.parquet")))
    if part is None:
        finish_replay(run, time.perf_counter() - started)
    return written


def _throughput(run: Run) -> dict[str, dict[str, Any]]:
    """Per arm: achieved requests/s against its ceiling and the limit that binds it, retries,
    429s, the adaptive window and the breaker, as this process's limiters saw them (empty for
    arms whose requests were all cached or journaled before)."""
    from evalpipe.replay.limits import run_endpoints

    endpoints = run_endpoints(run.run_id)
    spec = run.spec
    out: dict[str, dict[str, Any]] = {}
    for arm in spec.arms():
        facts = endpoints.get(f"{arm.provider}/{arm.model}")
        if facts is not None and facts["attempts"]:
            out["baseline" if arm is spec.baseline else arm.name] = facts
    return out


def _fallbacks(fired: list[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """Per arm: requests a fallback answered, by the model that answered."""
    out: dict[str, dict[str, int]] = {}
    for arm, model, n in fired:
        out.setdefault(arm, {})[model] = int(n)
    return out


def finish_replay(run: Run, seconds: float | None = None) -> None:
    """After every partition: add the `logged` arm, record counts and spend, mark replay done."""
    from evalpipe.replay.engine import logged_responses
    from evalpipe.replay.limits import close_clients
    from evalpipe.replay.loop import run_async

    run_async(close_clients(run.run_id))  # the SDK clients the partitions shared

    with _budgets_lock:
        budget = _budgets.pop((str(run.root), run.run_id), None)
    if budget is not None:
        budget.close()
    spec = run.spec
    out_dir = run.responses_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec.mode == "canary" or (spec.baseline is not None and spec.baseline.compare_logged):
        records = run.read_records()
        write_table_atomic(
            logged_responses(records, run_id=run.run_id), out_dir / "part-logged-r0-p00000.parquet"
        )
    responses = run.read_responses()
    with duckdb.connect() as con:
        con.register("r", responses)
        fired = con.sql(
            "SELECT arm, coalesce(response_model, model) AS answered, count(*) AS n FROM r "
            "WHERE fallback_used AND status = 'ok' GROUP BY ALL ORDER BY arm, answered"
        ).fetchall()
        per_arm = (
            con.sql(
                "SELECT arm, count(*) FILTER (WHERE status = 'ok') AS ok, "
                "count(*) FILTER (WHERE status = 'error') AS errored, "
                "count(*) FILTER (WHERE status = 'skipped') AS skipped, "
                "count(*) FILTER (WHERE cache_hit) AS cache_hits, "
                "coalesce(sum(cost_usd) FILTER (WHERE NOT coalesce(cache_hit, false) AND arm <> 'logged'), 0) AS spent, "
                "list(DISTINCT response_model ORDER BY response_model) FILTER (WHERE response_model IS NOT NULL) AS models "
                "FROM r GROUP BY arm ORDER BY arm"
            )
            .to_arrow_table()
            .to_pylist()
        )
    coverage = {
        r["arm"]: {k: r[k] for k in ("ok", "errored", "skipped", "cache_hits")} for r in per_arm
    }
    replay_cost = round(sum(r["spent"] for r in per_arm), 6)
    run.update_manifest(
        throughput=_throughput(run),
        fallbacks=_fallbacks(fired),
        coverage=coverage,
        models_seen={r["arm"]: r["models"] or [] for r in per_arm},
        cost_usd={"replay": replay_cost, "total": replay_cost},
        **_replay_losses(responses),
    )
    if seconds is None:  # partitions ran as separate tasks: time from the first request sent
        replayed = responses.filter(pc.not_equal(responses["arm"], "logged"))
        first = pc.min(replayed["started_at"]).as_py() if replayed.num_rows else None
        seconds = (datetime.now(UTC) - first).total_seconds() if first else 0.0
    run.mark_stage("replay", seconds)


_LOST_SQL: Final = """
    WITH lost AS (
        SELECT arm, record_id, unnest(from_json(params_not_replayed,
            '[{"param": "VARCHAR", "reason": "VARCHAR"}]'), recursive := true)
        FROM r WHERE params_not_replayed IS NOT NULL AND arm <> 'logged')
"""


def _replay_losses(responses: pa.Table) -> dict[str, Any]:
    """Per arm: records that lost each logged parameter (`params_not_replayed`), the same grouped
    by reason (`params_not_replayed_reasons`), and requests skipped by reason (`skipped`)."""
    with duckdb.connect() as con:
        con.register(
            "r",
            responses.select(
                ["arm", "record_id", "params_not_replayed", "status", "error_type", "error_message"]
            ),
        )
        by_param = con.sql(
            _LOST_SQL + "SELECT arm, param, count(DISTINCT record_id) AS records FROM lost "
            "GROUP BY ALL ORDER BY arm, records DESC, param"
        ).fetchall()
        by_reason = con.sql(
            _LOST_SQL + "SELECT arm, reason, list(DISTINCT param ORDER BY param) AS params, "
            "count(DISTINCT record_id) AS records FROM lost GROUP BY ALL "
            "ORDER BY arm, records DESC, reason"
        ).fetchall()
        skipped = con.sql(
            "SELECT arm, CASE error_type WHEN 'NotReplayable' THEN 'not replayable: ' || "
            "coalesce(error_message, 'no reason logged') WHEN 'BudgetExhausted' THEN "
            "'budget_usd reached' ELSE coalesce(error_message, error_type, 'no reason logged') "
            "END AS reason, count(*) AS n FROM r WHERE status = 'skipped' AND arm <> 'logged' "
            "GROUP BY ALL ORDER BY arm, n DESC, reason"
        ).fetchall()
    out: dict[str, dict[str, Any]] = {
        "params_not_replayed": {},
        "params_not_replayed_reasons": {},
        "skipped": {},
    }
    for arm, param, records in by_param:
        out["params_not_replayed"].setdefault(arm, {})[param] = records
    for arm, reason, params, records in by_reason:
        group = {"reason": reason, "params": params, "records": records}
        out["params_not_replayed_reasons"].setdefault(arm, []).append(group)
    for arm, reason, n in skipped:
        out["skipped"].setdefault(arm, {})[reason] = n
    return out


# --- score -------------------------------------------------------------------------------------


def score_run(run: Run) -> int:
    """Score the run's responses into scores.parquet; returns its number of rows."""
    if run.stage_done("score"):
        return int(run.read_scores().num_rows)
    from evalpipe.ingest import redact_pii
    from evalpipe.score import score_responses

    started = time.perf_counter()
    spec = run.spec
    records = run.read_records()
    responses = run.read_responses()
    spent = float(run.manifest().get("cost_usd", {}).get("total") or 0.0)
    budget = Budget(spec.budget_usd, spent)

    def redact(texts: list[str]) -> list[str]:
        return [str(t) for t in redact_pii(pa.array(texts, pa.string())).to_pylist()]

    cache = _cache(run)
    scores = score_responses(
        responses,
        records,
        spec,
        run_id=run.run_id,
        cache=cache,
        budget=budget,
        redact=redact if spec.redact_pii.judges else None,
        on_progress=_emit,
        previous_anchors=previous_anchors(run) if spec.judges else None,
    )
    cache.flush()  # the judges' answers
    run.write_scores(scores)
    judge_cost = round(budget.spent - spent, 6)
    run.update_manifest(cost_usd={"judges": judge_cost, "total": round(budget.spent, 6)})
    run.mark_stage("score", time.perf_counter() - started)
    return int(scores.num_rows)


def previous_anchors(run: Run) -> pa.Table | None:
    """The judge anchor rows (arm `anchor`) of the newest earlier run of the same spec name in
    the store that has them, or None."""
    import pyarrow.parquet as pq

    from evalpipe.tables import ARMS_ANCHOR

    runs = find_runs(run.root)  # newest first
    ids = [m.get("run_id") for m in runs]
    older = runs[ids.index(run.run_id) + 1 :] if run.run_id in ids else runs
    for manifest in older:
        rid = str(manifest.get("run_id") or "")
        if manifest.get("spec_name") != run.spec.name or not rid or rid == run.run_id:
            continue
        path = run.root / "runs" / rid / "scores.parquet"
        remote = run.remote
        if remote is not None:  # (a remote store: that run's scores into the staging folder)
            remote.pull_run(rid, names=("scores.parquet",))
        if not path.is_file():
            continue
        columns = ["record_id", "arm", "metric", "judge_model", "prompt_version", "detail"]
        try:
            rows = pq.read_table(path, columns=columns, filters=[("arm", "=", ARMS_ANCHOR)])
        except (OSError, pa.ArrowInvalid) as exc:
            log.warning("cannot read the anchors of run %s: %s", rid, exc)
            continue
        if rows.num_rows:
            return rows
    return None


# --- gate --------------------------------------------------------------------------------------


def gate_run(run: Run) -> GateResult:
    """Decide every candidate; writes gate.parquet and the verdict into the manifest."""
    from evalpipe.gate import gate_scores

    started = time.perf_counter()
    spec = run.spec
    records = run.read_records()
    responses = run.read_responses()
    scores = run.read_scores()
    skipped = pc.sum(pc.equal(responses["error_type"], "BudgetExhausted")).as_py() or 0
    result = gate_scores(
        scores, responses, records, spec, run_id=run.run_id, budget_exhausted=skipped > 0
    )
    run.write_gate(result.table)
    run.update_manifest(
        verdict=result.verdict,
        exit_code=result.exit_code,
        candidates={c.candidate: _verdict_fields(c) for c in result.candidates},
    )
    run.mark_stage("gate", time.perf_counter() - started)
    return result


def load_gate(run: Run) -> GateResult:
    """The gate result of a finished run, rebuilt from its files (no statistics recomputed)."""
    from evalpipe.gate.verdict import CandidateVerdict, GateResult

    known = {f.name for f in dataclasses.fields(CandidateVerdict)}
    cands = [
        CandidateVerdict(**{**{k: v for k, v in c.items() if k in known}, "candidate": name})
        for name, c in (run.manifest().get("candidates") or {}).items()
    ]
    return GateResult(run_id=run.run_id, table=run.read_gate(), candidates=cands)


def _verdict_fields(verdict: CandidateVerdict) -> dict[str, Any]:
    """A candidate's whole verdict as JSON, so a later report shows its caveats too."""
    fields = dataclasses.asdict(verdict)
    del fields["candidate"]  # (the key it is stored under)
    parsed: dict[str, Any] = orjson.loads(
        orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY, default=float)
    )
    return parsed


# --- report ------------------------------------------------------------------------------------


def report_run(run: Run, result: GateResult, *, out: str | None = None) -> Path:
    """Write reports/<run_id>/ (index.html, summary.md, verdict.json, junit.xml) and the runs index."""
    from evalpipe.report import write_report, write_runs_index

    started = time.perf_counter()
    spec = run.spec
    reports_root = Path(out or spec.report.out).resolve()
    paths = write_report(
        reports_root / run.run_id,
        gate=result,
        spec=spec,
        records=run.read_records(),
        responses=run.read_responses(),
        scores=run.read_scores(),
        manifest=run.manifest(),
    )
    write_json_atomic(orjson.loads(paths.verdict_json.read_bytes()), run.path("verdict.json"))
    run.mark_stage("report", time.perf_counter() - started)
    run.update_manifest(
        report=str(paths.index_html), finished=datetime.now(UTC).isoformat(timespec="seconds")
    )
    update_catalog(run)
    write_runs_index(reports_root, _runs_for_index(run.root))
    return paths.index_html


def _runs_for_index(root: Path) -> list[dict[str, Any]]:
    return [m for m in find_runs(root) if m.get("verdict")]
