"""`langfuse@1`: Langfuse generations, from exports (JSONL / Parquet) or the public API.

An item is an observation row (only ``type: GENERATION`` becomes a record), a trace as the API
returns it (``{"trace": {...}, "observations": [...]}``, or a trace object holding its
``observations``), or a list of those. ``input`` / ``output`` may be JSON strings, OpenAI-style
message lists, ``{"messages": [...]}``, plain prompts, or one framework's wrapper around those.
Observations are deduplicated by id; trace scores become `labels`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Final

from evalpipe.ingest.openai_chat import chat_tool_choice, chat_tools
from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    Skipped,
    attributes_of,
    canonical_request,
    expect_dict,
    id_text,
    int_or_none,
    json_text,
    maybe_json,
    num_or_none,
    params_of,
    stop_list,
    timestamp_us,
)

__all__ = ["Langfuse"]

_FINISH: Final = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
}
_PARAMS: Final = frozenset(
    {"max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed"}
)


def _loads(value: Any) -> Any:
    """A JSON-string field parsed when it is JSON, else kept."""
    return maybe_json(value) if isinstance(value, str) else value


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return str(content["text"])
    return json_text(content)


def _message_list(value: Any) -> list[Any] | None:
    """The chat messages inside a Langfuse input, whatever wraps them."""
    value = _loads(value)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in ("messages", "input", "prompt", "chat_history"):
            inner = _loads(value.get(key))
            if isinstance(inner, list) and all(isinstance(m, dict) for m in inner):
                return inner
        if "role" in value and "content" in value:
            return [value]
    return None


def _convert_messages(
    messages: list[Any], issues: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if isinstance(msg, str):
            out.append({"role": "user", "content": [{"type": "text", "text": msg}]})
            continue
        msg = expect_dict(msg, f"input[{i}]")
        role = msg.get("role") or msg.get("type")  # LangChain messages carry `type`
        role = {"human": "user", "ai": "assistant", "function": "tool"}.get(str(role), role)
        content = _loads(msg.get("content"))
        if role in ("system", "developer"):
            system.append(_text(content))
            continue
        if role == "tool":
            text = content if isinstance(content, str) else json_text(content)
            call_id = msg.get("tool_call_id", msg.get("name"))
            out.append(
                {
                    "role": "tool",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_call_id": call_id,
                            "content": text,
                            "is_error": False,
                        }
                    ],
                }
            )
            continue
        if role not in ("user", "assistant"):
            raise BadRecord(f"input[{i}].role", f"unknown role {role!r}"[:80])
        parts: list[dict[str, Any]] = []
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    image = part.get("image_url")
                    url = image.get("url") if isinstance(image, dict) else image
                    parts.append({"type": "image", "url": str(url), "media_type": None})
                elif isinstance(part, dict) and part.get("type") not in (None, "text"):
                    parts.append(dict(part))
                    issues.append(f"untranslatable: {part.get('type')} content")
                else:
                    parts.append({"type": "text", "text": _text([part])})
        elif content is not None and content != "":
            parts.append({"type": "text", "text": _text(content)})
        for call in msg.get("tool_calls") or []:
            if isinstance(call, dict):
                inner = call.get("function")
                fn: dict[str, Any] = inner if isinstance(inner, dict) else call
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": str(fn.get("name") or ""),
                        "arguments": _loads(fn.get("arguments", fn.get("args"))),
                    }
                )
        out.append({"role": role, "content": parts})
    return system, out


def _output(value: Any) -> tuple[str | None, list[dict[str, Any]], Any]:
    """(text, tool calls, finish reason) from a Langfuse `output`."""
    value = _loads(value)
    if value is None:
        return None, [], None
    if isinstance(value, str):
        return value, [], None
    finish = None
    if isinstance(value, dict) and isinstance(value.get("choices"), list) and value["choices"]:
        choice = value["choices"][0]
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        value = choice.get("message", choice) if isinstance(choice, dict) else choice
    if isinstance(value, list) and value:
        value = value[-1]
    if isinstance(value, dict):
        calls = []
        for call in value.get("tool_calls") or []:
            if isinstance(call, dict):
                inner = call.get("function")
                fn: dict[str, Any] = inner if isinstance(inner, dict) else call
                calls.append(
                    {
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": _loads(fn.get("arguments", fn.get("args"))),
                    }
                )
        content = value.get("content", value.get("text", value.get("output")))
        finish = finish or value.get("finish_reason") or value.get("stop_reason")
        return _text(_loads(content)) if content is not None else "", calls, finish
    return json_text(value), [], None


def _usage(obs: dict[str, Any], row: Row) -> None:
    details = obs.get("usageDetails") or obs.get("usage_details")
    usage = obs.get("usage")
    if isinstance(details, dict) and details:
        row["input_tokens"] = int_or_none(details.get("input"), "usageDetails.input")
        row["output_tokens"] = int_or_none(details.get("output"), "usageDetails.output")
        cached = details.get("input_cached_tokens", details.get("cache_read_input_tokens"))
        row["cached_input_tokens"] = int_or_none(cached, "usageDetails.input_cached_tokens")
        reasoning = details.get("output_reasoning_tokens", details.get("reasoning_tokens"))
        row["reasoning_tokens"] = int_or_none(reasoning, "usageDetails.output_reasoning_tokens")
    elif isinstance(usage, dict):
        row["input_tokens"] = int_or_none(
            usage.get("input", usage.get("promptTokens")), "usage.input"
        )
        row["output_tokens"] = int_or_none(
            usage.get("output", usage.get("completionTokens")), "usage.output"
        )


def _num(value: Any, field: str) -> float | None:
    """modelParameters values arrive as strings too ("0.7")."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise BadRecord(field, f"expected a number, got {value[:20]!r}") from None
    return num_or_none(value, field)


