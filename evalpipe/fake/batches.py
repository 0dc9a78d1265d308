"""The fake provider's batch APIs: OpenAI files + batches and Anthropic Message Batches.

Each request of a batch runs through the same code as the online endpoint (`Replies`), so a
batch answers what the online API answers to the same body. A batch ends at its poll number
`polls` (0 or 1: the first poll). A `down` model's requests fail in the batch with the status
they get online (503 OpenAI, 529 Anthropic); a `throttled` model's (a quota that never comes
back) expire. `GET /_fake/batches` counts the uploads, batches, polls and requests per model, the files still
stored and what was deleted (`DELETE /v1/files/{id}`, `DELETE /v1/messages/batches/{id}`: the
file, or the ended batch's results, are gone from memory).

The providers' size limits hold: an OpenAI input file of more than 50,000 requests or 200 MB
fails validation; an Anthropic batch of more than 100,000 requests or 256 MB is refused (413/400).
`EVALPIPE_FAKE_BATCH_MAX_REQUESTS` lowers the request limit of both, for tests.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from evalpipe.fake.behaviours import Answer, Resolved
from evalpipe.fake.hashing import alnum
from evalpipe.fake.wire import Call, anthropic_message, openai_completion

__all__ = ["Batches", "Replies", "batch_routes"]

Reply = Callable[[Any], "tuple[Call, Resolved, Answer] | Response"]

_OPENAI_URL: Final = "/v1/chat/completions"
_CUSTOM_ID: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DAY: Final = 24 * 3600
OPENAI_MAX_REQUESTS: Final = 50_000
OPENAI_MAX_BYTES: Final = 200 * 1024 * 1024
ANTHROPIC_MAX_REQUESTS: Final = 100_000
ANTHROPIC_MAX_BYTES: Final = 256 * 1024 * 1024
MAX_REQUESTS_ENV: Final = "EVALPIPE_FAKE_BATCH_MAX_REQUESTS"


class Replies(NamedTuple):
    """The online endpoints' answer code: a body → (call, behaviour, answer) or an error response."""

    openai: Reply
    anthropic: Reply
    bad_key: str


class _JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Batches:
    """Uploaded files, submitted batches, their results and the counts `/_fake/batches` serves."""

    def __init__(self, polls: int, replies: Replies, max_requests: int | None = None) -> None:
        self.polls, self.replies = polls, replies
        if max_requests is None and os.environ.get(MAX_REQUESTS_ENV, "").isdigit():
            max_requests = int(os.environ[MAX_REQUESTS_ENV])
        self.max_requests = max_requests
        """Lowers both providers' limit on requests per batch (None: theirs)."""
        self.files: dict[str, tuple[str, bytes]] = {}  # id → (filename, bytes)
        self.openai: dict[str, dict[str, Any]] = {}
        self.anthropic: dict[str, dict[str, Any]] = {}
        self._results: dict[str, list[dict[str, Any]]] = {}  # batch id → result lines
        self._polled: dict[str, int] = {}
        self.uploads = 0
        self.downloads = 0
        self.lines: dict[str, int] = {}
        self.deleted_files = 0
        self.deleted_batches: set[str] = set()  # Anthropic batches deleted (their results gone)

    def new_id(self, prefix: str, length: int = 24) -> str:
        n = len(self.files) + len(self.openai) + len(self.anthropic)
        return prefix + alnum(prefix, n, time.monotonic_ns(), length=length)

    def ran(self, model: Any) -> None:
        key = str(model)
        self.lines[key] = self.lines.get(key, 0) + 1

    def poll(self, batch_id: str) -> bool:
        """Count one poll of `batch_id`; whether the batch has ended by now."""
        n = self._polled.get(batch_id, 0) + 1
        self._polled[batch_id] = n
        return n >= self.polls

    def report(self) -> dict[str, Any]:
        return {
            "uploads": self.uploads,
            "downloads": self.downloads,
            "created": {"openai": len(self.openai), "anthropic": len(self.anthropic)},
            "polls": dict(self._polled),
            "lines": dict(self.lines),
            "files_stored": len(self.files),
            "deleted": {"files": self.deleted_files, "batches": len(self.deleted_batches)},
            "batches": {
                **{k: v["status"] for k, v in self.openai.items()},
                **{k: v["processing_status"] for k, v in self.anthropic.items()},
            },
        }


def _batches(request: Request) -> Batches:
    batches: Batches = request.app.state.batches
    return batches


def _key(request: Request) -> str:
    key = request.headers.get("x-api-key", "")
    if not key:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    return key


