"""`langfuse@1`: Langfuse generations, from exports (JSONL / Parquet) or the public API.

An item is an observation row (only ``type: GENERATION`` becomes a record; other observations are
skipped, counted by reason), a trace as the API returns it (``{"trace": {...}, "observations":
[...]}``, or a trace object holding its ``observations``), or a list of those. ``input`` /
``output`` may be JSON strings, plain prompts, or the messages of whichever framework made the
call (`frameworks`: OpenAI, LangChain, Vercel AI SDK, OpenInference, Responses items, Gemini).
``modelParameters`` values are often strings ("0.7", "false", "null"): canonical parameters are
read where the meaning is certain, the rest is kept in ``params.extra`` as logged.
Observations are deduplicated by id; trace scores become `labels`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Final

from evalpipe.ingest.frameworks import (
    Conversation,
    framework_input,
    framework_output,
    loads,
    text_of,
    wrapper_tools,
)
from evalpipe.ingest.openai_chat import chat_tool_choice
from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    Skipped,
    attributes_of,
    canonical_request,
    id_text,
    int_or_none,
    json_text,
    read_params,
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
    "tool-calls": "tool_calls",  # Vercel AI SDK
    "content_filter": "content_filter",
    "content-filter": "content_filter",
    "safety": "content_filter",  # Gemini
    "refusal": "refusal",
}


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


# Observation types (Langfuse v3 adds the agent-framework ones); only GENERATION is a model call.
_OBSERVATION_TYPES: Final = frozenset(
    {
        "GENERATION",
        "SPAN",
        "EVENT",
        "AGENT",
        "TOOL",
        "CHAIN",
        "RETRIEVER",
        "EVALUATOR",
        "EMBEDDING",
        "GUARDRAIL",
    }
)

# The modelParameters keys frameworks log canonical parameters under, in precedence order.
_SLOTS: Final = {
    "max_tokens": (
        "max_completion_tokens",
        "max_tokens",
        "maxTokens",
        "max_output_tokens",
        "maxOutputTokens",
        "max_new_tokens",
    ),
    "temperature": ("temperature",),
    "top_p": ("top_p", "topP"),
    "stop": ("stop", "stop_sequences", "stopSequences"),
    "seed": ("seed",),
}


def _parameters(raw: Any) -> dict[str, Any]:
    """The canonical `params` of an observation's modelParameters (often text: "0.7", "null")."""
    parameters = loads(raw)
    if parameters is not None and not isinstance(parameters, dict):
        parameters = {"modelParameters": parameters}
    return read_params(parameters or {}, _SLOTS)


def _generation(obs: dict[str, Any], trace: dict[str, Any]) -> Row:
    """The canonical row of one GENERATION observation."""
    row: Row = {"record_id": id_text(obs.get("id"))}
    _request(row, obs)
    _output(row, obs)
    _usage(obs, row)
    _timing(row, obs)
    _context(row, obs, trace)
    return row


def _request(row: Row, obs: dict[str, Any]) -> None:
    """The canonical request of the observation's input and modelParameters, and the raw input."""
    issues: list[str] = []
    raw_input = obs.get("input")
    found = framework_input(raw_input, issues)
    if found is None:
        text = text_of(loads(raw_input)) if raw_input is not None else ""
        messages = [{"role": "user", "content": [{"type": "text", "text": text}]}] if text else []
        found = Conversation([], messages, [], {})
    tools = wrapper_tools(found.wrapper, issues)
    request = {
        "system": "\n\n".join(found.system) if found.system else None,
        "messages": found.messages,
        "tools": [*tools, *found.tools] or None,
        "tool_choice": chat_tool_choice(found.wrapper),
        "response_format": None,
        "params": _parameters(obs.get("modelParameters")),
    }
    if found.messages or found.system:
        row["request"], row["request_sha256"] = canonical_request(request)
    else:
        row["request"] = canonical_request(request)[0]
        issues.insert(0, "no_content_captured")
    if issues:
        row["replayable"], row["replay_issue"] = False, issues[0]
    row["request_raw"] = json_text(raw_input) if raw_input is not None else None
    model = obs.get("model")
    row["model"] = model if isinstance(model, str) else None
    provided = obs.get("providedModelName")
    row["response_model"] = provided if isinstance(provided, str) else row["model"]


def _output(row: Row, obs: dict[str, Any]) -> None:
    """Output text, tool calls, status and finish reason (level ERROR: an error row)."""
    output = obs.get("output")
    row["response_raw"] = json_text(output) if output is not None else None
    text, calls, finish = framework_output(output)
    if finish is None:  # the Vercel AI SDK's finish reason lands among the parameters
        parameters = loads(obs.get("modelParameters"))
        finish = parameters.get("finishReason") if isinstance(parameters, dict) else None
    row["output_text"] = text
    row["output_tool_calls"] = json_text(calls) if calls else None
    if obs.get("level") == "ERROR":
        row["status"], row["finish_reason"] = "error", "error"
        message = obs.get("statusMessage")
        row["error_type"] = str(message)[:200] if message else "error"
    else:
        row["status"] = "ok" if output is not None else None
        reason = None if finish is None else str(finish).lower()
        row["finish_reason"] = None if reason is None else _FINISH.get(reason, "other")


def _timing(row: Row, obs: dict[str, Any]) -> None:
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


def _context(row: Row, obs: dict[str, Any], trace: dict[str, Any]) -> None:
    """Attributes (metadata, names, tags), session and user, and the trace's scores as labels."""
    metadata = loads(obs.get("metadata"))
    attributes = (attributes_of(metadata, "metadata") if isinstance(metadata, dict) else []) or []
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
    row["session_id"] = id_text(trace.get("sessionId", obs.get("sessionId")))
    row["user_id"] = id_text(trace.get("userId", obs.get("userId")))
    labels = []
    for score in trace.get("scores") or []:
        if isinstance(score, dict) and isinstance(score.get("name"), str):
            value = score.get("value")
            if isinstance(value, bool):
                labels.append((score["name"], 1.0 if value else 0.0))
            elif isinstance(value, int | float):
                labels.append((score["name"], float(value)))
    row["labels"] = labels or None


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
        return obj.get("type") in _OBSERVATION_TYPES and (
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
