"""Messages as observability tools log them, whatever framework made the call → canonical.

A Langfuse observation holds the messages of the framework that made the call: OpenAI chat
messages; LangChain's (``type: human``, tool calls as ``{name, args, id}``, each bound tool
appended as ``{"role": "tool", "content": <its definition>}``, and in LangChain.js a tool message
whose ``role`` is the tool's name); the Vercel AI SDK's (``tool-call`` / ``tool-result`` parts);
OpenInference's ``{"message": {...}}`` wrappers (LlamaIndex, CrewAI, and Google ADK through
OpenInference); OpenAI Responses input and output items; and Gemini ``contents`` (Google ADK's
own telemetry). `framework_input` and `framework_output` read any of them.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from evalpipe.ingest.openai_chat import chat_tools
from evalpipe.ingest.openai_responses import responses_items, responses_output, responses_tools
from evalpipe.ingest.records import BadRecord, expect_dict, expect_list, json_text, maybe_json

__all__ = [
    "Conversation",
    "framework_input",
    "framework_output",
    "loads",
    "text_of",
    "tool_call",
    "wrapper_tools",
]

_ROLES: Final = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}
# Item and part types of the OpenAI Responses API; a list holding one is a Responses input.
_RESPONSES_ITEMS: Final = frozenset(
    {"message", "function_call", "function_call_output", "reasoning", "item_reference"}
)
_RESPONSES_PARTS: Final = frozenset({"input_text", "output_text", "input_image", "input_file"})
_TEXT_PARTS: Final = frozenset({"text", "input_text", "output_text"})
_IGNORED_PARTS: Final = frozenset({"reasoning", "thinking", "redacted_thinking"})


class Conversation(NamedTuple):
    """The request a logged input holds."""

    system: list[str]
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    """Tool definitions logged among the messages (LangChain) or in a Gemini config."""
    wrapper: dict[str, Any]
    """The object around the messages (``{"tools", "tool_choice", "messages"}``), else {}."""


def loads(value: Any) -> Any:
    """A JSON-string field parsed when it is JSON, else kept."""
    return maybe_json(value) if isinstance(value, str) else value


def text_of(content: Any) -> str:
    """The text of message content: a string, text parts, or a part; anything else as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return str(content["text"])
    return json_text(content)


def tool_call(call: Any) -> dict[str, Any] | None:
    """A canonical tool call from any logged shape, or None when it is not one.

    OpenAI ``{id, function: {name, arguments}}``, LangChain ``{id, name, args}``, Vercel AI SDK
    ``{toolCallId, toolName, args | input}``, OpenInference ``{tool_call: {...}}``, Gemini
    ``{id, name, args}``.
    """
    if not isinstance(call, dict):
        return None
    if isinstance(call.get("tool_call"), dict):
        call = call["tool_call"]
    inner = call.get("function")
    fn: dict[str, Any] = inner if isinstance(inner, dict) else call
    name = fn.get("name", call.get("toolName"))
    if name is None:
        return None
    arguments = next(
        (fn[k] for k in ("arguments", "args", "input") if fn.get(k) is not None),
        next((call[k] for k in ("args", "input") if call.get(k) is not None), None),
    )
    return {
        "type": "tool_call",
        "id": call.get("id", call.get("toolCallId")),
        "name": str(name),
        "arguments": loads(arguments),
    }


