"""`openai_chat@1`: Chat Completions request/response logs (also bare proxy-style records).

One record is ``{"request": {chat.completions body}, "response": {chat.completion} | [chunks],
"latency_ms", "ttft_ms", "timestamp", "metadata": {...}}``, or a bare body with the response's
``choices`` beside ``messages``. The request and response converters are shared with
`openai_batch`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from evalpipe.ingest.anthropic_messages import anthropic_shaped
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
    maybe_json,
    num_or_none,
    openai_usage,
    params_of,
    stop_list,
    str_or_none,
    timestamp_us,
)

__all__ = ["OpenAIChat", "chat_request", "chat_response"]

_FINISH: Final = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
    "error": "error",
}

# Request keys with a canonical home; every other key goes to params.extra.
_KNOWN: Final = frozenset(
    {
        "model",
        "messages",
        "tools",
        "functions",
        "tool_choice",
        "function_call",
        "response_format",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "parallel_tool_calls",
    }
)
# Keys about logging or transport, not the model's behaviour: neither replayed nor hashed.
_DROPPED: Final = frozenset({"stream", "stream_options", "user", "metadata", "store"})

_RESPONSE_KEYS: Final = frozenset(
    {"id", "object", "created", "choices", "usage", "system_fingerprint", "service_tier", "error"}
)
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


# --- request -------------------------------------------------------------------------------------


class Request:
    """A converted request: canonical JSON, its sha256, the model, and a replay issue if any."""

    __slots__ = ("issue", "json", "model", "sha256", "user")

    def __init__(
        self, json: str, sha256: str, model: str | None, issue: str | None, user: str | None
    ) -> None:
        self.json, self.sha256, self.model, self.issue, self.user = json, sha256, model, issue, user


def _text_of(content: Any, field: str) -> str:
    """Text of a system/developer message (string or text parts)."""
    if isinstance(content, str):
        return content
    parts = expect_list(content, field)
    texts = []
    for i, part in enumerate(parts):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
        else:
            raise BadRecord(f"{field}[{i}]", "expected a text part")
    return "".join(texts)


def _media_type(url: str) -> str | None:
    if url.startswith("data:"):
        return url[5:].split(";", 1)[0].split(",", 1)[0] or None
    return None


def _parts(content: Any, field: str, issues: list[str]) -> list[dict[str, Any]]:
    """Canonical content parts of a user/assistant message."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts = expect_list(content, field)
    out: list[dict[str, Any]] = []
    for i, part in enumerate(parts):
        where = f"{field}[{i}]"
        if isinstance(part, str):
            out.append({"type": "text", "text": part})
            continue
        part = expect_dict(part, where)
        kind = part.get("type")
        if kind == "text" or (kind is None and "text" in part):
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRecord(f"{where}.text", "expected a string")
            out.append({"type": "text", "text": text})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise BadRecord(f"{where}.image_url.url", "expected a string")
            out.append({"type": "image", "url": url, "media_type": _media_type(url)})
        elif isinstance(kind, str):
            # input_audio, file …: kept for the record, but the canonical request cannot carry it
            out.append(dict(part))
            issues.append(f"untranslatable: {kind} content")
        else:
            raise BadRecord(f"{where}.type", "missing content part type")
    return out


def _tool_calls(calls: Any, field: str) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(expect_list(calls, field)):
        call = expect_dict(call, f"{field}[{i}]")
        fn = expect_dict(call.get("function"), f"{field}[{i}].function", required=False)
        name = fn.get("name", call.get("name"))
        if not isinstance(name, str):
            raise BadRecord(f"{field}[{i}].function.name", "missing tool name")
        out.append(
            {
                "type": "tool_call",
                "id": str_or_none(call.get("id"), f"{field}[{i}].id"),
                "name": name,
                "arguments": maybe_json(fn.get("arguments", call.get("arguments"))),
            }
        )
    return out


def _tool_result_text(content: Any, field: str) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        try:
            return _text_of(content, field)
        except BadRecord:
            return content
    return content


