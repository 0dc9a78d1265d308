"""Replay logged requests against every arm through the real SDKs (async, limited, cached, durable).

Per partition of records and per arm × repeat, each answer is appended to a journal
(``responses/journal-<arm>-r<repeat>-p<part>.jsonl``, flushed per response) before it counts as
done; a finished partition is compacted to ``part-…parquet`` and its journal removed. A resumed run
skips finished partitions and the journaled answers of unfinished ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evalpipe.errors import ProviderError
from evalpipe.providers.calls import CallOutcome, FatalProviderError, failure_class
from evalpipe.providers.endpoint import Endpoint
from evalpipe.providers.prices import BATCH_DISCOUNT, Price, price_for
from evalpipe.providers.translate import (
    Untranslatable,
    apply_arm_overrides,
    restore_tool_names,
)
from evalpipe.replay.cache import ResponseCache, request_key
from evalpipe.replay.limits import Budget, EndpointLimits, endpoint_limits
from evalpipe.replay.loop import run_async
from evalpipe.replay.retry import send_with_retries
from evalpipe.spec import Arm, Fallback, Spec
from evalpipe.store import write_table_atomic
from evalpipe.tables import ARMS_LOGGED, RESPONSES, conform, from_rows

__all__ = ["Progress", "logged_responses", "replay_records", "run_async"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """A progress event: `done` of `total` requests of `arm` in `stage`, spend so far."""

    stage: str
    arm: str
    done: int
    total: int
    spent_usd: float
    part: int = 0
    """Partition of the records; a view sums `done` and `total` over partitions."""
    retries: int = 0
    """Retries so far to the arm's endpoint (all partitions)."""
    throttled: int = 0
    """Attempts answered 429 so far (all partitions)."""
    breaker: str = "closed"
    """The endpoint's breaker: closed, open, probing or down."""


ProgressFn = Callable[[Progress], None]


def spec_prices(spec: Spec) -> dict[str, Price]:
    return {
        name: Price(p.input, p.output, p.cached_input if p.cached_input is not None else p.input)
        for name, p in spec.prices.items()
    }


def outcome_cost(model: str, o: CallOutcome, prices: dict[str, Price]) -> float:
    price = price_for(model, prices)
    if price is None or o.status != "ok":
        return 0.0
    cached = o.cached_input_tokens or 0
    fresh = max((o.input_tokens or 0) - cached, 0)
    return (
        fresh * price.input + cached * price.cached_input + (o.output_tokens or 0) * price.output
    ) / 1e6


def estimate_cost(model: str, kwargs: dict[str, Any], prices: dict[str, Price]) -> float:
    """A pessimistic pre-flight cost: input chars/4, output at max_tokens (or 1,024)."""
    price = price_for(model, prices)
    if price is None:
        return 0.0
    in_tok = (
        len(orjson.dumps(kwargs.get("messages", []))) / 4 + len(str(kwargs.get("system", ""))) / 4
    )
    out_tok = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens") or 1024
    return (in_tok * price.input + float(out_tok) * price.output) / 1e6


def logged_responses(records: pa.Table, *, run_id: str) -> pa.Table:
    """What production served, as the `logged` arm (column operations, no calls)."""
    n = records.num_rows
    cols: dict[str, Any] = {
        name: records[name]
        for name in RESPONSES.names
        if name in records.column_names and name not in ("status",)
    }
    cols["run_id"] = pa.array([run_id] * n, pa.string())
    cols["arm"] = pa.array([ARMS_LOGGED] * n, pa.string())
    cols["repeat"] = pa.array([0] * n, pa.int32())
    cols["status"] = pc.if_else(pc.equal(records["status"], "error"), "error", "ok")
    cols["cache_hit"] = pa.array([False] * n)
    return conform(pa.table(cols), RESPONSES)


