"""Canonical request (FORMATS.md) → the body each target API takes, and what it could not take.

`translate` builds the body for OpenAI chat completions, an OpenAI-compatible server or Anthropic
Messages: the conversation (system prompt, turns, tool calls and results, images), the tools and
tool choice, structured output, and the logged parameters the target accepts (`params.py`). Every
logged parameter is either sent or listed in `Translation.not_replayed` with a reason; so is an
orphaned tool result, which is dropped. A request the target cannot express raises
`Untranslatable`; replay records it as a `skipped` row with the reason, never sends it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal, NamedTuple

import orjson

from evalpipe.providers.params import (
    ANTHROPIC_MESSAGES,
    NotReplayed,
    Untranslatable,
    params_for,
    read_params,
)

__all__ = [
    "TARGET_APIS",
    "TargetApi",
    "Translation",
    "Untranslatable",
    "api_tool_name",
    "apply_arm_overrides",
    "restore_tool_names",
    "to_anthropic",
    "to_openai",
    "translate",
]

TargetApi = Literal["openai_chat", "openai_compatible", "anthropic_messages"]

TARGET_APIS: Final[dict[str, TargetApi]] = {
    "openai": "openai_chat",
    "openai_compatible": "openai_compatible",
    "anthropic": "anthropic_messages",
}
"""The API an arm's `provider` speaks."""


def _anthropic_sampling_params() -> tuple[str, ...]:
    """The sampling parameters Anthropic is sent (none with anthropic 2.x, see params.py)."""
    return tuple(p for p in ("temperature", "top_p", "top_k") if p in ANTHROPIC_MESSAGES)


_TOOL_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_JSON_OBJECT_NOTE: Final = "Respond with a single JSON object and nothing else."


def api_tool_name(name: str) -> str:
    """A tool name both APIs accept (letters, digits, _ and -, at most 64): `math.factorial` →
    `math_factorial`. Logged names such as BFCL's dotted ones are sent this way."""
    if _TOOL_NAME_OK.match(name):
        return name
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "tool"


def restore_tool_names(calls_json: str | None, request: dict[str, Any]) -> str | None:
    """Tool calls of an answer with the request's own tool names put back."""
    renamed = {
        api_tool_name(t["name"]): t["name"]
        for t in request.get("tools") or []
        if api_tool_name(t["name"]) != t["name"]
    }
    if not calls_json or not renamed:
        return calls_json
    calls = orjson.loads(calls_json)
    for call in calls:
        call["name"] = renamed.get(call.get("name"), call.get("name"))
    return orjson.dumps(calls).decode()


class Translation(NamedTuple):
    """The SDK keyword arguments for one request, and what of the logged request they leave out."""

    kwargs: dict[str, Any]
    not_replayed: list[NotReplayed]

    def not_replayed_json(self) -> str | None:
        """The `params_not_replayed` column: a JSON list of {param, reason}, null when none."""
        if not self.not_replayed:
            return None
        return orjson.dumps([n.as_json() for n in self.not_replayed]).decode()


def apply_arm_overrides(
    request: dict[str, Any],
    *,
    params: dict[str, Any],
    system_replace: str | None = None,
    system_append: str | None = None,
) -> dict[str, Any]:
    """A copy of the canonical request with an arm's system prompt and parameter overrides.

    Overrides go to `params.overrides`, read before the logged values (in any spelling) and
    winning over them.
    """
    out = dict(request)  # shallow: only top-level keys are replaced below
    if system_replace is not None:
        out["system"] = system_replace
    if system_append:
        out["system"] = ((out.get("system") or "") + "\n\n" + system_append).strip()
    if params:
        merged = dict(out.get("params") or {})
        merged["overrides"] = {**(merged.get("overrides") or {}), **params}
        out["params"] = merged
    return out


# --- the conversation, target-neutral -----------------------------------------------------------


def _parts(msg: dict[str, Any]) -> list[dict[str, Any]]:
    parts = msg.get("content") or []
    return [{"type": "text", "text": parts}] if isinstance(parts, str) else list(parts)


