"""Round trip (issue 8): each adapter's canonical row replays to a request equivalent to the logged one.

For every ingest adapter one realistic record is written to a temporary file, ingested with
`ingest_paths(path, format=NAME)`, and the row's canonical `request` is translated back with
`to_openai` / `to_anthropic`, the way replay does. Both the logged request (in the target SDK's
shape) and the translated one are reduced to the same neutral view — system prompt, messages
(roles, texts, images, tool calls and results), tools, tool_choice, structured output, sampling
parameters — and compared. Where the target SDK legitimately differs the view normalises both
sides; each such place says so in a comment. No case is a known loss.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pyarrow.parquet as pq
import pytest

from evalpipe.ingest import ADAPTERS, ingest_paths
from evalpipe.providers.translate import _anthropic_sampling_params, to_anthropic, to_openai
from tests.ingest.helpers import chat_record, otlp_attribute, write_jsonl

# --- shared pieces of the logged requests ----------------------------------------------------

SYSTEM = "You are a weather assistant. Answer in JSON."
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}
FORECAST_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "high_c": {"type": "number"}},
    "required": ["summary", "high_c"],
    "additionalProperties": False,
}
IMAGE_URL = "https://example.com/sky.png"
IMAGE_DATA = "iVBORw0KGgoAAAANSUhEUg=="


def chat_body(**overrides: Any) -> dict[str, Any]:
    """A Chat Completions request with every field the round trip must keep."""
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"city": "Paris", "unit": "celsius"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And what about this sky?"},
                    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": WEATHER_SCHEMA,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "forecast", "schema": FORECAST_SCHEMA, "strict": True},
        },
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
    }
    body.update(overrides)
    return body


def chat_response() -> dict[str, Any]:
    return chat_record(0)["response"]


def anthropic_body(**overrides: Any) -> dict[str, Any]:
    """A Messages request with every field the round trip must keep."""
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 512,
        "temperature": 0.3,
        "system": [{"type": "text", "text": SYSTEM}],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris", "unit": "celsius"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "service timeout"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "And what about this sky?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": IMAGE_DATA},
                    },
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather for a city",
                "input_schema": WEATHER_SCHEMA,
            }
        ],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "output_format": {"type": "json_schema", "schema": FORECAST_SCHEMA},
        "stop_sequences": ["END"],
    }
    body.update(overrides)
    return body


def anthropic_message() -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": '{"summary": "clear", "high_c": 22}'}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 40, "output_tokens": 12},
    }


# The same conversation as Chat Completions, for formats that have no SDK shape of their own.
def chat_equivalent(**overrides: Any) -> dict[str, Any]:
    return chat_body(**overrides)


# --- writers: one realistic record per format -------------------------------------------------


def write_openai_chat(tmp: Path) -> Path:
    record = {**chat_record(0), "request": chat_body()}
    return write_jsonl(tmp / "chat.jsonl", [record])


def strict_tool_body() -> dict[str, Any]:
    body = chat_body()
    body["tools"][0]["function"]["strict"] = True
    return body


def write_openai_chat_parallel_off(tmp: Path) -> Path:
    body = chat_body(parallel_tool_calls=False)
    return write_jsonl(tmp / "chat.jsonl", [{**chat_record(0), "request": body}])


def write_openai_chat_strict_tool(tmp: Path) -> Path:
    return write_jsonl(tmp / "chat.jsonl", [{**chat_record(0), "request": strict_tool_body()}])


def responses_body() -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "instructions": SYSTEM,
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris", "unit": "celsius"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21C"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "And what about this sky?"},
                    {"type": "input_image", "image_url": IMAGE_URL},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER_SCHEMA,
            }
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {
            "format": {
                "type": "json_schema",
                "name": "forecast",
                "schema": FORECAST_SCHEMA,
                "strict": True,
            }
        },
        "max_output_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
    }


def write_openai_responses(tmp: Path) -> Path:
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1729730156,
        "status": "completed",
        "model": "gpt-4o-mini-2024-07-18",
        "output": [
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": '{"summary": "clear", "high_c": 22}'}],
            }
        ],
        "usage": {"input_tokens": 40, "output_tokens": 12},
    }
    return write_jsonl(
        tmp / "responses.jsonl", [{"request": responses_body(), "response": response}]
    )


def write_openai_batch(tmp: Path) -> Path:
    write_jsonl(
        tmp / "batch_input.jsonl",
        [{"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions", "body": chat_body()}],
    )
    write_jsonl(
        tmp / "batch_output.jsonl",
        [
            {
                "id": "batch_req_1",
                "custom_id": "r1",
                "response": {"status_code": 200, "request_id": "req_1", "body": chat_response()},
                "error": None,
            }
        ],
    )
    return tmp


def write_openai_batch_responses(tmp: Path) -> Path:
    write_jsonl(
        tmp / "batch_input.jsonl",
        [{"custom_id": "r1", "method": "POST", "url": "/v1/responses", "body": responses_body()}],
    )
    return tmp


def _anthropic_record(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "request": body,
        "response": anthropic_message(),
        "latency_ms": 900.0,
        "timestamp": "2025-01-01T00:00:00Z",
        "metadata": {"request_id": "req_a1"},
    }


def write_anthropic_messages(tmp: Path) -> Path:
    return write_jsonl(tmp / "anthropic.jsonl", [_anthropic_record(anthropic_body())])


def write_anthropic_output_config(tmp: Path) -> Path:
    # structured outputs as the current SDK sends them (`output_config.format`, GA form)
    body = anthropic_body()
    del body["output_format"]
    body["output_config"] = {"format": {"type": "json_schema", "schema": FORECAST_SCHEMA}}
    return write_jsonl(tmp / "anthropic.jsonl", [_anthropic_record(body)])


def write_anthropic_parallel_off(tmp: Path) -> Path:
    body = anthropic_body(tool_choice={"type": "auto", "disable_parallel_tool_use": True})
    return write_jsonl(tmp / "anthropic.jsonl", [_anthropic_record(body)])


def write_anthropic_batch(tmp: Path) -> Path:
    # the results file alone carries no request: the batch's request file is needed to replay
    write_jsonl(
        tmp / "results.jsonl",
        [{"custom_id": "a1", "result": {"type": "succeeded", "message": anthropic_message()}}],
    )
    write_jsonl(tmp / "requests.jsonl", [{"custom_id": "a1", "params": anthropic_body()}])
    return tmp


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def write_otel_genai(tmp: Path) -> Path:
    # current GenAI semantic conventions (gen_ai.input.messages …); no tool_choice or
    # response_format attribute exists there, so the logged request has none
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": 300,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.seed": 7,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.system_instructions": _json([{"type": "text", "content": SYSTEM}]),
        "gen_ai.tool.definitions": _json(
            [
                {
                    "type": "function",
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": WEATHER_SCHEMA,
                }
            ]
        ),
        "gen_ai.input.messages": _json(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "call_1",
                            "name": "get_weather",
                            "arguments": {"city": "Paris", "unit": "celsius"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "parts": [
                        {"type": "tool_call_response", "id": "call_1", "response": "sunny, 21C"}
                    ],
                },
                {"role": "user", "parts": [{"type": "text", "content": "And tomorrow?"}]},
            ]
        ),
        "gen_ai.output.messages": _json(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": "Sunny again."}],
                    "finish_reason": "stop",
                }
            ]
        ),
        "gen_ai.usage.input_tokens": 40,
        "gen_ai.usage.output_tokens": 3,
    }
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "00f067aa0ba902b7",
        "name": "chat gpt-4o-mini",
        "kind": 3,
        "startTimeUnixNano": "1729730156000000000",
        "endTimeUnixNano": "1729730156750000000",
        "attributes": [otlp_attribute(k, v) for k, v in attrs.items()],
        "status": {"code": 1},
    }
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [otlp_attribute("service.name", "weather-bot")]},
                "scopeSpans": [{"scope": {"name": "openai"}, "spans": [span]}],
            }
        ]
    }
    return write_jsonl(tmp / "spans.jsonl", [doc])


def otel_expected() -> dict[str, Any]:
    body = chat_body(tool_choice=None, response_format=None)
    body["messages"][4] = {"role": "user", "content": "And tomorrow?"}
    return body


LANGFUSE_MESSAGES = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city": "Paris", "unit": "celsius"}',
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    {"role": "user", "content": "And tomorrow?"},
]


def _langfuse_obs(input_: Any) -> dict[str, Any]:
    # as the Langfuse OpenAI integration records a generation (modelParameters often strings)
    return {
        "id": "obs_1",
        "traceId": "t1",
        "type": "GENERATION",
        "name": "OpenAI-generation",
        "startTime": "2025-03-01T10:00:00.000Z",
        "endTime": "2025-03-01T10:00:01.000Z",
        "model": "gpt-4o-mini",
        "modelParameters": {
            "temperature": "0.2",
            "max_tokens": "300",
            "top_p": "0.9",
            "seed": 7,
            "stop": ["END"],
        },
        "input": input_,
        "output": {"role": "assistant", "content": "Sunny again."},
        "usageDetails": {"input": 40, "output": 3, "total": 43},
        "level": "DEFAULT",
    }


def write_langfuse(tmp: Path) -> Path:
    return write_jsonl(tmp / "observations.jsonl", [_langfuse_obs(LANGFUSE_MESSAGES)])


def write_langfuse_tools(tmp: Path) -> Path:
    # with tools, the integration logs input as {"tools", "tool_choice", "messages"}
    body = chat_body()
    input_ = {
        "tools": body["tools"],
        "tool_choice": body["tool_choice"],
        "messages": LANGFUSE_MESSAGES,
    }
    return write_jsonl(tmp / "observations.jsonl", [_langfuse_obs(input_)])


def langfuse_expected(*, tools: bool) -> dict[str, Any]:
    body = chat_body(response_format=None, messages=LANGFUSE_MESSAGES)
    if not tools:
        body.update(tools=None, tool_choice=None)
    return body


BFCL_PARAMETERS = {
    "type": "dict",
    "properties": {
        "base": {"type": "integer", "description": "The base of the triangle."},
        "height": {"type": "float", "description": "The height of the triangle."},
        "corner": {"type": "tuple", "items": {"type": "float"}, "description": "Apex (x, y)."},
        "unit": {"type": "string", "description": "Unit of length.", "default": "units"},
        "note": {"type": "any", "description": "Free-form note."},
    },
    "required": ["base", "height"],
}
BFCL_JSON_SCHEMA = {
    "type": "object",
    "properties": {
        "base": {"type": "integer", "description": "The base of the triangle."},
        "height": {"type": "number", "description": "The height of the triangle."},
        "corner": {"type": "array", "items": {"type": "number"}, "description": "Apex (x, y)."},
        "unit": {"type": "string", "description": "Unit of length.", "default": "units"},
        "note": {"description": "Free-form note."},
    },
    "required": ["base", "height"],
}


def _write_bfcl(tmp: Path, name: str) -> Path:
    path = write_jsonl(
        tmp / "BFCL_v4_simple_python.json",
        [
            {
                "id": "simple_python_0",
                "question": [
                    [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": "Area of a triangle, base 10, height 5?"},
                    ]
                ],
                "function": [
                    {
                        "name": name,
                        "description": "Calculate the area of a triangle.",
                        "parameters": BFCL_PARAMETERS,
                    }
                ],
            }
        ],
    )
    (tmp / "possible_answer").mkdir()
    write_jsonl(
        tmp / "possible_answer" / path.name,
        [{"id": "simple_python_0", "ground_truth": [{name: {"base": [10], "height": [5.0]}}]}],
    )
    return path


def bfcl_expected(name: str) -> dict[str, Any]:
    # BFCL types are converted to JSON Schema (dict→object, float→number, tuple→array, any→none)
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Area of a triangle, base 10, height 5?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": "Calculate the area of a triangle.",
                    "parameters": BFCL_JSON_SCHEMA,
                },
            }
        ],
    }


def write_canonical(tmp: Path) -> Path:
    # records.parquet written by an earlier ingest, read back as canonical@1
    first = ingest_paths(write_openai_chat(tmp), format="openai_chat").records
    path = tmp / "records.parquet"
    pq.write_table(first, path)
    return path


# --- the neutral view both sides are reduced to -----------------------------------------------


def _args(value: Any) -> Any:
    # arguments are a JSON string on the OpenAI wire: compare them parsed (spacing may differ)
    return orjson.loads(value) if isinstance(value, str) else value


def _wire(body: dict[str, Any]) -> dict[str, Any]:
    # extra_body is merged into the JSON body by both SDKs: compare what goes over the wire
    return {
        **{k: v for k, v in body.items() if k != "extra_body"},
        **(body.get("extra_body") or {}),
    }


def openai_view(body: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions body (as logged, or from `to_openai`) reduced to the neutral view."""
    body = _wire(body)
    system: list[str] = []
    messages: list[tuple[str, list[dict[str, Any]]]] = []
    for msg in body["messages"]:
        role, content = msg["role"], msg.get("content")
        if role in ("system", "developer"):
            system.append(
                content if isinstance(content, str) else "".join(p["text"] for p in content)
            )
            continue
        if role == "tool":
            item = {"tool_result": msg["tool_call_id"], "content": content, "is_error": False}
            messages.append(("tool", [item]))
            continue
        items: list[dict[str, Any]] = []
        if isinstance(content, str):
            items.append({"text": content})
        for part in content if isinstance(content, list) else []:
            if part["type"] == "text":
                items.append({"text": part["text"]})
            elif part["type"] == "image_url":
                items.append({"image": part["image_url"]["url"]})
            else:
                items.append({"other": part})
        for call in msg.get("tool_calls") or []:
            fn = call["function"]
            items.append(
                {"tool_call": call["id"], "name": fn["name"], "arguments": _args(fn["arguments"])}
            )
        messages.append((role, items))
    tools = [
        {
            "name": t["function"]["name"],
            # an absent description and an empty one say the same
            "description": t["function"].get("description") or "",
            "parameters": t["function"].get("parameters"),
            "strict": t["function"].get("strict"),
        }
        for t in body.get("tools") or []
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = {"name": choice["function"]["name"]}
    fmt = body.get("response_format")
    if fmt is not None and fmt["type"] == "json_schema":
        spec = fmt["json_schema"]
        fmt = {
            "type": "json_schema",
            "name": spec.get("name"),
            "schema": spec.get("schema"),
            "strict": bool(spec.get("strict", False)),
        }
    elif fmt is not None and fmt["type"] == "text":
        fmt = None  # the default
    stop = body.get("stop")
    return {
        "system": "\n\n".join(system) if system else None,
        "messages": messages,
        "tools": tools or None,
        "tool_choice": choice,
        "parallel_tool_calls": body.get("parallel_tool_calls"),
        "response_format": fmt,
        "max_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "stop": [stop] if isinstance(stop, str) else list(stop or []),
        "seed": body.get("seed"),
    }


def _anthropic_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b["text"] for b in content or [] if b.get("type") == "text")


