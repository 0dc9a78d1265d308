"""The `*_run` functions: each reads its inputs from a run folder, calls its stage, writes its output.

The CLI and the Prefect flows call these; tests call the stage functions or these. Every one is
resumable: it returns at once when its stage is already done for the run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
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
import pyarrow.parquet as pq

from evalpipe.memory import release_freed_memory
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
    "finish_score",
    "gate_run",
    "ingest_run",
    "load_gate",
    "needs_fake_provider",
    "partition_size",
    "partitions",
    "progress_sink",
    "replay_run",
    "report_run",
    "score_partition",
    "score_partitions",
    "score_run",
]

log = logging.getLogger(__name__)

PARTITION_SIZE: Final = 1000
"""Records per replay partition (a task each in the flows)."""

SHARED_LIMITS: Final = "limits_across_processes"
"""Manifest key: true while the run's partitions may replay in several processes (a Dask or Ray
task runner); they then share its budget and rpm/tpm through the run's ledger."""

SCORE_THREADS: Final = 8
"""Partitions judged side by side in one process (as many as replay's thread pool)."""

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
    release_freed_memory()  # what reading the logs freed: not resident through replay
    return counts


# --- replay ------------------------------------------------------------------------------------


def partition_size(run: Run) -> int:
    """Records per partition of the run: its records' row groups, as ingest wrote them (read
    from the manifest, so that a worker in another process partitions as the driver did)."""
    return int(run.manifest().get("partition_size") or PARTITION_SIZE)