class _Journal:
    """Append-only JSONL of finished answers; a torn last line is ignored on read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        rows = []
        for line in self.path.read_bytes().splitlines():
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("ignoring a torn line in %s", self.path)
        return rows

    def append(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(orjson.dumps(row, default=str) + b"\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _row_from_journal(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("started_at"), str):
        row["started_at"] = datetime.fromisoformat(row["started_at"])
    return row


class _Admission:
    """Budget admission per record, for all arms at once, so that a budget that runs out leaves
    complete pairs (baseline and every candidate) rather than arms answered alone.

    The first arm to reach record i reserves the estimated cost of i on every arm that still
    needs it; the others wait for that decision and draw their share (or learn that i was
    refused). A share not used (a cache hit, a skip, an answer already journaled) goes back to
    the budget. One per partition, on its event loop.
    """

    def __init__(self, budget: Budget, costs: np.ndarray, batched: np.ndarray) -> None:
        self.budget = budget
        self.costs = costs  # [record, plan]: pessimistic cost estimates
        self.batched = batched  # [plan]: sent in a batch (its shares held until the batch ends)
        self.needed = np.ones(costs.shape, dtype=bool)
        self.admitted = np.zeros(costs.shape[0], dtype=bool)
        self.decisions: dict[int, asyncio.Future[bool]] = {}

    async def take(self, i: int, j: int) -> float | None:
        """Plan j's share of record i's reservation; None when record i did not fit the budget."""
        decision = self.decisions.get(i)
        if decision is None:
            decision = asyncio.get_running_loop().create_future()
            self.decisions[i] = decision
            included = self.needed[i].copy()
            admitted = await self.budget.acquire(float(self.costs[i][included].sum()))
            if admitted:  # batched arms' shares are held until their batch ends
                self.budget.hold(float(self.costs[i][included & self.batched].sum()))
                back = included & ~self.needed[i]  # arms that dropped out while we waited
                back[j] = False
                self._give_back(self.costs[i], back)
            self.admitted[i] = admitted
            decision.set_result(admitted)
        elif not decision.done():
            await decision
        if not decision.result():
            return None
        self.needed[i, j] = False
        return float(self.costs[i, j])

    def _give_back(self, costs: np.ndarray, plans: np.ndarray) -> None:
        for batched in (False, True):
            back = plans & (self.batched == batched)
            if back.any():
                self.budget.settle(float(costs[back].sum()), 0.0, held=batched)

    def release(self, rows: int | np.ndarray, j: int) -> None:
        """Plan j will not send these records (an index or a mask): shares already reserved
        go back to the budget."""
        owed = self.needed[rows, j] & self.admitted[rows]
        if np.any(owed):
            share = float(np.sum(self.costs[rows, j][owed]))
            self.budget.settle(share, 0.0, held=bool(self.batched[j]))
        self.needed[rows, j] = False


@dataclass
class _ArmPlan:
    arm: Arm
    arm_key: str  # "baseline" or the candidate's name
    repeat: int
    endpoint: Endpoint
    fallbacks: list[tuple[Fallback, Endpoint]]
    batched: bool = False
    """Sent through the provider's batch API (`transport: batch`), at batch prices."""


def _prepare(
    spec: Spec, arm: Arm, request: dict[str, Any], attrs: dict[str, str]
) -> dict[str, Any]:
    system_replace = None
    if (
        arm.system_prompt_by
        and attrs.get(arm.system_prompt_by.attribute) in arm.system_prompt_by.files
    ):
        f = arm.system_prompt_by.files[attrs[arm.system_prompt_by.attribute]]
        system_replace = spec.resolve_input(f).read_text(encoding="utf-8")
    elif arm.system_prompt and arm.system_prompt.replace:
        system_replace = spec.resolve_input(arm.system_prompt.replace).read_text(encoding="utf-8")
    return apply_arm_overrides(
        request,
        params={**spec.replay.params, **arm.params},
        system_replace=system_replace,
        system_append=arm.system_prompt.append if arm.system_prompt else None,
    )


def limits_of(endpoint: Endpoint, run_key: str) -> EndpointLimits:
    """The run's shared limiters of `endpoint` (call on the loop that sends its requests)."""
    limit = endpoint.limit
    return endpoint_limits(
        run_key,
        provider=endpoint.provider,
        host=endpoint.host,
        model=endpoint.model,
        concurrency=limit.concurrency,
        rpm=limit.rpm,
        tpm=limit.tpm,
        floor=limit.concurrency_min,
        adaptive=limit.adaptive is not False,
        pause_s=limit.breaker_pause_s or 1.0,
        max_retries=limit.max_retries if limit.max_retries is not None else 6,
        shared=bool(limit.shared),
    )