def _messages(raw: list[Any], issues: list[str]) -> tuple[str | None, list[dict[str, Any]]]:
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(raw):
        where = f"request.messages[{i}]"
        msg = expect_dict(msg, where)
        role = msg.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            if not isinstance(role, str):
                raise BadRecord(f"{where}.role", "missing role")
            raise BadRecord(f"{where}.role", f"unknown role {role[:40]!r}")
        content = msg.get("content")
        if role in ("system", "developer"):
            system.append(_text_of(content, f"{where}.content") if content is not None else "")
        elif role in ("tool", "function"):
            call_id = msg.get("tool_call_id") if role == "tool" else msg.get("name")
            messages.append(
                {
                    "role": "tool",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_call_id": str_or_none(call_id, f"{where}.tool_call_id"),
                            "content": _tool_result_text(content, f"{where}.content"),
                            "is_error": False,
                        }
                    ],
                }
            )
        else:
            parts = _parts(content, f"{where}.content", issues)
            if role == "assistant":
                if msg.get("tool_calls") is not None:
                    parts.extend(_tool_calls(msg["tool_calls"], f"{where}.tool_calls"))
                if msg.get("function_call") is not None:
                    parts.extend(_tool_calls([msg["function_call"]], f"{where}.function_call"))
            messages.append({"role": role, "content": parts})
    return ("\n\n".join(system) if system else None), messages


