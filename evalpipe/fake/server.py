"""The fake provider: OpenAI chat completions and Anthropic Messages over real HTTP (Starlette).

Clients are the real SDKs: OpenAI with ``base_url=f"{root}/v1"``, Anthropic with ``base_url=root``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from evalpipe.fake.behaviours import Answer, Behaviour, answer, h, resolve_model

__all__ = ["create_app", "openai_completion", "run_server", "serving"]

log = logging.getLogger(__name__)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, dict):
                continue
            kind = p.get("type")
            if kind == "text":
                parts.append(str(p.get("text", "")))
            elif kind == "tool_use":
                parts.append(orjson.dumps(p.get("input")).decode())
            elif kind == "tool_result":
                parts.append(_text_of(p.get("content")))
        return "\n".join(parts)
    return str(content)


def _openai_conversation(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    system, messages = [], []
    for m in body.get("messages") or []:
        role = m.get("role")
        text = _text_of(m.get("content"))
        if role in ("system", "developer"):
            system.append(text)
            continue
        if m.get("tool_calls"):
            text += "".join(orjson.dumps(c.get("function")).decode() for c in m["tool_calls"])
        messages.append(("user" if role == "tool" else str(role), text))
    return "\n".join(system), _merge(messages)


def _anthropic_conversation(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    system = _text_of(body.get("system"))
    messages = [
        (str(m.get("role")), _text_of(m.get("content"))) for m in body.get("messages") or []
    ]
    return system, _merge(messages)


def _merge(messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Same-role runs are merged so both APIs yield the same conversation (Anthropic merges them).
    out: list[tuple[str, str]] = []
    for role, text in messages:
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + "\n\n" + text)
        else:
            out.append((role, text))
    return out


class _State:
    def __init__(self, latency_ms: float) -> None:
        self.latency_ms = latency_ms
        self.attempts: dict[int, int] = {}
        self.requests = 0


def _error(
    status: int,
    message: str,
    *,
    anthropic: bool,
    kind: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    if anthropic:
        body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _prelude(
    request: Request, state: _State, *, anthropic: bool
) -> tuple[dict[str, Any], Behaviour, str] | Response:
    """Auth, body, model; or the error response a real provider would give."""
    state.requests += 1
    # Anthropic's SDK sends x-api-key or (2.x) a bearer token; OpenAI's a bearer token.
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    key = (request.headers.get("x-api-key") or bearer) if anthropic else bearer
    if not key or key == "bad-key":
        kind = "authentication_error" if anthropic else "invalid_request_error"
        return _error(
            401, "Invalid API key provided.", anthropic=anthropic, kind=kind, code="invalid_api_key"
        )
    try:
        body = orjson.loads(await request.body())
        if not isinstance(body, dict):
            raise ValueError
    except (orjson.JSONDecodeError, ValueError):
        return _error(
            400,
            "The request body is not valid JSON.",
            anthropic=anthropic,
            kind="invalid_request_error",
        )
    model = body.get("model")
    if not isinstance(model, str) or not body.get("messages"):
        return _error(
            400,
            "`model` and `messages` are required.",
            anthropic=anthropic,
            kind="invalid_request_error",
        )
    resolved = resolve_model(model)
    if resolved is None:
        if anthropic:
            return _error(404, f"model: {model}", anthropic=True, kind="not_found_error")
        return _error(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            anthropic=False,
            kind="invalid_request_error",
            code="model_not_found",
        )
    behaviour, snapshot = resolved
    digest = h(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    await asyncio.sleep(
        state.latency_ms * behaviour.latency_factor * (0.5 + (digest % 1000) / 1000) / 1000
    )
    if behaviour.name == "flaky" and digest % 5 == 0:
        seen = state.attempts.get(digest, 0)
        state.attempts[digest] = seen + 1
        if seen == 0:
            if digest % 2:
                return _error(
                    503,
                    "The server is overloaded.",
                    anthropic=anthropic,
                    kind="overloaded_error" if anthropic else "server_error",
                )
            return _error(
                429,
                "Rate limit reached.",
                anthropic=anthropic,
                kind="rate_limit_error",
                headers={"retry-after": "0"},
            )
    return body, behaviour, snapshot


def _openai_body(body: dict[str, Any], snapshot: str, ans: Answer, prompt: str) -> dict[str, Any]:
    key = h(snapshot, prompt, ans.text)
    calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": orjson.dumps(c["arguments"]).decode()},
        }
        for c in ans.tool_calls
    ]
    message: dict[str, Any] = {"role": "assistant", "content": ans.text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    p, c = _tokens(prompt), _tokens(ans.text or orjson.dumps(ans.tool_calls).decode())
    return {
        "id": f"chatcmpl-{key:029d}"[:38],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": snapshot,
        "system_fingerprint": f"fp_{h(snapshot) % 16**10:010x}",
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": ans.finish}
        ],
        "usage": {
            "prompt_tokens": p,
            "completion_tokens": c,
            "total_tokens": p + c,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    }


def openai_completion(body: dict[str, Any], behaviour: str = "baseline") -> dict[str, Any]:
    """The chat.completion a behaviour returns for a request body, without HTTP (demo logs)."""
    from evalpipe.fake.behaviours import BEHAVIOURS

    resolved = resolve_model(body["model"])
    snapshot = resolved[1] if resolved else body["model"]
    system, messages = _openai_conversation(body)
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    tools = [t.get("function", {}) for t in body.get("tools") or []]
    ans = answer(BEHAVIOURS[behaviour], system, messages, schema=schema,
                 json_mode=fmt.get("type") == "json_object", tools=tools,
                 max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"))
    return _openai_body(body, snapshot, ans, system + "".join(t for _, t in messages))


async def chat_completions(request: Request) -> Response:
    state: _State = request.app.state.fake
    pre = await _prelude(request, state, anthropic=False)
    if isinstance(pre, Response):
        return pre
    body, behaviour, snapshot = pre
    system, messages = _openai_conversation(body)
    fmt = body.get("response_format") or {}
    schema = (
        (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    )
    tools = [t.get("function", {}) for t in body.get("tools") or []]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    ans = answer(
        behaviour,
        system,
        messages,
        schema=schema,
        json_mode=fmt.get("type") == "json_object",
        tools=tools,
        max_tokens=max_tokens,
    )
    prompt = system + "".join(t for _, t in messages)
    out = _openai_body(body, snapshot, ans, prompt)
    if not body.get("stream"):
        return JSONResponse(out)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return StreamingResponse(_openai_stream(out, include_usage), media_type="text/event-stream")


async def _openai_stream(out: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    base = {k: out[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    msg = out["choices"][0]["message"]

    def chunk(
        delta: dict[str, Any], finish: str | None = None, usage: Any = None, choices: bool = True
    ) -> bytes:
        data = dict(
            base,
            choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if choices
            else [],
        )
        if include_usage:
            data["usage"] = usage
        return b"data: " + orjson.dumps(data) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    text = msg.get("content") or ""
    for i in range(0, len(text), 24):
        yield chunk({"content": text[i : i + 24]})
    for j, call in enumerate(msg.get("tool_calls") or []):
        yield chunk({"tool_calls": [dict(call, index=j)]})
    yield chunk({}, out["choices"][0]["finish_reason"])
    if include_usage:
        yield chunk({}, usage=out["usage"], choices=False)
    yield b"data: [DONE]\n\n"


_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


async def messages_endpoint(request: Request) -> Response:
    state: _State = request.app.state.fake
    pre = await _prelude(request, state, anthropic=True)
    if isinstance(pre, Response):
        return pre
    body, behaviour, snapshot = pre
    if not isinstance(body.get("max_tokens"), int):
        return _error(
            400, "max_tokens: Field required", anthropic=True, kind="invalid_request_error"
        )
    system, messages = _anthropic_conversation(body)
    fmt = (body.get("output_config") or {}).get("format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    tools = [
        {"name": t.get("name"), "parameters": t.get("input_schema")}
        for t in body.get("tools") or []
    ]
    ans = answer(
        behaviour,
        system,
        messages,
        schema=schema,
        json_mode=False,
        tools=tools,
        max_tokens=body.get("max_tokens"),
    )
    prompt = system + "".join(t for _, t in messages)
    content: list[dict[str, Any]] = [{"type": "text", "text": ans.text}] if ans.text else []
    content += [
        {
            "type": "tool_use",
            "id": c["id"].replace("call_", "toolu_"),
            "name": c["name"],
            "input": c["arguments"],
        }
        for c in ans.tool_calls
    ]
    out = {
        "id": f"msg_{h(snapshot, prompt, ans.text) % 10**24:024d}",
        "type": "message",
        "role": "assistant",
        "model": snapshot,
        "content": content,
        "stop_reason": _STOP[ans.finish],
        "stop_sequence": None,
        "usage": {
            "input_tokens": _tokens(prompt),
            "output_tokens": _tokens(ans.text or "x"),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    return JSONResponse(out)


async def models(request: Request) -> Response:
    from evalpipe.fake.behaviours import _MODELS

    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "evalpipe-fake"}
        for m in _MODELS
    ]
    return JSONResponse({"object": "list", "data": data})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "requests": request.app.state.fake.requests})


def create_app(*, latency_ms: float = 20.0) -> Starlette:
    """The fake provider's ASGI app."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/messages", messages_endpoint, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    app.state.fake = _State(latency_ms)
    return app


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )


