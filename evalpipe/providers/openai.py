"""Requests through the real `openai` SDK (also any OpenAI-compatible server via base_url)."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import openai
import orjson
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from evalpipe.providers.calls import (
    CallOutcome,
    api_key,
    api_status_failure,
    invalid_body_failure,
    transport_failure,
)

__all__ = ["call_openai", "completion_outcome", "make_openai_client"]

RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"  # the SDK's own switch to return the raw response

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def make_openai_client(
    *, base_url: str | None, api_key_env: str | None, timeout_s: float, connections: int
) -> openai.AsyncOpenAI:
    """An AsyncOpenAI client that sends each attempt once, with a connection pool of `connections`;
    the key comes only from the environment."""
    key = api_key(api_key_env or "OPENAI_API_KEY", base_url)
    pool = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=base_url,
        timeout=timeout_s,
        max_retries=0,  # replay retries itself (replay/retry.py)
        http_client=openai.DefaultAsyncHttpxClient(limits=pool),
    )


async def call_openai(client: openai.AsyncOpenAI, kwargs: dict[str, Any]) -> CallOutcome:
    """Send one chat completion (streamed when kwargs say `stream`); failures come back as an
    error outcome, fatal ones raise."""
    started = time.perf_counter()
    if kwargs.get("stream"):
        return await _call_streaming(client, kwargs, started)
    try:
        raw: Any = await client.post(  # a raw response, by the header below
            "/chat/completions",
            body=_body(kwargs),
            cast_to=ChatCompletion,
            options={"headers": {RAW_RESPONSE_HEADER: "true"}},
        )
    except openai.APIStatusError as exc:
        return api_status_failure(exc, started=started)
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        return transport_failure(exc, started=started)
    try:
        return _outcome(raw.parse(), raw.http_response.status_code, started)
    except Exception as exc:  # the SDK reads a body it cannot parse lazily: any error is the body's
        return invalid_body_failure(
            exc, status=raw.http_response.status_code, started=started, expected="a chat completion"
        )


async def _call_streaming(
    client: openai.AsyncOpenAI, kwargs: dict[str, Any], started: float
) -> CallOutcome:
    """Stream one chat completion (usage in its last chunk); ttft_ms is the first content."""
    from openai.lib.streaming.chat import ChatCompletionStreamState

    body = {**_body(kwargs), "stream": True, "stream_options": {"include_usage": True}}
    try:
        stream = await client.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
    except openai.APIStatusError as exc:
        return api_status_failure(exc, started=started)
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        return transport_failure(exc, started=started)
    status = stream.response.status_code
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    first: float | None = None
    try:
        async for chunk in stream:
            if first is None and any(
                c.delta.content or c.delta.tool_calls or c.delta.refusal for c in chunk.choices
            ):
                first = time.perf_counter()
            state.handle_chunk(chunk)
        outcome = _outcome(state.get_final_completion(), status, started)
    except openai.APIStatusError as exc:
        return api_status_failure(exc, started=started)
    except (openai.APIConnectionError, openai.APITimeoutError, httpx2.TransportError) as exc:
        return transport_failure(exc, started=started)
    except Exception as exc:  # an event that is not a chunk, or chunks that make no completion
        return invalid_body_failure(exc, status=status, started=started, expected="a chunk stream")
    finally:
        await stream.close()
    outcome.ttft_ms = (first - started) * 1000 if first is not None else outcome.latency_ms
    return outcome


def completion_outcome(body: Any, status: int = 200) -> CallOutcome:
    """The columns of a chat completion read from a file (a batch's output line), without a
    latency; raises when the body is not a chat completion."""
    if not isinstance(body, dict):
        raise TypeError(f"got {type(body).__name__}, not a chat completion object")
    outcome = _outcome(ChatCompletion.construct(**body), status, time.perf_counter())
    outcome.latency_ms = None
    return outcome


def _outcome(completion: ChatCompletion, status: int, started: float) -> CallOutcome:
    """A completion's columns; raises when the body is not a chat completion (no choices)."""
    if not isinstance(completion, ChatCompletion) or not isinstance(completion.choices, list):
        raise TypeError(f"got {type(completion).__name__} without a list of choices")
    latency = (time.perf_counter() - started) * 1000
    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice else None
    calls = (
        [
            {"id": c.id, "name": c.function.name, "arguments": _maybe_json(c.function.arguments)}
            for c in (message.tool_calls or [])
            if c.type == "function"
        ]
        if message
        else []
    )
    usage = completion.usage
    finish = _FINISH.get(choice.finish_reason or "", "other") if choice else "other"
    if message is not None and message.refusal:
        finish = "refusal"
    return CallOutcome(
        response_model=completion.model,
        system_fingerprint=completion.system_fingerprint,
        output_text=(message.content or message.refusal or "") if message else "",
        output_tool_calls=orjson.dumps(calls).decode() if calls else None,
        finish_reason=finish,
        input_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.completion_tokens if usage else None,
        cached_input_tokens=(
            usage.prompt_tokens_details.cached_tokens
            if usage and usage.prompt_tokens_details
            else None
        ),
        reasoning_tokens=(
            usage.completion_tokens_details.reasoning_tokens
            if usage and usage.completion_tokens_details
            else None
        ),
        latency_ms=latency,
        http_status=status,
    )


def _body(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The request body as `chat.completions.create(**kwargs)` would send it.

    Posting through the client keeps the SDK's HTTP stack, retries and error classes but skips its
    typed-parameter transform, which costs about 1 ms per request with a JSON schema (measured).
    """
    body = {k: v for k, v in kwargs.items() if k not in ("extra_body", "stream")}
    body.update(kwargs.get("extra_body") or {})
    return body


def _maybe_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