def _calls(msg: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls an assistant message carries (LangChain keeps a copy in additional_kwargs)."""
    raw = loads(msg.get("tool_calls"))
    if not raw:
        extra = msg.get("additional_kwargs")
        raw = loads(extra.get("tool_calls")) if isinstance(extra, dict) else None
    if not raw and isinstance(msg.get("function_call"), dict):
        raw = [{"function": msg["function_call"]}]
    return [c for c in map(tool_call, raw if isinstance(raw, list) else []) if c is not None]


def _unwrap(msg: dict[str, Any]) -> dict[str, Any]:
    """An OpenInference ``{"message": {role, content | contents, tool_calls}}`` as a plain message."""
    inner = msg.get("message")
    if not isinstance(inner, dict) or "role" in msg:
        return msg
    out = dict(inner)
    contents = inner.get("contents")
    if "content" not in out and isinstance(contents, list):
        out["content"] = [
            c.get("message_content", c) if isinstance(c, dict) else c for c in contents
        ]
    return out


def _tool_definition(content: Any) -> dict[str, Any] | None:
    """A tool definition logged as a ``tool`` message's content (LangChain's handler), or None."""
    if not isinstance(content, dict):
        return None
    inner = content.get("function")
    fn: dict[str, Any] = inner if isinstance(inner, dict) else content
    if not isinstance(fn.get("name"), str) or not (
        content.get("type") == "function" or "parameters" in fn
    ):
        return None
    parameters = loads(fn.get("parameters"))
    return {
        "name": fn["name"],
        "description": fn.get("description"),
        "parameters": parameters if isinstance(parameters, dict) else {"type": "object"},
    }


def _result_text(content: Any) -> Any:
    """A tool result's content as text (Vercel v5 wraps it as ``{type: json | text, value}``)."""
    if isinstance(content, dict) and content.get("type") in ("json", "text") and "value" in content:
        content = content["value"]
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") in _TEXT_PARTS for p in content
    ):
        return text_of(content)
    return json_text(content)