def _conversation(request: dict[str, Any]) -> tuple[list[dict[str, Any]], list[NotReplayed]]:
    """The canonical messages with orphaned tool results dropped (and said so).

    Both APIs want every tool result to answer a call of the assistant turn before it, and every
    call answered before the next assistant turn. A result without its call is dropped: the
    model never saw that call. A call without its result leaves the request untranslatable.
    """
    lost: list[NotReplayed] = []
    out: list[dict[str, Any]] = []
    pending: set[str] = set()
    for msg in request.get("messages") or []:
        parts = _parts(msg)
        if msg["role"] == "assistant":
            if pending:
                raise Untranslatable("tool call without its result")
            pending = {str(p.get("id")) for p in parts if p.get("type") == "tool_call"}
        else:
            kept = []
            for p in parts:
                if p.get("type") != "tool_result":
                    kept.append(p)
                elif str(p.get("tool_call_id")) in pending:
                    pending.discard(str(p.get("tool_call_id")))
                    kept.append(p)
                else:
                    lost.append(NotReplayed("tool_result", "no tool call before it (dropped)"))
            if not kept and parts:
                continue
            parts = kept
        out.append({"role": msg["role"], "content": parts})
    if pending:
        raise Untranslatable("tool call without its result")
    return out, lost


def _tool_names(request: dict[str, Any]) -> list[str]:
    names = [api_tool_name(t["name"]) for t in request.get("tools") or []]
    if len(set(names)) != len(names):
        raise Untranslatable("two tools share a name once made valid for the APIs")
    return names


def _arguments_object(args: Any) -> Any:
    if isinstance(args, str):
        try:
            return orjson.loads(args)
        except orjson.JSONDecodeError as exc:
            raise Untranslatable("tool call arguments are not JSON") from exc
    return args or {}


def _result_text(content: Any) -> str:
    return content if isinstance(content, str) else orjson.dumps(content).decode()


# --- OpenAI chat completions (and OpenAI-compatible servers) ------------------------------------


def _openai_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0].get("type") == "text":
        return str(parts[0].get("text", ""))
    out: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "text":
            out.append({"type": "text", "text": p.get("text", "")})
        elif p["type"] == "image":
            out.append({"type": "image_url", "image_url": {"url": p.get("url", "")}})
        else:
            raise Untranslatable(f"content part `{p['type']}`")
    return out


def _openai_call(c: dict[str, Any]) -> dict[str, Any]:
    args = c.get("arguments")
    return {
        "id": c.get("id"),
        "type": "function",
        "function": {
            "name": api_tool_name(c["name"]),
            "arguments": args if isinstance(args, str) else orjson.dumps(args or {}).decode(),
        },
    }


