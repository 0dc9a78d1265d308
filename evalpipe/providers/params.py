"""What each target API accepts, as data: its request parameters with their JSON types.

One table per API (`PARAMS`): parameter name → a JSON Schema of its value, read from the SDKs'
request types (openai `chat/completion_create_params.py`, `responses/response_create_params.py`,
anthropic `message_create_params.py`) and the APIs' references. Logged parameters come in many
spellings (each API's own, and the frameworks' in Langfuse or OTel exports); `ALIASES` names the
ones whose meaning is certain, `SPELLINGS` says where a concept lives on each API.

Replay reads the logged params once (`read_params`: spellings resolved, values coerced where the
meaning is certain, impossible values dropped) and then asks for an API's share of them
(`params_for`): what it sends, and what it cannot, each with a reason. The fake provider
validates requests against the same tables; its tests also send the known-bad requests the real
APIs document, so a wrong table shows.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import jsonschema
import orjson

__all__ = [
    "ALIASES",
    "API_LABELS",
    "PARAMS",
    "REPLAY_OWNED",
    "SPELLINGS",
    "Api",
    "Impossible",
    "NotReplayed",
    "ParamPlan",
    "Read",
    "Untranslatable",
    "coerce",
    "params_for",
    "read_params",
    "schema_of",
    "violation",
]

Api = Literal["openai_chat", "openai_responses", "anthropic_messages", "openai_compatible"]
Schema = Mapping[str, Any]

API_LABELS: Final[Mapping[Api, str]] = {
    "openai_chat": "OpenAI chat completions",
    "openai_responses": "OpenAI Responses",
    "anthropic_messages": "Anthropic Messages",
    "openai_compatible": "OpenAI-compatible servers",
}


class Untranslatable(ValueError):
    """The canonical request has something the target API cannot express."""


class Impossible(ValueError):
    """A logged value that cannot be read as its parameter's JSON type."""


def _t(*types: str, **rules: Any) -> dict[str, Any]:
    """A JSON Schema of one or more JSON types, with its rules."""
    return {"type": types[0] if len(types) == 1 else list(types), **rules}


def _enum(*values: str | None) -> dict[str, Any]:
    types = ["string", "null"] if None in values else ["string"]
    return {"type": types, "enum": list(values)}


_EFFORT: Final = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_STRINGS = {"type": "string"}

OPENAI_CHAT: Final[Mapping[str, Schema]] = {
    "messages": _t("array", minItems=1),
    "model": _t("string"),
    "audio": _t("object", "null"),
    "frequency_penalty": _t("number", "null", minimum=-2, maximum=2),
    "function_call": {"anyOf": [_enum("none", "auto"), _t("object")]},
    "functions": _t("array", minItems=1, maxItems=128),
    "logit_bias": _t(
        "object", "null", additionalProperties=_t("integer", minimum=-100, maximum=100)
    ),
    "logprobs": _t("boolean", "null"),
    "max_completion_tokens": _t("integer", "null", minimum=1),
    "max_tokens": _t("integer", "null", minimum=1),
    "metadata": _t("object", "null", maxProperties=16, additionalProperties=_t("string")),
    "modalities": _t("array", "null", items=_enum("text", "audio")),
    "moderation": _t("object", "null"),
    "n": _t("integer", "null", minimum=1, maximum=128),
    "parallel_tool_calls": _t("boolean"),
    "prediction": _t("object", "null"),
    "presence_penalty": _t("number", "null", minimum=-2, maximum=2),
    "prompt_cache_key": _t("string", "null"),
    "prompt_cache_options": _t("object"),
    "prompt_cache_retention": _enum("in_memory", "24h", None),
    "reasoning_effort": _enum(*_EFFORT, None),
    "response_format": _t("object"),
    "safety_identifier": _t("string", "null"),
    "seed": _t("integer", "null"),
    "service_tier": _enum("auto", "default", "flex", "scale", "priority", "fast", None),
    "stop": _t("string", "array", "null", items=_STRINGS, maxItems=4),
    "store": _t("boolean", "null"),
    "stream": _t("boolean", "null"),
    "stream_options": _t("object", "null"),
    "temperature": _t("number", "null", minimum=0, maximum=2),
    "tool_choice": {"anyOf": [_enum("none", "auto", "required"), _t("object")]},
    "tools": _t("array", maxItems=128),
    "top_logprobs": _t("integer", "null", minimum=0, maximum=20),
    "top_p": _t("number", "null", minimum=0, maximum=1),
    "user": _t("string"),
    "verbosity": _enum("low", "medium", "high", None),
    "web_search_options": _t("object"),
}
"""Chat completions (openai `CompletionCreateParams`; `stream` from its streaming variant)."""

