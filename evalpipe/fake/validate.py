"""Request validation as the real APIs do it: unknown parameters, wrong types, message rules.

The parameters and their types come from `evalpipe.providers.params` (the tables replay sends
from); the messages are the APIs' own (OpenAI's `invalid_request_error` with `param` and `code`,
Anthropic's pydantic-style `field: problem`). The fake's tests send known-bad requests the real APIs
answer with these errors, so a table that drifts from the APIs shows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Final

import jsonschema

from evalpipe.providers.params import PARAMS, Api, violation

__all__ = ["BadRequest", "check_anthropic", "check_openai"]


class BadRequest(ValueError):
    """The body is not a valid request (the server's 400 `invalid_request_error`)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        self.message, self.param, self.code = message, param, code
        super().__init__(message)


_OPENAI_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]+$")
_ANTHROPIC_TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ANTHROPIC_ID: Final = re.compile(r"^[a-zA-Z0-9_-]+$")
_OPENAI_ROLES: Final = ("system", "developer", "user", "assistant", "tool", "function")

# JSON type → how each API names it in a type error
_OPENAI_EXPECTED: Final = {
    "integer": "an integer",
    "number": "a decimal",
    "boolean": "a boolean",
    "string": "a string",
    "object": "an object",
    "array": "an array",
}
_OPENAI_GOT: Final = {**_OPENAI_EXPECTED, "number": "a decimal number", "null": "null"}
_ANTHROPIC_EXPECTED: Final = {
    "integer": "a valid integer",
    "number": "a valid number",
    "boolean": "a valid boolean",
    "string": "a valid string",
    "object": "a valid dictionary",
    "array": "a valid list",
}


def _json_type(value: Any) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (dict, "object"),
        (list, "array"),
    ]
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _expected(error: jsonschema.ValidationError, names: dict[str, str]) -> str:
    kind: Any = error.validator_value
    kinds = [kind] if isinstance(kind, str) else list(kind)
    return " or ".join(names[k] for k in kinds if k in names)


def _path(name: str, error: jsonschema.ValidationError, sep: str) -> str:
    return sep.join([name, *(str(p) for p in error.absolute_path)])


def _quoted(values: Any, last: str) -> str:
    """`'a', 'b', and 'c'` (OpenAI, last=", and") or `'a', 'b' or 'c'` (Anthropic, last=" or")."""
    shown = [f"'{v}'" for v in values if v is not None]
    if len(shown) < 2:
        return "".join(shown)
    return ", ".join(shown[:-1]) + f"{last} " + shown[-1]


# --- OpenAI chat completions --------------------------------------------------------------------


def _openai_value_error(name: str, error: jsonschema.ValidationError) -> BadRequest:
    """The API's message for a value its schema refuses (shapes of the real 400s)."""
    param = _path(name, error, ".")
    limit, got = error.validator_value, error.instance
    number = "integer" if isinstance(got, int) else "decimal"
    length = len(got) if isinstance(got, list) else 0
    messages: dict[str, Callable[[], tuple[str, str]]] = {
        "type": lambda: (
            f"Invalid type for '{param}': expected {_expected(error, _OPENAI_EXPECTED)}, "
            f"but got {_OPENAI_GOT[_json_type(got)]} instead.",
            "invalid_type",
        ),
        "minimum": lambda: (
            f"Invalid '{param}': {number} below minimum value. Expected a value >= {limit}, "
            f"but got {got} instead.",
            f"{number}_below_min_value",
        ),
        "maximum": lambda: (
            f"Invalid '{param}': {number} above maximum value. Expected a value <= {limit}, "
            f"but got {got} instead.",
            f"{number}_above_max_value",
        ),
        "enum": lambda: (
            f"Invalid value: '{got}'. Supported values are: {_quoted(limit, ', and')}.",
            "invalid_value",
        ),
        "maxItems": lambda: (
            f"Invalid '{param}': array too long. Expected an array with maximum length {limit}, "
            f"but got an array with length {length} instead.",
            "array_above_max_length",
        ),
        "minItems": lambda: (
            f"Invalid '{param}': empty array. Expected an array with minimum length {limit}, "
            "but got an empty array instead.",
            "empty_array",
        ),
    }
    other = (f"Invalid '{param}': {error.message}.", "invalid_value")
    message, code = messages.get(str(error.validator), lambda: other)()
    return BadRequest(message, param=param, code=code)


