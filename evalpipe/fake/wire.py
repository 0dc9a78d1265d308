"""The two wire formats: request bodies → `Conversation`, `Answer` → response bodies and SSE events.

Usable without HTTP: `openai_response(body)` is exactly the `chat.completion` the server would
send for that body (the demo's generator logs it as production's answer).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

import orjson

from evalpipe.fake.behaviours import Answer, Conversation, Resolved, answer, resolve_model
from evalpipe.fake.hashing import alnum, draw, stable_hash
from evalpipe.fake.validate import BadRequest, check_anthropic, check_openai

__all__ = [
    "BadRequest",
    "Call",
    "UnknownModel",
    "anthropic_events",
    "anthropic_message",
    "anthropic_response",
    "openai_chunks",
    "openai_completion",
    "openai_response",
    "parse_anthropic",
    "parse_openai",
    "reply",
    "resolve",
]

_STOP_REASON: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_STREAM_KEYS: Final = ("stream", "stream_options")
_CHUNK_WORDS: Final = 4


class UnknownModel(LookupError):
    """No behaviour has this model name (the server's 404)."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"The model `{model}` does not exist or you do not have access to it.")


class Call(NamedTuple):
    """A parsed request: model, content, and the parameters that shape the answer."""

    model: str
    conversation: Conversation
    max_tokens: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    body_key: str
    """Hash of the body without its streaming options: ids, jitter and retry counts use it."""


def _body_key(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k not in _STREAM_KEYS}
    return f"{stable_hash(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS).decode()):016x}"


def _dumps_sorted(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _text_parts(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where}: expected a string or a list of content parts")
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise BadRequest(f"{where}: each content part must be an object")
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind in ("image_url", "image", "input_audio", "file", "document"):
            texts.append(f"[{'image' if kind.startswith('image') else kind}]")
        elif kind == "tool_use":
            texts.append(f"[tool call] {part.get('name')} {_dumps_sorted(part.get('input') or {})}")
        elif kind == "tool_result":
            texts.append("[tool result] " + _text_parts(part.get("content"), where))
    return " ".join(texts)


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise BadRequest("stop: expected a string or a list of strings")


def _max_tokens(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name}: expected a positive integer")
    return value


def _require(body: Any) -> tuple[dict[str, Any], str, list[Any]]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: a model name is required")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: a non-empty list is required")
    if not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages: each message must be an object")
    return body, model, messages


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise BadRequest(f"{key}: expected an object")
    return value


def parse_openai(body: Any) -> Call:
    """Read a chat-completions body; raises `BadRequest`."""
    try:
        return _parse_openai(body)
    except (TypeError, AttributeError) as exc:  # a field of the wrong shape somewhere
        raise BadRequest(f"malformed request ({exc})") from exc


def _parse_openai(body: Any) -> Call:
    check_openai(body)
    body, model, messages = _require(body)
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for i, m in enumerate(messages):
        role = m.get("role")
        text = _text_parts(m.get("content"), f"messages[{i}].content")
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            for c in m.get("tool_calls") or []:
                fn = (c.get("function") or {}) if isinstance(c, dict) else {}
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = fn.get("arguments")
                text += f" [tool call] {fn.get('name')} {_dumps_sorted(args)}"
            turns.append((role, text))
        elif role in ("tool", "function"):
            turns.append(("user", "[tool result] " + text))
        else:
            raise BadRequest(f"messages[{i}].role: unknown role {role!r}")
    fmt = body.get("response_format") or {}
    if not isinstance(fmt, dict):
        raise BadRequest("response_format: expected an object")
    schema = None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise BadRequest("response_format.json_schema: expected {name, schema}")
        schema = spec.get("schema") or {"type": "object"}
    tools = []
    for t in body.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest("tools: each tool needs function.name")
        tools.append(
            {
                "name": fn["name"],
                "description": fn.get("description") or "",
                "parameters": fn.get("parameters"),
            }
        )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name")
    conv = Conversation.build(
        "\n".join(system),
        turns,
        schema=schema,
        json_mode=fmt.get("type") == "json_object",
        tools=tools,
        tool_choice=choice if isinstance(choice, str) else None,
    )
    max_tokens = _max_tokens(body.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _max_tokens(body.get("max_tokens"), "max_tokens")
    options = body.get("stream_options") or {}
    return Call(
        model,
        conv,
        max_tokens,
        _stops(body.get("stop")),
        bool(body.get("stream")),
        bool(options.get("include_usage")) if isinstance(options, dict) else False,
        _body_key(body),
    )


def parse_anthropic(body: Any) -> Call:
    """Read a Messages body (`max_tokens` is required, as in the real API); raises `BadRequest`."""
    try:
        return _parse_anthropic(body)
    except (TypeError, AttributeError) as exc:  # a field of the wrong shape somewhere
        raise BadRequest(f"malformed request ({exc})") from exc


def _parse_anthropic(body: Any) -> Call:
    check_anthropic(body)
    body, model, messages = _require(body)
    max_tokens = _max_tokens(body.get("max_tokens"), "max_tokens")
    if max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    turns = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise BadRequest(f"messages[{i}].role: expected user or assistant, got {role!r}")
        turns.append((str(role), _text_parts(m.get("content"), f"messages[{i}].content")))
    config = _object(body, "output_config")
    fmt = config.get("format") or {}
    if not isinstance(fmt, dict):
        raise BadRequest("output_config.format: expected an object")
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list) or not all(isinstance(t, dict) for t in raw_tools):
        raise BadRequest("tools: expected a list of objects")
    tools = [
        {
            "name": t.get("name"),
            "description": t.get("description") or "",
            "parameters": t.get("input_schema"),
        }
        for t in raw_tools
    ]
    choice = _object(body, "tool_choice")
    kind = choice.get("type") if isinstance(choice, dict) else None
    tool_choice = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if kind == "tool":
        tool_choice = choice.get("name")
    conv = Conversation.build(
        _text_parts(body.get("system"), "system"),
        turns,
        schema=schema if isinstance(schema, dict) else None,
        tools=tools,
        tool_choice=tool_choice,
    )
    return Call(
        model,
        conv,
        max_tokens,
        _stops(body.get("stop_sequences")),
        bool(body.get("stream")),
        True,
        _body_key(body),
    )


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _prompt_tokens(conv: Conversation) -> int:
    extra = _dumps_sorted(conv.schema) if conv.schema else ""
    extra += "".join(_dumps_sorted(t) for t in conv.tools)
    return 3 + _tokens(conv.system) + sum(4 + _tokens(t) for _, t in conv.messages) + _tokens(extra)


def _output_tokens(ans: Answer) -> int:
    calls = "".join(c.name + _dumps_sorted(c.arguments) for c in ans.tool_calls)
    return max(1, _tokens(ans.text) + _tokens(calls) + 4 * len(ans.tool_calls))


def resolve(call: Call) -> Resolved:
    """The behaviour for a call's model; raises `UnknownModel`."""
    resolved = resolve_model(call.model)
    if resolved is None:
        raise UnknownModel(call.model)
    return resolved


def reply(call: Call, resolved: Resolved) -> Answer:
    """The behaviour's answer to a parsed call; raises `BadRequest` for an unusable schema."""
    try:
        return answer(
            resolved.behaviour, call.conversation, max_tokens=call.max_tokens, stop=call.stop
        )
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
        raise BadRequest(f"invalid JSON schema in the response format or tools ({exc})") from exc


def openai_completion(
    call: Call, snapshot: str, ans: Answer, *, created: int | None = None
) -> dict[str, Any]:
    """The `chat.completion` body for an answer."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": ans.text,
        "refusal": None,
        "annotations": [],
    }
    if ans.refusal and call.conversation.schema is not None:
        message["content"], message["refusal"] = None, ans.text  # structured outputs refuse apart
    if ans.tool_calls:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
            }
            for c in ans.tool_calls
        ]
    prompt, completion = _prompt_tokens(call.conversation), _output_tokens(ans)
    cached = 0
    if prompt >= 1024 and draw(call.conversation.key, "cached") < 0.5:
        cached = 1024 + 128 * ((prompt - 1024) // 128)
    return {
        "id": "chatcmpl-" + alnum("chatcmpl", call.body_key, snapshot, length=29),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": snapshot,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": ans.finish}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": f"fp_{stable_hash('fp', snapshot) % 16**10:010x}",
    }


def openai_response(body: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The `chat.completion` the fake would send for a chat-completions body (no HTTP, no delay).

    Raises:
        BadRequest: the body is not a valid request.
        UnknownModel: no behaviour has the body's model.
    """
    call = parse_openai(body)
    resolved = resolve(call)
    return openai_completion(call, resolved.snapshot, reply(call, resolved), created=created)


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [
        " ".join(words[i : i + _CHUNK_WORDS]) + (" " if i + _CHUNK_WORDS < len(words) else "")
        for i in range(0, len(words), _CHUNK_WORDS)
    ]


def openai_chunks(out: dict[str, Any], *, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk` objects that stream a completion (then the server sends [DONE])."""
    base = {k: out[k] for k in ("id", "created", "model", "service_tier", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = out["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        data = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return data

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in _pieces(message.get("content") or ""):
        yield chunk({"content": piece})
    if message.get("refusal"):
        for piece in _pieces(message["refusal"]):
            yield chunk({"refusal": piece})
    for i, c in enumerate(message.get("tool_calls") or []):
        head = {
            "index": i,
            "id": c["id"],
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [head]})
        args = c["function"]["arguments"]
        for j in range(0, len(args), 24):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 24]}}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage:
        yield {**base, "choices": [], "usage": out["usage"]}


def anthropic_message(call: Call, snapshot: str, ans: Answer) -> dict[str, Any]:
    """The Messages API `message` body for an answer."""
    content: list[dict[str, Any]] = [{"type": "text", "text": ans.text}] if ans.text else []
    content += [
        {
            "type": "tool_use",
            "id": "toolu_01" + c.id.removeprefix("call_")[:22],
            "name": c.name,
            "input": c.arguments,
        }
        for c in ans.tool_calls
    ]
    stop_reason = "stop_sequence" if ans.stop_sequence is not None else _STOP_REASON[ans.finish]
    return {
        "id": "msg_01" + alnum("msg", call.body_key, snapshot, length=22),
        "type": "message",
        "role": "assistant",
        "model": snapshot,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": ans.stop_sequence,
        "usage": {
            "input_tokens": _prompt_tokens(call.conversation),
            "output_tokens": _output_tokens(ans),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def anthropic_response(body: dict[str, Any]) -> dict[str, Any]:
    """The `message` the fake would send for a Messages body (no HTTP, no delay).

    Raises:
        BadRequest: the body is not a valid request.
        UnknownModel: no behaviour has the body's model.
    """
    call = parse_anthropic(body)
    resolved = resolve(call)
    return anthropic_message(call, resolved.snapshot, reply(call, resolved))


def anthropic_events(out: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs that stream a message, `message_start` … `message_stop`."""
    usage = out["usage"]
    start = {
        **out,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    for i, block in enumerate(out["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": i,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            if i == 0:
                yield "ping", {"type": "ping"}
            for piece in _pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": i, "delta": delta},
                )
        else:
            head = {**block, "input": {}}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": i, "content_block": head},
            )
            args = orjson.dumps(block["input"]).decode()
            for j in range(0, len(args), 24):
                delta = {"type": "input_json_delta", "partial_json": args[j : j + 24]}
                yield (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": i, "delta": delta},
                )
        yield "content_block_stop", {"type": "content_block_stop", "index": i}
    delta = {"stop_reason": out["stop_reason"], "stop_sequence": out["stop_sequence"]}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": delta,
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}