def chat_tools(body: dict[str, Any], issues: list[str]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    legacy = body.get("functions")
    if tools is None and legacy is None:
        return None
    out = []
    for i, tool in enumerate(expect_list(tools, "request.tools", required=False)):
        tool = expect_dict(tool, f"request.tools[{i}]")
        kind = tool.get("type", "function")
        if kind != "function":
            issues.append(f"untranslatable: {kind} tool")
            out.append(dict(tool))
            continue
        fn = expect_dict(tool.get("function"), f"request.tools[{i}].function")
        out.append(_function(fn, f"request.tools[{i}].function"))
    for i, fn in enumerate(expect_list(legacy, "request.functions", required=False)):
        out.append(_function(expect_dict(fn, f"request.functions[{i}]"), f"request.functions[{i}]"))
    return out


def _function(fn: dict[str, Any], field: str) -> dict[str, Any]:
    name = fn.get("name")
    if not isinstance(name, str):
        raise BadRecord(f"{field}.name", "missing tool name")
    parameters = fn.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRecord(f"{field}.parameters", "expected an object")
    out: dict[str, Any] = {
        "name": name,
        "description": str_or_none(fn.get("description"), f"{field}.description"),
        "parameters": parameters if parameters is not None else {"type": "object"},
    }
    if fn.get("strict") is not None:
        out["strict"] = bool(fn["strict"])
    return out


def chat_tool_choice(body: dict[str, Any]) -> Any:
    choice = body.get("tool_choice", body.get("function_call"))
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if isinstance(name, str):
            return {"name": name}
        if choice.get("type") in ("auto", "none", "required"):
            return choice["type"]
    raise BadRecord("request.tool_choice", "expected a string or {function: {name}}")


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    fmt = expect_dict(value, "request.response_format")
    kind = fmt.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        spec = expect_dict(fmt.get("json_schema"), "request.response_format.json_schema")
        return {
            "type": "json_schema",
            "name": str_or_none(spec.get("name"), "request.response_format.json_schema.name"),
            "schema": expect_dict(
                spec.get("schema"), "request.response_format.json_schema.schema", required=False
            ),
            "strict": bool(spec.get("strict", False)),
        }
    raise BadRecord("request.response_format.type", f"unknown response format {kind!r}")


def chat_request(body: dict[str, Any]) -> Request:
    """Canonical form of a chat.completions request body."""
    issues: list[str] = []
    raw_messages = expect_list(body.get("messages"), "request.messages")
    system, messages = _messages(raw_messages, issues)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    seed = body.get("seed")
    extra = {k: v for k, v in body.items() if k not in _KNOWN and k not in _DROPPED}
    request = {
        "system": system,
        "messages": messages,
        "tools": chat_tools(body, issues),
        "tool_choice": chat_tool_choice(body),
        "response_format": _response_format(body.get("response_format")),
        "params": params_of(
            max_tokens=int_or_none(max_tokens, "request.max_tokens"),
            temperature=num_or_none(body.get("temperature"), "request.temperature"),
            top_p=num_or_none(body.get("top_p"), "request.top_p"),
            stop=stop_list(body.get("stop"), "request.stop"),
            seed=_seed(seed),
            extra=extra,
            parallel_tool_calls=bool_or_none(
                body.get("parallel_tool_calls"), "request.parallel_tool_calls"
            ),
        ),
    }
    text, sha = canonical_request(request)
    if not messages and system is None:
        issues.append("no_content_captured")
    user = body.get("user")
    return Request(
        text,
        sha,
        str_or_none(body.get("model"), "request.model"),
        issues[0] if issues else None,
        user if isinstance(user, str) and user else None,
    )


def _seed(value: Any) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise BadRecord("request.seed", "expected an integer")


# --- response ------------------------------------------------------------------------------------


def _finish(value: Any) -> str | None:
    if value is None:
        return None
    return _FINISH.get(str(value), "other")


def _reassemble(chunks: list[Any]) -> dict[str, Any]:
    """One chat.completion from a streamed list of chat.completion.chunk objects."""
    out: dict[str, Any] = {"object": "chat.completion"}
    text: list[str] = []
    refusal: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for i, chunk in enumerate(chunks):
        chunk = expect_dict(chunk, f"response[{i}]")
        for key in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(key) is not None:
                out[key] = chunk[key]
        if chunk.get("usage") is not None:
            out["usage"] = chunk["usage"]
        if chunk.get("error") is not None:
            out["error"] = chunk["error"]
        for choice in expect_list(chunk.get("choices"), f"response[{i}].choices", required=False):
            choice = expect_dict(choice, f"response[{i}].choices")
            if choice.get("index", 0) != 0:
                continue
            delta = expect_dict(
                choice.get("delta", choice.get("message")),
                f"response[{i}].choices[0].delta",
                required=False,
            )
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            if isinstance(delta.get("refusal"), str):
                refusal.append(delta["refusal"])
            for j, call in enumerate(
                expect_list(delta.get("tool_calls"), f"response[{i}].tool_calls", required=False)
            ):
                call = expect_dict(call, f"response[{i}].choices[0].delta.tool_calls[{j}]")
                index = call.get("index", j)
                slot = calls.setdefault(
                    index if isinstance(index, int) else j,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.get("id"):
                    slot["id"] = call["id"]
                fn = call.get("function")
                if isinstance(fn, dict):
                    if isinstance(fn.get("name"), str):
                        slot["function"]["name"] += fn["name"]
                    if isinstance(fn.get("arguments"), str):
                        slot["function"]["arguments"] += fn["arguments"]
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text else None}
    if refusal:
        message["refusal"] = "".join(refusal)
    if calls:
        message["tool_calls"] = [calls[k] for k in sorted(calls)]
    out["choices"] = [{"index": 0, "message": message, "finish_reason": finish}]
    return out


def chat_response(response: Any, row: Row) -> None:
    """Fill the output columns of `row` from a chat.completion (or its streamed chunks)."""
    if isinstance(response, list):
        response = _reassemble(response)
    response = expect_dict(response, "response")
    error = response.get("error")
    if error is not None:
        row["status"] = "error"
        row["finish_reason"] = "error"
        if isinstance(error, dict):
            kind = error.get("type") or error.get("code")
            row["error_type"] = str(kind) if kind is not None else "error"
        else:
            row["error_type"] = "error"
        if not response.get("choices"):
            return
    row["response_model"] = str_or_none(response.get("model"), "response.model")
    row["system_fingerprint"] = str_or_none(
        response.get("system_fingerprint"), "response.system_fingerprint"
    )
    openai_usage(response.get("usage"), row, inputs="prompt_tokens", outputs="completion_tokens")
    choices = expect_list(response.get("choices"), "response.choices", required=False)
    if not choices:
        row.setdefault("status", "ok")
        row["output_text"] = ""
        return
    choice = expect_dict(choices[0], "response.choices[0]")
    message = expect_dict(choice.get("message"), "response.choices[0].message", required=False)
    content = message.get("content")
    if isinstance(content, list):
        content = _text_of(content, "response.choices[0].message.content")
    elif content is not None and not isinstance(content, str):
        raise BadRecord("response.choices[0].message.content", "expected a string")
    refusal = message.get("refusal")
    row["output_text"] = content or (refusal if isinstance(refusal, str) else "") or ""
    calls = []
    raw_calls = message.get("tool_calls")
    if raw_calls is None and message.get("function_call") is not None:
        raw_calls = [{"function": message["function_call"]}]
    if raw_calls is not None:
        calls = [
            {"id": c["id"], "name": c["name"], "arguments": c["arguments"]}
            for c in _tool_calls(raw_calls, "response.choices[0].message.tool_calls")
        ]
    row["output_tool_calls"] = json_text(calls) if calls else None
    finish = _finish(choice.get("finish_reason"))
    if isinstance(refusal, str) and refusal:
        finish = "refusal"
    if row.get("status") != "error":
        row["finish_reason"] = finish
        row["status"] = "ok"


# --- the adapter ---------------------------------------------------------------------------------


def _split_bare(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A proxy's flat record → (request body, response) ."""
    request = {k: v for k, v in obj.items() if k not in _RESPONSE_KEYS and k not in _ENVELOPE}
    response = None
    if "choices" in obj or "error" in obj:
        response = {k: v for k, v in obj.items() if k in _RESPONSE_KEYS}
        if "model" in obj:
            response["model"] = obj["model"]
    return request, response


# Log-envelope keys (not part of the request body) of a flat record.
_ENVELOPE: Final = frozenset(
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
    }
)


class OpenAIChat(Adapter):
    """Chat Completions logs: ``{"request", "response", "latency_ms", "timestamp", "metadata"}``."""

    name: ClassVar[str] = "openai_chat"
    version: ClassVar[int] = 1
    parallel_safe: ClassVar[bool] = True
    provider: ClassVar[str | None] = "openai"

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        request = obj.get("request")
        if isinstance(request, dict):
            response = obj.get("response")
            if isinstance(response, list):
                return any(
                    isinstance(c, dict) and c.get("object") == "chat.completion.chunk"
                    for c in response[:3]
                )
            if isinstance(response, dict):
                return response.get("object") == "chat.completion" or "choices" in response
            return isinstance(request.get("messages"), list) and not anthropic_shaped(request)
        return isinstance(obj.get("messages"), list) and (
            "choices" in obj or obj.get("object") == "chat.completion"
        )

    def convert(self, obj: Any, loc: Location) -> list[Row]:
        if type(obj) is dict:
            fast = _fast_row(obj)
            if fast is not None:
                return [fast]
        return self.convert_general(obj)

    def convert_general(self, obj: Any) -> list[Row]:
        """Any record; `convert` first tries `_fast_row`, which must agree with this."""
        obj = expect_dict(obj, None)
        row: Row = {"provider": self.provider}
        if "request" in obj or "response" in obj:
            body = expect_dict(obj.get("request"), "request")
            response = obj.get("response")
        else:
            body, response = _split_bare(obj)
        if isinstance(obj.get("provider"), str):
            row["provider"] = obj["provider"]
        metadata = envelope(obj, row)
        request = chat_request(body)
        row["request"], row["request_sha256"], row["model"] = (
            request.json,
            request.sha256,
            request.model,
        )
        row["request_raw"] = json_text(body)
        if request.issue and row.get("replayable") is not False:
            row["replayable"], row["replay_issue"] = False, request.issue
        if row.get("user_id") is None and request.user is not None:
            row["user_id"] = request.user
        if response is not None:
            row["response_raw"] = json_text(response)
            chat_response(response, row)
        elif obj.get("error") is not None:
            chat_response({"error": obj["error"]}, row)
        if row.get("timestamp") is None and isinstance(response, dict):
            created = response.get("created")
            if isinstance(created, int | float) and not isinstance(created, bool):
                row["timestamp"] = timestamp_us(created, "response.created")
        # The logger's own id names the logged event; a response id can repeat (caching proxies).
        row["record_id"] = (
            id_text(obj.get("custom_id"))
            or id_text(metadata.get("request_id"))
            or id_text(obj.get("request_id"))
            or (id_text(response.get("id")) if isinstance(response, dict) else None)
            or _stream_id(response)
        )
        return [row]


def _stream_id(response: Any) -> str | None:
    if isinstance(response, list):
        for chunk in response[:1]:
            if isinstance(chunk, dict):
                return id_text(chunk.get("id"))
    return None


# --- the fast path -------------------------------------------------------------------------------
# Most production logs are plain chat turns: text messages, a few sampling parameters, a
# completion without tool calls. `_fast_row` converts exactly those with a fraction of the calls
# of the general path and returns None for anything else (or anything odd), which then takes the
# general path. tests/ingest/test_openai_chat.py checks that both agree wherever the fast one
# answers.

_FAST_ENVELOPE: Final = frozenset({"request", "response", "latency_ms", "timestamp", "metadata"})
_FAST_REQUEST: Final = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "seed",
        "response_format",
        "user",
    }
)
_FAST_RESPONSE: Final = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "choices", "usage", "service_tier"}
)
_FAST_MESSAGE: Final = frozenset({"role", "content", "refusal", "annotations"})
_FAST_CHOICE: Final = frozenset({"index", "message", "logprobs", "finish_reason"})


