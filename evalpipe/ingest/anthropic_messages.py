"""`anthropic_messages@1`: Anthropic Messages logs (``{"request", "response", ...envelope}``).

The response may be a message, an error, or the list of streamed events, which is reassembled.
Request and response converters are shared with `anthropic_batch`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import orjson

from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    bool_or_none,
    canonical_request,
    envelope,
    expect_dict,
    expect_list,
    id_text,
    int_or_none,
    json_text,
    num_or_none,
    params_of,
    stop_list,
    str_or_none,
    timestamp_us,
)

__all__ = [
    "STOP_REASONS",
    "AnthropicMessages",
    "anthropic_request",
    "anthropic_response",
    "anthropic_shaped",
]

STOP_REASONS: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}
_KNOWN: Final = frozenset(
    {
        "model",
        "system",
        "messages",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "output_format",
    }
)
_DROPPED: Final = frozenset({"stream", "metadata"})


def _text(content: Any, field: str) -> str:
    """Text of a system prompt or tool result: a string, or text blocks joined."""
    if isinstance(content, str):
        return content
    texts = []
    for i, block in enumerate(expect_list(content, field)):
        block = expect_dict(block, f"{field}[{i}]")
        if block.get("type", "text") == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise BadRecord(f"{field}[{i}].text", "expected a string")
            texts.append(text)
    return "\n\n".join(texts) if field.endswith("system") else "".join(texts)


def _image(source: Any, field: str) -> dict[str, Any]:
    source = expect_dict(source, field)
    if source.get("type") == "base64":
        media = str_or_none(source.get("media_type"), f"{field}.media_type")
        data = str_or_none(source.get("data"), f"{field}.data") or ""
        return {"type": "image", "url": f"data:{media};base64,{data}", "media_type": media}
    url = source.get("url")
    if not isinstance(url, str):
        raise BadRecord(f"{field}.url", "expected a string")
    return {"type": "image", "url": url, "media_type": None}


def _blocks(
    role: str, content: Any, field: str, issues: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(tool results, other parts) of one message's content."""
    if isinstance(content, str):
        return [], [{"type": "text", "text": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(expect_list(content, field)):
        where = f"{field}[{i}]"
        block = expect_dict(block, where)
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise BadRecord(f"{where}.text", "expected a string")
            parts.append({"type": "text", "text": text})
        elif kind == "image":
            parts.append(_image(block.get("source"), f"{where}.source"))
        elif kind == "tool_use":
            name = block.get("name")
            if not isinstance(name, str):
                raise BadRecord(f"{where}.name", "missing tool name")
            parts.append(
                {
                    "type": "tool_call",
                    "id": str_or_none(block.get("id"), f"{where}.id"),
                    "name": name,
                    "arguments": block.get("input") if block.get("input") is not None else {},
                }
            )
        elif kind == "tool_result":
            inner = block.get("content")
            result: Any
            try:
                result = _text(inner, f"{where}.content") if inner is not None else ""
            except BadRecord:
                result = inner
            results.append(
                {
                    "type": "tool_result",
                    "tool_call_id": str_or_none(block.get("tool_use_id"), f"{where}.tool_use_id"),
                    "content": result,
                    "is_error": bool(block.get("is_error", False)),
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's earlier reasoning is not part of what a replay sends
        elif isinstance(kind, str):
            parts.append(dict(block))
            issues.append(f"untranslatable: {kind} content")
        else:
            raise BadRecord(f"{where}.type", "missing content block type")
    return results, parts


def _tools(raw: Any, issues: list[str]) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    out = []
    for i, tool in enumerate(expect_list(raw, "request.tools")):
        tool = expect_dict(tool, f"request.tools[{i}]")
        if "input_schema" not in tool:  # server tools (web search, code execution …)
            issues.append(f"untranslatable: {tool.get('type') or 'server'} tool")
            out.append(dict(tool))
            continue
        name = tool.get("name")
        if not isinstance(name, str):
            raise BadRecord(f"request.tools[{i}].name", "missing tool name")
        out.append(
            {
                "name": name,
                "description": str_or_none(
                    tool.get("description"), f"request.tools[{i}].description"
                ),
                "parameters": expect_dict(tool["input_schema"], f"request.tools[{i}].input_schema"),
            }
        )
    return out


def _tool_choice(raw: Any) -> Any:
    if raw is None:
        return None
    choice = expect_dict(raw, "request.tool_choice")
    kind = choice.get("type")
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"name": choice["name"]}
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if mapped is None:
        raise BadRecord("request.tool_choice.type", f"unknown tool choice {kind!r}")
    return mapped


def _output_format(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    fmt = expect_dict(raw, "request.output_format")
    if fmt.get("type") == "json_schema":
        return {
            "type": "json_schema",
            "name": str_or_none(fmt.get("name"), "request.output_format.name"),
            "schema": expect_dict(fmt.get("schema"), "request.output_format.schema"),
            "strict": bool(fmt.get("strict", True)),
        }
    raise BadRecord("request.output_format.type", f"unknown output format {fmt.get('type')!r}")


def anthropic_request(
    body: dict[str, Any], field: str = "request"
) -> tuple[dict[str, Any], list[str]]:
    """The canonical request (as a dict) of a Messages body, and its replay issues."""
    issues: list[str] = []
    system = body.get("system")
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(expect_list(body.get("messages"), f"{field}.messages")):
        where = f"{field}.messages[{i}]"
        msg = expect_dict(msg, where)
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise BadRecord(
                f"{where}.role",
                "missing role" if not isinstance(role, str) else f"unknown role {role[:40]!r}",
            )
        results, parts = _blocks(role, msg.get("content"), f"{where}.content", issues)
        # tool results travel as a `tool` message, as in requests logged from OpenAI
        if results:
            messages.append({"role": "tool", "content": results})
        if parts or not results:
            messages.append({"role": role, "content": parts})
    extra = {k: v for k, v in body.items() if k not in _KNOWN and k not in _DROPPED}
    # The current API puts structured output in output_config.format (the beta: output_format).
    output = body.get("output_format")
    config = body.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("format"), dict):
        output = output or config["format"]
        rest = {k: v for k, v in config.items() if k != "format"}
        if rest:
            extra["output_config"] = rest
        else:
            extra.pop("output_config", None)
    choice = body.get("tool_choice")
    disable = choice.get("disable_parallel_tool_use") if isinstance(choice, dict) else None
    disable = bool_or_none(disable, f"{field}.tool_choice.disable_parallel_tool_use")
    request = {
        "system": _text(system, f"{field}.system") if system is not None else None,
        "messages": messages,
        "tools": _tools(body.get("tools"), issues),
        "tool_choice": _tool_choice(choice),
        "response_format": _output_format(output),
        "params": params_of(
            max_tokens=int_or_none(body.get("max_tokens"), f"{field}.max_tokens"),
            temperature=num_or_none(body.get("temperature"), f"{field}.temperature"),
            top_p=num_or_none(body.get("top_p"), f"{field}.top_p"),
            stop=stop_list(body.get("stop_sequences"), f"{field}.stop_sequences"),
            seed=None,
            extra=extra,
            parallel_tool_calls=None if disable is None else not disable,
        ),
    }
    if not messages:
        issues.append("no_content_captured")
    return request, issues


def _reassemble(events: list[Any]) -> dict[str, Any]:
    """One message from the streamed events (message_start … message_stop)."""
    message: dict[str, Any] = {"type": "message", "content": []}
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, list[str]] = {}
    usage: dict[str, Any] = {}
    for i, event in enumerate(events):
        event = expect_dict(event, f"response[{i}]")
        kind = event.get("type")
        if kind == "message_start":
            start = expect_dict(event.get("message"), f"response[{i}].message")
            message.update({k: v for k, v in start.items() if k not in ("content", "usage")})
            usage.update(expect_dict(start.get("usage"), f"response[{i}].usage", required=False))
        elif kind == "content_block_start":
            index = event.get("index", len(blocks))
            blocks[index] = dict(expect_dict(event.get("content_block"), f"response[{i}]"))
        elif kind == "content_block_delta":
            index = event.get("index", 0)
            delta = expect_dict(event.get("delta"), f"response[{i}].delta")
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
            elif delta.get("type") == "input_json_delta":
                partial.setdefault(index, []).append(str(delta.get("partial_json") or ""))
        elif kind == "message_delta":
            delta = expect_dict(event.get("delta"), f"response[{i}].delta", required=False)
            message.update({k: v for k, v in delta.items() if v is not None})
            usage.update(expect_dict(event.get("usage"), f"response[{i}].usage", required=False))
        elif kind == "error":
            message = {"type": "error", "error": event.get("error")}
            return message
    for index, pieces in partial.items():
        text = "".join(pieces)
        try:
            blocks[index]["input"] = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            blocks[index]["input"] = text
    message["content"] = [blocks[k] for k in sorted(blocks)]
    message["usage"] = usage
    return message


def anthropic_response(response: Any, row: Row, field: str = "response") -> None:
    """Fill the output columns of `row` from a Messages response (or its streamed events)."""
    if isinstance(response, list):
        response = _reassemble(response)
    response = expect_dict(response, field)
    if response.get("type") == "error" or "error" in response:
        error = response.get("error")
        row["status"], row["finish_reason"] = "error", "error"
        kind = error.get("type") if isinstance(error, dict) else None
        row["error_type"] = str(kind) if kind is not None else "error"
        return
    row["response_model"] = str_or_none(response.get("model"), f"{field}.model")
    usage = expect_dict(response.get("usage"), f"{field}.usage", required=False)
    base = int_or_none(usage.get("input_tokens"), f"{field}.usage.input_tokens")
    read = int_or_none(
        usage.get("cache_read_input_tokens"), f"{field}.usage.cache_read_input_tokens"
    )
    write = int_or_none(
        usage.get("cache_creation_input_tokens"), f"{field}.usage.cache_creation_input_tokens"
    )
    # Anthropic's input_tokens excludes cache reads and writes; the canonical count includes them.
    row["input_tokens"] = None if base is None else base + (read or 0) + (write or 0)
    row["cached_input_tokens"] = read
    row["output_tokens"] = int_or_none(usage.get("output_tokens"), f"{field}.usage.output_tokens")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(
        expect_list(response.get("content"), f"{field}.content", required=False)
    ):
        block = expect_dict(block, f"{field}.content[{i}]")
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": id_text(block.get("id")),
                    "name": str_or_none(block.get("name"), f"{field}.content[{i}].name"),
                    "arguments": block.get("input") if block.get("input") is not None else {},
                }
            )
    row["output_text"] = "".join(texts)
    row["output_tool_calls"] = json_text(calls) if calls else None
    stop = response.get("stop_reason")
    row["finish_reason"] = None if stop is None else STOP_REASONS.get(str(stop), "other")
    row["status"] = "ok"