def _openai_error(status: int, message: str, code: str | None = None) -> Response:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return _JSON(body, status_code=status)


def _anthropic_error(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    request_id = "req_011" + alnum("req", message, time.monotonic_ns(), length=21)
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return _JSON(body, status_code=status)


def _refused(request: Request, anthropic: bool) -> Response | None:
    """401 for a missing or bad key, else None."""
    key = _key(request)
    if key and key != _batches(request).replies.bad_key:
        return None
    if anthropic:
        return _anthropic_error(401, "invalid x-api-key", kind="authentication_error")
    return _openai_error(401, "Incorrect API key provided.", code="invalid_api_key")


# --- OpenAI: files and batches ----------------------------------------------------------------


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: name → (filename, bytes)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts: dict[str, tuple[str | None, bytes]] = {}
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            parts[name] = (part.get_filename(), payload)
    return parts


def _file_object(file_id: str, filename: str, size: int, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }


async def _upload(request: Request) -> Response:
    refused = _refused(request, anthropic=False)
    if refused is not None:
        return refused
    store = _batches(request)
    parts = _multipart(request.headers.get("content-type", ""), await request.body())
    if "file" not in parts:
        return _openai_error(400, "Missing required parameter: 'file'.")
    purpose = parts.get("purpose", (None, b"batch"))[1].decode()
    filename, data = parts["file"]
    file_id = store.new_id("file-")
    store.files[file_id] = (filename or "upload.jsonl", data)
    store.uploads += 1
    return _JSON(_file_object(file_id, filename or "upload.jsonl", len(data), purpose))


async def _delete_file(request: Request) -> Response:
    refused = _refused(request, anthropic=False)
    if refused is not None:
        return refused
    store = _batches(request)
    file_id = str(request.path_params["file_id"])
    if store.files.pop(file_id, None) is None:
        return _openai_error(404, f"No such File object: {file_id}")
    store.deleted_files += 1
    return _JSON({"id": file_id, "object": "file", "deleted": True})


async def _file_content(request: Request) -> Response:
    refused = _refused(request, anthropic=False)
    if refused is not None:
        return refused
    store = _batches(request)
    file_id = str(request.path_params["file_id"])
    if file_id not in store.files:
        return _openai_error(404, f"No such File object: {file_id}")
    store.downloads += 1
    return Response(store.files[file_id][1], media_type="application/octet-stream")


def _openai_line(store: Batches, line: dict[str, Any]) -> dict[str, Any]:
    """The output (or error) file line for one request of an OpenAI batch."""
    cid = line["custom_id"]
    line_id = "batch_req_" + alnum("batch_req", cid, time.monotonic_ns(), length=24)
    body = line.get("body")
    store.ran(body.get("model") if isinstance(body, dict) else None)
    got = store.replies.openai(body)
    if isinstance(got, Response):
        status, out = got.status_code, orjson.loads(bytes(got.body))
    else:
        call, resolved, ans = got
        if resolved.behaviour.name == "throttled":
            message = "This request could not be executed before the completion window expired."
            error = {"code": "batch_expired", "message": message}
            return {"id": line_id, "custom_id": cid, "response": None, "error": error}
        if resolved.behaviour.name == "down":
            message = "The engine is currently overloaded."
            status, out = 503, {"error": {"message": message, "type": "server_error"}}
        else:
            status, out = 200, openai_completion(call, resolved.snapshot, ans)
    request_id = "req_" + alnum("req", cid, line_id, length=32)
    response = {"status_code": status, "request_id": request_id, "body": out}
    return {"id": line_id, "custom_id": cid, "response": response, "error": None}


def _check_lines(data: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input file's lines, and the validation errors that fail the batch."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            errors.append({"code": "invalid_json_line", "message": "not JSON", "line": n})
            continue
        if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
            errors.append({"code": "missing_required_parameter", "message": "custom_id", "line": n})
            continue
        if line.get("method") != "POST" or line.get("url") != _OPENAI_URL:
            message = f"This line's url must be {_OPENAI_URL} with method POST."
            errors.append({"code": "invalid_url", "message": message, "line": n})
            continue
        if line["custom_id"] in seen:
            message = f"The custom_id {line['custom_id']} is used more than once."
            errors.append({"code": "duplicate_custom_id", "message": message, "line": n})
            continue
        seen.add(line["custom_id"])
        lines.append(line)
    return lines, errors


async def _create_openai(request: Request) -> Response:
    refused = _refused(request, anthropic=False)
    if refused is not None:
        return refused
    store = _batches(request)
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _openai_error(400, "The body is not valid JSON.")
    if not isinstance(body, dict):
        return _openai_error(400, "The body must be an object.")
    endpoint, file_id = body.get("endpoint"), body.get("input_file_id")
    if endpoint != _OPENAI_URL:
        return _openai_error(400, f"The fake provider batches {_OPENAI_URL} only, not {endpoint}.")
    if body.get("completion_window") != "24h":
        return _openai_error(400, "completion_window must be '24h'.")
    if file_id not in store.files:
        return _openai_error(404, f"No such File object: {file_id}")
    data = store.files[file_id][1]
    lines, errors = _check_lines(data)
    most = min(OPENAI_MAX_REQUESTS, store.max_requests or OPENAI_MAX_REQUESTS)
    if len(lines) > most:
        message = f"The input file holds {len(lines):,} requests; a batch takes at most {most:,}."
        errors.append({"code": "too_many_requests", "message": message, "line": None})
    if len(data) > OPENAI_MAX_BYTES:
        message = f"The input file is {len(data):,} bytes; a batch file takes at most 200 MB."
        errors.append({"code": "file_too_large", "message": message, "line": None})
    now = int(time.time())
    batch_id = store.new_id("batch_")
    batch: dict[str, Any] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": endpoint,
        "errors": None,
        "input_file_id": file_id,
        "completion_window": "24h",
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + _DAY,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        "metadata": body.get("metadata"),
    }
    if errors or not lines:
        errors = errors or [{"code": "empty_file", "message": "The input file is empty."}]
        batch.update(
            status="failed",
            failed_at=now,
            errors={"object": "list", "data": [{**e, "param": None} for e in errors]},
        )
    else:
        store._results[batch_id] = [_openai_line(store, line) for line in lines]
    store.openai[batch_id] = batch
    return _JSON(batch)


def _end_openai(store: Batches, batch: dict[str, Any]) -> None:
    results = store._results.pop(batch["id"])
    ok = [r for r in results if r["response"] and r["response"]["status_code"] == 200]
    failed = [r for r in results if r not in ok]
    now = int(time.time())
    for name, rows in (("output_file_id", ok), ("error_file_id", failed)):
        if rows:
            file_id = store.new_id("file-")
            data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
            store.files[file_id] = (f"{batch['id']}_{name[:-8]}.jsonl", data)
            batch[name] = file_id
    expired = any(r["error"] and r["error"]["code"] == "batch_expired" for r in results)
    batch.update(
        status="expired" if expired else "completed",
        in_progress_at=batch["created_at"],
        request_counts={"total": len(results), "completed": len(ok), "failed": len(failed)},
    )
    batch["expired_at" if expired else "completed_at"] = now


async def _retrieve_openai(request: Request) -> Response:
    refused = _refused(request, anthropic=False)
    if refused is not None:
        return refused
    store = _batches(request)
    batch = store.openai.get(str(request.path_params["batch_id"]))
    if batch is None:
        return _openai_error(404, f"No such Batch object: {request.path_params['batch_id']}")
    ended = store.poll(batch["id"])
    if batch["status"] in ("validating", "in_progress"):
        if ended:
            _end_openai(store, batch)
        else:
            batch["status"] = "in_progress"
    return _JSON(batch)


# --- Anthropic: Message Batches ---------------------------------------------------------------


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _anthropic_result(store: Batches, item: dict[str, Any]) -> dict[str, Any]:
    params = item["params"]
    store.ran(params.get("model"))
    got = store.replies.anthropic(params)
    if isinstance(got, Response):
        return {"type": "errored", "error": orjson.loads(bytes(got.body))}
    call, resolved, ans = got
    if resolved.behaviour.name == "throttled":
        return {"type": "expired"}
    if resolved.behaviour.name == "down":
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return {"type": "errored", "error": {"type": "error", "error": error}}
    return {"type": "succeeded", "message": anthropic_message(call, resolved.snapshot, ans)}


async def _create_anthropic(request: Request) -> Response:
    refused = _refused(request, anthropic=True)
    if refused is not None:
        return refused
    store = _batches(request)
    raw = await request.body()
    if len(raw) > ANTHROPIC_MAX_BYTES:
        return _anthropic_error(413, "Request exceeds the 256 MB limit.", "request_too_large")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _anthropic_error(400, "The body is not valid JSON.")
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return _anthropic_error(400, "requests: Field required (a non-empty list)")
    most = min(ANTHROPIC_MAX_REQUESTS, store.max_requests or ANTHROPIC_MAX_REQUESTS)
    if len(items) > most:
        return _anthropic_error(400, f"requests: at most {most:,} items ({len(items):,} given)")
    seen: set[str] = set()
    for n, item in enumerate(items):
        cid = item.get("custom_id") if isinstance(item, dict) else None
        if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
            return _anthropic_error(
                400, f"requests.{n}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )
        if cid in seen:
            return _anthropic_error(400, f"requests.{n}.custom_id: `{cid}` is not unique")
        if not isinstance(item.get("params"), dict):
            return _anthropic_error(400, f"requests.{n}.params: Field required")
        seen.add(cid)
    now = datetime.now(UTC)
    batch_id = store.new_id("msgbatch_")
    store._results[batch_id] = [
        {"custom_id": item["custom_id"], "result": _anthropic_result(store, item)} for item in items
    ]
    batch = {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "in_progress",
        "request_counts": {
            "processing": len(items),
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        },
        "ended_at": None,
        "created_at": _iso(now),
        "expires_at": _iso(now + timedelta(days=1)),
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": None,
    }
    store.anthropic[batch_id] = batch
    return _JSON(batch)


def _anthropic_batch(request: Request) -> tuple[Batches, str, dict[str, Any]] | Response:
    """The store, id and batch a Message Batches route names, or the refusal / 404 to answer."""
    refused = _refused(request, anthropic=True)
    if refused is not None:
        return refused
    store = _batches(request)
    batch_id = str(request.path_params["batch_id"])
    batch = store.anthropic.get(batch_id)
    if batch is None or batch_id in store.deleted_batches:
        return _anthropic_error(404, f"message batch {batch_id} not found", kind="not_found_error")
    return store, batch_id, batch


async def _retrieve_anthropic(request: Request) -> Response:
    found = _anthropic_batch(request)
    if isinstance(found, Response):
        return found
    store, batch_id, batch = found
    if store.poll(batch_id) and batch["processing_status"] != "ended":
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for r in store._results[batch_id]:
            counts[r["result"]["type"]] += 1
        batch.update(
            processing_status="ended",
            request_counts=counts,
            ended_at=_iso(datetime.now(UTC)),
            results_url=str(request.base_url).rstrip("/")
            + f"/v1/messages/batches/{batch_id}/results",
        )
    return _JSON(batch)


async def _anthropic_results(request: Request) -> Response:
    refused = _refused(request, anthropic=True)
    if refused is not None:
        return refused
    store = _batches(request)
    batch_id = str(request.path_params["batch_id"])
    batch = store.anthropic.get(batch_id)
    if batch is None or batch["processing_status"] != "ended" or batch_id in store.deleted_batches:
        message = f"message batch {batch_id} has no results (not found, or still in progress)"
        return _anthropic_error(404, message, kind="not_found_error")
    store.downloads += 1
    data = b"".join(orjson.dumps(r) + b"\n" for r in store._results[batch_id])
    return Response(data, media_type="application/binary")


async def _delete_anthropic(request: Request) -> Response:
    """Delete an ended batch and its results (as the API: one still processing is refused)."""
    found = _anthropic_batch(request)
    if isinstance(found, Response):
        return found
    store, batch_id, batch = found
    if batch["processing_status"] != "ended":
        message = f"message batch {batch_id} is still processing: cancel it first"
        return _anthropic_error(400, message)
    store.deleted_batches.add(batch_id)
    store._results.pop(batch_id, None)
    return _JSON({"id": batch_id, "type": "message_batch_deleted"})


async def _report(request: Request) -> Response:
    return _JSON(_batches(request).report())


def batch_routes() -> list[Route]:
    """The batch endpoints of both APIs, and `GET /_fake/batches`."""
    return [
        Route("/v1/files", _upload, methods=["POST"]),
        Route("/v1/files/{file_id}/content", _file_content, methods=["GET"]),
        Route("/v1/files/{file_id}", _delete_file, methods=["DELETE"]),
        Route("/v1/batches", _create_openai, methods=["POST"]),
        Route("/v1/batches/{batch_id}", _retrieve_openai, methods=["GET"]),
        Route("/v1/messages/batches", _create_anthropic, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}", _retrieve_anthropic, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}", _delete_anthropic, methods=["DELETE"]),
        Route("/v1/messages/batches/{batch_id}/results", _anthropic_results, methods=["GET"]),
        Route("/_fake/batches", _report, methods=["GET"]),
    ]