OPENAI_RESPONSES: Final[Mapping[str, Schema]] = {
    "access_programs": _t("object"),
    "background": _t("boolean", "null"),
    "background_options": _t("object"),
    "context_management": _t("array", "null"),
    "conversation": _t("string", "object", "null"),
    "image": _t("object"),
    "include": _t("array", "null", items=_STRINGS),
    "input": _t("string", "array"),
    "instructions": _t("string", "null"),
    "max_output_tokens": _t("integer", "null", minimum=16),
    "max_tool_calls": _t("integer", "null", minimum=1),
    "metadata": OPENAI_CHAT["metadata"],
    "model": _t("string"),
    "moderation": _t("object", "null"),
    "parallel_tool_calls": _t("boolean", "null"),
    "previous_response_id": _t("string", "null"),
    "prompt": _t("object", "null"),
    "prompt_cache_key": _t("string", "null"),
    "prompt_cache_options": _t("object"),
    "prompt_cache_retention": _enum("in_memory", "24h", None),
    "reasoning": _t(
        "object",
        "null",
        properties={
            "effort": _enum(*_EFFORT, None),
            "summary": _enum("auto", "concise", "detailed", None),
            "generate_summary": _enum("auto", "concise", "detailed", None),
            "context": _enum("auto", "current_turn", "all_turns", None),
            "mode": _t("string"),
        },
        additionalProperties=False,
    ),
    "safety_identifier": _t("string", "null"),
    "service_tier": _enum("auto", "default", "flex", "scale", "priority", "fast", None),
    "store": _t("boolean", "null"),
    "stream": _t("boolean", "null"),
    "stream_options": _t("object", "null"),
    "temperature": _t("number", "null", minimum=0, maximum=2),
    "text": _t(
        "object",
        properties={"format": _t("object"), "verbosity": _enum("low", "medium", "high", None)},
        additionalProperties=False,
    ),
    "tool_choice": {"anyOf": [_enum("none", "auto", "required"), _t("object")]},
    "tools": _t("array"),
    "top_logprobs": _t("integer", "null", minimum=0, maximum=20),
    "top_p": _t("number", "null", minimum=0, maximum=1),
    "truncation": _enum("auto", "disabled", None),
    "user": _t("string"),
}
"""Responses (openai `ResponseCreateParams`)."""

_ANTHROPIC_REFERENCE: Final[Mapping[str, Schema]] = {
    "max_tokens": _t("integer", minimum=1),
    "messages": _t("array"),
    "model": _t("string"),
    "cache_control": _t("object", "null"),
    "container": _t("string", "object", "null"),
    "diagnostics": _t("object", "null"),
    "inference_geo": _t("string", "null"),
    "metadata": _t(
        "object", properties={"user_id": _t("string", "null")}, additionalProperties=False
    ),
    "output_config": _t(
        "object",
        properties={
            "effort": _enum("low", "medium", "high", "xhigh", "max", None),
            "format": _t("object", "null"),
        },
        additionalProperties=False,
    ),
    "service_tier": _enum("auto", "standard_only"),
    "speed": _enum("standard", "fast", None),
    "stop_sequences": _t("array", items=_STRINGS),
    "stream": _t("boolean"),
    "system": _t("string", "array"),
    "temperature": _t("number", minimum=0, maximum=1),
    "thinking": {
        "oneOf": [
            _t(
                "object",
                properties={
                    "type": {"const": "enabled"},
                    "budget_tokens": _t("integer", minimum=1024),
                    "display": _enum("summarized", "omitted", None),
                },
                required=["type", "budget_tokens"],
                additionalProperties=False,
            ),
            _t(
                "object",
                properties={
                    "type": {"enum": ["adaptive", "between_tools"]},
                    "display": _enum("summarized", "omitted", None),
                },
                required=["type"],
                additionalProperties=False,
            ),
            _t(
                "object",
                properties={"type": {"const": "disabled"}},
                required=["type"],
                additionalProperties=False,
            ),
        ]
    },
    "tool_choice": _t("object"),
    "tools": _t("array"),
    "top_k": _t("integer", minimum=0),
    "top_p": _t("number", minimum=0, maximum=1),
}
"""Messages as the API reference documents it (anthropic `MessageCreateParams`)."""

