"""`openai_responses@1`: Responses API logs (``{"request", "response", ...envelope}``).

A request that continues a stored conversation (``previous_response_id``) cannot be re-sent as it
stands; when the earlier responses are in the same input, the chain is rebuilt into one full
canonical request, otherwise the record is kept with ``replay_issue = "previous_response_id"``.
Chained records are therefore emitted after every file was read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

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
    str_or_none,
    timestamp_us,
)

__all__ = [
    "OpenAIResponses",
    "reassemble_stream",
    "responses_items",
    "responses_output",
    "responses_request",
    "responses_response",
    "responses_tools",
]

_KNOWN: Final = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "previous_response_id",
        "parallel_tool_calls",
    }
)
_DROPPED: Final = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "background", "include"}
)
_ROLES: Final = frozenset({"user", "assistant", "system", "developer"})


def _parts(content: Any, field: str, issues: list[str]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    out: list[dict[str, Any]] = []
    for i, part in enumerate(expect_list(content, field)):
        where = f"{field}[{i}]"
        part = expect_dict(part, where)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise BadRecord(f"{where}.text", "expected a string")
            out.append({"type": "text", "text": text})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if isinstance(url, str):
                media = url[5:].split(";", 1)[0] if url.startswith("data:") else None
                out.append({"type": "image", "url": url, "media_type": media})
            else:
                out.append(dict(part))
                issues.append("untranslatable: input_image by file_id")
        elif isinstance(kind, str):
            out.append(dict(part))
            issues.append(f"untranslatable: {kind} content")
        else:
            raise BadRecord(f"{where}.type", "missing content part type")
    return out


def responses_items(
    raw: Any, issues: list[str], field: str = "request.input"
) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, canonical messages) of a Responses `input` (a string or a list of items)."""
    if isinstance(raw, str):
        return [], [{"role": "user", "content": [{"type": "text", "text": raw}]}]
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(expect_list(raw, field)):
        where = f"{field}[{i}]"
        item = expect_dict(item, where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if not isinstance(role, str) or role not in _ROLES:
                raise BadRecord(
                    f"{where}.role",
                    "missing role" if not isinstance(role, str) else f"unknown role {role[:40]!r}",
                )
            parts = _parts(item.get("content"), f"{where}.content", issues)
            if role in ("system", "developer"):
                system.append("".join(p.get("text", "") for p in parts))
            else:
                _append(messages, role, parts)
        elif kind == "function_call":
            name = item.get("name")
            if not isinstance(name, str):
                raise BadRecord(f"{where}.name", "missing tool name")
            call = {
                "type": "tool_call",
                "id": str_or_none(item.get("call_id"), f"{where}.call_id"),
                "name": name,
                "arguments": maybe_json(item.get("arguments")),
            }
            _append(messages, "assistant", [call])
        elif kind == "function_call_output":
            output = item.get("output")
            result = {
                "type": "tool_result",
                "tool_call_id": str_or_none(item.get("call_id"), f"{where}.call_id"),
                "content": output if isinstance(output, str) else json_text(output),
                "is_error": False,
            }
            messages.append({"role": "tool", "content": [result]})
        elif kind in ("reasoning", "item_reference"):
            continue  # provider-side state; nothing to re-send
        else:
            issues.append(f"untranslatable: {kind} input item")
    return system, messages


def _append(messages: list[dict[str, Any]], role: str, parts: list[dict[str, Any]]) -> None:
    """Add parts, joining a tool call to the assistant message just before it."""
    if (
        role == "assistant"
        and messages
        and messages[-1]["role"] == "assistant"
        and parts
        and parts[0]["type"] == "tool_call"
    ):
        messages[-1]["content"].extend(parts)
    else:
        messages.append({"role": role, "content": parts})


def responses_tools(raw: Any, issues: list[str]) -> list[dict[str, Any]] | None:
    """Canonical tools of a Responses `tools` list (flat ``{type: function, name, parameters}``)."""
    if raw is None:
        return None
    out = []
    for i, tool in enumerate(expect_list(raw, "request.tools")):
        tool = expect_dict(tool, f"request.tools[{i}]")
        if tool.get("type", "function") != "function":
            issues.append(f"untranslatable: {tool.get('type')} tool")
            out.append(dict(tool))
            continue
        name = tool.get("name")
        if not isinstance(name, str):
            raise BadRecord(f"request.tools[{i}].name", "missing tool name")
        parameters = tool.get("parameters")
        out.append(
            {
                "name": name,
                "description": str_or_none(
                    tool.get("description"), f"request.tools[{i}].description"
                ),
                "parameters": parameters if isinstance(parameters, dict) else {"type": "object"},
            }
        )
    return out


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        if isinstance(choice.get("name"), str):
            return {"name": choice["name"]}
        if choice.get("type") in ("auto", "none", "required"):
            return choice["type"]
    raise BadRecord("request.tool_choice", "expected a string or {type: function, name}")


def _text_format(text: Any) -> dict[str, Any] | None:
    text = expect_dict(text, "request.text", required=False)
    fmt = expect_dict(text.get("format"), "request.text.format", required=False)
    kind = fmt.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        return {
            "type": "json_schema",
            "name": str_or_none(fmt.get("name"), "request.text.format.name"),
            "schema": expect_dict(fmt.get("schema"), "request.text.format.schema", required=False),
            "strict": bool(fmt.get("strict", False)),
        }
    raise BadRecord("request.text.format.type", f"unknown format {kind!r}")


def responses_request(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The canonical request (as a dict) of a Responses body, and its replay issues."""
    issues: list[str] = []
    system, messages = responses_items(body.get("input"), issues)
    instructions = str_or_none(body.get("instructions"), "request.instructions")
    if instructions:
        system.insert(0, instructions)
    extra = {k: v for k, v in body.items() if k not in _KNOWN and k not in _DROPPED}
    request = {
        "system": "\n\n".join(system) if system else None,
        "messages": messages,
        "tools": responses_tools(body.get("tools"), issues),
        "tool_choice": _tool_choice(body.get("tool_choice")),
        "response_format": _text_format(body.get("text")),
        "params": params_of(
            max_tokens=int_or_none(body.get("max_output_tokens"), "request.max_output_tokens"),
            temperature=num_or_none(body.get("temperature"), "request.temperature"),
            top_p=num_or_none(body.get("top_p"), "request.top_p"),
            stop=[],
            seed=None,
            extra=extra,
            parallel_tool_calls=bool_or_none(
                body.get("parallel_tool_calls"), "request.parallel_tool_calls"
            ),
        ),
    }
    if not messages and not system:
        issues.append("no_content_captured")
    return request, issues


# --- streamed recordings ---------------------------------------------------------------------

# Events that carry the whole response; the last three end a stream.
_SNAPSHOTS: Final = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)
_TERMINAL: Final = frozenset({"response.completed", "response.incomplete", "response.failed"})
# delta / done events → (content part type, the part's text field)
_PART_TEXT: Final = {
    "response.output_text": ("output_text", "text"),
    "response.refusal": ("refusal", "refusal"),
}


def is_stream(value: Any) -> bool:
    """Whether a value is a streamed Responses recording: a list of ``response.*`` events."""
    if not isinstance(value, list) or not value:
        return False
    return _event_type(value[0]).startswith("response.")


def _event_type(event: Any) -> str:
    if not isinstance(event, dict):
        return ""
    kind = event.get("type", event.get("event"))
    return kind if isinstance(kind, str) else ""


def _event(raw: Any, field: str) -> tuple[str, dict[str, Any]]:
    """(type, payload) of one recorded event: the event itself, or an SSE ``{event, data}``."""
    event = expect_dict(raw, field)
    data = maybe_json(event.get("data"))
    if isinstance(data, dict):
        return _event_type(data) or _event_type(event), data
    return _event_type(event), event


def reassemble_stream(events: list[Any]) -> dict[str, Any]:
    """One `response` from a streamed recording.

    The terminal event (``response.completed``, ``.incomplete``, ``.failed``) carries the whole
    response; without one, the output items are rebuilt from the ``output_item`` and delta events
    over the last snapshot (``response.created``), and the response is ``completed`` only when
    every item was finished (``response.output_item.done``).
    """
    snapshot: dict[str, Any] = {}
    items: dict[int, dict[str, Any]] = {}
    finished: set[int] = set()
    error: dict[str, Any] | None = None
    for i, raw in enumerate(events):
        kind, event = _event(raw, f"response[{i}]")
        if kind in _SNAPSHOTS and isinstance(event.get("response"), dict):
            if kind in _TERMINAL:
                return dict(event["response"])
            snapshot = event["response"]
        elif kind == "error":
            error = {key: event.get(key) for key in ("code", "message", "param")}
        else:
            _apply_delta(items, finished, kind, event, f"response[{i}]")
    out = dict(snapshot)
    out["output"] = [items[k] for k in sorted(items)]
    if error is not None:
        out["status"], out["error"] = "failed", error
    elif out.get("status") in (None, "queued", "in_progress"):
        out["status"] = "completed" if finished >= items.keys() else "incomplete"
    return out


def _apply_delta(
    items: dict[int, dict[str, Any]],
    finished: set[int],
    kind: str,
    event: dict[str, Any],
    field: str,
) -> None:
    """Fold one output event into the items being rebuilt, by `output_index`."""
    index = event.get("output_index")
    if not isinstance(index, int):
        return
    if kind in ("response.output_item.added", "response.output_item.done"):
        item = dict(expect_dict(event.get("item"), f"{field}.item"))
        item["content"] = list(
            expect_list(item.get("content"), f"{field}.item.content", required=False)
        )
        items[index] = item
        if kind.endswith(".done"):
            finished.add(index)
        return
    item = items.setdefault(index, {"type": "message", "role": "assistant", "content": []})
    stem, _, step = kind.rpartition(".")
    if stem == "response.function_call_arguments":
        text = event.get("delta") if step == "delta" else event.get("arguments")
        if isinstance(text, str):
            item["arguments"] = (str(item.get("arguments") or "") if step == "delta" else "") + text
        return
    content = item.setdefault("content", [])
    position = event.get("content_index", 0)
    if not isinstance(position, int) or not isinstance(content, list):
        return
    while len(content) <= position:
        content.append({"type": "output_text", "text": ""})
    if kind in ("response.content_part.added", "response.content_part.done"):
        content[position] = dict(expect_dict(event.get("part"), f"{field}.part"))
    elif stem in _PART_TEXT and step in ("delta", "done"):
        part_type, key = _PART_TEXT[stem]
        part = content[position] = {**content[position], "type": part_type}
        text = event.get("delta") if step == "delta" else event.get(key)
        if isinstance(text, str):
            part[key] = (str(part.get(key) or "") if step == "delta" else "") + text


def responses_output(
    output: Any, field: str = "response.output"
) -> tuple[list[str], list[dict[str, Any]], bool]:
    """(texts, tool calls, whether refused) of a Responses `output` item list."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    refusal = False
    for i, item in enumerate(expect_list(output, field, required=False)):
        item = expect_dict(item, f"{field}[{i}]")
        kind = item.get("type")
        if kind == "message":
            for j, part in enumerate(
                expect_list(item.get("content"), f"{field}[{i}].content", required=False)
            ):
                part = expect_dict(part, f"{field}[{i}].content[{j}]")
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif part.get("type") == "refusal":
                    refusal = True
                    texts.append(str(part.get("refusal") or ""))
        elif kind == "function_call":
            calls.append(
                {
                    "id": id_text(item.get("call_id")),
                    "name": str_or_none(item.get("name"), f"{field}[{i}].name"),
                    "arguments": maybe_json(item.get("arguments")),
                }
            )
    return texts, calls, refusal


def responses_response(response: Any, row: Row) -> list[dict[str, Any]]:
    """Fill the output columns from a Responses `response`; returns the output as messages."""
    response = expect_dict(response, "response")
    row["response_model"] = str_or_none(response.get("model"), "response.model")
    openai_usage(response.get("usage"), row, inputs="input_tokens", outputs="output_tokens")
    texts, calls, refusal = responses_output(response.get("output"))
    row["output_text"] = "".join(texts)
    row["output_tool_calls"] = json_text(calls) if calls else None
    status = response.get("status")
    error = response.get("error")
    incomplete = response.get("incomplete_details")
    reason = incomplete.get("reason") if isinstance(incomplete, dict) else None
    if error is not None or status in ("failed", "cancelled"):
        row["status"], row["finish_reason"] = "error", "error"
        kind = error.get("code") or error.get("type") if isinstance(error, dict) else None
        row["error_type"] = str(kind) if kind is not None else str(status or "error")
    else:
        row["status"] = "ok"
        if refusal:
            row["finish_reason"] = "refusal"
        elif reason == "max_output_tokens":
            row["finish_reason"] = "length"
        elif reason == "content_filter":
            row["finish_reason"] = "content_filter"
        elif status == "incomplete":
            row["finish_reason"] = "other"
        elif calls:
            row["finish_reason"] = "tool_calls"
        else:
            row["finish_reason"] = "stop"
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = [{"type": "text", "text": t} for t in texts if t]
    parts += [{"type": "tool_call", **c} for c in calls]
    if parts:
        out.append({"role": "assistant", "content": parts})
    return out


class _Pending:
    __slots__ = ("loc", "messages", "previous", "request", "row")

    def __init__(
        self,
        loc: Location,
        row: Row,
        request: dict[str, Any],
        previous: str,
    ) -> None:
        self.loc, self.row, self.request, self.previous = loc, row, request, previous
        self.messages: list[dict[str, Any]] | None = None


class OpenAIResponses(Adapter):
    """Responses API logs; chains by ``previous_response_id`` are rebuilt when complete."""

    name: ClassVar[str] = "openai_responses"
    version: ClassVar[int] = 1
    provider: ClassVar[str | None] = "openai"

    def __init__(self) -> None:
        # response id → (previous response id, its input messages and output)
        self._turns: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}
        self._pending: list[_Pending] = []

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict):
            return is_stream(obj)
        response = obj.get("response")
        if isinstance(response, dict) and response.get("object") == "response":
            return True
        if is_stream(response):
            return True
        request = obj.get("request")
        if isinstance(request, dict):
            return "input" in request and "messages" not in request
        return obj.get("object") == "response" and "output" in obj

    def convert(self, obj: Any, loc: Location) -> list[Row]:
        if is_stream(obj) or (isinstance(obj, dict) and obj.get("object") == "response"):
            obj = {"response": obj}  # a response (or its stream) logged without the request
        obj = expect_dict(obj, None)
        row: Row = {"provider": self.provider}
        metadata = envelope(obj, row)
        body = expect_dict(obj.get("request"), "request", required=False)
        response = obj.get("response")
        request, issues = responses_request(body) if body else (None, ["no_content_captured"])
        row["model"] = str_or_none(body.get("model"), "request.model")
        row["request_raw"] = json_text(body) if body else None
        output: list[dict[str, Any]] = []
        if response is not None:
            row["response_raw"] = json_text(response)
            if is_stream(response):
                response = reassemble_stream(response)
            output = responses_response(response, row)
        if row.get("timestamp") is None and isinstance(response, dict):
            created = response.get("created_at")
            if isinstance(created, int | float) and not isinstance(created, bool):
                row["timestamp"] = timestamp_us(created, "response.created_at")
        response_id = id_text(response.get("id")) if isinstance(response, dict) else None
        row["record_id"] = (
            id_text(obj.get("custom_id"))
            or id_text(metadata.get("request_id"))
            or id_text(obj.get("request_id"))
            or response_id
        )
        if issues and row.get("replayable") is not False:
            row["replayable"], row["replay_issue"] = False, issues[0]
        if request is None:
            return [row]
        previous = id_text(body.get("previous_response_id"))
        if response_id is not None:
            self._turns[response_id] = (previous, [*request["messages"], *output])
        if previous is not None:
            self._pending.append(_Pending(loc, row, request, previous))
            return []
        _finish_request(row, request)
        return [row]

    def finish(self) -> Iterable[tuple[Location, Row | BadRecord]]:
        pending, self._pending = self._pending, []
        for item in pending:
            chain = self._chain(item.previous)
            request = item.request
            if chain is None:
                if item.row.get("replayable") is not False:
                    item.row["replayable"] = False
                    item.row["replay_issue"] = "previous_response_id"
            else:
                # instructions are not carried over a chain (Responses API), so the system
                # prompt stays this request's own
                request = dict(request)
                request["messages"] = [*chain, *request["messages"]]
            _finish_request(item.row, request)
            yield item.loc, item.row

    def _chain(self, response_id: str) -> list[dict[str, Any]] | None:
        """The full conversation up to and including `response_id`, if all of it is in the input."""
        parts: list[list[dict[str, Any]]] = []
        seen: set[str] = set()
        current: str | None = response_id
        while current is not None:
            turn = self._turns.get(current)
            if turn is None or current in seen:
                return None
            seen.add(current)
            current, messages = turn
            parts.append(messages)
        return [m for messages in reversed(parts) for m in messages]


def _finish_request(row: Row, request: dict[str, Any]) -> None:
    row["request"], row["request_sha256"] = canonical_request(request)