def _int(value: Any, field: str) -> int | None:
    number = _num(value, field)
    if number is None:
        return None
    if not number.is_integer():
        raise BadRecord(field, f"expected an integer, got {value}")
    return int(number)


def _generation(obs: dict[str, Any], trace: dict[str, Any]) -> Row:
    issues: list[str] = []
    raw_input = obs.get("input")
    messages = _message_list(raw_input)
    system: list[str] = []
    converted: list[dict[str, Any]] = []
    if messages is not None:
        system, converted = _convert_messages(messages, issues)
    elif raw_input is not None:
        text = _loads(raw_input)
        converted = [{"role": "user", "content": [{"type": "text", "text": _text(text)}]}]
    parameters = expect_dict(_loads(obs.get("modelParameters")), "modelParameters", required=False)
    # With tools, the OpenAI integration logs input as {"tools", "tool_choice", "messages"}.
    wrapper = _loads(raw_input)
    wrapper = wrapper if isinstance(wrapper, dict) and messages is not None else {}
    request = {
        "system": "\n\n".join(system) if system else None,
        "messages": converted,
        "tools": chat_tools(wrapper, issues),
        "tool_choice": chat_tool_choice(wrapper),
        "response_format": None,
        "params": params_of(
            max_tokens=_int(
                parameters.get("max_completion_tokens", parameters.get("max_tokens")),
                "modelParameters.max_tokens",
            ),
            temperature=_num(parameters.get("temperature"), "modelParameters.temperature"),
            top_p=_num(parameters.get("top_p"), "modelParameters.top_p"),
            stop=stop_list(_loads(parameters.get("stop")), "modelParameters.stop"),
            seed=_int(parameters.get("seed"), "modelParameters.seed"),
            extra={k: v for k, v in parameters.items() if k not in _PARAMS and v is not None},
        ),
    }
    row: Row = {}
    if converted:
        row["request"], row["request_sha256"] = canonical_request(request)
    else:
        row["request"] = canonical_request(request)[0]
        issues.insert(0, "no_content_captured")
    if issues:
        row["replayable"], row["replay_issue"] = False, issues[0]
    row["request_raw"] = json_text(raw_input) if raw_input is not None else None
    row["response_raw"] = json_text(obs.get("output")) if obs.get("output") is not None else None
    text, calls, finish = _output(obs.get("output"))
    row["output_text"] = text
    row["output_tool_calls"] = json_text(calls) if calls else None
    row["model"] = obs.get("model") if isinstance(obs.get("model"), str) else None
    provided = obs.get("providedModelName")
    row["response_model"] = provided if isinstance(provided, str) else row["model"]
    _usage(obs, row)
    start = timestamp_us(obs.get("startTime", obs.get("start_time")), "startTime")
    end = timestamp_us(obs.get("endTime", obs.get("end_time")), "endTime")
    first = timestamp_us(
        obs.get("completionStartTime", obs.get("completion_start_time")), "completionStartTime"
    )
    row["timestamp"] = start
    if start is not None and end is not None and end >= start:
        row["latency_ms"] = (end - start) / 1000
    if start is not None and first is not None and first >= start:
        row["ttft_ms"] = (first - start) / 1000
    level = obs.get("level")
    if level == "ERROR":
        row["status"], row["finish_reason"] = "error", "error"
        message = obs.get("statusMessage")
        row["error_type"] = str(message)[:200] if message else "error"
    else:
        row["status"] = "ok" if obs.get("output") is not None else None
        row["finish_reason"] = None if finish is None else _FINISH.get(str(finish), "other")
    metadata = _loads(obs.get("metadata"))
    attributes = attributes_of(metadata, "metadata") if isinstance(metadata, dict) else []
    attributes = attributes or []
    for key in ("name", "promptName", "promptVersion", "environment", "traceId"):
        value = obs.get(key)
        if value is not None:
            attributes.append((key, value if isinstance(value, str) else json_text(value)))
    tags = trace.get("tags")
    if isinstance(tags, list) and tags:
        attributes.append(("tags", json_text(tags)))
    if isinstance(trace.get("name"), str):
        attributes.append(("trace_name", trace["name"]))
    row["attributes"] = attributes or None
    session = trace.get("sessionId", obs.get("sessionId"))
    user = trace.get("userId", obs.get("userId"))
    row["session_id"] = id_text(session)
    row["user_id"] = id_text(user)
    labels = []
    for score in trace.get("scores") or []:
        if isinstance(score, dict) and isinstance(score.get("name"), str):
            value = score.get("value")
            if isinstance(value, bool):
                labels.append((score["name"], 1.0 if value else 0.0))
            elif isinstance(value, int | float):
                labels.append((score["name"], float(value)))
    row["labels"] = labels or None
    row["record_id"] = id_text(obs.get("id"))
    return row