def _fast_row(obj: dict[str, Any]) -> Row | None:
    try:
        return _fast(obj)
    except Exception:  # anything unexpected: the general path decides, and explains
        return None


def _fast(obj: dict[str, Any]) -> Row | None:
    """The row of a plain chat turn, or None for anything the general path must read."""
    body = obj.get("request")
    response = obj.get("response")
    if (
        type(body) is not dict
        or type(response) is not dict
        or not _FAST_ENVELOPE.issuperset(obj)
        or not _FAST_REQUEST.issuperset(body)
        or not _FAST_RESPONSE.issuperset(response)
    ):
        return None
    request = _fast_request(body)
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    elif type(metadata) is not dict:
        return None
    attributes = _fast_attributes(metadata)
    answer = _fast_answer(response)
    user = metadata.get("user_id") or body.get("user")
    model_requested = body.get("model")
    if (
        request is None
        or attributes is None
        or answer is None
        or (user is not None and type(user) is not str)
        or (model_requested is not None and type(model_requested) is not str)
    ):
        return None
    row: Row = {"provider": "openai"}
    openai_usage(response.get("usage"), row, inputs="prompt_tokens", outputs="completion_tokens")
    timestamp = timestamp_us(obj.get("timestamp"), "")
    if timestamp is None:
        created = response.get("created")
        if type(created) is int or type(created) is float:
            timestamp = timestamp_us(created, "")
    text, sha = canonical_request(request)
    content, finish, model, fingerprint = answer
    row.update(
        request=text,
        request_sha256=sha,
        model=model_requested,
        request_raw=json_text(body),
        response_raw=json_text(response),
        timestamp=timestamp,
        latency_ms=num_or_none(obj.get("latency_ms"), ""),
        ttft_ms=None,
        attributes=attributes or None,
        labels=None,
        session_id=metadata.get("session_id") or None,
        user_id=user or None,
        response_model=model,
        system_fingerprint=fingerprint,
        output_text=content or "",
        output_tool_calls=None,
        finish_reason=_finish(finish),
        status="ok",
        record_id=metadata.get("request_id") or id_text(response.get("id")),
    )
    return row


