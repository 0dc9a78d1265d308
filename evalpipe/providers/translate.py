"""Canonical request (FORMATS.md) → the body each provider's SDK takes.

A request that cannot be expressed on the target raises `Untranslatable`; replay records it as a
`skipped` row with the reason, never sends it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

__all__ = [
    "Untranslatable",
    "api_tool_name",
    "apply_arm_overrides",
    "restore_tool_names",
    "to_anthropic",
    "to_openai",
]

# Parameters each SDK accepts besides messages/tools; the rest of `params.extra` is passed on to the
# same provider only (and listed as dropped when translating across).
_OPENAI_PARAMS = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


@functools.cache
def _anthropic_sampling_params() -> tuple[str, ...]:
    # anthropic 2.x dropped the sampling parameters from `messages.create`; send only what it takes.
    import inspect

    from anthropic.resources.messages import AsyncMessages

    accepted = inspect.signature(AsyncMessages.create).parameters
    return tuple(p for p in ("temperature", "top_p", "top_k") if p in accepted)


_TOOL_NAME_OK = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


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


class Untranslatable(ValueError):
    """The canonical request has something the target provider cannot express."""


def apply_arm_overrides(
    request: dict[str, Any],
    *,
    params: dict[str, Any],
    system_replace: str | None = None,
    system_append: str | None = None,
) -> dict[str, Any]:
    """A copy of the canonical request with an arm's system prompt and parameter overrides."""
    out = dict(request)  # shallow: only top-level keys are replaced below
    if system_replace is not None:
        out["system"] = system_replace
    if system_append:
        out["system"] = ((out.get("system") or "") + "\n\n" + system_append).strip()
    merged = dict(out.get("params") or {})
    for key, value in params.items():
        if key in ("max_tokens", "temperature", "top_p", "stop", "seed"):
            merged[key] = value
        else:
            extra = dict(merged.get("extra") or {})
            extra[key] = value
            merged["extra"] = extra
    out["params"] = merged
    return out


# --- OpenAI chat completions --------------------------------------------------------------------


def _openai_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0].get("type") == "text":
        return str(parts[0].get("text", ""))
    out: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "text":
            out.append({"type": "text", "text": p.get("text", "")})
        elif p["type"] == "image":
            out.append({"type": "image_url", "image_url": {"url": p.get("url", "")}})
    return out


def _openai_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.get("system"):
        messages.append({"role": "system", "content": request["system"]})
    for msg in request.get("messages") or []:
        role, parts = msg["role"], msg.get("content") or []
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        calls = [p for p in parts if p.get("type") == "tool_call"]
        results = [p for p in parts if p.get("type") == "tool_result"]
        rest = [p for p in parts if p.get("type") in ("text", "image")]
        for r in results:
            content = r.get("content")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": r.get("tool_call_id"),
                    "content": content
                    if isinstance(content, str)
                    else orjson.dumps(content).decode(),
                }
            )
        if role == "tool":
            continue
        if rest or calls or not results:
            body: dict[str, Any] = {
                "role": role,
                "content": _openai_content(rest) if rest else None,
            }
            if calls:
                body["tool_calls"] = [
                    {
                        "id": c.get("id"),
                        "type": "function",
                        "function": {
                            "name": api_tool_name(c["name"]),
                            "arguments": c["arguments"]
                            if isinstance(c.get("arguments"), str)
                            else orjson.dumps(c.get("arguments") or {}).decode(),
                        },
                    }
                    for c in calls
                ]
            elif body["content"] is None:
                body["content"] = ""
            messages.append(body)
    return messages


def to_openai(request: dict[str, Any], *, model: str, same_provider: bool = True) -> dict[str, Any]:
    """Keyword arguments for `client.chat.completions.create` from a canonical request."""
    params = request.get("params") or {}
    kwargs: dict[str, Any] = {"model": model, "messages": _openai_messages(request)}
    if params.get("max_tokens") is not None:
        kwargs["max_tokens"] = int(params["max_tokens"])
    for key in _OPENAI_PARAMS:
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("stop"):
        kwargs["stop"] = list(params["stop"])
    if request.get("tools"):
        kwargs["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": api_tool_name(t["name"]),
                    "description": t.get("description") or "",
                    "parameters": t.get("parameters") or {"type": "object", "properties": {}},
                    **({"strict": bool(t["strict"])} if t.get("strict") is not None else {}),
                },
            }
            for t in request["tools"]
        ]
    choice = request.get("tool_choice")
    if choice is not None:
        if isinstance(choice, dict):
            kwargs["tool_choice"] = {
                "type": "function",
                "function": {"name": api_tool_name(choice["name"])},
            }
        else:
            kwargs["tool_choice"] = choice
    if request.get("tools") and params.get("parallel_tool_calls") is not None:
        kwargs["parallel_tool_calls"] = bool(params["parallel_tool_calls"])  # needs tools
    fmt = request.get("response_format")
    if fmt:
        if fmt.get("type") == "json_schema":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": fmt.get("name") or "response",
                    "schema": fmt.get("schema") or {},
                    "strict": bool(fmt.get("strict", False)),
                },
            }
        else:
            kwargs["response_format"] = {"type": fmt.get("type", "json_object")}
    extra = params.get("extra") or {}
    if extra and same_provider:
        kwargs["extra_body"] = {k: v for k, v in extra.items() if k not in kwargs}
    if extra.get("n", 1) not in (1, None):
        raise Untranslatable("n > 1")
    return kwargs