class Langfuse(Adapter):
    """Langfuse GENERATION observations (exports or API traces), deduplicated by id."""

    name: ClassVar[str] = "langfuse"
    version: ClassVar[int] = 1
    parquet_columns: ClassVar[tuple[str, ...]] = ("id", "type", "input", "output")

    def __init__(self) -> None:
        self._seen: set[str] = set()

    @staticmethod
    def sniff(obj: Any) -> bool:
        if isinstance(obj, list):
            return bool(obj) and Langfuse.sniff(obj[0])
        if not isinstance(obj, dict):
            return False
        if isinstance(obj.get("observations"), list):
            return True
        if isinstance(obj.get("trace"), dict):
            return True
        return obj.get("type") in ("GENERATION", "SPAN", "EVENT") and (
            "traceId" in obj or "startTime" in obj or "trace_id" in obj
        )

    def convert(self, obj: Any, loc: Location) -> list[Row | BadRecord | Skipped]:
        if not isinstance(obj, dict | list):
            raise BadRecord(None, "expected an observation or a trace")
        out = [self._observation(obs, trace) for trace, obs in _observations(obj)]
        return out or [Skipped("no observation")]

    def read_parquet(self, path: Path) -> Iterator[tuple[Location, Row | BadRecord | Skipped]]:
        """Rows of a Langfuse Parquet export (observations table), batch by batch."""
        import pyarrow.parquet as pq

        line = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=5000):
            for obs in batch.to_pylist():
                line += 1
                yield Location(str(path), line), self._observation(obs, {})

    def _observation(self, obs: dict[str, Any], trace: dict[str, Any]) -> Row | BadRecord | Skipped:
        """One observation: a GENERATION's row (or why it is bad); anything else is skipped."""
        if obs.get("type") != "GENERATION":
            return Skipped("not a generation")
        oid = id_text(obs.get("id"))
        if oid is not None:
            if oid in self._seen:
                return Skipped("repeated observation id")
            self._seen.add(oid)
        try:
            return _generation(obs, trace)
        except BadRecord as exc:
            return exc


def _observations(obj: Any) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(trace, observation) pairs of any accepted shape."""
    if isinstance(obj, list):
        for item in obj:
            yield from _observations(item)
        return
    if not isinstance(obj, dict):
        return
    if isinstance(obj.get("observations"), list):
        inner = obj.get("trace")
        trace: dict[str, Any] = inner if isinstance(inner, dict) else obj
        for obs in obj["observations"]:
            if isinstance(obs, dict):
                yield trace, obs
        return
    if isinstance(obj.get("trace"), dict):
        return
    yield {}, obj