def _fast_request(body: dict[str, Any]) -> dict[str, Any] | None:
    """The canonical request of text-only messages and plain sampling parameters, else None."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for msg in body["messages"]:
        if type(msg) is not dict or len(msg) != 2:
            return None
        role = msg.get("role")
        content = msg.get("content")
        if type(content) is not str:
            return None
        if role == "user" or role == "assistant":
            messages.append({"role": role, "content": [{"type": "text", "text": content}]})
        elif role == "system" or role == "developer":
            system.append(content)
        else:
            return None
    seed = body.get("seed")
    if not messages or (seed is not None and type(seed) is not int):
        return None
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return {
        "system": "\n\n".join(system) if system else None,
        "messages": messages,
        "tools": None,
        "tool_choice": None,
        "response_format": _response_format(body.get("response_format")),
        "params": {
            "max_tokens": int_or_none(max_tokens, ""),
            "temperature": num_or_none(body.get("temperature"), ""),
            "top_p": num_or_none(body.get("top_p"), ""),
            "stop": [],
            "seed": seed,
        },
    }


def _fast_attributes(metadata: dict[str, Any]) -> list[tuple[str, str]] | None:
    """Metadata as attributes when every value is a string, else None."""
    attributes = []
    for key, value in metadata.items():
        if type(value) is not str:
            return None
        attributes.append((key, value))
    return attributes


def _fast_answer(response: dict[str, Any]) -> tuple[Any, Any, Any, Any] | None:
    """(content, finish reason, model, fingerprint) of a text-only first choice, else None."""
    choice = response["choices"][0]
    message = choice["message"]
    if (
        type(choice) is not dict
        or not _FAST_CHOICE.issuperset(choice)
        or type(message) is not dict
        or not _FAST_MESSAGE.issuperset(message)
        or message.get("refusal") is not None
    ):
        return None
    content = message.get("content")
    model = response.get("model")
    fingerprint = response.get("system_fingerprint")
    if (
        (content is not None and type(content) is not str)
        or (model is not None and type(model) is not str)
        or (fingerprint is not None and type(fingerprint) is not str)
    ):
        return None
    return content, choice.get("finish_reason"), model, fingerprint