def _partition_numbers(run: Run) -> tuple[list[int], int]:
    n = run.manifest().get("counts", {}).get("records")
    if n is None:
        n = run.record_count()
    return list(range(max(1, -(-int(n) // partition_size(run))))), int(n)


def partitions(run: Run) -> list[int]:
    """Partition numbers of the run's records (PARTITION_SIZE records each).

    Announces every partition of every arm to the progress sinks first (0 done), so that a
    progress bar shows the whole run's total from the start, not the partitions begun so far.
    Called once by whoever schedules the partitions, before any starts: when they share the
    run's ledger, reservations a crashed earlier attempt left there are dropped.
    """
    parts, n = _partition_numbers(run)
    size = partition_size(run)
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
    return _run_budget(run, _budgets, _spent)


def _run_budget(
    run: Run, held: dict[tuple[str, str], Budget], spent: Callable[[Run], float]
) -> Budget:
    """`run`'s budget in `held` (made once per process, starting from `spent(run)`): from the
    run's ledger when its partitions run in several processes, which then count the run's
    rpm/tpm there too; else in this process."""
    key = (str(run.root), run.run_id)
    with _budgets_lock:
        if key not in held:
            if _shared_limits(run):
                from evalpipe.replay.ledger import LEDGER_FILE, LedgerBudget
                from evalpipe.replay.limits import share_limits

                ledger = run.path(LEDGER_FILE)
                share_limits(run.run_id, ledger)
                held[key] = LedgerBudget(ledger, run.spec.budget_usd, spent(run))
            else:
                held[key] = Budget(run.spec.budget_usd, spent(run))
        return held[key]


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
        cache = _cache(run)
        cache.register()  # (other processes replaying into this cache claim what they buy)
        try:
            table = replay_records(
                chunk,
                spec,
                run_id=run.run_id,
                responses_dir=out_dir,
                part=p,
                cache=cache,
                cache_salt=_salt(run),
                budget=budget,
                on_progress=_emit,
            )
        finally:
            cache.unregister()
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
        size = partition_size(run)
        for p in _partition_numbers(run)[0]:  # a part file per partition, as replay's reads
            records = run.read_records(p * size, (p + 1) * size)
            write_table_atomic(
                logged_responses(records, run_id=run.run_id),
                out_dir / f"part-logged-r0-p{p:05d}.parquet",
            )
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW r AS {_responses_sql(run, _FINISH_COLUMNS)}")
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
                "coalesce(fsum(cost_usd) FILTER (WHERE NOT coalesce(cache_hit, false) AND arm <> 'logged'), 0) AS spent, "
                "list(DISTINCT response_model ORDER BY response_model) FILTER (WHERE response_model IS NOT NULL) AS models "
                "FROM r GROUP BY arm ORDER BY arm"
            )
            .to_arrow_table()
            .to_pylist()
        )
        losses = _replay_losses(con)
        ((first,),) = con.execute("SELECT min(started_at) FROM r WHERE arm <> 'logged'").fetchall()
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
        **losses,
    )
    if seconds is None:  # partitions ran as separate tasks: time from the first request sent
        seconds = (datetime.now(UTC) - first).total_seconds() if first else 0.0
    run.mark_stage("replay", seconds)
    release_freed_memory()  # the partitions' rows and requests: not resident through score


_LOST_SQL: Final = """
    WITH lost AS (
        SELECT arm, record_id, unnest(from_json(params_not_replayed,
            '[{"param": "VARCHAR", "reason": "VARCHAR"}]'), recursive := true)
        FROM r WHERE params_not_replayed IS NOT NULL AND arm <> 'logged')
"""


_FINISH_COLUMNS: Final = (
    "record_id", "arm", "model", "response_model", "status", "cache_hit", "cost_usd",
    "fallback_used", "params_not_replayed", "error_type", "error_message", "started_at",
)  # fmt: skip


def _responses_sql(run: Run, columns: tuple[str, ...]) -> str:
    """A SELECT of `columns` over the run's response part files (no part file: no rows)."""
    return run.select_sql("responses", columns)


def _replay_losses(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Per arm: records that lost each logged parameter (`params_not_replayed`), the same grouped
    by reason (`params_not_replayed_reasons`), and requests skipped by reason (`skipped`), from
    the responses in view `r`."""
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


_score_budgets: dict[tuple[str, str], Budget] = {}


def _score_spent(run: Run) -> float:
    """What the run spent before its judges' pending partitions: replay, plus the partitions
    scored before (their part files' footers)."""
    replay = run.manifest().get("cost_usd", {})
    spent = float(replay.get("replay", replay.get("total")) or 0.0)
    return spent + sum(run.scored_parts().values())


def _score_budget(run: Run) -> Budget:
    """The judges' one budget, shared by the partitions scoring in this process: what replay
    spent plus what the partitions scored before spent (their part files' footers).

    When the partitions score in several processes (Dask, Ray: `SHARED_LIMITS`), every process
    reserves from the run's ledger, as replay's do, and counts the judges' rpm/tpm there too.
    """
    return _run_budget(run, _score_budgets, _score_spent)


class _PartitionSpend(Budget):
    """One partition's view of the shared judge budget: reserves from it, and counts what this
    partition's own calls spent (partitions judging side by side each write theirs)."""

    def __init__(self, shared: Budget) -> None:
        super().__init__(shared.limit, shared.spent)
        self._shared = shared
        self.own = 0.0

    @property
    def exhausted(self) -> bool:
        return self._shared.exhausted

    async def acquire(self, usd: float) -> bool:
        return await self._shared.acquire(usd)

    def hold(self, usd: float) -> None:
        self._shared.hold(usd)

    def settle(self, reserved: float, actual: float, *, held: bool = False) -> None:
        self._shared.settle(reserved, actual, held=held)
        self.own += actual
        self.spent = self._shared.spent


_samples: dict[tuple[str, str, str], pa.Array] = {}
_samples_lock = threading.Lock()
"""Held while a sample is drawn: partitions scoring side by side wait for the one drawing it
(each drawing its own copy held a run's records several times over)."""


def _judge_samples(run: Run) -> dict[str, pa.Array]:
    """Each sampled judge's record ids over the whole run (a sample is drawn from all records,
    not per partition): computed once, kept in scores/sample-<judge>.parquet."""
    from evalpipe.score.judges import judge_sample

    out: dict[str, pa.Array] = {}
    for judge in run.spec.judges:
        if judge.sample is None:
            continue
        key = (str(run.root), run.run_id, judge.name)
        with _samples_lock:
            if key not in _samples:
                path = run.scores_dir / f"sample-{judge.name}.parquet"
                if path.exists():
                    ids = pq.read_table(path)["record_id"].combine_chunks()
                else:
                    ids = judge_sample(_sample_frame(run), judge, run.spec)
                    write_table_atomic(pa.table({"record_id": ids}), path)
                _samples[key] = ids
            out[judge.name] = _samples[key]
    return out


def _sample_frame(run: Run) -> pa.Table:
    """What `judge_sample` reads of every record: its id and, as string columns named as the
    spec names them, its gate slice values and eval set; read a row group at a time, so the
    records' attribute and label maps are never held whole."""
    from evalpipe.spec import EVAL_SET_COLUMN
    from evalpipe.tables import RECORDS_LEAN, column_values

    spec = run.spec
    named = list(dict.fromkeys([*spec.gate.slices, *([EVAL_SET_COLUMN] if spec.eval_sets else [])]))
    wanted = {"record_id", "attributes", "labels"} | {c for c in named if c in RECORDS_LEAN.names}
    source = pq.ParquetFile(run.path("records.parquet"))
    batches = []
    for batch in source.iter_batches(
        batch_size=PARTITION_SIZE, columns=[c for c in RECORDS_LEAN.names if c in wanted]
    ):
        records = pa.Table.from_batches([batch])
        cols = {"record_id": records["record_id"]}
        cols |= {name: column_values(records, name).cast(pa.string()) for name in named}
        batches.append(pa.table(cols))
    schema = pa.schema([("record_id", pa.string()), *((n, pa.string()) for n in named)])
    return pa.concat_tables(batches).cast(schema) if batches else schema.empty_table()


def score_partition(run: Run, part: int) -> int:
    """Score partition `part` (its records and their responses) into scores/part-<part>.parquet;
    returns its number of rows. A partition already committed is not scored again."""
    if run.stage_done("score"):
        return 0
    path = run.score_part_path(part)
    if path.exists():
        return int(pq.ParquetFile(path).metadata.num_rows)
    from evalpipe.ingest import redact_pii
    from evalpipe.score import score_responses

    spec = run.spec
    size = partition_size(run)
    records = run.read_records(part * size, (part + 1) * size)
    responses = run.read_partition_responses(part, records["record_id"].combine_chunks())
    budget = _PartitionSpend(_score_budget(run))

    def redact(texts: list[str]) -> list[str]:
        return [str(t) for t in redact_pii(pa.array(texts, pa.string())).to_pylist()]

    def progress(event: Progress) -> None:
        _emit(dataclasses.replace(event, part=part))

    cache = _cache(run)
    scores = score_responses(
        responses,
        records,
        spec,
        run_id=run.run_id,
        cache=cache,
        budget=budget,
        redact=redact if spec.redact_pii.judges else None,
        on_progress=progress,
        judge_samples=_judge_samples(run),
        previous_anchors=previous_anchors(run) if spec.judges and part == 0 else None,
        anchors=part == 0,
    )
    cache.flush()  # the judges' answers
    run.write_score_part(part, scores, judge_cost_usd=budget.own)
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
        folder = run.root / "runs" / rid
        remote = run.remote
        if remote is not None:  # (a remote store: that run's scores into the staging folder;
            # anchors are judged with partition 0)
            remote.pull_run(rid, names=("scores.parquet", "scores/part-00000.parquet"))
        parts = sorted((folder / "scores").glob("part-*.parquet"))
        path = parts[0] if parts else folder / "scores.parquet"
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


def finish_score(run: Run, seconds: float | None = None) -> int:
    """After every partition: the judges' spend into the manifest, mark score done; returns the
    number of score rows."""
    with _budgets_lock:
        budget = _score_budgets.pop((str(run.root), run.run_id), None)
        if budget is not None:
            budget.close()
        for key in [k for k in _samples if k[:2] == (str(run.root), run.run_id)]:
            del _samples[key]
    parts = run.scored_parts()
    rows = sum(pq.ParquetFile(run.score_part_path(p)).metadata.num_rows for p in parts)
    replay = float(run.manifest().get("cost_usd", {}).get("replay") or 0.0)
    judge_cost = round(math.fsum(parts.values()), 6)  # (exact: the same whatever the order)
    run.update_manifest(cost_usd={"judges": judge_cost, "total": round(replay + judge_cost, 6)})
    if seconds is None:
        seconds = 0.0
    run.mark_stage("score", seconds)
    release_freed_memory()  # the partitions' tables: not resident through the gate
    return int(rows)


def score_partitions(run: Run) -> list[int]:
    """Partitions still to score (every partition of the records not committed yet).

    Called once by whoever schedules the partitions, before any starts: when they share the
    run's ledger, reservations a crashed earlier attempt left there are dropped.
    """
    if run.stage_done("score"):
        return []
    if _shared_limits(run):
        from evalpipe.replay.ledger import LEDGER_FILE, clear_reservations

        clear_reservations(run.path(LEDGER_FILE), _score_spent(run))
    done = run.scored_parts()
    todo = [p for p in _partition_numbers(run)[0] if p not in done]
    if _sinks and run.spec.judges and todo:
        _announce_judges(run, todo)
    return todo


def _announce_judges(run: Run, todo: list[int]) -> None:
    """Each judge's expected calls per partition still to score, as progress events before any
    starts (so that a progress view shows the stage's whole total, not the partitions begun
    so far): a sampled judge's sample records in the partition, else all its records, times the
    arms it judges (pairwise: each candidate against the baseline; otherwise every replayed
    arm). A partition's own events then replace its estimate with its count."""
    import numpy as np
    import pyarrow.compute as pc

    from evalpipe.replay.engine import Progress

    size = partition_size(run)
    spec = run.spec
    samples = _judge_samples(run)
    starts = np.arange(max(todo) + 1, dtype=np.int64) * size
    records = np.minimum(size, run.record_count() - starts)  # (the last one may hold fewer)
    ids = None
    for judge in spec.judges:
        sample = samples.get(judge.name)
        counts = records
        if sample is not None:
            if ids is None:  # (read once, whatever the number of sampled judges)
                ids = pq.read_table(run.path("records.parquet"), columns=["record_id"])["record_id"]
            where = np.flatnonzero(pc.is_in(ids, value_set=sample).to_numpy(zero_copy_only=False))
            counts = np.bincount(where // size, minlength=len(records))
        arms = len(spec.candidates) + (0 if judge.type == "pairwise" else 1)
        for p in todo:
            _emit(Progress("judge", judge.name, 0, int(counts[p]) * arms, 0.0, p))


def score_run(run: Run, part: int | None = None) -> int:
    """Score one partition (or all, then finish); returns its (or the run's) number of rows."""
    if run.stage_done("score"):
        return int(sum(pq.ParquetFile(f).metadata.num_rows for f in _score_files(run)))
    if part is not None:
        return score_partition(run, part)
    started = time.perf_counter()
    todo = score_partitions(run)
    if run.spec.judges and len(todo) > 1:  # judges wait on a provider: partitions side by side
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(todo), SCORE_THREADS)) as pool:
            for _ in pool.map(lambda p: score_partition(run, p), todo):
                pass
    else:  # rules and diffs are computing: one partition at a time
        for p in todo:
            score_partition(run, p)
    return finish_score(run, time.perf_counter() - started)


def _score_files(run: Run) -> list[Path]:
    source = run.scores_source()
    return sorted(source.glob("part-*.parquet")) if source.is_dir() else [source]


# --- gate --------------------------------------------------------------------------------------


def gate_run(run: Run) -> GateResult:
    """Decide every candidate; writes gate.parquet and the verdict into the manifest."""
    from evalpipe.gate import gate_scores
    from evalpipe.gate.frame import GateTables
    from evalpipe.gate.shadow import gate_tables

    started = time.perf_counter()
    spec = run.spec
    budget_sql = (
        f"SELECT count(*) FROM ({_responses_sql(run, ('error_type',))}) "
        "WHERE error_type = 'BudgetExhausted'"
    )
    if spec.mode == "canary":  # (logged cohorts: one arm, gated in memory)
        with duckdb.connect() as con:
            ((skipped,),) = con.execute(budget_sql).fetchall()
        result = gate_scores(
            run.read_scores(),
            run.read_responses(),
            run.read_records(),
            spec,
            run_id=run.run_id,
            budget_exhausted=skipped > 0,
        )
    else:  # out of core: DuckDB over the run's Parquet files
        has_responses = any(run.responses_dir.glob("part-*.parquet"))
        tables = GateTables.from_files(
            run.scores_glob(),
            run.responses_glob() if has_responses else None,
            run.path("records.parquet"),
            spec,
        )
        try:
            ((skipped,),) = tables.con.execute(budget_sql).fetchall()
            result = gate_tables(tables, spec, run_id=run.run_id, budget_exhausted=skipped > 0)
        finally:
            tables.close()
    run.write_gate(result.table)
    run.update_manifest(
        verdict=result.verdict,
        exit_code=result.exit_code,
        candidates={c.candidate: _verdict_fields(c) for c in result.candidates},
    )
    run.mark_stage("gate", time.perf_counter() - started)
    release_freed_memory()  # the gate's columns and replicates: not resident through the report
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
    from evalpipe.store import out_of_core_config

    with duckdb.connect(config=out_of_core_config(REPORT_MEMORY_LIMIT)) as con:
        records, judged = _report_tables(run, con)
        paths = write_report(
            reports_root / run.run_id,
            gate=result,
            spec=spec,
            records=records,
            responses=None,  # (counted in `con`)
            scores=judged,
            manifest=run.manifest(),
            examples_from=con,
        )
    write_json_atomic(orjson.loads(paths.verdict_json.read_bytes()), run.path("verdict.json"))
    run.mark_stage("report", time.perf_counter() - started)
    run.update_manifest(
        report=str(paths.index_html), finished=datetime.now(UTC).isoformat(timespec="seconds")
    )
    update_catalog(run)
    write_runs_index(reports_root, _runs_for_index(run.root))
    return paths.index_html


REPORT_MEMORY_LIMIT: Final = "512MB"
"""DuckDB's memory for the report's coverage, money and examples over the run's files (it
spills beyond)."""

_REPORT_RECORDS: Final = ("record_id", "timestamp", "attributes", "labels")
"""What the report's figures read of the records (money, dates, labels): no texts."""


def _report_tables(run: Run, con: duckdb.DuckDBPyConnection) -> tuple[pa.Table, pa.Table]:
    """The report's inputs without holding the run's responses or texts: records cut to the
    columns the figures read and the judges' score rows; and, in `con`, views `records_all`,
    `responses_all` and `scores_all` over the run's files, where coverage and money are counted
    and examples picked (out of core)."""
    from evalpipe.tables import RESPONSES, SCORES, conform

    def quoted(path: str | Path) -> str:
        return str(path).replace("'", "''")

    con.execute(
        f"CREATE VIEW records_all AS SELECT * FROM read_parquet('{quoted(run.path('records.parquet'))}')"
    )
    con.execute(f"CREATE VIEW responses_all AS {_responses_sql(run, tuple(RESPONSES.names))}")
    con.execute(
        f"CREATE VIEW scores_all AS SELECT * FROM read_parquet('{quoted(run.scores_glob())}', "
        "union_by_name = true)"
    )
    records = pq.read_table(run.path("records.parquet"), columns=list(_REPORT_RECORDS))
    judged = con.sql("SELECT * FROM scores_all WHERE kind = 'judge'").to_arrow_table()
    assert judged is not None
    return records, conform(judged, SCORES)


def _runs_for_index(root: Path) -> list[dict[str, Any]]:
    return [m for m in find_runs(root) if m.get("verdict")]
