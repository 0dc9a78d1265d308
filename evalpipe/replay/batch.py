"""Replay an arm through its provider's batch API (`transport: batch`), at half the list price.

Per partition and arm × repeat, the requests the cache does not answer are bought from the
budget (whole pairs, as online) and sent as a batch: an OpenAI Batch (a JSONL file uploaded with
purpose `batch`, then `/v1/batches` on `/v1/chat/completions`) or an Anthropic Message Batch; as
several batches when they exceed the provider's limits (`BATCH_LIMITS`, or the spec's
`replay.batch_max_requests`). Each batch id is journaled in
``responses/batch-<arm>-r<repeat>-p<part>.json`` as it is submitted, so a replay killed while the
batches run polls the same batches when resumed instead of paying again. Once a partition's
batches are answered and journaled, they are deleted at the provider (an OpenAI batch's input,
output and error files; an Anthropic batch with its results).

The answers become the same rows, in the same cache (same request keys), as online replay's; a
request the batch failed (an error line, `errored`, `expired`, `canceled`, or a whole batch that
failed validation) is an error row. Fallbacks of a failed request are sent online. A batch has no
per-request latency: its rows' `latency_ms` is null.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import orjson

from evalpipe.errors import ProviderError
from evalpipe.providers.calls import (
    INVALID_BODY,
    CallOutcome,
    FatalProviderError,
    classify_status,
    short,
    status_error_type,
)
from evalpipe.providers.prices import BATCH_DISCOUNT
from evalpipe.providers.translate import Untranslatable, restore_tool_names
from evalpipe.replay.cache import request_key
from evalpipe.replay.engine import _prepare, estimate_cost, outcome_cost

if TYPE_CHECKING:
    from evalpipe.providers.endpoint import Endpoint
    from evalpipe.replay.engine import _ArmPlan, _Journal, _Partition
    from evalpipe.replay.limits import EndpointLimits

__all__ = ["BATCH_LIMITS", "OPENAI_BATCH_URL", "batch_rows"]

log = logging.getLogger(__name__)

OPENAI_BATCH_URL: Final = "/v1/chat/completions"
"""The endpoint every OpenAI batch line is sent to (replay speaks chat completions)."""

BATCH_LIMITS: Final = {
    "openai": (50_000, 200 * 1024 * 1024),
    "anthropic": (100_000, 256 * 1024 * 1024),
}
"""Per provider: most requests in one batch and most bytes of its input (OpenAI's JSONL file,
Anthropic's request body)."""
_BYTES_MARGIN: Final = 0.95
"""Share of the byte limit a batch fills (what the SDK adds around the lines stays under it)."""

_SDK_RETRIES: Final = 5
"""Retries the SDK makes of one upload, create or poll (its own backoff)."""
_SDK_TIMEOUT_S: Final = 300.0

_ANTHROPIC_STATUS: Final = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""HTTP status of an Anthropic error type (an `errored` batch result carries only the type)."""

_OPENAI_DONE: Final = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class _Sent:
    """One request of a submitted batch."""

    i: int
    record_id: str
    key: str
    share: float
    """Budget reserved for it in this process (0 for a batch resumed from the journal)."""
    not_replayed: str | None


@dataclass
class _Batch:
    """A submitted batch, as journaled."""

    provider: str
    batch_id: str
    submitted_at: datetime
    sent: dict[str, _Sent]  # by custom_id
    files: list[str] = field(default_factory=list)
    """The OpenAI files it used (input, output, errors), known once it has ended."""


def _state_path(part: _Partition, stem: str) -> Path | None:
    return part.responses_dir / f"batch-{stem}.json" if part.responses_dir else None


def _write_state(path: Path | None, batches: list[_Batch]) -> None:
    if path is None:
        return
    body = {
        "batches": [
            {
                "provider": b.provider,
                "batch_id": b.batch_id,
                "submitted_at": b.submitted_at.isoformat(),
                "sent": {cid: [s.record_id, s.key, s.not_replayed] for cid, s in b.sent.items()},
            }
            for b in batches
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(body))
    os.replace(tmp, path)


def _read_state(path: Path | None, record_ids: list[str]) -> list[_Batch]:
    """The journaled batches of this plan that were submitted and not finished."""
    if path is None or not path.exists():
        return []
    body = orjson.loads(path.read_bytes())
    index = {rid: i for i, rid in enumerate(record_ids)}
    out = []
    for b in body.get("batches", [body] if "batch_id" in body else []):
        sent = {
            cid: _Sent(index[rid], rid, key, 0.0, not_replayed)
            for cid, (rid, key, not_replayed) in b["sent"].items()
            if rid in index
        }
        when = datetime.fromisoformat(b["submitted_at"])
        out.append(_Batch(b["provider"], b["batch_id"], when, sent))
    return out


def split_batches(sizes: list[int], max_requests: int, max_bytes: int) -> list[tuple[int, int]]:
    """[start, end) ranges of consecutive requests (of `sizes` bytes each), each range within
    `max_requests` and `max_bytes` (a request larger than `max_bytes` alone in its range)."""
    ranges: list[tuple[int, int]] = []
    start, used = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= max_requests or used + size > max_bytes):
            ranges.append((start, i))
            start, used = i, 0
        used += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


async def batch_rows(
    part: _Partition,
    j: int,
    plan: _ArmPlan,
    base: dict[str, Any],
    journal: _Journal | None,
    done_ids: set[str],
    stem: str,
    limits: EndpointLimits,
) -> list[dict[str, Any]]:
    """Plan j's rows for the records not in `done_ids`: skips and cache hits at once, the rest
    through one batch (the journaled one when resuming), each row journaled as it is known.

    Raises:
        ProviderError: the provider refused the arm (auth, unknown model, nothing listening), or
            the batch could not be submitted or polled (a rerun polls a journaled batch again).
    """
    rows: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        if journal is not None:
            journal.append(row)
        rows.append(row)
        part._progress(plan.arm_key, len(done_ids) + len(rows), limits)

    path = _state_path(part, stem)
    todo = [i for i, rid in enumerate(part.record_ids) if rid not in done_ids]
    batches = _read_state(path, part.record_ids)
    if batches:  # submitted by a run that stopped: poll them, pay nothing again
        # (answers it journaled before it stopped are done: not emitted twice)
        sent_rows = np.zeros(len(part.record_ids), dtype=bool)
        for batch in batches:
            batch.sent = {c: s for c, s in batch.sent.items() if s.record_id not in done_ids}
            sent_rows[[s.i for s in batch.sent.values()]] = True
            log.info("%s: resuming batch %s", plan.arm_key, batch.batch_id)
        part._release(sent_rows, j)
        for i in todo:  # journaled neither as done nor as sent (a kill between submits): online
            if not sent_rows[i]:
                emit(await part._one(i, j, plan, base, limits))
    else:
        batches = await _fill_and_submit(part, j, plan, base, todo, emit, limits, stem, path)
    for batch in batches:
        await _collect(part, plan, base, batch, emit)
    if path is not None:
        path.unlink(missing_ok=True)
    await _discard(plan.endpoint, batches)  # (after the unlink: a resume never polls them)
    return rows


async def _discard(endpoint: Endpoint, batches: list[_Batch]) -> None:
    """Delete what the ended batches keep at the provider (an OpenAI batch's files, an
    Anthropic batch and its results): their answers are journaled and cached by now, and
    providers cap the storage an organisation may hold. Best effort: a failure is logged."""
    client = _client(endpoint)
    for batch in batches:
        try:
            if batch.provider == "anthropic":
                await client.messages.batches.delete(batch.batch_id)
            for file_id in batch.files:
                await client.files.delete(file_id)
        except Exception as exc:
            if not _is_api_error(exc):
                raise
            log.info("could not delete batch %s at the provider: %s", batch.batch_id, exc)


async def _fill_and_submit(
    part: _Partition,
    j: int,
    plan: _ArmPlan,
    base: dict[str, Any],
    todo: list[int],
    emit: Callable[[dict[str, Any]], None],
    limits: EndpointLimits,
    stem: str,
    path: Path | None,
) -> list[_Batch]:
    """Skips and cache hits as rows; the requests bought from the budget submitted as batches
    within the provider's limits, each journaled at `path` as soon as it is submitted."""
    endpoint = plan.endpoint
    sent: dict[str, _Sent] = {}
    lines: list[tuple[str, dict[str, Any]]] = []
    for i in todo:
        row = dict(base, record_id=part.record_ids[i], started_at=datetime.now(UTC))
        if not part.replayable[i]:
            part._release(i, j)
            reason = part.issues[i] or "no reason logged"
            emit(dict(row, status="skipped", error_type="NotReplayable", error_message=reason))
            continue
        try:
            request = _prepare(
                part.spec, plan.arm, orjson.loads(part.requests[i] or "{}"), part.attrs[i]
            )
            built = endpoint.translate(request)
        except Untranslatable as exc:
            part._release(i, j)
            message = f"untranslatable: {exc}"
            emit(dict(row, status="skipped", error_type="Untranslatable", error_message=message))
            continue
        row["params_not_replayed"] = built.not_replayed_json()
        key = request_key(
            provider=endpoint.provider,
            model=endpoint.model,
            host=endpoint.host,
            kwargs=built.kwargs,
            repeat=plan.repeat,
            salt=part.cache_salt,
        )
        hit = part.cache.get(key) if part.cache else None
        if hit is not None:
            part._release(i, j)
            emit(_restored(dict(row, **hit, request_key=key, cache_hit=True), request))
            continue
        share: float | None
        if part.admission is not None:  # (the shares it reserves for batches are held)
            share = await part.admission.take(i, j)
        else:  # no budget limit: nothing to wait for
            share = estimate_cost(endpoint.model, built.kwargs, part.prices) * BATCH_DISCOUNT
            share = share if await part.budget.acquire(share) else None
        if share is None:
            emit(
                dict(
                    row,
                    request_key=key,
                    status="skipped",
                    error_type="BudgetExhausted",
                    error_message="budget_usd reached before this request",
                )
            )
            continue
        cid = f"r{i}"
        sent[cid] = _Sent(i, part.record_ids[i], key, share, row["params_not_replayed"])
        lines.append((cid, built.kwargs))
    if not lines:
        return []
    most, most_bytes = BATCH_LIMITS.get(endpoint.provider, BATCH_LIMITS["openai"])
    most = min(most, part.spec.replay.batch_max_requests or most)
    sizes = [len(_line(endpoint.provider, cid, kw)) for cid, kw in lines]
    batches: list[_Batch] = []
    for start, end in split_batches(sizes, most, int(most_bytes * _BYTES_MARGIN)):
        chunk = lines[start:end]
        try:
            if not batches:
                await limits.first_contact(endpoint.probe)
            batch_id = await _submit(endpoint, chunk, stem)
        except BaseException as exc:  # the batches submitted so far are journaled: kept
            unsent = sum(sent[cid].share for cid, _ in lines[start:])
            part.budget.settle(unsent, 0.0, held=part.admission is not None)
            if isinstance(exc, FatalProviderError):
                raise ProviderError(plan.arm_key, endpoint.model, exc.message, exc.fix) from None
            if _is_api_error(exc):
                raise ProviderError(
                    plan.arm_key,
                    endpoint.model,
                    f"could not submit a batch of {len(chunk)} requests ({short(str(exc), 200)})",
                    "Check the provider's batch limits (`replay.batch_max_requests`), or use "
                    "`transport: online`.",
                ) from None
            raise
        batches.append(
            _Batch(endpoint.provider, batch_id, datetime.now(UTC), {c: sent[c] for c, _ in chunk})
        )
        _write_state(path, batches)
        log.info(
            "%s: submitted batch %s of %d requests (polling every %g s)",
            plan.arm_key,
            batch_id,
            len(chunk),
            part.spec.replay.batch_poll_seconds,
        )
    return batches


def _restored(result: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """A row with the request's own tool names put back in its tool calls."""
    if result.get("output_tool_calls"):
        calls = restore_tool_names(result["output_tool_calls"], request)
        return dict(result, output_tool_calls=calls)
    return result


async def _collect(
    part: _Partition,
    plan: _ArmPlan,
    base: dict[str, Any],
    batch: _Batch,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Wait for the batch, then a row per request sent: its answer or its failure."""
    endpoint = plan.endpoint
    try:
        outcomes = await _results(endpoint, batch, part.spec.replay.batch_poll_seconds)
    except FatalProviderError as exc:
        raise ProviderError(plan.arm_key, endpoint.model, exc.message, exc.fix) from None
    except Exception as exc:
        if not _is_api_error(exc):
            raise
        raise ProviderError(
            plan.arm_key,
            endpoint.model,
            f"could not read batch {batch.batch_id} ({short(str(exc), 200)})",
            "Rerun with the same run id: it polls the same batch again.",
        ) from None
    refused: CallOutcome | None = None
    for cid, s in batch.sent.items():
        outcome = outcomes.get(cid) or _missing(batch.batch_id)
        cost = outcome_cost(endpoint.model, outcome, part.prices) * BATCH_DISCOUNT
        part.budget.settle(s.share, cost, held=part.admission is not None)
        result = dict(outcome.row(), cost_usd=cost)
        if part.cache is not None and outcome.status == "ok":
            part.cache.put(s.key, result)
        fatal = outcome.http_status is not None and classify_status(outcome.http_status)[1]
        if outcome.status == "error" and fatal and refused is None:
            refused = outcome
        row = dict(
            base,
            record_id=s.record_id,
            started_at=batch.submitted_at,
            params_not_replayed=s.not_replayed,
            request_key=s.key,
            cache_hit=False,
            **result,
        )
        if outcome.output_tool_calls or (outcome.status == "error" and plan.fallbacks):
            request = _prepare(
                part.spec, plan.arm, orjson.loads(part.requests[s.i] or "{}"), part.attrs[s.i]
            )
            if outcome.status == "error" and plan.fallbacks:
                row.update(await part._fall_back(s.i, plan, request, row))
            row = _restored(row, request)
        emit(row)
    if refused is not None:  # as online: auth and unknown-model failures stop the run
        raise ProviderError(
            plan.arm_key,
            endpoint.model,
            refused.error_message or f"HTTP {refused.http_status}",
            "Check the API key and the model name.",
        )


def _is_api_error(exc: BaseException) -> bool:
    """An error of either SDK (a status, a connection, a timeout)."""
    return any(c.__module__.split(".")[0] in ("openai", "anthropic") for c in type(exc).__mro__)


def _body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request body as the SDK call would send it (extra_body merged in)."""
    body = {k: v for k, v in kwargs.items() if k not in ("extra_body", "stream")}
    body.update(kwargs.get("extra_body") or {})
    return body


def _client(endpoint: Endpoint) -> Any:
    """The endpoint's SDK client, retrying uploads and polls itself (they are not replayed)."""
    return endpoint.client().with_options(max_retries=_SDK_RETRIES, timeout=_SDK_TIMEOUT_S)


def _line(provider: str, cid: str, kwargs: dict[str, Any]) -> bytes:
    """One request as the batch carries it: a line of OpenAI's JSONL file, an item of
    Anthropic's `requests` (its bytes count against the provider's size limit)."""
    if provider == "anthropic":
        return orjson.dumps({"custom_id": cid, "params": _body(kwargs)})
    line = {"custom_id": cid, "method": "POST", "url": OPENAI_BATCH_URL, "body": _body(kwargs)}
    return orjson.dumps(line) + b"\n"


async def _submit(endpoint: Endpoint, lines: list[tuple[str, dict[str, Any]]], stem: str) -> str:
    """Submit the requests as one batch; its id."""
    client = _client(endpoint)
    try:
        if endpoint.provider == "anthropic":
            requests = [{"custom_id": cid, "params": _body(kw)} for cid, kw in lines]
            created = await client.messages.batches.create(requests=requests)
            return str(created.id)
        data = b"".join(_line(endpoint.provider, cid, kw) for cid, kw in lines)
        file = await client.files.create(file=(f"evalpipe-{stem}.jsonl", data), purpose="batch")
        created = await client.batches.create(
            input_file_id=file.id,
            endpoint=OPENAI_BATCH_URL,
            completion_window="24h",
            metadata={"evalpipe": stem},
        )
        return str(created.id)
    except Exception as exc:
        _raise_fatal(exc)
        raise


def _raise_fatal(exc: BaseException) -> None:
    """Raise FatalProviderError for an SDK status error that no retry fixes (auth, not found)."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and classify_status(status)[1] and _is_api_error(exc):
        fix = (
            "Check the API key in the environment."
            if status in (401, 403)
            else "Check the model name, base_url, and that this key can use batches."
        )
        raise FatalProviderError(status, short(str(getattr(exc, "message", exc))), fix) from None


async def _results(endpoint: Endpoint, batch: _Batch, poll_s: float) -> dict[str, CallOutcome]:
    """Poll until the batch ends; the outcome of each request it answered, by custom_id."""
    client = _client(endpoint)
    try:
        if batch.provider == "anthropic":
            return await _anthropic_results(client, batch, poll_s)
        return await _openai_results(client, batch, poll_s)
    except FatalProviderError:
        raise
    except Exception as exc:
        _raise_fatal(exc)
        raise


async def _openai_results(client: Any, batch: _Batch, poll_s: float) -> dict[str, CallOutcome]:
    from evalpipe.providers.openai import completion_outcome

    while True:
        polled = await client.batches.retrieve(batch.batch_id)
        if polled.status in _OPENAI_DONE:
            break
        await asyncio.sleep(poll_s)
    batch.files = [
        f for f in (polled.input_file_id, polled.output_file_id, polled.error_file_id) if f
    ]
    outcomes: dict[str, CallOutcome] = {}
    for file_id in (polled.output_file_id, polled.error_file_id):
        if not file_id:
            continue
        content = await client.files.content(file_id)
        for line in content.content.splitlines():
            if not line.strip():
                continue
            obj = orjson.loads(line)
            outcomes[str(obj.get("custom_id"))] = _openai_line(obj, completion_outcome)
    if polled.status != "completed":  # lines the batch never ran
        errors = getattr(polled.errors, "data", None) or []
        detail = "; ".join(str(e.message) for e in errors if getattr(e, "message", None))
        kind = {"failed": "BatchFailed", "expired": "BatchExpired"}.get(
            polled.status, "BatchCancelled"
        )
        message = f"batch {batch.batch_id} {polled.status}" + (f": {detail}" if detail else "")
        for cid in batch.sent:
            outcomes.setdefault(cid, _failure(kind, message))
    return outcomes


def _openai_line(obj: dict[str, Any], parse: Callable[[Any], CallOutcome]) -> CallOutcome:
    """One line of an OpenAI batch's output or error file."""
    response = obj.get("response") or None
    if isinstance(response, dict):
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if status == 200:
            try:
                return parse(body)
            except Exception as exc:  # a body that is not a chat completion
                return CallOutcome(
                    status="error",
                    error_origin="infrastructure",
                    http_status=status,
                    error_type=INVALID_BODY,
                    error_message=f"the batch line is not a chat completion ({short(str(exc))})",
                )
        inner = body.get("error") if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        return _status_outcome(status, str(message or f"HTTP {status}"), "openai")
    error = obj.get("error") or {}
    code = str(error.get("code") or "")
    kind = {"batch_expired": "BatchExpired", "batch_cancelled": "BatchCancelled"}.get(
        code, code or "BatchError"
    )
    return _failure(kind, str(error.get("message") or code or "no answer in the batch"))


async def _anthropic_results(client: Any, batch: _Batch, poll_s: float) -> dict[str, CallOutcome]:
    from evalpipe.providers.anthropic import message_outcome

    while True:
        polled = await client.messages.batches.retrieve(batch.batch_id)
        if polled.processing_status == "ended":
            break
        await asyncio.sleep(poll_s)
    outcomes: dict[str, CallOutcome] = {}
    async for item in await client.messages.batches.results(batch.batch_id):
        result = item.result
        if result.type == "succeeded":
            try:
                outcomes[item.custom_id] = message_outcome(result.message)
            except Exception as exc:
                outcomes[item.custom_id] = CallOutcome(
                    status="error",
                    error_origin="infrastructure",
                    http_status=200,
                    error_type=INVALID_BODY,
                    error_message=f"the batch result is not a message ({short(str(exc))})",
                )
        elif result.type == "errored":
            error = result.model_dump().get("error") or {}
            inner = error.get("error") if isinstance(error, dict) else None
            inner = inner if isinstance(inner, dict) else {}
            status = _ANTHROPIC_STATUS.get(str(inner.get("type")), 500)
            outcomes[item.custom_id] = _status_outcome(
                status, str(inner.get("message") or inner.get("type") or "errored"), "anthropic"
            )
        else:
            kind = "BatchExpired" if result.type == "expired" else "BatchCancelled"
            outcomes[item.custom_id] = _failure(kind, f"batch {batch.batch_id}: {result.type}")
    return outcomes


def _status_outcome(status: int, message: str, provider: str) -> CallOutcome:
    """A request the batch answered with an HTTP error status (as an online failure's row)."""
    return CallOutcome(
        status="error",
        error_origin=classify_status(status)[0],
        http_status=status,
        error_type=status_error_type(status, provider),
        error_message=short(message),
    )


def _failure(kind: str, message: str) -> CallOutcome:
    """A request the batch never ran (expired, cancelled, a failed batch)."""
    return CallOutcome(
        status="error", error_origin="infrastructure", error_type=kind, error_message=short(message)
    )


def _missing(batch_id: str) -> CallOutcome:
    return _failure("BatchResultMissing", f"batch {batch_id} has no result for this request")
