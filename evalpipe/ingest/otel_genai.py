"""`otel_genai@1`: OpenTelemetry GenAI spans in OTLP JSON (``resourceSpans[].scopeSpans[].spans[]``).

One item (a whole OTLP document, or one per line as the file exporter writes them) gives one row
per chat span. Content is read from whichever convention the instrumentation used: the current
``gen_ai.input.messages`` / ``gen_ai.output.messages`` / ``gen_ai.system_instructions``
attributes, the older per-message events (``gen_ai.user.message`` … ``gen_ai.choice``), or the
``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` attributes; message attributes may hold a list,
``{"messages": [...]}`` or one message. A span with no content is kept, not replayable
(``no_content_captured``). A span whose ``gen_ai.operation.name`` the conventions do not define
(``llm_call``) is a model call when it holds messages. Spans that are not model calls (HTTP,
tools, agents, embeddings) are skipped, each counted with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Final

from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    Skipped,
    canonical_request,
    expect_dict,
    expect_list,
    int_or_none,
    json_text,
    maybe_json,
    read_params,
)

__all__ = ["OtelGenAI", "otlp_value"]

_FINISH: Final = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_call": "tool_calls",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
    "error": "error",
}
_CHAT_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content", "completion"})
# Operations of the GenAI conventions that are not one model call (tools, agents, embeddings).
_OTHER_OPERATIONS: Final = frozenset(
    {"embeddings", "execute_tool", "invoke_agent", "create_agent", "retrieval"}
)
_OTHER_REQUEST_TYPES: Final = frozenset({"embedding", "rerank"})  # openllmetry's llm.request.type
_MESSAGE_KEYS: Final = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.prompt")
_REQUEST: Final = "gen_ai.request."
# Canonical parameters by their gen_ai.request.* names; the other request attributes go to extra.
_PARAMS: Final = {
    "max_tokens": ("max_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "stop": ("stop_sequences",),
    "seed": ("seed",),
}
_PROMPT_KEY = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_FUNCTION_KEY = re.compile(r"^llm\.request\.functions\.(\d+)\.(.+)$")
_CONTENT_PREFIXES: Final = ("gen_ai.prompt.", "gen_ai.completion.", "llm.request.functions.")
_CONTENT_KEYS: Final = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.prompt",
        "gen_ai.completion",
    }
)


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def otlp_value(value: Any) -> Any:
    """A Python value from an OTLP JSON AnyValue (``{"stringValue": …}`` …)."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "string_value"):
        if key in value:
            return value[key]
    for key in ("intValue", "int_value"):
        if key in value:
            try:
                return int(value[key])
            except (TypeError, ValueError):
                return None
    for key in ("doubleValue", "double_value"):
        if key in value:
            return value[key]
    for key in ("boolValue", "bool_value"):
        if key in value:
            return value[key]
    for key in ("arrayValue", "array_value"):
        if key in value:
            inner = value[key] if isinstance(value[key], dict) else {}
            return [otlp_value(v) for v in inner.get("values") or []]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            inner = value[key] if isinstance(value[key], dict) else {}
            return _attributes(inner.get("values"))
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return value[key]
    return None


def _attributes(raw: Any) -> dict[str, Any]:
    """OTLP key/value list → dict (a plain dict is accepted too)."""
    if isinstance(raw, dict):
        return raw
    out: dict[str, Any] = {}
    for kv in raw or []:
        if isinstance(kv, dict) and isinstance(kv.get("key"), str):
            out[kv["key"]] = otlp_value(kv.get("value"))
    return out


def _nanos(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _json(value: Any) -> Any:
    return maybe_json(value) if isinstance(value, str) else value


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(c) for c in content)
    if isinstance(content, dict):
        for key in ("content", "text"):
            if isinstance(content.get(key), str):
                return str(content[key])
    return "" if content is None else json_text(content)


# --- content conventions -------------------------------------------------------------------------


def _semconv_parts(parts: Any, field: str, issues: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, part in enumerate(expect_list(parts, field, required=False)):
        part = expect_dict(part, f"{field}[{i}]")
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "text", "text": _text(part.get("content"))})
        elif kind == "tool_call":
            out.append(
                {
                    "type": "tool_call",
                    "id": part.get("id"),
                    "name": str(part.get("name") or ""),
                    "arguments": _json(part.get("arguments")),
                }
            )
        elif kind == "tool_call_response":
            response = part.get("response")
            out.append(
                {
                    "type": "tool_result",
                    "tool_call_id": part.get("id"),
                    "content": response if isinstance(response, str) else json_text(response),
                    "is_error": False,
                }
            )
        elif kind in ("reasoning", "thinking"):
            continue
        else:
            issues.append(f"untranslatable: {kind} content")
            out.append(dict(part))
    return out