def _openai_turn(messages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One user turn (consecutive user and tool messages): the tool results first, as the API
    wants them right after the assistant's calls, then the user's own messages in order."""
    for msg in messages:
        for r in (p for p in msg["content"] if p.get("type") == "tool_result"):
            yield {
                "role": "tool",
                "tool_call_id": r.get("tool_call_id"),
                "content": _result_text(r.get("content")),
            }
    for msg in messages:
        rest = [p for p in msg["content"] if p.get("type") != "tool_result"]
        if msg["role"] != "tool" and (rest or not msg["content"]):
            yield {"role": msg["role"], "content": _openai_content(rest) if rest else ""}


def _openai_messages(
    system: str | None, conversation: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    turn: list[dict[str, Any]] = []
    for msg in conversation:
        if msg["role"] in ("user", "tool"):
            turn.append(msg)
            continue
        messages.extend(_openai_turn(turn))
        turn = []
        calls = [p for p in msg["content"] if p.get("type") == "tool_call"]
        rest = [p for p in msg["content"] if p.get("type") != "tool_call"]
        body: dict[str, Any] = {
            "role": msg["role"],
            "content": _openai_content(rest) if rest else None,
        }
        if calls:
            body["tool_calls"] = [_openai_call(c) for c in calls]
        elif body["content"] is None:
            body["content"] = ""
        messages.append(body)
    messages.extend(_openai_turn(turn))
    return messages


def _openai_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt.get("type") == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {
                "name": fmt.get("name") or "response",
                "schema": fmt.get("schema") or {},
                "strict": bool(fmt.get("strict", False)),
            },
        }
    return {"type": fmt.get("type", "json_object")}


class _Parts(NamedTuple):
    """What a body is built from: the request, its repaired conversation, the logged params by
    concept (from `read_params`), the target and the `max_tokens` to use when none was logged."""

    request: dict[str, Any]
    conversation: list[dict[str, Any]]
    values: dict[str, Any]
    api: TargetApi
    default_max_tokens: int


def _openai_body(parts: _Parts) -> tuple[dict[str, Any], list[NotReplayed]]:
    request, values = parts.request, parts.values  # max_tokens is optional on OpenAI
    messages = _openai_messages(request.get("system"), parts.conversation)
    if not messages:
        raise Untranslatable("no messages")
    kwargs: dict[str, Any] = {"messages": messages}
    names = _tool_names(request)
    if names:
        kwargs["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": t.get("description") or "",
                    "parameters": t.get("parameters") or {"type": "object", "properties": {}},
                    **({"strict": bool(t["strict"])} if t.get("strict") is not None else {}),
                },
            }
            for name, t in zip(names, request["tools"], strict=True)
        ]
        choice = request.get("tool_choice")
        if isinstance(choice, dict):
            choice = {"type": "function", "function": {"name": api_tool_name(choice["name"])}}
        if choice is not None:
            kwargs["tool_choice"] = choice
    else:
        values.pop("parallel_tool_calls", None)  # without tools neither API takes it
    if request.get("response_format"):
        kwargs["response_format"] = _openai_format(request["response_format"])
    plan = params_for(values, parts.api)
    return {**kwargs, **plan.sent}, plan.lost


# --- Anthropic Messages -------------------------------------------------------------------------


def _anthropic_id(call_id: Any) -> str:
    """A tool call id as Anthropic takes it (letters, digits, _ and -), the same for the call and
    its result: `call:1` → `call_1`."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", str(call_id)) or "_"


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media = header.removeprefix("data:").split(";")[0]
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


_BLOCKS: Final[dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]]] = {
    "text": lambda p: {"type": "text", "text": p["text"]} if p.get("text") else None,
    "image": lambda p: _image_block(str(p.get("url", ""))),
    "tool_call": lambda p: {
        "type": "tool_use",
        "id": _anthropic_id(p.get("id")),
        "name": api_tool_name(p["name"]),
        "input": _arguments_object(p.get("arguments")),
    },
    "tool_result": lambda p: {
        "type": "tool_result",
        "tool_use_id": _anthropic_id(p.get("tool_call_id")),
        "content": _result_text(p.get("content")),
        "is_error": bool(p.get("is_error", False)),
    },
}
"""Canonical content part → Anthropic block (None: nothing to send, e.g. an empty text)."""