def _openai_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools") or []
    for i, tool in enumerate(tools):
        name = ((tool or {}).get("function") or {}).get("name") if isinstance(tool, dict) else None
        _openai_name(name, f"tools[{i}].function.name")
    for key in ("tool_choice", "parallel_tool_calls"):
        if key in body and not tools:
            raise BadRequest(
                f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.",
                param=key,
            )


def _openai_name(name: Any, param: str) -> None:
    if not isinstance(name, str):
        raise BadRequest(f"Missing required parameter: '{param}'.", param=param)
    if len(name) > 64:
        raise BadRequest(
            f"Invalid '{param}': string too long. Expected a string with maximum length 64, "
            f"but got a string with length {len(name)} instead.",
            param=param,
            code="string_above_max_length",
        )
    if not _OPENAI_TOOL_NAME.match(name):
        raise BadRequest(
            f"Invalid '{param}': string does not match pattern. Expected a string that matches "
            "the pattern '^[a-zA-Z0-9_-]+$'.",
            param=param,
            code="invalid_value",
        )


def _openai_messages(messages: list[Any]) -> None:
    """Roles, and tool messages answering exactly the calls of the assistant message before them."""
    waiting: list[str] = []  # call ids of the last assistant message not answered yet
    answering: set[str] | None = None  # ids a tool message may answer; None: no calls before
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise BadRequest(
                f"Invalid type for 'messages[{i}]': expected an object.",
                param=f"messages[{i}]",
                code="invalid_type",
            )
        role = m.get("role")
        if role not in _OPENAI_ROLES:
            raise BadRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                "'function', 'tool', and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        if role == "tool":
            if answering is None:
                raise BadRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            call_id = m.get("tool_call_id")
            if call_id not in answering:
                raise BadRequest(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' "
                    "of previous message.",
                    param=f"messages.[{i}].tool_call_id",
                )
            waiting = [c for c in waiting if c != call_id]
            continue
        if waiting:
            raise _unanswered(waiting, i - 1)
        answering = None
        if role == "assistant" and m.get("tool_calls"):
            calls = m["tool_calls"]
            for j, c in enumerate(calls):
                fn = c.get("function") if isinstance(c, dict) else None
                _openai_name((fn or {}).get("name"), f"messages[{i}].tool_calls[{j}].function.name")
            waiting = [str(c.get("id")) for c in calls]
            answering = set(waiting)
    if waiting:
        raise _unanswered(waiting, len(messages) - 1)


def _unanswered(ids: list[str], at: int) -> BadRequest:
    return BadRequest(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to "
        "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(ids),
        param=f"messages.[{at}].role",
    )


def check_openai(body: Any) -> None:
    """Validate a chat-completions body as the API does; raises `BadRequest` like its 400."""
    _check_params(body, "openai_chat", _openai_unknown, _openai_value_error, _openai_missing)
    _openai_messages(body["messages"])
    _openai_tools(body)


def _openai_unknown(name: str) -> BadRequest:
    return BadRequest(f"Unrecognized request argument supplied: {name}")


def _openai_missing(name: str) -> BadRequest:
    return BadRequest(
        f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
    )


# --- Anthropic Messages -------------------------------------------------------------------------


def _anthropic_value_error(name: str, error: jsonschema.ValidationError) -> BadRequest:
    """The API's (pydantic's) message for a value its schema refuses."""
    limit = error.validator_value
    problems: dict[str, Callable[[], str]] = {
        "type": lambda: f"Input should be {_expected(error, _ANTHROPIC_EXPECTED)}",
        "minimum": lambda: f"Input should be greater than or equal to {limit}",
        "maximum": lambda: f"Input should be less than or equal to {limit}",
        "enum": lambda: f"Input should be {_quoted(limit, ' or')}",
        "additionalProperties": lambda: "Extra inputs are not permitted",
        "required": lambda: "Field required",
    }
    problem = problems.get(str(error.validator), lambda: error.message)()
    return BadRequest(f"{_path(name, error, '.')}: {problem}")


