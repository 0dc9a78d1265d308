"""The fake provider over real HTTP: OpenAI chat completions and Anthropic Messages, and both batch
APIs (OpenAI files + batches, Anthropic Message Batches; `batches.py`) (Starlette).

Clients are the real SDKs: OpenAI with ``base_url=f"{root}/v1"``, Anthropic with ``base_url=root``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import socket
import subprocess as _sp
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from evalpipe.fake.batches import Batches, Replies, batch_routes
from evalpipe.fake.behaviours import (
    BEHAVIOURS,
    MODELS,
    SPORADIC_429_RATE,
    Answer,
    Resolved,
    capacity,
    fault,
    resolve_model,
)
from evalpipe.fake.hashing import alnum, draw
from evalpipe.fake.wire import (
    BadRequest,
    Call,
    UnknownModel,
    anthropic_events,
    anthropic_message,
    openai_chunks,
    openai_completion,
    parse_anthropic,
    parse_openai,
    reply,
    resolve,
)
from evalpipe.providers.endpoint import FAKE_URL_ENV

__all__ = ["BAD_KEY", "builtin_fake", "create_app", "run_server", "serving"]

log = logging.getLogger(__name__)

BAD_KEY: Final = "bad-key"
"""An API key the fake rejects with 401 (any other non-empty key is accepted)."""
_FLAKY_RATE: Final = 0.20
_TTFT_SHARE: Final = 0.3  # share of the latency spent before the first streamed piece
_MAX_TRACKED: Final = 200_000
_HANG_S: Final = 600.0  # a hanging answer's longest wait for its client to give up
_SLOW_START_RATE: Final = 0.20  # share of requests whose first attempt hangs or is cut off
_MODEL_PATHS: Final = frozenset({"/v1/chat/completions", "/v1/messages"})
"""The endpoints whose requests `/_fake/traffic` counts per model (batches: `/_fake/batches`)."""
_THROTTLE_HEADERS: Final = {
    "retry-after": "1",
    "retry-after-ms": "250",
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "250ms",
}


class _JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _State:
    """Per-app settings and counters (the flaky behaviour's attempts per request)."""

    def __init__(self, latency_ms: float, jitter: float = 0.5) -> None:
        self.latency_ms = latency_ms
        self.jitter = jitter
        self.requests = 0
        self.attempts: dict[str, int] = {}
        self.seen: dict[str, int] = {}

    def delay(self, call: Call, factor: float) -> float:
        """Seconds to wait: mean latency × behaviour factor × a jitter in [1 − j, 1 + j)."""
        spread = 1 - self.jitter + 2 * self.jitter * draw(call.body_key, "jitter")
        return self.latency_ms * factor * spread / 1000

    def first_attempt_fails(self, call: Call) -> bool:
        """For a flaky model: whether this is the first attempt of a request chosen to fail."""
        if draw(call.conversation.key, "flaky") >= _FLAKY_RATE:
            return False
        if len(self.attempts) > _MAX_TRACKED:
            self.attempts.clear()
        seen = self.attempts.get(call.body_key, 0)
        self.attempts[call.body_key] = seen + 1
        return seen == 0

    def attempt(self, call: Call) -> int:
        """How many attempts of this request came before this one."""
        if len(self.seen) > _MAX_TRACKED:
            self.seen.clear()
        n = self.seen.get(call.body_key, 0)
        self.seen[call.body_key] = n + 1
        return n


class _Traffic:
    """What the server saw per model: requests in flight now and at most, and arrival times.

    Served at `GET /_fake/traffic`, so that a test or a bench checks the limits a client kept
    where they matter, at the server.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.arrivals: dict[str, list[float]] = {}
        self.statuses: dict[str, dict[str, int]] = {}

    def answered(self, model: str, status: int) -> None:
        counts = self.statuses.setdefault(model, {})
        counts[str(status)] = counts.get(str(status), 0) + 1

    def enter(self, model: str) -> None:
        now = self.in_flight.get(model, 0) + 1
        self.in_flight[model] = now
        self.max_in_flight[model] = max(now, self.max_in_flight.get(model, 0))
        seen = self.arrivals.setdefault(model, [])
        if len(seen) < _MAX_TRACKED:
            seen.append(round(time.monotonic() - self.started, 4))

    def leave(self, model: str) -> None:
        self.in_flight[model] = self.in_flight.get(model, 1) - 1

    def report(self) -> dict[str, Any]:
        return {
            model: {
                "requests": len(self.arrivals.get(model, [])),
                "max_in_flight": self.max_in_flight.get(model, 0),
                "in_flight": self.in_flight.get(model, 0),
                "arrivals_s": self.arrivals.get(model, []),
                "statuses": self.statuses.get(model, {}),
            }
            for model in sorted(self.max_in_flight)
        }


class _CountTraffic:
    """ASGI middleware: counts each model request from its arrival to its last byte sent."""

    def __init__(self, app: Any, traffic: _Traffic) -> None:
        self.app, self.traffic = app, traffic

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in _MODEL_PATHS
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:  # read the whole body here to learn the model, then hand it on
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            parsed = orjson.loads(body)
            model = str(parsed.get("model")) if isinstance(parsed, dict) else "?"
        except orjson.JSONDecodeError:
            model = "?"
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        finished = False

        async def counted_send(message: Any) -> None:
            nonlocal finished
            if message["type"] == "http.response.start":
                self.traffic.answered(model, message["status"])
            await send(message)
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and not finished:
                finished = True
                self.traffic.leave(model)

        self.traffic.enter(model)
        try:
            await self.app(scope, replay, counted_send)
        finally:
            if not finished:
                self.traffic.leave(model)


def _state(request: Request) -> _State:
    state: _State = request.app.state.fake
    return state


def _openai_error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return _JSON(body, status_code=status, headers=headers)


def _anthropic_error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Response:
    request_id = "req_011" + alnum("req", message, time.monotonic_ns(), length=21)
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return _JSON(body, status_code=status, headers=headers)


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from exc


def _retry_headers() -> dict[str, str]:
    # `retry-after-ms` makes the SDKs retry at once (they ignore a `retry-after` of 0).
    return {"retry-after": "0", "retry-after-ms": "10", "x-should-retry": "true"}


async def _chat_completions(request: Request) -> Response:
    state = _state(request)
    state.requests += 1
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not key:
        return _openai_error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization "
            "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if key == BAD_KEY:
        return _openai_error(401, f"Incorrect API key provided: {key}.", code="invalid_api_key")
    try:
        body = await _body(request)
    except BadRequest as exc:
        return _openai_bad_request(exc)
    got = openai_reply(body)
    if isinstance(got, Response):
        return got
    call, resolved, ans = got
    if resolved.behaviour.name == "flaky" and state.first_attempt_fails(call):
        if draw(call.body_key, "status") < 0.5:
            return _openai_error(
                429,
                "Rate limit reached for requests.",
                kind="requests",
                code="rate_limit_exceeded",
                headers=_retry_headers(),
            )
        return _openai_error(
            503,
            "The server is overloaded, please try again.",
            kind="server_error",
            headers=_retry_headers(),
        )
    misbehaved = await _misbehave(request, call, resolved, anthropic=False)
    if misbehaved is not None:
        return misbehaved
    delay = state.delay(call, resolved.behaviour.latency_factor)
    out = openai_completion(call, resolved.snapshot, ans)
    headers = {"x-request-id": "req_" + alnum("req", call.body_key, length=32)}
    if call.stream:
        chunks = [
            b"data: " + orjson.dumps(c) + b"\n\n"
            for c in openai_chunks(out, include_usage=call.include_usage)
        ]
        chunks.append(b"data: [DONE]\n\n")
        return StreamingResponse(
            _paced(chunks, delay), media_type="text/event-stream", headers=headers
        )
    if delay > 0:
        await asyncio.sleep(delay)
    return _JSON(out, headers=headers)


def _openai_bad_request(exc: BadRequest) -> Response:
    body = {"message": exc.message, "type": "invalid_request_error", "param": exc.param}
    return _JSON({"error": {**body, "code": exc.code}}, status_code=400)


def openai_reply(body: Any) -> tuple[Call, Resolved, Answer] | Response:
    """A chat completion body parsed, its model resolved and answered; or the error response
    (400, 404) for it. What the online endpoint and each line of a batch both run."""
    try:
        call = parse_openai(body)
        resolved = resolve(call)
        return call, resolved, reply(call, resolved)
    except BadRequest as exc:
        return _openai_bad_request(exc)
    except UnknownModel as exc:
        return _openai_error(404, str(exc), code="model_not_found")


def anthropic_reply(body: Any) -> tuple[Call, Resolved, Answer] | Response:
    """A Messages body parsed, its model resolved and answered; or the error response (400,
    404) for it. What the online endpoint and each request of a batch both run."""
    try:
        call = parse_anthropic(body)
        resolved = resolve(call)
        return call, resolved, reply(call, resolved)
    except BadRequest as exc:
        return _anthropic_error(400, str(exc))
    except UnknownModel as exc:
        return _anthropic_error(404, str(exc), kind="not_found_error")


async def _messages(request: Request) -> Response:
    state = _state(request)
    state.requests += 1
    key = request.headers.get("x-api-key", "")
    if not key:
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if not key:
        return _anthropic_error(401, "x-api-key header is required", kind="authentication_error")
    if key == BAD_KEY:
        return _anthropic_error(401, "invalid x-api-key", kind="authentication_error")
    try:
        body = await _body(request)
    except BadRequest as exc:
        return _anthropic_error(400, str(exc))
    got = anthropic_reply(body)
    if isinstance(got, Response):
        return got
    call, resolved, ans = got
    if resolved.behaviour.name == "flaky" and state.first_attempt_fails(call):
        if draw(call.body_key, "status") < 0.5:
            return _anthropic_error(
                429,
                "Number of requests has exceeded your rate limit.",
                kind="rate_limit_error",
                headers=_retry_headers(),
            )
        return _anthropic_error(
            503, "Overloaded", kind="overloaded_error", headers=_retry_headers()
        )
    misbehaved = await _misbehave(request, call, resolved, anthropic=True)
    if misbehaved is not None:
        return misbehaved
    delay = state.delay(call, resolved.behaviour.latency_factor)
    out = anthropic_message(call, resolved.snapshot, ans)
    headers = {"request-id": "req_011" + alnum("req", call.body_key, length=21)}
    if call.stream:
        events = [
            b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            for name, data in anthropic_events(out)
        ]
        return StreamingResponse(
            _paced(events, delay), media_type="text/event-stream", headers=headers
        )
    if delay > 0:
        await asyncio.sleep(delay)
    return _JSON(out, headers=headers)


class _Cut(Response):
    """A 200 cut off mid-body: the connection closes before the promised bytes arrive."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "cut', "more_body": True})
        # returning now makes uvicorn close the connection (its log line is filtered out)


class _QuietCuts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


async def _hang(request: Request) -> Response:
    """No answer until the client gives up (or _HANG_S)."""
    deadline = time.monotonic() + _HANG_S
    while time.monotonic() < deadline and not await request.is_disconnected():
        await asyncio.sleep(0.05)
    return Response(status_code=504)


def _throttle(anthropic: bool) -> Response:
    if anthropic:
        return _anthropic_error(
            429,
            "Number of request tokens has exceeded your per-minute rate limit.",
            kind="rate_limit_error",
            headers=_THROTTLE_HEADERS,
        )
    return _openai_error(
        429,
        "Rate limit reached for requests per min.",
        kind="requests",
        code="rate_limit_exceeded",
        headers=_THROTTLE_HEADERS,
    )


def _overload(anthropic: bool) -> Response:
    if anthropic:
        return _anthropic_error(529, "Overloaded", kind="overloaded_error")
    return _openai_error(503, "The engine is currently overloaded.", kind="server_error")


async def _misbehave(
    request: Request, call: Call, resolved: Resolved, *, anthropic: bool
) -> Response | None:
    """The failure a misbehaving model answers this attempt with; None: it answers as usual."""
    name = resolved.behaviour.name
    if name in ("ratelimited", "overloaded"):
        traffic: _Traffic = request.app.state.traffic
        if traffic.in_flight.get(call.model, 0) <= capacity(call.model):
            return None
        return _throttle(anthropic) if name == "ratelimited" else _overload(anthropic)
    if name == "throttled":
        return _throttle(anthropic)
    if name == "down":
        return _overload(anthropic)
    if name not in ("hang", "reset", "faulty", "sporadic"):
        return None
    n = _state(request).attempt(call)
    kind: str | None = name
    if name == "sporadic":
        kind = "429" if draw(f"{call.body_key}:{n}", "fault") < SPORADIC_429_RATE else None
    elif name == "faulty":
        kind = fault(draw(f"{call.body_key}:{n}", "fault"))
    elif n > 0 or draw(call.conversation.key, name) >= _SLOW_START_RATE:
        kind = None
    if kind is None:
        return None
    if kind == "429":
        return _throttle(anthropic)
    if kind == "500":
        error = _anthropic_error if anthropic else _openai_error
        return error(500, "Internal server error", kind="api_error")
    if kind == "hang":
        return await _hang(request)
    if kind == "malformed":
        return Response(b'{"id": "chatcmpl-', status_code=200, media_type="application/json")
    return _Cut()


async def _paced(pieces: list[bytes], delay: float) -> AsyncIterator[bytes]:
    """Yield SSE pieces: part of the delay before the first, the rest spread in a few steps."""
    if delay > 0:
        await asyncio.sleep(delay * _TTFT_SHARE)
    steps = max(1, min(8, len(pieces) // 4))
    every = max(1, -(-len(pieces) // steps))
    for i, piece in enumerate(pieces):
        if i and i % every == 0 and delay > 0:
            await asyncio.sleep(delay * (1 - _TTFT_SHARE) / steps)
        yield piece


def _anthropic_shaped(request: Request) -> bool:
    return "x-api-key" in request.headers or "anthropic-version" in request.headers


def _model_entry(name: str, anthropic: bool) -> dict[str, Any]:
    if anthropic:
        return {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": "2025-10-01T00:00:00Z",
        }
    return {"id": name, "object": "model", "created": 1_721_172_741, "owned_by": "evalpipe-fake"}


def _names() -> list[str]:
    return [*MODELS, *(f"fake-{b}" for b in BEHAVIOURS)]


async def _models(request: Request) -> Response:
    anthropic = _anthropic_shaped(request)
    data = [_model_entry(n, anthropic) for n in _names()]
    if anthropic:
        return _JSON(
            {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )
    return _JSON({"object": "list", "data": data})


async def _model(request: Request) -> Response:
    name = str(request.path_params["model"])
    anthropic = _anthropic_shaped(request)
    if resolve_model(name) is None:
        message = str(UnknownModel(name))
        if anthropic:
            return _anthropic_error(404, message, kind="not_found_error")
        return _openai_error(404, message, code="model_not_found")
    return _JSON(_model_entry(name, anthropic))


async def _health(request: Request) -> Response:
    return _JSON({"status": "ok", "requests": _state(request).requests})


async def _traffic(request: Request) -> Response:
    traffic: _Traffic = request.app.state.traffic
    return _JSON(traffic.report())


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = exc.detail if isinstance(exc, HTTPException) else "The fake provider failed."
    if status == 500:
        log.error("fake provider error on %s", request.url.path, exc_info=exc)
    if request.url.path.startswith("/v1/messages"):
        return _anthropic_error(
            status, str(message), kind="not_found_error" if status == 404 else "api_error"
        )
    return _openai_error(status, str(message), kind="invalid_request_error")


def create_app(*, latency_ms: float = 20.0, jitter: float = 0.5, batch_polls: int = 0) -> Starlette:
    """The fake provider's ASGI app.

    Args:
        latency_ms: mean answer latency; each behaviour scales it.
        jitter: each request's latency is the mean × a factor in [1 − jitter, 1 + jitter)
            (0: every answer takes exactly the mean).
        batch_polls: a batch ends at its poll number `batch_polls` (0 or 1: the first poll).
    """
    traffic = _Traffic()
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietCuts) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_QuietCuts())
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _chat_completions, methods=["POST"]),
            Route("/v1/messages", _messages, methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/v1/models/{model:path}", _model, methods=["GET"]),
            Route("/health", _health, methods=["GET"]),
            Route("/_fake/traffic", _traffic, methods=["GET"]),
            *batch_routes(),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
        middleware=[Middleware(_CountTraffic, traffic=traffic)],
    )
    app.state.fake = _State(latency_ms, jitter)
    app.state.traffic = traffic
    app.state.batches = Batches(batch_polls, Replies(openai_reply, anthropic_reply, BAD_KEY))
    return app


def _config(app: Starlette, host: str, port: int, *, quiet_logging: bool) -> uvicorn.Config:
    kwargs: dict[str, Any] = {"log_config": None} if quiet_logging else {}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,  # longer than the SDKs' 5 s idle expiry: no reuse of a closing socket
        timeout_graceful_shutdown=3,
        **kwargs,
    )


def run_server(
    host: str = "127.0.0.1",
    port: int = 8911,
    *,
    latency_ms: float = 20.0,
    jitter: float = 0.5,
    batch_polls: int = 0,
) -> None:
    """Serve the fake provider until interrupted (`evalpipe fake-provider`)."""
    log.info("fake provider on http://%s:%d", host, port)
    app = create_app(latency_ms=latency_ms, jitter=jitter, batch_polls=batch_polls)
    uvicorn.Server(_config(app, host, port, quiet_logging=False)).run()


def _serve_inherited(
    fd: int, latency_ms: float, jitter: float, parent_pid: int | None, batch_polls: int = 0
) -> None:
    """Serve on a listening socket inherited from the parent (`serving(subprocess=True)`)."""
    sock = socket.socket(fileno=fd)
    host, port = sock.getsockname()[:2]
    app = create_app(latency_ms=latency_ms, jitter=jitter, batch_polls=batch_polls)
    server = uvicorn.Server(_config(app, host, port, quiet_logging=False))
    if parent_pid is not None:

        def watch() -> None:  # exit when orphaned, so a killed parent leaves no server behind
            while not server.should_exit:
                if os.getppid() != parent_pid:
                    server.should_exit = True
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True, name="fake-provider-parent-watch").start()
    server.run(sockets=[sock])


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _root(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _healthy(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=1.0)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def _in_thread(
    host: str, port: int, latency_ms: float, jitter: float, timeout: float, batch_polls: int
) -> Iterator[str]:
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    app = create_app(latency_ms=latency_ms, jitter=jitter, batch_polls=batch_polls)
    server = uvicorn.Server(_config(app, host, port, quiet_logging=True))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-provider"
    )
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fake provider did not start on {_root(host, port)}")
            time.sleep(0.005)
        log.info("fake provider (thread) on %s", _root(host, port))
        yield _root(host, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)
        sock.close()


@contextlib.contextmanager
def _in_process(
    host: str, port: int, latency_ms: float, jitter: float, timeout: float, batch_polls: int
) -> Iterator[str]:
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "evalpipe.fake",
        "--host",
        host,
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
        "--jitter",
        str(jitter),
        "--batch-polls",
        str(batch_polls),
    ]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    pass_fds: tuple[int, ...] = ()
    if os.name == "posix":
        cmd += ["--fd", str(sock.fileno()), "--parent-pid", str(os.getpid())]
        pass_fds = (sock.fileno(),)
    else:
        sock.close()  # the child binds the port itself
    with tempfile.TemporaryFile() as errors:
        proc = _sp.Popen(
            cmd, env=env, pass_fds=pass_fds, stdin=_sp.DEVNULL, stdout=_sp.DEVNULL, stderr=errors
        )
        sock.close()
        try:
            deadline = time.monotonic() + timeout
            while not _healthy(host, port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    errors.seek(0)
                    tail = errors.read()[-2000:].decode(errors="replace").strip()
                    raise RuntimeError(
                        f"the fake provider did not start on {_root(host, port)}: {tail or proc.poll()}"
                    )
                time.sleep(0.02)
            log.info("fake provider (pid %d) on %s", proc.pid, _root(host, port))
            yield _root(host, port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except _sp.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@contextlib.contextmanager
def serving(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    latency_ms: float = 20.0,
    jitter: float = 0.5,
    subprocess: bool = False,
    startup_timeout: float = 30.0,
    batch_polls: int = 0,
) -> Iterator[str]:
    """Run the fake provider for the duration of the block; yields its root URL.

    Args:
        host: address to bind (loopback by default).
        port: 0 picks a free port.
        latency_ms: mean answer latency (see `create_app`).
        jitter: spread of each answer's latency around the mean (see `create_app`).
        subprocess: run it in a child process (so it uses another CPU core) instead of a thread.
        startup_timeout: seconds to wait until it answers.
        batch_polls: a batch ends at its poll number `batch_polls` (0: the first poll).

    Raises:
        RuntimeError: the server did not start.
    """
    run = _in_process if subprocess else _in_thread
    with run(host, port, latency_ms, jitter, startup_timeout, batch_polls) as root:
        yield root


@contextlib.contextmanager
def builtin_fake(*, latency_ms: float = 20.0) -> Iterator[str]:
    """The fake provider that `base_url: builtin:fake` points at, for the duration of a run.

    Started in a child process (another CPU core), unless `EVALPIPE_FAKE_URL` already names a
    running one. Yields its root URL.
    """
    running = os.environ.get(FAKE_URL_ENV)
    if running:
        yield running
        return
    with serving(latency_ms=latency_ms, subprocess=True) as root:
        os.environ[FAKE_URL_ENV] = root
        try:
            yield root
        finally:
            os.environ.pop(FAKE_URL_ENV, None)