_SAMPLING: Final = ("temperature", "top_p", "top_k")


def _anthropic_sampling() -> frozenset[str]:
    """The sampling parameters the installed SDK still declares: anthropic 2.x dropped them from
    `messages.create`, and the API version it speaks with them.

    Read from the SDK's source, not imported: importing it takes about a second, which a run
    without an Anthropic arm does not pay (tests/providers/test_params.py checks the answer
    against the imported SDK).
    """
    spec = importlib.util.find_spec("anthropic")
    if spec is None or spec.origin is None:
        return frozenset()
    source = Path(spec.origin).parent / "types" / "message_create_params.py"
    try:
        text = source.read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    return frozenset(p for p in _SAMPLING if re.search(rf"^    {p}: ", text, re.MULTILINE))


ANTHROPIC_MESSAGES: Final[Mapping[str, Schema]] = {
    k: v
    for k, v in _ANTHROPIC_REFERENCE.items()
    if k not in _SAMPLING or k in _anthropic_sampling()
}
"""Messages body parameters (`user_profile_id`, `workspace_id` travel as headers)."""

OPENAI_COMPATIBLE: Final[Mapping[str, Schema]] = {
    k: OPENAI_CHAT[k]
    for k in (
        "messages",
        "model",
        "frequency_penalty",
        "logprobs",
        "max_tokens",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "stop",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
    )
}
"""The chat parameters OpenAI-compatible servers share (Ollama's documented subset, which vLLM
also takes): others may be refused by a strict server."""

PARAMS: Final[Mapping[Api, Mapping[str, Schema]]] = {
    "openai_chat": OPENAI_CHAT,
    "openai_responses": OPENAI_RESPONSES,
    "anthropic_messages": ANTHROPIC_MESSAGES,
    "openai_compatible": OPENAI_COMPATIBLE,
}

# --- the logged spellings ---------------------------------------------------------------------

ALIASES: Final[Mapping[str, str]] = {
    # the APIs' own spellings of one concept
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",
    "stop_sequences": "stop",
    "reasoning.effort": "reasoning_effort",
    "output_config.effort": "reasoning_effort",
    "text.verbosity": "verbosity",
    # frameworks' spellings in Langfuse / OTel exports (LangChain.js, Vercel AI SDK, Google ADK)
    "maxTokens": "max_tokens",
    "maxOutputTokens": "max_tokens",
    "maxCompletionTokens": "max_tokens",
    "max_new_tokens": "max_tokens",
    "topP": "top_p",
    "topK": "top_k",
    "stopSequences": "stop",
    "frequencyPenalty": "frequency_penalty",
    "presencePenalty": "presence_penalty",
    "reasoningEffort": "reasoning_effort",
    "parallelToolCalls": "parallel_tool_calls",
    "candidate_count": "n",
    "candidateCount": "n",
    "thinking_config.thinking_budget": "thinking",
    "thinkingConfig.thinkingBudget": "thinking",
}
"""Logged spelling → the concept it names (a name of some API); dotted: a key inside an object."""

_CONTAINERS: Final = frozenset(
    {"reasoning", "output_config", "text", "thinking_config", "thinkingConfig"}
)
"""Objects whose keys are read one by one (`reasoning.effort`, `reasoning.summary` …)."""


def _thinking_of_budget(budget: int) -> dict[str, Any]:
    # Google's thinking budget: 0 turns thinking off, -1 lets the model decide
    if budget == 0:
        return {"type": "disabled"}
    if budget == -1:
        return {"type": "adaptive"}
    return {"type": "enabled", "budget_tokens": budget}


_CONVERT: Final[Mapping[str, tuple[Schema, Callable[[Any], Any]]]] = {
    "thinking_config.thinking_budget": (_t("integer", minimum=-1), _thinking_of_budget),
    "thinkingConfig.thinkingBudget": (_t("integer", minimum=-1), _thinking_of_budget),
}
"""Spellings whose value changes shape on the way to its concept: (schema read, conversion)."""