def _merged_turns(messages: list[dict[str, Any]]) -> Iterator[tuple[int, str, list[Any]]]:
    """(index of the first message, role, blocks) per turn: the API combines consecutive
    messages of one role into a single turn."""
    turn: tuple[int, str, list[Any]] | None = None
    for i, m in enumerate(messages):
        content = m.get("content")
        blocks = (
            [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        )
        if turn is not None and turn[1] == m["role"]:
            turn[2].extend(blocks)
            continue
        if turn is not None:
            yield turn
        turn = (i, str(m["role"]), blocks)
    if turn is not None:
        yield turn


def _anthropic_messages(messages: list[Any]) -> None:
    if not messages:
        raise BadRequest("messages: at least one message is required")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = m.get("content")
        if not content and not (i == len(messages) - 1 and m["role"] == "assistant"):
            raise BadRequest(
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
        for j, block in enumerate(content if isinstance(content, list) else []):
            _anthropic_block(block, f"messages.{i}.content.{j}")
    _anthropic_tool_turns(list(_merged_turns(messages)))


def _ids(blocks: list[Any], kind: str, key: str) -> list[Any]:
    return [b.get(key) for b in blocks if b.get("type") == kind]


def _anthropic_tool_turns(turns: list[tuple[int, str, list[Any]]]) -> None:
    """Every tool result answers a call of the turn before; every call is answered at the start
    of the turn after."""
    for k, (i, _, blocks) in enumerate(turns):
        called = set(_ids(turns[k - 1][2], "tool_use", "id")) if k else set()
        for j, b in enumerate(blocks):
            if b.get("type") == "tool_result" and b.get("tool_use_id") not in called:
                raise BadRequest(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {b.get('tool_use_id')}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        uses = _ids(blocks, "tool_use", "id")
        if not uses or k + 1 == len(turns):
            continue
        at, _, after = turns[k + 1]
        missing = [str(u) for u in uses if u not in _ids(after, "tool_result", "tool_use_id")]
        if missing:
            raise BadRequest(
                f"messages.{at}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        if any(b.get("type") != "tool_result" for b in after[: len(uses)]):
            raise BadRequest(
                f"messages.{at}: Did not find {len(uses)} `tool_result` block(s) at the beginning "
                "of this message. Messages following `tool_use` blocks must begin with a "
                "matching number of `tool_result` blocks."
            )


def _anthropic_block(block: Any, where: str) -> None:
    if not isinstance(block, dict):
        raise BadRequest(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind == "text" and not block.get("text"):
        raise BadRequest("messages: text content blocks must be non-empty")
    if kind == "tool_use":
        if not isinstance(block.get("id"), str) or not _ANTHROPIC_ID.match(block["id"]):
            raise BadRequest(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("input"), dict):
            raise BadRequest(f"{where}.tool_use.input: Input should be a valid dictionary")


def _anthropic_tools(body: dict[str, Any]) -> None:
    if not body.get("tools") and any(
        isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result")
        for m in body["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
    ):
        raise BadRequest("Requests which include tool_use or tool_result blocks must define tools.")
    for i, tool in enumerate(body.get("tools") or []):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not _ANTHROPIC_TOOL_NAME.match(name):
            raise BadRequest(
                f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled" and thinking["budget_tokens"] >= body["max_tokens"]:
        raise BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`")


def check_anthropic(body: Any) -> None:
    """Validate a Messages body as the API does; raises `BadRequest` like its 400."""
    _check_params(
        body, "anthropic_messages", _anthropic_unknown, _anthropic_value_error, _anthropic_missing
    )
    _anthropic_messages(body["messages"])
    _anthropic_tools(body)


def _anthropic_unknown(name: str) -> BadRequest:
    return BadRequest(f"{name}: Extra inputs are not permitted")


def _anthropic_missing(name: str) -> BadRequest:
    return BadRequest(f"{name}: Field required")


# --- shared ---------------------------------------------------------------------------------------

_REQUIRED: Final[dict[Api, tuple[str, ...]]] = {
    "openai_chat": ("model", "messages"),
    "anthropic_messages": ("model", "messages", "max_tokens"),
}


def _check_params(
    body: Any,
    api: Api,
    unknown: Callable[[str], BadRequest],
    refused: Callable[[str, jsonschema.ValidationError], BadRequest],
    missing: Callable[[str], BadRequest],
) -> None:
    """Every key a parameter of the API, every value of its type and range, the required ones."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    table = PARAMS[api]
    for name, value in body.items():
        if name not in table:
            raise unknown(name)
        error = violation(api, name, value)
        if error is not None:
            raise refused(name, error)
    for name in _REQUIRED[api]:
        if name not in body:
            raise missing(name)
