"""Builders of small log files for the ingest tests."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson


def write_jsonl(path: Path, items: list[Any], *, gz: bool = False) -> Path:
    """Write items (dicts, or raw bytes written as-is) one per line."""
    data = b"".join((i if isinstance(i, bytes) else orjson.dumps(i)) + b"\n" for i in items)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def chat_record(
    i: int = 0,
    *,
    text: str = "hello",
    content: str | None = None,
    metadata: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One openai_chat@1 log record."""
    record: dict[str, Any] = {
        "request": {
            "model": "gpt-4o-mini",
            "temperature": 0.2,
            "max_tokens": 100,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": content if content is not None else f"question {i}"},
            ],
        },
        "response": {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": 1729730156 + i,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        },
        "latency_ms": 120.5,
        "timestamp": f"2024-10-24T00:00:{i % 60:02d}Z",
        "metadata": {"feature": "faq", "tenant": f"t{i % 3}", "request_id": f"req_{i}"}
        if metadata is None
        else metadata,
    }
    record.update(extra)
    return record


def anthropic_message(
    text: str = "hi", *, id: str = "msg_1", model: str = "claude-haiku-4-5", tokens: int = 3
) -> dict[str, Any]:
    """One Anthropic Messages response (`type: message`) with a text block."""
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": tokens, "output_tokens": 1},
    }


# --- OpenTelemetry (OTLP JSON) -----------------------------------------------------------------


def otlp_attribute(key: str, value: Any) -> dict[str, Any]:
    """One OTLP JSON key/value (an int as the decimal string OTLP JSON uses)."""
    if isinstance(value, bool):
        v: dict[str, Any] = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, list):
        v = {"arrayValue": {"values": [{"stringValue": x} for x in value]}}
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def otel_span(
    span_id: str,
    attrs: dict[str, Any],
    *,
    events: list[Any] | None = None,
    name: str = "chat gpt-4o",
    status: int = 1,
) -> dict[str, Any]:
    """One OTLP JSON span with the given attributes."""
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": name,
        "kind": 3,
        "startTimeUnixNano": "1729730156000000000",
        "endTimeUnixNano": "1729730156750000000",
        "attributes": [otlp_attribute(k, v) for k, v in attrs.items()],
        "events": events or [],
        "status": {"code": status},
    }


def otlp_document(*spans: dict[str, Any]) -> dict[str, Any]:
    """An OTLP JSON document (one resource, one scope) holding the spans."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [otlp_attribute("service.name", "support-bot")]},
                "scopeSpans": [{"scope": {"name": "openai"}, "spans": list(spans)}],
            }
        ]
    }


# Attributes of a chat span without content.
OTEL_CHAT: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 20,
    "gen_ai.usage.output_tokens": 5,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 100,
    "gen_ai.conversation.id": "conv_1",
}


# --- canonical messages ----------------------------------------------------------------------


def text_message(role: str, text: str) -> dict[str, Any]:
    """A canonical message of one text part."""
    return {"role": role, "content": [{"type": "text", "text": text}]}


def tool_call_part(cid: str, name: str, arguments: Any) -> dict[str, Any]:
    """A canonical tool_call part."""
    return {"type": "tool_call", "id": cid, "name": name, "arguments": arguments}


def tool_result_message(cid: str | None, content: str) -> dict[str, Any]:
    """A canonical tool message holding one tool_result."""
    part = {"type": "tool_result", "tool_call_id": cid, "content": content, "is_error": False}
    return {"role": "tool", "content": [part]}