class _Builder:
    """Canonical messages made one logged message at a time; tool calls wait for their results."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = issues
        self.system: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self.tools: list[dict[str, Any]] = []
        self._pending: dict[str, list[Any]] = {}  # tool name → ids of calls not answered yet

    def add(self, raw: Any, field: str) -> None:
        if isinstance(raw, str):
            self.messages.append({"role": "user", "content": [{"type": "text", "text": raw}]})
            return
        msg = _unwrap(expect_dict(raw, field))
        logged = msg.get("role") or msg.get("type")  # LangChain messages carry `type`
        role = _ROLES.get(logged) if isinstance(logged, str) else None
        content = loads(msg.get("content"))
        if isinstance(msg.get("parts"), list) and content is None:  # OTel semconv messages
            self.parts(role or "user", msg["parts"])
        elif role == "system":
            self.system.append(text_of(content))
        elif role == "tool":
            definition = None if "tool_call_id" in msg else _tool_definition(content)
            if definition is not None:
                self.tools.append(definition)
            else:  # a result keeps its text as logged, JSON or not
                self._results(msg, msg.get("content"), legacy=logged == "function")
        elif role is not None:
            parts = self._parts(content)
            if role == "assistant" and not any(p["type"] == "tool_call" for p in parts):
                parts += _calls(msg)
            self.turn(role, parts)
        elif isinstance(logged, str) and (logged in self._pending or "additional_kwargs" in msg):
            # LangChain.js logs a tool message with the tool's name as its role
            self._results({**msg, "name": logged}, msg.get("content"), legacy=False)
        else:
            problem = "missing role" if logged is None else f"unknown role {logged!r}"
            raise BadRecord(f"{field}.role", problem[:80])

    def turn(self, role: str, parts: list[dict[str, Any]]) -> None:
        """One message of canonical parts; its tool calls wait for their results."""
        if role == "system":
            self.system.append(text_of(parts))
            return
        for part in parts:
            if part["type"] == "tool_call":
                self._pending.setdefault(part["name"], []).append(part["id"])
        self.messages.append({"role": role, "content": parts})

    def parts(self, role: str, parts: list[Any]) -> None:
        """A message of OTel semconv or Gemini parts: each result a tool message, the rest a turn."""
        turn: list[dict[str, Any]] = []
        for part in parts:
            if not isinstance(part, dict) or part.get("thought"):
                continue
            kind = part.get("type")
            response = part.get("function_response", part)
            if kind == "text" or (kind is None and isinstance(part.get("text"), str)):
                turn.append(
                    {"type": "text", "text": text_of(part.get("content", part.get("text")))}
                )
            elif kind == "tool_call_response" or "function_response" in part:
                self.result(
                    response.get("id"), response.get("name"), response.get("response"), False
                )
            elif (call := tool_call(part.get("function_call", part))) is not None:
                turn.append(call)
            elif kind not in _IGNORED_PARTS:
                turn.append(dict(part))
                self.issues.append(f"untranslatable: {kind or next(iter(part), '?')} content")
        if turn:
            self.turn(role, turn)

    def _parts(self, content: Any) -> list[dict[str, Any]]:
        if content is None or content == "":
            return []
        if not isinstance(content, list):
            return [{"type": "text", "text": text_of(content)}]
        out: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if not isinstance(part, dict) or kind is None or kind in _TEXT_PARTS:
                out.append({"type": "text", "text": text_of([part])})
            elif kind in ("image_url", "image") and isinstance(url := _image_url(part), str):
                out.append({"type": "image", "url": url, "media_type": part.get("mimeType")})
            elif kind in ("tool-call", "tool_use") and (call := tool_call(part)) is not None:
                out.append(call)
            elif kind not in _IGNORED_PARTS:
                out.append(dict(part))
                self.issues.append(f"untranslatable: {kind} content")
        return out

    def _results(self, msg: dict[str, Any], content: Any, *, legacy: bool) -> None:
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "tool-result" for p in content
        ):  # Vercel AI SDK: one tool message, a result part per call
            for part in content:
                if isinstance(part, dict):
                    output = part.get("output", part.get("result"))
                    self.result(part.get("toolCallId"), part.get("toolName"), output, legacy)
            return
        self.result(msg.get("tool_call_id"), msg.get("name"), content, legacy)

    def result(self, call_id: Any, name: Any, content: Any, legacy: bool) -> None:
        """One tool result; without an id it answers the earliest open call of its tool."""
        if call_id is None or call_id == "":
            open_calls = self._pending.get(name) if isinstance(name, str) else None
            call_id = open_calls.pop(0) if open_calls else (name if legacy else None)
        else:
            for ids in self._pending.values():
                if call_id in ids:
                    ids.remove(call_id)
        part = {
            "type": "tool_result",
            "tool_call_id": call_id,
            "content": _result_text(content),
            "is_error": False,
        }
        self.messages.append({"role": "tool", "content": [part]})


def _image_url(part: dict[str, Any]) -> Any:
    image = part.get("image_url", part.get("image"))
    url = image.get("url") if isinstance(image, dict) else image
    return url if isinstance(url, str) and url.startswith(("http", "data:")) else None


def _responses_shaped(msg: Any) -> bool:
    """Whether a logged message is an OpenAI Responses input item."""
    if not isinstance(msg, dict):
        return False
    if msg.get("type") in _RESPONSES_ITEMS:
        return True
    content = msg.get("content")
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") in _RESPONSES_PARTS for p in content
    )


def _messages(items: list[Any], issues: list[str]) -> Conversation:
    if any(_responses_shaped(m) for m in items):
        system, messages = responses_items(items, issues, "input")
        return Conversation(system, messages, [], {})
    builder = _Builder(issues)
    for i, msg in enumerate(items):
        builder.add(msg, f"input[{i}]")
    return Conversation(builder.system, builder.messages, builder.tools, {})


def framework_input(value: Any, issues: list[str]) -> Conversation | None:
    """The conversation a logged input holds, or None when it is no conversation (a prompt)."""
    value = loads(value)
    if isinstance(value, list):
        return _messages(value, issues)
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("contents"), list):
        return _gemini(value, issues)
    for key in ("messages", "input", "prompt", "chat_history"):
        inner = loads(value.get(key))
        if isinstance(inner, list) and all(isinstance(m, dict) for m in inner):
            found = _messages(inner, issues)
            before = [t for k in ("system", "instructions") if isinstance(t := value.get(k), str)]
            return found._replace(system=[*before, *found.system], wrapper=value)
    if ("role" in value and "content" in value) or isinstance(value.get("message"), dict):
        return _messages([value], issues)
    if isinstance(value.get("prompt"), str):  # Vercel AI SDK ai.prompt: {system, prompt}
        system = [value["system"]] if isinstance(value.get("system"), str) else []
        return _messages([{"role": "user", "content": value["prompt"]}], issues)._replace(
            system=system
        )
    return None


def wrapper_tools(wrapper: dict[str, Any], issues: list[str]) -> list[dict[str, Any]]:
    """Tools of the object around the messages: chat ``{type, function}`` or Responses' flat form."""
    tools = wrapper.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "function" not in t for t in tools):
        return responses_tools(tools, issues) or []
    return chat_tools(wrapper, issues) or []