def _anthropic_messages(conversation: list[dict[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for msg in conversation:
        role = "user" if msg["role"] == "tool" else msg["role"]
        if role not in ("user", "assistant"):
            raise Untranslatable(f"role `{msg['role']}`")
        blocks = []
        for p in msg["content"]:
            make = _BLOCKS.get(str(p.get("type")))
            if make is None:
                raise Untranslatable(f"content part `{p.get('type')}`")
            if (block := make(p)) is not None:
                blocks.append(block)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # Anthropic wants alternating roles
        else:
            messages.append({"role": role, "content": blocks})
    # A turn of one text block is sent as a string, as people write them; several stay blocks.
    for m in messages:
        m["content"].sort(key=lambda b: b["type"] != "tool_result")  # results open their turn
        if len(m["content"]) == 1 and m["content"][0]["type"] == "text":
            m["content"] = m["content"][0]["text"]
    return messages


def _anthropic_tool_choice(request: dict[str, Any], parallel: bool | None) -> dict[str, Any] | None:
    choice = request.get("tool_choice")
    out: dict[str, Any] | None = None
    if isinstance(choice, dict):
        out = {"type": "tool", "name": api_tool_name(choice["name"])}
    elif choice is not None:
        out = {"type": {"auto": "auto", "none": "none"}.get(choice, "any")}
    if parallel is not None:
        # Anthropic says it inside tool_choice (auto, any or tool; `none` calls no tools at all)
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = not parallel
    return out


def _anthropic_body(parts: _Parts) -> tuple[dict[str, Any], list[NotReplayed]]:
    request, conversation = parts.request, parts.conversation
    messages = _anthropic_messages(conversation)
    if not messages:
        raise Untranslatable("no message left once the system prompt moves to `system`")
    parallel = parts.values.pop("parallel_tool_calls", None)
    plan = params_for(parts.values, parts.api)
    kwargs: dict[str, Any] = {
        "messages": messages,
        **plan.sent,
        "max_tokens": plan.sent.get("max_tokens", parts.default_max_tokens),
    }
    if request.get("system"):
        kwargs["system"] = request["system"]
    names = _tool_names(request)
    if not names and any(p["type"] == "tool_call" for m in conversation for p in m["content"]):
        raise Untranslatable("tool calls in the conversation but no tools logged")
    if names:
        kwargs["tools"] = [
            {
                "name": name,
                "description": t.get("description") or "",
                "input_schema": {"type": "object", **(t.get("parameters") or {"properties": {}})},
            }
            for name, t in zip(names, request["tools"], strict=True)
        ]
        choice = _anthropic_tool_choice(request, parallel)
        if choice is not None:
            kwargs["tool_choice"] = choice
    fmt = request.get("response_format")
    if fmt and fmt.get("type") == "json_schema" and fmt.get("schema"):
        config = dict(kwargs.get("output_config") or {})
        config["format"] = {"type": "json_schema", "schema": fmt["schema"]}
        kwargs["output_config"] = config
    elif fmt:  # json_object has no Anthropic equivalent: ask for it in the system prompt
        kwargs["system"] = f"{kwargs.get('system', '')}\n\n{_JSON_OBJECT_NOTE}".strip()
    thinking = kwargs.get("thinking") or {}
    if thinking.get("type") == "enabled" and thinking["budget_tokens"] >= kwargs["max_tokens"]:
        raise Untranslatable("thinking.budget_tokens is not below max_tokens")
    return kwargs, plan.lost


_BODIES: Final = {
    "openai_chat": _openai_body,
    "openai_compatible": _openai_body,
    "anthropic_messages": _anthropic_body,
}


def translate(
    request: dict[str, Any], *, api: TargetApi, model: str, default_max_tokens: int = 1024
) -> Translation:
    """The SDK keyword arguments for a canonical request on `api`, and what they leave out.

    Args:
        request: the canonical request (FORMATS.md), arm overrides applied.
        api: the target API.
        model: the model the arm sends to.
        default_max_tokens: `max_tokens` when none was logged, where the API requires one.

    Raises:
        Untranslatable: the target cannot express the request.
    """
    read = read_params(request.get("params") or {})
    conversation, repaired = _conversation(request)
    body, lost = _BODIES[api](_Parts(request, conversation, read.values, api, default_max_tokens))
    return Translation({"model": model, **body}, [*read.lost, *repaired, *lost])


def to_openai(request: dict[str, Any], *, model: str, same_provider: bool = True) -> dict[str, Any]:
    """Keyword arguments for `client.chat.completions.create` from a canonical request.

    `same_provider` is unused: what is sent depends on the target's parameter table alone.
    """
    del same_provider
    return translate(request, api="openai_chat", model=model).kwargs


def to_anthropic(
    request: dict[str, Any],
    *,
    model: str,
    default_max_tokens: int = 1024,
    same_provider: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for `client.messages.create` from a canonical request.

    `same_provider` is unused: what is sent depends on the target's parameter table alone.
    """
    del same_provider
    return translate(
        request, api="anthropic_messages", model=model, default_max_tokens=default_max_tokens
    ).kwargs