def run_server(host: str, port: int, *, latency_ms: float = 20.0) -> None:
    """Serve until interrupted (the `evalpipe fake-provider` command)."""
    uvicorn.Server(_config(create_app(latency_ms=latency_ms), host, port)).run()


def _wait_healthy(root: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the fake provider exited with code {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{root}/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the fake provider did not answer on {root} within {timeout:.0f} s")


@contextlib.contextmanager
def serving(
    host: str = "127.0.0.1", port: int = 0, *, latency_ms: float = 20.0, subprocess: bool = False
) -> Iterator[str]:
    """Run the fake provider for the duration of the block; yields its root URL.

    Args:
        port: 0 picks a free port.
        subprocess: run it in a child process (uses another CPU core) instead of a thread.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    root = f"http://{host}:{port}"
    if subprocess:
        sock.close()
        env = dict(os.environ)
        proc = _popen(
            [
                sys.executable,
                "-m",
                "evalpipe.fake",
                "--host",
                host,
                "--port",
                str(port),
                "--latency-ms",
                str(latency_ms),
            ],
            env,
        )
        try:
            _wait_healthy(root, proc)
            yield root
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
        return
    server = uvicorn.Server(_config(create_app(latency_ms=latency_ms), host, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-provider"
    )
    thread.start()
    try:
        _wait_healthy(root, None)
        yield root
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _popen(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    import subprocess as sp

    return sp.Popen(cmd, env=env, stdout=sp.DEVNULL, stderr=sp.DEVNULL)