# --- Gemini (Google ADK) -------------------------------------------------------------------------


def _gemini(value: dict[str, Any], issues: list[str]) -> Conversation:
    """A Gemini ``{model, config, contents}`` request (ADK's ``gcp.vertex.agent.llm_request``)."""
    config = expect_dict(value.get("config"), "input.config", required=False)
    instruction = config.get("system_instruction", value.get("system_instruction"))
    system = [_gemini_text(instruction)] if instruction else []
    builder = _Builder(issues)
    for i, content in enumerate(value["contents"]):
        content = expect_dict(content, f"input.contents[{i}]")
        role = "assistant" if content.get("role") == "model" else "user"
        builder.parts(
            role, expect_list(content.get("parts"), f"input.contents[{i}].parts", required=False)
        )
    tools = [
        {
            "name": str(decl.get("name") or ""),
            "description": decl.get("description"),
            "parameters": _json_schema(
                decl.get("parameters_json_schema") or decl.get("parameters") or {"type": "object"}
            ),
        }
        for tool in config.get("tools") or []
        if isinstance(tool, dict)
        for decl in tool.get("function_declarations") or []
        if isinstance(decl, dict)
    ]
    return Conversation(system, builder.messages, tools, {})


def _gemini_text(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("parts"), list):
        return text_of(value["parts"])
    return text_of(value)


def _json_schema(schema: Any) -> Any:
    """A Gemini schema as JSON Schema: its type names are upper case (``OBJECT``, ``STRING``)."""
    if isinstance(schema, list):
        return [_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: v.lower() if k == "type" and isinstance(v, str) else _json_schema(v)
        for k, v in schema.items()
    }


# --- output --------------------------------------------------------------------------------------


def framework_output(value: Any) -> tuple[str | None, list[dict[str, Any]], Any]:
    """(text, tool calls, finish reason) of a logged output, whatever its shape."""
    value = loads(value)
    if value is None:
        return None, [], None
    if isinstance(value, str):
        return value, [], None
    finish = None
    if isinstance(value, dict) and isinstance(value.get("choices"), list) and value["choices"]:
        choice = value["choices"][0]
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        value = choice.get("message", choice) if isinstance(choice, dict) else choice
    if isinstance(value, list) and any(_responses_shaped(v) for v in value):
        texts, calls, _ = responses_output(value, "output")
        return "".join(texts), calls, None
    if isinstance(value, list) and value:
        value = value[-1]
    if not isinstance(value, dict):
        return json_text(value), [], None
    value = _unwrap(value)
    content = value.get("content", value.get("text", value.get("output")))
    parts = content.get("parts") if isinstance(content, dict) else value.get("parts")
    if isinstance(parts, list):  # an OTel semconv message, or a Gemini response's content
        builder = _Builder([])
        builder.parts("assistant", parts)
        said = builder.messages[-1]["content"] if builder.messages else []
        value = {**value, "tool_calls": [p for p in said if p["type"] == "tool_call"]}
        content = [p for p in said if p["type"] == "text"]
    calls = [{k: c[k] for k in ("id", "name", "arguments")} for c in _calls(value)]
    finish = finish or next(
        (value[k] for k in ("finish_reason", "stop_reason", "finishReason") if value.get(k)), None
    )
    return (text_of(loads(content)) if content is not None else ""), calls, finish
