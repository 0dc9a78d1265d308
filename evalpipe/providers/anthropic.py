"""Requests through the real `anthropic` SDK."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx2
import orjson
from anthropic.types import Message

from evalpipe.providers.calls import (
    CallOutcome,
    api_key,
    api_status_failure,
    invalid_body_failure,
    transport_failure,
)

__all__ = ["call_anthropic", "make_anthropic_client", "message_outcome"]

_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
    "pause_turn": "other",
}


def make_anthropic_client(
    *, base_url: str | None, api_key_env: str | None, timeout_s: float, connections: int
) -> anthropic.AsyncAnthropic:
    """An AsyncAnthropic client that sends each attempt once, with a connection pool of `connections`;
    the key comes only from the environment."""
    key = api_key(api_key_env or "ANTHROPIC_API_KEY", base_url)
    pool = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    return anthropic.AsyncAnthropic(
        api_key=key,
        base_url=base_url,
        timeout=timeout_s,
        max_retries=0,  # replay retries itself (replay/retry.py)
        http_client=anthropic.DefaultAsyncHttpxClient(limits=pool),
    )


async def call_anthropic(client: anthropic.AsyncAnthropic, kwargs: dict[str, Any]) -> CallOutcome:
    """Send one message (streamed when kwargs say `stream`); failures come back as an error
    outcome, fatal ones raise."""
    started = time.perf_counter()
    if kwargs.get("stream"):
        return await _call_streaming(client, kwargs, started)
    try:
        body = {k: v for k, v in kwargs.items() if k != "extra_body"}
        body.update(kwargs.get("extra_body") or {})
        raw: Any = await client.post(  # a raw response, by the header below
            "/v1/messages",
            body=body,
            cast_to=Message,
            options={
                "headers": {"X-Stainless-Raw-Response": "raw"}
            },  # the SDK's raw-response switch
        )
    except anthropic.APIStatusError as exc:
        return api_status_failure(exc, started=started)
    except (anthropic.APIConnectionError, anthropic.APITimeoutError) as exc:
        return transport_failure(exc, started=started)
    try:
        return _outcome(await raw.parse(), raw.http_response.status_code, started)
    except Exception as exc:  # the SDK reads a body it cannot parse lazily: any error is the body's
        return invalid_body_failure(
            exc, status=raw.http_response.status_code, started=started, expected="a message"
        )


async def _call_streaming(
    client: anthropic.AsyncAnthropic, kwargs: dict[str, Any], started: float
) -> CallOutcome:
    """Stream one message through the SDK's message stream; ttft_ms is the first content delta."""
    first: float | None = None
    status: int | None = None
    try:
        manager = client.messages.stream(**{k: v for k, v in kwargs.items() if k != "stream"})
        async with manager as stream:
            status = stream.response.status_code
            async for event in stream:
                if first is None and event.type == "content_block_delta":
                    first = time.perf_counter()
            outcome = _outcome(await stream.get_final_message(), status, started)
    except anthropic.APIStatusError as exc:
        return api_status_failure(exc, started=started)
    except (anthropic.APIConnectionError, anthropic.APITimeoutError, httpx2.TransportError) as exc:
        return transport_failure(exc, started=started)
    except Exception as exc:  # events that make no message
        return invalid_body_failure(
            exc, status=status or 200, started=started, expected="a message stream"
        )
    outcome.ttft_ms = (first - started) * 1000 if first is not None else outcome.latency_ms
    return outcome


def message_outcome(message: Message) -> CallOutcome:
    """The columns of a message read from a batch's results, without a latency; raises when it
    is not a message."""
    outcome = _outcome(message, 200, time.perf_counter())
    outcome.latency_ms = None
    return outcome


def _outcome(message: Message, status: int, started: float) -> CallOutcome:
    """A message's columns; raises when the body is not a message (no list of content blocks)."""
    if not isinstance(message, Message) or not isinstance(message.content, list):
        raise TypeError(f"got {type(message).__name__} without a list of content blocks")
    latency = (time.perf_counter() - started) * 1000
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text)
        elif block.type == "tool_use":
            calls.append({"id": block.id, "name": block.name, "arguments": block.input})
    usage = message.usage
    cache_read = getattr(usage, "cache_read_input_tokens", None) or 0
    cache_write = getattr(usage, "cache_creation_input_tokens", None) or 0
    return CallOutcome(
        response_model=message.model,
        output_text="".join(texts),
        output_tool_calls=orjson.dumps(calls).decode() if calls else None,
        finish_reason=_STOP.get(message.stop_reason or "", "other"),
        # Anthropic's input_tokens excludes cache reads and writes; the canonical count includes them.
        input_tokens=usage.input_tokens + cache_read + cache_write,
        output_tokens=usage.output_tokens,
        cached_input_tokens=cache_read,
        latency_ms=latency,
        http_status=status,
    )