SPELLINGS: Final[Mapping[Api, Mapping[str, str]]] = {
    "openai_chat": {"max_tokens": "max_completion_tokens"},
    "openai_responses": {
        "max_tokens": "max_output_tokens",
        "reasoning_effort": "reasoning.effort",
        "verbosity": "text.verbosity",
    },
    "anthropic_messages": {
        "stop": "stop_sequences",
        "reasoning_effort": "output_config.effort",
    },
    "openai_compatible": {},
}
"""Concept → where it lives on the API, where that is not its own name."""

_STRUCTURE: Final = frozenset(
    {
        "model",
        "messages",
        "input",
        "instructions",
        "system",
        "tools",
        "tool_choice",
        "functions",
        "function_call",
        "response_format",
        "text.format",
        "output_config.format",
    }
)
"""The request itself: replay builds these from the canonical record (and the arm's model)."""

REPLAY_OWNED: Final = frozenset(
    {
        # transport, storage and attribution: replay reads whole answers and stores nothing
        "stream",
        "stream_options",
        "store",
        "metadata",
        "user",
        "safety_identifier",
        "user_profile_id",
        "workspace_id",
        # state on the provider that a replay does not have
        "background",
        "background_options",
        "include",
        "previous_response_id",
        "conversation",
        "prompt",
        "diagnostics",
    }
)
"""Logged parameters replay leaves out on purpose (listed as not sent unless false or empty)."""

_DEFAULTS: Final[Mapping[str, Any]] = {"n": 1, "logprobs": False, "parallel_tool_calls": True}
"""Values every API assumes when the parameter is absent: leaving them out loses nothing."""

_RANGE_RULES: Final = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})

# --- reading a value ---------------------------------------------------------------------------


class _Absent:
    """A logged value that means 'not set' (`null`, `"null"`, `""`)."""


ABSENT: Final = _Absent()

_NULLS: Final = frozenset({"", "null", "none", "undefined"})
_NO_LIMIT: Final = frozenset({"max_tokens"})
"""Limits JavaScript SDKs log as `"Infinity"` when none is set (LangChain.js `maxTokens`)."""


def _types(schema: Schema) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return [t for s in schema.get("anyOf") or schema.get("oneOf") or [] for t in _types(s)]
    return [kind] if isinstance(kind, str) else list(kind)


def _number(value: Any, integer: bool) -> int | float:
    if isinstance(value, bool):
        raise Impossible("a boolean is not a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise Impossible(f"{value[:40]!r} is not a number") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise Impossible(f"{value!r} is not a finite number")
    if integer:
        if not float(value).is_integer():
            raise Impossible(f"{value!r} is not an integer")
        return int(value)
    return value


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Impossible(f"{value!r} is not true or false")


def _json_text(value: Any, kind: type) -> Any:
    """A JSON object or array logged as a string, parsed."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, kind) else value
    return value


def _as(kind: str, value: Any) -> Any:
    """`value` read as JSON type `kind`; raises Impossible."""
    if kind == "integer":
        return _number(value, True)
    if kind == "number":
        return _number(value, False)
    if kind == "boolean":
        return _boolean(value)
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "object" and isinstance(value := _json_text(value, dict), dict):
        return value
    if kind == "array":
        value = _json_text(value, list)
        if isinstance(value, list | tuple):
            return list(value)
    raise Impossible(f"expected {kind}")


def coerce(value: Any, schema: Schema) -> Any:
    """A logged value as the schema's JSON type, where the meaning is certain.

    `"false"` → false, `"0.7"` → 0.7, `"300"` → 300, a JSON string of an object → the object,
    a single string where a list of strings is wanted → that list; `null`, `"null"` and `""`
    → ABSENT (not set).

    Raises:
        Impossible: the value cannot be read as the type.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS):
        return ABSENT
    types = [t for t in _types(schema) if t != "null"]
    if not types:
        return value
    for kind in types:  # a value already of an accepted type is kept as it is
        if _is(kind, value):
            return value
    if (
        isinstance(value, str)
        and "array" in types
        and schema.get("items", {}).get("type") == "string"
        and value.strip()[:1] != "["
    ):
        return [value]
    for kind in types:
        try:
            return _as(kind, value)
        except Impossible:
            continue
    raise Impossible(f"{_shown(value)} is not {' or '.join(types)}")