async def cached_call(
    endpoint: Endpoint,
    kwargs: dict[str, Any],
    *,
    repeat: int,
    cache: ResponseCache | None,
    salt: str,
    budget: Budget,
    limits: EndpointLimits,
    prices: dict[str, Price],
    admit: Callable[[], Awaitable[float | None]] | None = None,
    release: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """One request through the cache, the budget and the run's limits; the result as RESPONSES
    columns.

    The spend is reserved before sending: by `admit` when given (the request's share of a
    reservation made for its record on every arm; None: refused), else here from this request's
    own estimate. A cache hit gives its share back by `release`. The endpoint's first request of
    the run checks that anything answers at its URL.

    Raises:
        FatalProviderError: the provider refused the endpoint itself, or nothing answers there.
    """
    key = request_key(
        provider=endpoint.provider,
        model=endpoint.model,
        host=endpoint.host,
        kwargs=kwargs,
        repeat=repeat,
        salt=salt,
    )
    hit = cache.get(key) if cache else None
    if hit is None and cache is not None:  # another run may be buying it right now: pay once
        hit = await cache.claim(key)
    if hit is not None:
        if release is not None:
            release()
        return dict(hit, request_key=key, cache_hit=True)
    try:
        result = await _bought(endpoint, kwargs, budget, limits, prices, admit)
    except BaseException:
        if cache is not None:
            cache.unclaim(key)
        raise
    if cache is not None:
        if result["status"] == "ok":
            cache.put(key, {k: v for k, v in result.items() if k != "started_at"})
        else:
            cache.unclaim(key)
    return dict(result, request_key=key, cache_hit=False)


async def _bought(
    endpoint: Endpoint,
    kwargs: dict[str, Any],
    budget: Budget,
    limits: EndpointLimits,
    prices: dict[str, Price],
    admit: Callable[[], Awaitable[float | None]] | None,
) -> dict[str, Any]:
    """One request paid from the budget (or skipped when it is spent), as RESPONSES columns."""
    if admit is not None:
        share = await admit()
    else:
        share = estimate_cost(endpoint.model, kwargs, prices)
        share = share if await budget.acquire(share) else None
    if share is None:
        return {
            "status": "skipped",
            "error_type": "BudgetExhausted",
            "error_message": "budget_usd reached before this request",
        }
    started = datetime.now(UTC)
    try:
        await limits.first_contact(endpoint.probe)
        outcome = await send_with_retries(endpoint, kwargs, limits, estimate_tokens(kwargs))
    except BaseException:
        budget.settle(share, 0.0)
        raise
    cost = outcome_cost(endpoint.model, outcome, prices)
    budget.settle(share, cost)
    return dict(outcome.row(), cost_usd=cost, started_at=started)


def replay_records(
    records: pa.Table,
    spec: Spec,
    *,
    run_id: str,
    responses_dir: Path | None = None,
    part: int = 0,
    cache: ResponseCache | None = None,
    cache_salt: str = "",
    budget: Budget | None = None,
    on_progress: ProgressFn | None = None,
) -> pa.Table:
    """Replay `records` against the baseline (× repeats) and every candidate.

    Calls run on the process's shared event loop, within the limits of the whole run `run_id`:
    partitions replaying at the same time share one concurrency, rpm and tpm per provider + base
    URL + model.

    Returns:
        tables.RESPONSES rows for every record × arm × repeat (errors and skips are rows too);
        the `logged` arm is not included (see `logged_responses`).

    Raises:
        ProviderError: an arm's provider refused it (auth, unknown model, nothing listening at
            its URL): the run stops early.
    """
    partition = _Partition(
        records,
        spec,
        run_id=run_id,
        responses_dir=responses_dir,
        part=part,
        cache=cache,
        cache_salt=cache_salt,
        budget=budget or Budget(spec.budget_usd),
        on_progress=on_progress,
    )
    try:
        return run_async(partition.replay())
    finally:
        if cache is not None:
            cache.flush()


def _targets(arm: Arm) -> list[Arm | Fallback]:
    """The arm's primary, then its fallbacks."""
    return [arm, *arm.fallback]


def _plans(spec: Spec, logged_provider: str | None) -> list[_ArmPlan]:
    """Every arm × repeat to replay, each with its endpoint."""
    assert spec.baseline is not None
    plans: list[_ArmPlan] = []
    for arm in spec.arms():
        key = "baseline" if arm is spec.baseline else arm.name
        repeats = spec.baseline.repeats if arm is spec.baseline else 1
        endpoint, *chain = (
            Endpoint(
                provider=target.provider,
                model=target.model,
                base_url=target.base_url,
                api_key_env=target.api_key_env,
                limit=spec.limit_for(target.model),
                default_max_tokens=spec.replay.max_tokens_default,
                logged_provider=logged_provider,
            )
            for target in _targets(arm)
        )
        fallbacks = list(zip(arm.fallback, chain, strict=True))
        batched = spec.transport_of(arm) == "batch"
        plans.extend(_ArmPlan(arm, key, r, endpoint, fallbacks, batched) for r in range(repeats))
    return plans


def logged_streaming(request_raw: pa.ChunkedArray) -> list[bool] | bool:
    """Per record, whether production sent it streamed (`"stream": true` at the top of the logged
    body); False for all when no body says so (or none was read).

    Only the bodies that hold `"stream"` at all are parsed (a DuckDB instance per partition cost
    ~7 MB each, and partitions start side by side).
    """
    if request_raw.null_count == len(request_raw):
        return False
    maybe = pc.fill_null(pc.match_substring(request_raw, '"stream"'), False)
    rows = np.flatnonzero(maybe.to_numpy(zero_copy_only=False))
    if not len(rows):
        return False
    out = [False] * len(request_raw)
    for i in rows.tolist():
        try:
            body = orjson.loads(request_raw[i].as_py())
        except orjson.JSONDecodeError:
            continue
        out[i] = isinstance(body, dict) and body.get("stream") is True
    return out if any(out) else False


class _Rows:
    """A plan's finished rows, folded into Arrow batches of ROWS_PER_BATCH as they come.

    As dicts, the rows of the partitions replaying side by side (8 × 2 arms × 1,000) held
    ~4 KB each until their partition ended; as Arrow columns, a few hundred bytes.
    """

    ROWS_PER_BATCH: Final = 256

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._batches: list[pa.Table] = []
        self._rows: list[dict[str, Any]] = []
        self.count = 0
        """Rows so far."""
        for row in rows:
            self.add(row)

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.count += 1
        if len(self._rows) >= self.ROWS_PER_BATCH:
            self._batches.append(from_rows(self._rows, RESPONSES))
            self._rows = []

    def table(self) -> pa.Table:
        """Every row so far, in the order they came."""
        tables = [*self._batches, from_rows(self._rows, RESPONSES)]
        return pa.concat_tables(tables)


class _Partition:
    """One partition of records replayed on every arm × repeat (on the shared loop)."""

    def __init__(
        self,
        records: pa.Table,
        spec: Spec,
        *,
        run_id: str,
        responses_dir: Path | None,
        part: int,
        cache: ResponseCache | None,
        cache_salt: str,
        budget: Budget,
        on_progress: ProgressFn | None,
    ) -> None:
        self.spec, self.run_id, self.part = spec, run_id, part
        self.responses_dir, self.cache, self.cache_salt = responses_dir, cache, cache_salt
        self.budget, self.on_progress = budget, on_progress
        self.record_ids: list[str] = records["record_id"].to_pylist()
        self.record_id_column = records["record_id"]
        self.requests: list[str | None] = records["request"].to_pylist()
        self.replayable: list[bool | None] = records["replayable"].to_pylist()
        self.issues: list[str | None] = records["replay_issue"].to_pylist()
        self.attrs = [dict(a or []) for a in records["attributes"].to_pylist()]
        self.streamed: list[bool] | bool = spec.replay.stream or logged_streaming(
            records["request_raw"]
        )
        self.prices = spec_prices(spec)
        logged_provider = records["provider"][0].as_py() if records.num_rows else None
        self.plans = _plans(spec, logged_provider)
        self.admission = (
            _Admission(
                budget,
                _cost_matrix(records["request"], self.plans, spec, self.prices),
                np.array([p.batched for p in self.plans], dtype=bool),
            )
            if budget.limit is not None
            else None
        )

    async def replay(self) -> pa.Table:
        tasks = [asyncio.create_task(self._plan(j, p)) for j, p in enumerate(self.plans)]
        try:
            tables = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            for p in self.plans:
                await p.endpoint.aclose()
                for _, fallback in p.fallbacks:
                    await fallback.aclose()
        return pa.concat_tables(tables) if tables else RESPONSES.empty_table()

    def _release(self, rows: int | np.ndarray, j: int) -> None:
        if self.admission is not None:
            self.admission.release(rows, j)

    def _progress(self, arm_key: str, done: int, limits: EndpointLimits | None = None) -> None:
        if self.on_progress:
            stats = limits.stats if limits is not None else None
            self.on_progress(
                Progress(
                    "replay",
                    arm_key,
                    done,
                    len(self.record_ids),
                    self.budget.spent,
                    self.part,
                    retries=stats.retries if stats else 0,
                    throttled=stats.throttled if stats else 0,
                    breaker=limits.breaker.state if limits is not None else "closed",
                )
            )

    async def _plan(self, j: int, plan: _ArmPlan) -> pa.Table:
        """Plan j's rows: from its finished part file, else journaled answers plus the rest."""
        stem = f"{plan.arm_key}-r{plan.repeat}-p{self.part:05d}"
        out = self.responses_dir
        part_path = out / f"part-{stem}.parquet" if out else None
        if part_path is not None and part_path.exists():
            self._release(np.ones(len(self.record_ids), dtype=bool), j)
            done = pq.read_table(part_path, schema=RESPONSES)
            self._progress(plan.arm_key, done.num_rows)
            return done
        journal = _Journal(out / f"journal-{stem}.jsonl") if out else None
        done_rows = [_row_from_journal(r) for r in journal.read()] if journal else []
        done_ids = {r["record_id"] for r in done_rows}
        self._cache_journaled(done_rows)
        if done_ids:
            journaled = pc.is_in(self.record_id_column, value_set=pa.array(list(done_ids)))
            self._release(journaled.to_numpy(zero_copy_only=False), j)
        base = {
            "run_id": self.run_id,
            "arm": plan.arm_key,
            "repeat": plan.repeat,
            "provider": plan.arm.provider,
            "model": plan.arm.model,
            "config_version": plan.arm.version,
            "config_hash": plan.arm.config_hash(),
            "fallback_used": False,
        }
        limits = limits_of(plan.endpoint, self.run_id)
        plan.endpoint.share(limits.clients)
        if plan.batched:
            from evalpipe.replay.batch import batch_rows

            try:
                batched = done_rows + await batch_rows(
                    self, j, plan, base, journal, done_ids, stem, limits
                )
            finally:
                if journal:
                    journal.close()
            return self._finish(batched, part_path, journal)
        rows = _Rows(done_rows)

        async def tracked(i: int) -> None:
            row = await self._one(i, j, plan, base, limits)
            if journal:
                journal.append(row)
            rows.add(row)
            self._progress(plan.arm_key, rows.count, limits)

        todo = [i for i, rid in enumerate(self.record_ids) if rid not in done_ids]
        queue = iter(todo)

        async def worker() -> None:
            for i in queue:
                await tracked(i)

        # as many workers as the window can ever hold, not a task per record: 10,000 records
        # × 2 arms were 20,000 pending tasks (~200 MB) waiting for 64 places
        workers = min(len(todo), limits.concurrency.ceiling)
        try:
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            if journal:
                journal.close()
        return self._finish(rows, part_path, journal)

    def _finish(
        self, rows: list[dict[str, Any]] | _Rows, part_path: Path | None, journal: _Journal | None
    ) -> pa.Table:
        """The plan's rows as a table, compacted to its part file (the journal then removed)."""
        table = (rows if isinstance(rows, _Rows) else _Rows(rows)).table().sort_by("record_id")
        if part_path is not None and journal is not None:
            write_table_atomic(table, part_path)
            journal.path.unlink(missing_ok=True)
        return table

    async def _one(
        self, i: int, j: int, plan: _ArmPlan, base: dict[str, Any], limits: EndpointLimits
    ) -> dict[str, Any]:
        """Record i on plan j: sent, or skipped with its reason."""
        row = dict(base, record_id=self.record_ids[i], started_at=datetime.now(UTC))
        if not self.replayable[i]:
            self._release(i, j)
            return dict(
                row,
                status="skipped",
                error_type="NotReplayable",
                error_message=self.issues[i] or "no reason logged",
            )
        try:
            request = _prepare(
                self.spec, plan.arm, orjson.loads(self.requests[i] or "{}"), self.attrs[i]
            )
            built = plan.endpoint.translate(request)
        except Untranslatable as exc:
            self._release(i, j)
            return dict(
                row,
                status="skipped",
                error_type="Untranslatable",
                error_message=f"untranslatable: {exc}",
            )
        row["params_not_replayed"] = built.not_replayed_json()
        admission = self.admission
        try:
            result = await cached_call(
                plan.endpoint,
                self._kwargs(built.kwargs, i),
                repeat=plan.repeat,
                cache=self.cache,
                salt=self.cache_salt,
                budget=self.budget,
                limits=limits,
                prices=self.prices,
                admit=None if admission is None else lambda: admission.take(i, j),
                release=None if admission is None else lambda: self._release(i, j),
            )
        except FatalProviderError as exc:
            raise ProviderError(plan.arm_key, plan.arm.model, exc.message, exc.fix) from None
        if result["status"] == "error" and plan.fallbacks:
            result = await self._fall_back(i, plan, request, result)
        if result.get("output_tool_calls"):
            result = dict(
                result, output_tool_calls=restore_tool_names(result["output_tool_calls"], request)
            )
        return dict(row, **result)

    def _cache_journaled(self, rows: list[dict[str, Any]]) -> None:
        """Answers journaled before a crash, into the cache if the crash lost them there (it is
        written by a background thread), so that a later run does not pay for them again."""
        if self.cache is None:
            return
        for row in rows:
            key = row.get("request_key")
            fresh = row.get("status") == "ok" and not row.get("cache_hit")
            if fresh and isinstance(key, str) and self.cache.get(key) is None:
                self.cache.put(key, {k: row.get(k) for k in _CACHED})

    def _kwargs(self, kwargs: dict[str, Any], i: int) -> dict[str, Any]:
        """What the SDK call gets for record i: the translation, streamed when the spec says so
        or production streamed it."""
        streamed = self.streamed if isinstance(self.streamed, bool) else self.streamed[i]
        return {**kwargs, "stream": True} if streamed else kwargs

    async def _fall_back(
        self, i: int, plan: _ArmPlan, request: dict[str, Any], failed: dict[str, Any]
    ) -> dict[str, Any]:
        """The primary failed after its retries: each fallback in turn, on the failure classes
        it names, as production would. The row is the first answer, else the last failure;
        `fallback_used` when it came from a fallback."""
        result = failed
        for fallback, endpoint in plan.fallbacks:
            if (
                failure_class(result.get("http_status"), result.get("error_type"))
                not in fallback.on
            ):
                break
            limits = limits_of(endpoint, self.run_id)
            endpoint.share(limits.clients)
            try:
                built = endpoint.translate(request)
            except Untranslatable:
                continue
            try:
                answer = await cached_call(
                    endpoint,
                    self._kwargs(built.kwargs, i),
                    repeat=plan.repeat,
                    cache=self.cache,
                    salt=self.cache_salt,
                    budget=self.budget,
                    limits=limits,
                    prices=self.prices,
                )
            except FatalProviderError as exc:
                raise ProviderError(plan.arm_key, endpoint.model, exc.message, exc.fix) from None
            if answer["status"] == "skipped":  # the budget: keep the failure that is real
                break
            attempts = (result.get("attempts") or 0) + (answer.get("attempts") or 0)
            result = dict(answer, fallback_used=True, attempts=attempts)
            if answer["status"] == "ok":
                break
        return result


_CACHED: Final = (*(f.name for f in fields(CallOutcome) if f.name != "retry_after_s"), "cost_usd")
"""The columns a cache entry holds (an answer's, not its run's)."""


def _cost_matrix(
    requests: pa.ChunkedArray, plans: list[_ArmPlan], spec: Spec, prices: dict[str, Price]
) -> np.ndarray:
    """[record, plan] pessimistic cost of each canonical request on each arm (as estimate_cost:
    input chars/4, output at the max_tokens the arm will send)."""
    n = len(requests)
    in_tok = pc.fill_null(pc.utf8_length(requests), 0).to_numpy().astype(np.float64) / 4
    with duckdb.connect() as con:
        con.register("r", pa.table({"request": requests}))
        logged = (
            con.sql(
                "SELECT coalesce(TRY_CAST(json_extract(request, '$.params.max_tokens') AS DOUBLE),"
                " 0) AS m FROM r"
            )
            .to_arrow_table()["m"]
            .to_numpy()
        )
    out = np.zeros((n, len(plans)))
    for j, plan in enumerate(plans):
        price = price_for(plan.arm.model, prices)
        if price is None:
            continue
        override = {**spec.replay.params, **plan.arm.params}.get("max_tokens")
        out_tok = (
            np.full(n, float(override))
            if override
            else np.where(logged > 0, logged, float(spec.replay.max_tokens_default))
        )
        out[:, j] = (in_tok * price.input + out_tok * price.output) / 1e6
        if plan.batched:
            out[:, j] *= BATCH_DISCOUNT
    return out


def estimate_tokens(kwargs: dict[str, Any]) -> float:
    return len(orjson.dumps(kwargs.get("messages", []))) / 4 + float(
        kwargs.get("max_tokens") or kwargs.get("max_completion_tokens") or 256
    )