class AnthropicMessages(Adapter):
    """Messages API logs: ``{"request": {...}, "response": {type: message} | [events], ...}``."""

    name: ClassVar[str] = "anthropic_messages"
    version: ClassVar[int] = 1
    parallel_safe: ClassVar[bool] = True
    provider: ClassVar[str | None] = "anthropic"

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        response = obj.get("response")
        if isinstance(response, dict) and response.get("type") == "message":
            return True
        if isinstance(response, list) and response and isinstance(response[0], dict):
            return response[0].get("type") == "message_start"
        request = obj.get("request")
        if isinstance(request, dict):
            return anthropic_shaped(request)
        return obj.get("type") == "message" and "content" in obj and "messages" in obj

    def convert(self, obj: Any, loc: Location) -> list[Row]:
        obj = expect_dict(obj, None)
        row: Row = {"provider": self.provider}
        if "request" in obj or "response" in obj:
            body = expect_dict(obj.get("request"), "request")
            response = obj.get("response")
        else:  # a flat record: the request's fields beside the message's
            body = {
                k: v for k, v in obj.items() if k not in _MESSAGE_KEYS and k not in _ENVELOPE_KEYS
            }
            response = {k: v for k, v in obj.items() if k in _MESSAGE_KEYS}
            response["model"] = obj.get("model")
        metadata = envelope(obj, row)
        request, issues = anthropic_request(body)
        row["request"], row["request_sha256"] = canonical_request(request)
        row["model"] = str_or_none(body.get("model"), "request.model")
        row["request_raw"] = json_text(body)
        if issues and row.get("replayable") is not False:
            row["replayable"], row["replay_issue"] = False, issues[0]
        meta_user = expect_dict(body.get("metadata"), "request.metadata", required=False)
        if row.get("user_id") is None and isinstance(meta_user.get("user_id"), str):
            row["user_id"] = meta_user["user_id"]
        if response is not None:
            row["response_raw"] = json_text(response)
            anthropic_response(response, row)
        response_id = None
        if isinstance(response, dict):
            response_id = id_text(response.get("id"))
        elif isinstance(response, list) and response and isinstance(response[0], dict):
            start = response[0].get("message")
            response_id = id_text(start.get("id")) if isinstance(start, dict) else None
        row["record_id"] = (
            id_text(obj.get("custom_id"))
            or id_text(metadata.get("request_id"))
            or id_text(obj.get("request_id"))
            or response_id
        )
        if row.get("timestamp") is None and obj.get("created_at") is not None:
            row["timestamp"] = timestamp_us(obj.get("created_at"), "created_at")
        return [row]


_MESSAGE_KEYS: Final = frozenset(
    {"id", "type", "role", "content", "stop_reason", "stop_sequence", "usage", "error"}
)
_ENVELOPE_KEYS: Final = frozenset(
    {
        "latency_ms",
        "ttft_ms",
        "timestamp",
        "metadata",
        "labels",
        "reference",
        "session_id",
        "user_id",
        "request_id",
        "provider",
        "truncated",
        "redacted",
        "created_at",
    }
)


def anthropic_shaped(request: dict[str, Any]) -> bool:
    """A Messages body: top-level system with max_tokens, or Anthropic content blocks."""
    if "system" in request and "max_tokens" in request:
        return True
    if "stop_sequences" in request:
        return True
    for msg in request.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if kind in ("tool_use", "tool_result", "thinking") or (
                    kind == "image" and "source" in part
                ):
                    return True
    return False