_IS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float) and math.isfinite(v),
    "boolean": lambda v: type(v) is bool,
    "string": lambda v: type(v) is str,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
}
"""JSON type → whether a Python value already is one (bool is not a number here)."""


def _is(kind: str, value: Any) -> bool:
    check = _IS.get(kind)
    return check is not None and check(value)


def _shown(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 40 else text[:39] + "…"


_DOCUMENTED: Final[Mapping[str, tuple[Api, Mapping[str, Schema]]]] = {
    **{api: (api, table) for api, table in PARAMS.items()},
    "anthropic_reference": ("anthropic_messages", _ANTHROPIC_REFERENCE),
}
"""Every table a logged parameter may come from (the ones sent to, and Messages as documented,
whose sampling parameters older SDKs sent): name → (the API whose spellings apply, table)."""


def _lookup(table: Mapping[str, Schema], path: str) -> Schema | None:
    top, _, key = path.partition(".")
    schema = table.get(top)
    if schema is None or not key:
        return schema
    inner = (schema.get("properties") or {}).get(key)
    return None if inner is None else dict(inner)


def schema_of(api: Api, path: str) -> Schema | None:
    """The schema of a parameter (or `parent.key` inside an object parameter) on `api`."""
    return _lookup(PARAMS[api], path)


@cache
def _validator(table: str, path: str) -> jsonschema.protocols.Validator | None:
    schema = _lookup(_DOCUMENTED[table][1], path)
    return None if schema is None else jsonschema.Draft202012Validator(dict(schema))


@cache
def _accepts_scalar(table: str, path: str, kind: str, value: Any) -> bool:
    validator = _validator(table, path)
    return validator is None or bool(validator.is_valid(value))


def _accepts(table: str, path: str, value: Any) -> bool:
    """Whether the table takes `value` at `path` (scalars remembered: replay asks per record)."""
    if isinstance(value, str | int | float | bool):
        return _accepts_scalar(table, path, type(value).__name__, value)  # as True == 1
    validator = _validator(table, path)
    return validator is None or bool(validator.is_valid(value))


def violation(api: Api, path: str, value: Any) -> jsonschema.ValidationError | None:
    """Why `value` is not accepted for `path` on `api` (the best match), or None when it is."""
    validator = _validator(api, path)
    if validator is None or _accepts(api, path, value):
        return None
    error: jsonschema.ValidationError | None = jsonschema.exceptions.best_match(
        validator.iter_errors(value)
    )
    return error


# --- reading the logged params -----------------------------------------------------------------


class NotReplayed(NamedTuple):
    """A logged parameter (or part of the request) that a replay does not send, and why."""

    param: str
    reason: str

    def as_json(self) -> dict[str, str]:
        """The entry of the `params_not_replayed` column."""
        return {"param": self.param, "reason": self.reason}


class Read(NamedTuple):
    """The logged params by concept, and the ones that cannot be sent anywhere."""

    values: dict[str, Any]
    lost: list[NotReplayed]


@cache
def _spelled(api: Api, concept: str) -> str | None:
    """Where `concept` lives on `api`, or None when the API has no equivalent."""
    path = SPELLINGS[api].get(concept, concept)
    return path if schema_of(api, path) is not None else None


def _concept(name: str) -> str:
    return ALIASES.get(name, name)


@cache
def _documented(concept: str) -> tuple[tuple[str, str, Schema], ...]:
    """(table, path, schema) of every documented place the concept lives."""
    places = []
    for name, (api, table) in _DOCUMENTED.items():
        path = SPELLINGS[api].get(concept, concept)
        schema = _lookup(table, path)
        if schema is not None:
            places.append((name, path, schema))
    return tuple(places)


def _possible(concept: str, value: Any) -> bool:
    """Whether some API takes `value` for the concept."""
    return any(_accepts(name, path, value) for name, path, _ in _documented(concept))


def _reading_schema(concept: str) -> Schema:
    return next((schema for _, _, schema in _documented(concept)), {})


def _flatten(params: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(spelling, value) pairs, the keys of container objects as `container.key`."""
    for name, value in params.items():
        inner = _json_text(value, dict) if name in _CONTAINERS else value
        if name in _CONTAINERS and isinstance(inner, dict):
            for key, sub in inner.items():
                yield f"{name}.{key}", sub
        else:
            yield name, value


def _unset(raw: Any, *, off: bool = False) -> bool:
    """Whether a logged value says 'not set' (`null`, `""`); with `off`, also false, 0 or empty."""
    if isinstance(raw, str):
        return raw.strip().lower() in (_NULLS | {"false", "0"} if off else _NULLS)
    return raw is None or (off and not raw)


def _logged(params: Mapping[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(spelling, value, is_override): arm overrides first, then the canonical fields, then extra."""
    for name, value in _flatten(params.get("overrides") or {}):
        yield name, value, True
    for name, value in params.items():
        if name not in ("extra", "overrides"):
            yield name, value, False
    yield from ((n, v, False) for n, v in _flatten(params.get("extra") or {}))


def read_params(params: Mapping[str, Any]) -> Read:
    """The canonical `params` (overrides, fields, `extra`) by concept, values coerced.

    Unknown names, impossible values and replay's own settings go to `lost` with a reason; a
    spelling of a concept already set with another value is lost as a conflict (an arm's
    override wins without a word).
    """
    values: dict[str, Any] = {}
    lost: list[NotReplayed] = []
    overridden: set[str] = set()
    for name, raw, is_override in _logged(params):
        concept = _concept(name)
        if concept in _STRUCTURE or (concept in _NO_LIMIT and str(raw).lower() == "infinity"):
            continue
        if concept in REPLAY_OWNED:
            if not _unset(raw, off=True):
                lost.append(NotReplayed(name, "replay setting"))
            continue
        if not _documented(concept):
            if not _unset(raw):
                lost.append(NotReplayed(name, "framework setting"))
            continue
        schema, convert = _CONVERT.get(name, (_reading_schema(concept), None))
        try:
            value = coerce(raw, schema)
        except Impossible:
            lost.append(NotReplayed(name, "impossible value"))
            continue
        if value is ABSENT or value == []:
            continue
        if convert is not None:
            value = convert(value)
        if not _possible(concept, value):
            lost.append(NotReplayed(name, "impossible value"))
        elif concept not in values:
            values[concept] = value
            if is_override:
                overridden.add(concept)
        elif values[concept] != value and concept not in overridden:
            lost.append(NotReplayed(name, f"conflicts with {concept}"))
    return Read(values, lost)


# --- one API's share ---------------------------------------------------------------------------


class ParamPlan(NamedTuple):
    """What an API is sent (its own names; objects merged) and what it cannot take."""

    sent: dict[str, Any]
    lost: list[NotReplayed]


def params_for(values: Mapping[str, Any], api: Api) -> ParamPlan:
    """The API's share of concept values (from `read_params`).

    A concept the API lacks is lost ("no equivalent on …") unless its value is the default every
    API assumes; a value the API does not accept (`reasoning_effort: minimal` on Anthropic) is
    lost; a number outside the API's range (`temperature: 1.5` on Anthropic, whose maximum is 1)
    cannot be expressed.

    Raises:
        Untranslatable: n > 1 (a replay compares one answer), or a number out of the API's range.
    """
    label = API_LABELS[api]
    if values.get("n", 1) > 1:
        raise Untranslatable("n > 1")
    sent: dict[str, Any] = {}
    lost: list[NotReplayed] = []
    for concept, value in values.items():
        path = _spelled(api, concept)
        if path is None:
            if _DEFAULTS.get(concept, ABSENT) != value:
                lost.append(NotReplayed(concept, f"no equivalent on {label}"))
            continue
        schema = schema_of(api, path) or {}
        try:
            value = coerce(value, schema)  # e.g. one stop string where a list is wanted
        except Impossible:
            lost.append(NotReplayed(concept, f"not accepted by {label}"))
            continue
        error = violation(api, path, value)
        if error is not None and error.validator in _RANGE_RULES:
            raise Untranslatable(f"{concept} out of {label}' range")
        if error is not None:
            lost.append(NotReplayed(concept, f"not accepted by {label}"))
            continue
        top, _, key = path.partition(".")
        if key:
            sent.setdefault(top, {})[key] = value
        else:
            sent[top] = value
    return ParamPlan(sent, lost)