# --- Anthropic Messages -------------------------------------------------------------------------


def _anthropic_blocks(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for p in parts:
        kind = p.get("type")
        if kind == "text":
            if p.get("text"):
                blocks.append({"type": "text", "text": p["text"]})
        elif kind == "image":
            url = p.get("url", "")
            if url.startswith("data:"):
                header, _, data = url.partition(",")
                media = header.removeprefix("data:").split(";")[0]
                blocks.append(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": media, "data": data},
                    }
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        elif kind == "tool_call":
            args = p.get("arguments")
            if isinstance(args, str):
                try:
                    args = orjson.loads(args)
                except orjson.JSONDecodeError as exc:
                    raise Untranslatable("tool call arguments are not JSON") from exc
            blocks.append(
                {
                    "type": "tool_use",
                    "id": p.get("id"),
                    "name": api_tool_name(p["name"]),
                    "input": args or {},
                }
            )
        elif kind == "tool_result":
            content = p.get("content")
            blocks.append(
                {
                    "type": "tool_result",
                    "tool_use_id": p.get("tool_call_id"),
                    "content": content
                    if isinstance(content, str)
                    else orjson.dumps(content).decode(),
                    "is_error": bool(p.get("is_error", False)),
                }
            )
        else:
            raise Untranslatable(f"content part `{kind}`")
    return blocks


def to_anthropic(
    request: dict[str, Any],
    *,
    model: str,
    default_max_tokens: int = 1024,
    same_provider: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for `client.messages.create` from a canonical request."""
    params = request.get("params") or {}
    extra = params.get("extra") or {}
    if extra.get("n", 1) not in (1, None):
        raise Untranslatable("n > 1")
    if extra.get("logprobs"):
        raise Untranslatable("logprobs")
    messages: list[dict[str, Any]] = []
    for msg in request.get("messages") or []:
        parts = msg.get("content") or []
        if isinstance(parts, str):
            parts = [{"type": "text", "text": parts}]
        role = "user" if msg["role"] == "tool" else msg["role"]
        if role not in ("user", "assistant"):
            raise Untranslatable(f"role `{msg['role']}`")
        blocks = _anthropic_blocks(parts)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # Anthropic wants alternating roles
        else:
            messages.append({"role": role, "content": blocks})
    # A turn of one text block is sent as a string, as people write them; several stay blocks.
    for m in messages:
        if len(m["content"]) == 1 and m["content"][0]["type"] == "text":
            m["content"] = m["content"][0]["text"]
    max_tokens = params.get("max_tokens")
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": int(max_tokens) if max_tokens is not None else default_max_tokens,
    }
    if request.get("system"):
        kwargs["system"] = request["system"]
    for key in _anthropic_sampling_params():
        if params.get(key) is not None:
            kwargs[key] = params[key]
    if params.get("stop"):
        kwargs["stop_sequences"] = list(params["stop"])
    if request.get("tools"):
        kwargs["tools"] = [
            {
                "name": api_tool_name(t["name"]),
                "description": t.get("description") or "",
                "input_schema": t.get("parameters") or {"type": "object", "properties": {}},
            }
            for t in request["tools"]
        ]
    choice = request.get("tool_choice")
    if choice is not None and request.get("tools"):
        if isinstance(choice, dict):
            kwargs["tool_choice"] = {"type": "tool", "name": api_tool_name(choice["name"])}
        else:
            kwargs["tool_choice"] = {"auto": {"type": "auto"}, "none": {"type": "none"}}.get(
                choice, {"type": "any"}
            )
    parallel = params.get("parallel_tool_calls")
    if request.get("tools") and parallel is not None:
        # Anthropic says it inside tool_choice (auto, any or tool; `none` calls no tools at all)
        kwargs.setdefault("tool_choice", {"type": "auto"})
        if kwargs["tool_choice"]["type"] != "none":
            kwargs["tool_choice"]["disable_parallel_tool_use"] = not parallel
    fmt = request.get("response_format")
    if fmt:
        if fmt.get("type") == "json_schema" and fmt.get("schema"):
            kwargs["output_config"] = {"format": {"type": "json_schema", "schema": fmt["schema"]}}
        else:
            # json_object has no Anthropic equivalent: ask for it in the system prompt.
            note = "Respond with a single JSON object and nothing else."
            kwargs["system"] = f"{kwargs.get('system', '')}\n\n{note}".strip()
    if extra and same_provider:
        kwargs["extra_body"] = dict(extra)
    return kwargs