def anthropic_view(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages body (as logged, or from `to_anthropic`) reduced to the neutral view."""
    body = _wire(body)
    # Tool results live inside user turns, and Anthropic wants alternating roles, so
    # `to_anthropic` merges consecutive same-role turns: compare the sequence of content items
    # (tool results as role `tool`) with consecutive same-role runs merged, on both sides.
    flat: list[tuple[str, dict[str, Any]]] = []
    for msg in body["messages"]:
        content = msg["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for block in blocks:
            kind = block["type"]
            if kind == "text":
                if block["text"]:  # empty text blocks are not sent (the API rejects them)
                    flat.append((msg["role"], {"text": block["text"]}))
            elif kind == "image":
                source = block["source"]
                url = (
                    f"data:{source['media_type']};base64,{source['data']}"
                    if source["type"] == "base64"
                    else source["url"]
                )
                flat.append((msg["role"], {"image": url}))
            elif kind == "tool_use":
                item = {
                    "tool_call": block["id"],
                    "name": block["name"],
                    "arguments": block["input"],
                }
                flat.append((msg["role"], item))
            elif kind == "tool_result":
                item = {
                    "tool_result": block["tool_use_id"],
                    "content": _anthropic_text(block.get("content")),
                    "is_error": bool(block.get("is_error", False)),
                }
                flat.append(("tool", item))
            else:
                flat.append((msg["role"], {"other": block}))
    messages: list[tuple[str, list[dict[str, Any]]]] = []
    for role, item in flat:
        if messages and messages[-1][0] == role:
            messages[-1][1].append(item)
        else:
            messages.append((role, [item]))
    tools = [
        {
            "name": t["name"],
            "description": t.get("description") or "",
            "parameters": t.get("input_schema"),
            "strict": t.get("strict"),
        }
        for t in body.get("tools") or []
    ]
    raw_choice = body.get("tool_choice")
    choice: Any = None
    parallel = None
    if raw_choice is not None:
        kind = raw_choice["type"]
        choice = (
            {"name": raw_choice["name"]} if kind == "tool" else {"any": "required"}.get(kind, kind)
        )
        if "disable_parallel_tool_use" in raw_choice:
            parallel = not raw_choice["disable_parallel_tool_use"]
    # structured output: `output_format` (beta) or `output_config.format` (GA); Anthropic has no
    # schema name or strict flag, so only the schema is compared
    fmt = body.get("output_format") or (body.get("output_config") or {}).get("format")
    if fmt is not None:
        fmt = {"type": fmt["type"], "schema": fmt.get("schema")}
    system = body.get("system")
    view = {
        "system": system
        if isinstance(system, str) or system is None
        else "\n\n".join(b["text"] for b in system),
        "messages": messages,
        "tools": tools or None,
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
        "response_format": fmt,
        "max_tokens": body.get("max_tokens"),
        "stop": list(body.get("stop_sequences") or []),
    }
    # The installed anthropic SDK (2.x) takes no sampling parameters, so `to_anthropic` sends
    # only those in _anthropic_sampling_params(): compare exactly those on both sides.
    for key in ("temperature", "top_p", "top_k"):
        view[key] = body.get(key) if key in _anthropic_sampling_params() else None
    return view


# --- the cases --------------------------------------------------------------------------------


class Case(NamedTuple):
    format: str
    write: Callable[[Path], Path]
    logged: Callable[[], dict[str, Any]]
    """The logged request in the target SDK's shape (the equivalent one for other formats)."""
    target: str = "openai"
    same_provider: bool = True


CASES = [
    pytest.param(Case("openai_chat", write_openai_chat, chat_body), id="openai_chat"),
    pytest.param(
        Case(
            "openai_responses",
            write_openai_responses,
            # Responses has no stop or seed; `instructions` is the system prompt
            lambda: chat_equivalent(stop=None, seed=None),
        ),
        id="openai_responses",
    ),
    pytest.param(Case("openai_batch", write_openai_batch, chat_body), id="openai_batch"),
    pytest.param(
        Case(
            "openai_batch",
            write_openai_batch_responses,
            lambda: chat_equivalent(stop=None, seed=None),
        ),
        id="openai_batch-responses",
    ),
    pytest.param(
        Case("anthropic_messages", write_anthropic_messages, anthropic_body, "anthropic"),
        id="anthropic_messages",
    ),
    pytest.param(
        Case("anthropic_batch", write_anthropic_batch, anthropic_body, "anthropic"),
        id="anthropic_batch",
    ),
    pytest.param(
        Case("otel_genai", write_otel_genai, otel_expected, same_provider=False), id="otel_genai"
    ),
    pytest.param(
        Case(
            "langfuse",
            write_langfuse,
            lambda: langfuse_expected(tools=False),
            same_provider=False,
        ),
        id="langfuse",
    ),
    pytest.param(
        Case(
            "bfcl",
            lambda tmp: _write_bfcl(tmp, "calculate_triangle_area"),
            lambda: bfcl_expected("calculate_triangle_area"),
            same_provider=False,
        ),
        id="bfcl",
    ),
    pytest.param(Case("canonical", write_canonical, chat_body), id="canonical"),
    # --- harder shapes: strict tools, GA structured output, parallel tool calls, wrapped inputs ---
    pytest.param(
        Case("openai_chat", write_openai_chat_strict_tool, strict_tool_body),
        id="openai_chat-strict_tool",
    ),
    pytest.param(
        Case(
            "anthropic_messages",
            write_anthropic_output_config,
            lambda: anthropic_body(
                output_format={"type": "json_schema", "schema": FORECAST_SCHEMA}
            ),
            "anthropic",
            same_provider=False,
        ),
        id="anthropic_messages-output_config",
    ),
    pytest.param(
        Case(
            "anthropic_messages",
            write_anthropic_parallel_off,
            lambda: anthropic_body(tool_choice={"type": "auto", "disable_parallel_tool_use": True}),
            "anthropic",
        ),
        id="anthropic_messages-disable_parallel_tool_use",
    ),
    pytest.param(
        Case(
            "openai_chat",
            write_openai_chat_parallel_off,
            lambda: chat_body(parallel_tool_calls=False),
            same_provider=False,
        ),
        id="openai_chat-parallel_tool_calls",
    ),
    pytest.param(
        Case(
            "langfuse",
            write_langfuse_tools,
            lambda: langfuse_expected(tools=True),
            same_provider=False,
        ),
        id="langfuse-tools",
    ),
    pytest.param(
        Case(
            "bfcl",
            lambda tmp: _write_bfcl(tmp, "math.triangle_area"),
            # sent as a name both APIs accept; replay maps the calls back (restore_tool_names)
            lambda: bfcl_expected("math_triangle_area"),
            same_provider=False,
        ),
        id="bfcl-dotted_name",
    ),
]

# Tool names both APIs accept.
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def test_every_adapter_with_a_request_has_a_case() -> None:
    covered = {p.values[0].format for p in CASES}
    assert covered == set(ADAPTERS)


@pytest.mark.parametrize("case", CASES)
def test_canonical_row_replays_to_an_equivalent_request(case: Case, tmp_path: Path) -> None:
    result = ingest_paths(case.write(tmp_path), format=case.format)
    assert result.quarantine.num_rows == 0, result.quarantine.to_pylist()
    rows = result.records.to_pylist()
    assert len(rows) == 1
    row = rows[0]
    # canonical@1 reads the rows back as they stand, their source format included
    origin = "openai_chat" if case.format == "canonical" else case.format
    assert row["source_format"] == f"{origin}@1"
    assert (row["replayable"], row["replay_issue"]) == (True, None)
    request = orjson.loads(row["request"])
    model = row["model"] or "gpt-4o-mini"
    logged = case.logged()
    if case.target == "anthropic":
        sent = to_anthropic(
            request, model=model, default_max_tokens=4096, same_provider=case.same_provider
        )
        assert anthropic_view(sent) == anthropic_view(logged)
        tools = sent.get("tools") or []
        names = [t["name"] for t in tools]
    else:
        sent = to_openai(request, model=model, same_provider=case.same_provider)
        assert openai_view(sent) == openai_view(logged)
        names = [t["function"]["name"] for t in sent.get("tools") or []]
    assert sent["model"] == model
    assert all(_TOOL_NAME.fullmatch(name) for name in names), names