def _message_list(value: Any, field: str) -> list[Any]:
    """Messages of a content attribute: a list, ``{"messages": [...]}``, or one message object."""
    value = _json(value)
    if value is None or isinstance(value, list):
        return expect_list(value, field, required=False)
    if isinstance(value, dict):
        inner = _json(value.get("messages"))
        if isinstance(inner, list):
            return inner
        if "role" in value or "parts" in value:
            return [value]
    raise BadRecord(field, "expected a list of messages")


def _semconv_message(msg: Any, field: str, issues: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Role and canonical parts of one message: semconv ``parts``, or OpenAI-style ``content``."""
    msg = expect_dict(msg, field)
    if "parts" not in msg and ("content" in msg or "tool_calls" in msg):
        return _openai_like(msg, field)
    return str(msg.get("role") or ""), _semconv_parts(msg.get("parts"), f"{field}.parts", issues)


def _semconv(attrs: dict[str, Any], issues: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    instructions = _json(attrs.get("gen_ai.system_instructions"))
    if instructions is not None:
        parts = instructions if isinstance(instructions, list) else [instructions]
        system.append("".join(_text(p) for p in parts))
    messages: list[dict[str, Any]] = []
    field = "gen_ai.input.messages"
    for i, msg in enumerate(_message_list(attrs.get(field), field)):
        role, parts = _semconv_message(msg, f"{field}[{i}]", issues)
        if role in ("system", "developer"):
            system.append("".join(p.get("text", "") for p in parts))
        else:
            _add_message(messages, role, parts, f"{field}[{i}].role")
    return system, messages


def _semconv_choices(attrs: dict[str, Any], issues: list[str]) -> list[dict[str, Any]]:
    """The output messages as choices: ``{"parts", "finish_reason"}``."""
    field = "gen_ai.output.messages"
    choices = []
    for i, msg in enumerate(_message_list(attrs.get(field), field)):
        if isinstance(msg, dict):
            _, parts = _semconv_message(msg, f"{field}[{i}]", issues)
            choices.append({"parts": parts, "finish_reason": msg.get("finish_reason")})
    return choices


def _add_message(
    messages: list[dict[str, Any]], role: Any, parts: list[dict[str, Any]], field: str
) -> None:
    if role not in ("user", "assistant", "tool"):
        raise BadRecord(field, f"unknown role {role!r}"[:80])
    if any(p.get("type") == "tool_result" for p in parts):
        role = "tool"
    messages.append({"role": role, "content": parts})


def _openai_like(msg: dict[str, Any], field: str) -> tuple[str, list[dict[str, Any]]]:
    """A role and canonical parts from an OpenAI-shaped message (older events and attributes)."""
    role = msg.get("role")
    content = _json(msg.get("content"))
    parts: list[dict[str, Any]] = []
    if role == "tool":
        call_id = msg.get("id", msg.get("tool_call_id"))
        text = content if isinstance(content, str) else json_text(content)
        return "tool", [
            {"type": "tool_result", "tool_call_id": call_id, "content": text, "is_error": False}
        ]
    if content is not None and content != "":
        parts.append({"type": "text", "text": _text(content)})
    calls = _json(msg.get("tool_calls"))
    for call in calls if isinstance(calls, list) else []:
        if isinstance(call, dict):
            inner = call.get("function")
            fn: dict[str, Any] = inner if isinstance(inner, dict) else call
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": str(fn.get("name") or ""),
                    "arguments": _json(fn.get("arguments")),
                }
            )
    return str(role or ""), parts


def _events(
    events: list[Any], issues: list[str]
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(system, messages, choices) from the older per-message span events."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    choices: list[dict[str, Any]] = []
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            continue
        name = str(event.get("name") or "")
        attrs = _attributes(event.get("attributes"))
        body = _json(attrs.get("gen_ai.event.content"))
        if isinstance(body, dict):
            attrs = {**attrs, **body}
        field = f"events[{i}]"
        prompt, completion = (
            _json(attrs.get("gen_ai.prompt")),
            _json(attrs.get("gen_ai.completion")),
        )
        if name == "gen_ai.content.prompt" and isinstance(prompt, str):
            # openlit joins the messages into one "role: content" text: the roles are lost
            messages.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
            issues.append("untranslatable: prompt logged as flat text")
        elif name == "gen_ai.content.prompt":
            for j, msg in enumerate(expect_list(prompt, field, required=False)):
                if isinstance(msg, dict):
                    role, parts = _openai_like(msg, f"{field}[{j}]")
                    if role == "system":
                        system.append("".join(p.get("text", "") for p in parts))
                    else:
                        _add_message(messages, role, parts, f"{field}.gen_ai.prompt[{j}].role")
        elif name == "gen_ai.content.completion" and isinstance(completion, str):
            choices.append({"role": "assistant", "content": completion})
        elif name == "gen_ai.content.completion":
            for msg in expect_list(completion, field, required=False):
                if isinstance(msg, dict):
                    choices.append(msg)
        elif name in ("gen_ai.system.message", "gen_ai.developer.message"):
            system.append(_text(_json(attrs.get("content"))))
        elif name in ("gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message"):
            role = name.split(".")[1]
            _, parts = _openai_like({**attrs, "role": role}, field)
            _add_message(messages, role, parts, f"{field}.name")
        elif name == "gen_ai.choice":
            message = _json(attrs.get("message"))
            choice = dict(message) if isinstance(message, dict) else {}
            choice["finish_reason"] = attrs.get("finish_reason")
            choices.append(choice)
    return system, messages, choices


def _indexed(attrs: dict[str, Any]) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """``gen_ai.prompt.N.*`` and ``gen_ai.completion.N.*`` attributes grouped by N."""
    prompts: dict[int, dict[str, Any]] = {}
    completions: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _PROMPT_KEY.match(key)
        if match is None:
            continue
        kind, n, rest = match.groups()
        target = prompts if kind == "prompt" else completions
        slot = target.setdefault(int(n), {})
        if rest.startswith("tool_calls."):
            _, m, sub = rest.split(".", 2) if rest.count(".") >= 2 else (rest, "0", "")
            calls = slot.setdefault("tool_calls", {})
            calls.setdefault(int(m) if m.isdigit() else 0, {})[sub] = value
        else:
            slot[rest] = value
    for group in (prompts, completions):
        for slot in group.values():
            if isinstance(slot.get("tool_calls"), dict):
                slot["tool_calls"] = [slot["tool_calls"][k] for k in sorted(slot["tool_calls"])]
    return prompts, completions


def _tools(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    definitions = _json(attrs.get("gen_ai.tool.definitions"))
    out: list[dict[str, Any]] = []
    if isinstance(definitions, list):
        for tool in definitions:
            if isinstance(tool, dict):
                inner = tool.get("function")
                fn: dict[str, Any] = inner if isinstance(inner, dict) else tool
                params = _json(fn.get("parameters"))
                out.append(
                    {
                        "name": str(fn.get("name") or ""),
                        "description": fn.get("description"),
                        "parameters": params if isinstance(params, dict) else {"type": "object"},
                    }
                )
    functions: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _FUNCTION_KEY.match(key)
        if match:
            functions.setdefault(int(match.group(1)), {})[match.group(2)] = value
    for n in sorted(functions):
        fn = functions[n]
        params = _json(fn.get("parameters"))
        out.append(
            {
                "name": str(fn.get("name") or ""),
                "description": fn.get("description"),
                "parameters": params if isinstance(params, dict) else {"type": "object"},
            }
        )
    return out or None


# --- one span ------------------------------------------------------------------------------------


def _skip_reason(name: str, attrs: dict[str, Any]) -> str | None:
    """Why a span is not read as a model call, or None when it is one."""
    operation = attrs.get("gen_ai.operation.name")
    if operation in _CHAT_OPERATIONS:
        return None
    if operation in _OTHER_OPERATIONS or attrs.get("llm.request.type") in _OTHER_REQUEST_TYPES:
        return "not a model call"
    if operation is not None:
        # a name the conventions do not define (``llm_call``): a model call if it holds messages
        has_content = any(key in attrs for key in _MESSAGE_KEYS) or any(
            _PROMPT_KEY.match(key) for key in attrs
        )
        return None if has_content else "unknown operation without messages"
    if not any(key.startswith(("gen_ai.", "llm.")) for key in attrs):
        return "not a GenAI span"
    model_call = any(
        key in attrs for key in ("gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name")
    ) and not name.startswith(("execute_tool", "invoke_agent", "create_agent", "embeddings"))
    return None if model_call else "not a model call"


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if attrs.get(key) is not None:
            return attrs[key]
    return None


def _span_row(span: dict[str, Any], resource: dict[str, Any], field: str) -> Row | Skipped:
    """One span's row, or why it is skipped; `BadRecord` for a model call that cannot be read."""
    attrs = _attributes(span.get("attributes"))
    name = str(span.get("name") or "")
    reason = _skip_reason(name, attrs)
    if reason is not None:
        return Skipped(reason)
    issues: list[str] = []
    system, messages, choices = _content(span, attrs, field, issues)
    row: Row = {}
    _request(row, attrs, system, messages, issues)
    _model_and_usage(row, attrs)
    _output(row, attrs, choices)
    _status_and_timing(row, span, attrs, field)
    _identity(row, span, resource, attrs, name)
    return row


def _content(
    span: dict[str, Any], attrs: dict[str, Any], field: str, issues: list[str]
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(system texts, input messages, output choices) from whichever convention the span uses."""
    system, messages = _semconv(attrs, issues)
    choices = _semconv_choices(attrs, issues)
    if not messages and not system:
        ev_system, ev_messages, ev_choices = _events(
            expect_list(span.get("events"), f"{field}.events", required=False), issues
        )
        system, messages = ev_system, ev_messages
        choices = choices or [
            {"parts": _openai_like(c, field)[1], "finish_reason": c.get("finish_reason")}
            for c in ev_choices
        ]
    if not messages and not system:
        prompts, completions = _indexed(attrs)
        for n in sorted(prompts):
            role, parts = _openai_like(prompts[n], f"gen_ai.prompt.{n}")
            if role == "system":
                system.append("".join(p.get("text", "") for p in parts))
            else:
                _add_message(messages, role, parts, f"gen_ai.prompt.{n}.role")
        choices = choices or [
            {
                "parts": _openai_like(completions[n], "")[1],
                "finish_reason": completions[n].get("finish_reason"),
            }
            for n in sorted(completions)
        ]
    return system, messages, choices


def _request(
    row: Row,
    attrs: dict[str, Any],
    system: list[str],
    messages: list[dict[str, Any]],
    issues: list[str],
) -> None:
    """The canonical request and its replayability (no messages: ``no_content_captured``).

    Every ``gen_ai.request.*`` attribute is a logged parameter: the canonical ones are read where
    their meaning is certain (`read_params`), the rest kept in ``params.extra`` as logged.
    """
    logged = {
        key.removeprefix(_REQUEST): value
        for key, value in attrs.items()
        if key.startswith(_REQUEST) and key != "gen_ai.request.model"
    }
    request = {
        "system": "\n\n".join(system) if system else None,
        "messages": messages,
        "tools": _tools(attrs),
        "tool_choice": None,
        "response_format": None,
        "params": read_params(logged, _PARAMS),
    }
    row["request"], sha = canonical_request(request)
    if not messages and not system:
        issues.insert(0, "no_content_captured")
    else:
        row["request_sha256"] = sha
    if issues:
        row["replayable"], row["replay_issue"] = False, issues[0]


def _model_and_usage(row: Row, attrs: dict[str, Any]) -> None:
    """Provider, models, fingerprint and token counts (current and older attribute names)."""
    provider = _first(attrs, "gen_ai.provider.name", "gen_ai.system")
    row["provider"] = str(provider) if provider is not None else None
    row["model"] = _str(attrs.get("gen_ai.request.model"))
    row["response_model"] = _str(attrs.get("gen_ai.response.model"))
    row["system_fingerprint"] = _str(
        _first(
            attrs, "gen_ai.openai.response.system_fingerprint", "openai.response.system_fingerprint"
        )
    )
    row["input_tokens"] = int_or_none(
        _first(attrs, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        "gen_ai.usage.input_tokens",
    )
    row["output_tokens"] = int_or_none(
        _first(attrs, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        "gen_ai.usage.output_tokens",
    )
    row["cached_input_tokens"] = int_or_none(
        _first(
            attrs,
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.cached_tokens",
        ),
        "gen_ai.usage.cache_read.input_tokens",
    )
    row["reasoning_tokens"] = int_or_none(
        _first(attrs, "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
        "gen_ai.usage.reasoning_tokens",
    )


def _output(row: Row, attrs: dict[str, Any], choices: list[dict[str, Any]]) -> None:
    """Output text, tool calls and finish reason of the first choice."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    finish: Any = None
    for choice in choices[:1]:
        for part in choice["parts"]:
            if part.get("type") == "text":
                texts.append(str(part.get("text") or ""))
            elif part.get("type") == "tool_call":
                calls.append(
                    {
                        "id": part.get("id"),
                        "name": part.get("name"),
                        "arguments": part.get("arguments"),
                    }
                )
        finish = choice.get("finish_reason")
    if finish is None:
        reasons = attrs.get("gen_ai.response.finish_reasons")
        finish = reasons[0] if isinstance(reasons, list) and reasons else reasons
    if choices:
        row["output_text"] = "".join(texts)
        row["output_tool_calls"] = json_text(calls) if calls else None
    row["finish_reason"] = None if finish is None else _FINISH.get(str(finish), "other")


def _status_and_timing(row: Row, span: dict[str, Any], attrs: dict[str, Any], field: str) -> None:
    """Timestamp and latency from the span's times; an error status makes an error row."""
    start = _nanos(_get(span, "startTimeUnixNano", "start_time_unix_nano"))
    end = _nanos(_get(span, "endTimeUnixNano", "end_time_unix_nano"))
    if start:
        row["timestamp"] = start // 1000
        if end and end >= start:
            row["latency_ms"] = (end - start) / 1e6
    status = expect_dict(span.get("status"), f"{field}.status", required=False)
    code = status.get("code")
    error_type = attrs.get("error.type")
    if code in (2, "2", "STATUS_CODE_ERROR", "ERROR") or error_type is not None:
        row["status"], row["finish_reason"] = "error", "error"
        row["error_type"] = str(error_type or status.get("message") or "error")
    else:
        row["status"] = "ok"


def _identity(
    row: Row, span: dict[str, Any], resource: dict[str, Any], attrs: dict[str, Any], name: str
) -> None:
    """Ids, session and user, the non-content attributes, and the raw span."""
    row["session_id"] = _str(_first(attrs, "gen_ai.conversation.id", "session.id"))
    row["user_id"] = _str(_first(attrs, "user.id", "enduser.id"))
    kept = {
        key: value
        for key, value in {**resource, **attrs}.items()
        if key not in _CONTENT_KEYS and not key.startswith(_CONTENT_PREFIXES) and value is not None
    }
    trace = _get(span, "traceId", "trace_id")
    if trace:
        kept["trace_id"] = trace
    kept["span_name"] = name
    row["attributes"] = [(k, v if isinstance(v, str) else json_text(v)) for k, v in kept.items()]
    span_id = _get(span, "spanId", "span_id")
    row["record_id"] = str(span_id) if isinstance(span_id, str | int) and span_id else None
    row["response_raw"] = None
    row["request_raw"] = json_text(span)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json_text(value)


class OtelGenAI(Adapter):
    """OTLP JSON documents of GenAI spans; one row per model-call span."""

    name: ClassVar[str] = "otel_genai"
    version: ClassVar[int] = 1
    parallel_safe: ClassVar[bool] = True

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict):
            return False
        if isinstance(_get(obj, "resourceSpans", "resource_spans"), list):
            return True
        return ("spanId" in obj or "span_id" in obj) and "attributes" in obj

    def convert(self, obj: Any, loc: Location) -> list[Row | BadRecord | Skipped]:
        obj = expect_dict(obj, None)
        if "spanId" in obj or "span_id" in obj:
            obj = {"resourceSpans": [{"scopeSpans": [{"spans": [obj]}]}]}
        rows: list[Row | BadRecord | Skipped] = []
        for resource, field, span in _spans(obj):
            try:
                rows.append(_span_row(expect_dict(span, field), resource, field))
            except BadRecord as exc:  # one bad span costs that span only
                rows.append(BadRecord(f"{field}.{exc.field}" if exc.field else field, exc.reason))
        return rows or [Skipped("no span")]


def _spans(obj: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str, Any]]:
    """(resource attributes, field path, span) of every span in an OTLP document."""
    resource_spans = expect_list(_get(obj, "resourceSpans", "resource_spans"), "resourceSpans")
    for r, rs in enumerate(resource_spans):
        rs = expect_dict(rs, f"resourceSpans[{r}]")
        resource_obj = expect_dict(
            rs.get("resource"), f"resourceSpans[{r}].resource", required=False
        )
        resource = _attributes(resource_obj.get("attributes"))
        scopes = expect_list(
            _get(rs, "scopeSpans", "scope_spans") or rs.get("instrumentationLibrarySpans"),
            f"resourceSpans[{r}].scopeSpans",
            required=False,
        )
        for s, ss in enumerate(scopes):
            ss = expect_dict(ss, f"resourceSpans[{r}].scopeSpans[{s}]")
            field = f"resourceSpans[{r}].scopeSpans[{s}].spans"
            for i, span in enumerate(expect_list(ss.get("spans"), field, required=False)):
                yield resource, f"{field}[{i}]", span
