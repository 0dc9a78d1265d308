"""`openai_batch@1`: Batch API input, output and error files, joined on ``custom_id``.

Input lines ``{"custom_id", "method", "url", "body"}`` give the request; output and error lines
``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`` give what
came back. Either side alone is accepted: requests without responses, or responses whose
request is unknown (not replayable). Rows are emitted once every file was read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

from evalpipe.ingest.openai_chat import chat_request, chat_response
from evalpipe.ingest.openai_responses import responses_request, responses_response
from evalpipe.ingest.records import (
    Adapter,
    BadRecord,
    Location,
    Row,
    canonical_request,
    expect_dict,
    id_text,
    json_text,
    str_or_none,
    timestamp_us,
)

__all__ = ["JoinedAdapter", "OpenAIBatch"]

# Columns a result line fills; everything else comes from the request line.
_RESULT_COLUMNS: Final = frozenset(
    {
        "timestamp",
        "response_model",
        "system_fingerprint",
        "response_raw",
        "output_text",
        "output_tool_calls",
        "finish_reason",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "latency_ms",
        "ttft_ms",
        "status",
        "error_type",
    }
)


class JoinedAdapter(Adapter):
    """An adapter whose request and result lines meet on ``custom_id`` after all files are read."""

    def __init__(self) -> None:
        self._requests: dict[str, tuple[Location, Row]] = {}
        self._results: dict[str, tuple[Location, Row]] = {}

    def split(self, obj: dict[str, Any], loc: Location) -> tuple[str, Row]:
        """("request" or "result", the row of what this line says)."""
        raise NotImplementedError

    def convert(self, obj: Any, loc: Location) -> list[Row]:
        obj = expect_dict(obj, None)
        key = id_text(obj.get("custom_id"))
        if key is None:
            raise BadRecord("custom_id", "missing required field")
        kind, row = self.split(obj, loc)
        store = self._requests if kind == "request" else self._results
        if key in store:
            raise BadRecord("custom_id", "duplicate record_id")
        row["record_id"] = key
        store[key] = (loc, row)
        return []

    def finish(self) -> Iterable[tuple[Location, Row | BadRecord]]:
        requests, results = self._requests, self._results
        self._requests, self._results = {}, {}
        for key, (loc, row) in requests.items():
            found = results.pop(key, None)
            if found is not None:
                result = found[1]
                for name in _RESULT_COLUMNS:
                    if result.get(name) is not None:
                        row[name] = result[name]
                row["attributes"] = (row.get("attributes") or []) + (result.get("attributes") or [])
                row["attributes"] = row["attributes"] or None
            yield loc, row
        for loc, row in results.values():
            if row.get("replayable") is not False:
                row["replayable"], row["replay_issue"] = False, "no_content_captured"
            yield loc, row


def _renamed(exc: BadRecord, prefix: str) -> BadRecord:
    field = exc.field
    if field is not None and field.startswith("request"):
        field = prefix + field.removeprefix("request")
    elif field is not None and field.startswith("response"):
        field = prefix + field.removeprefix("response")
    return BadRecord(field, exc.reason)


class OpenAIBatch(JoinedAdapter):
    """OpenAI Batch API files (input, output, error), joined on ``custom_id``."""

    name: ClassVar[str] = "openai_batch"
    version: ClassVar[int] = 1
    provider: ClassVar[str | None] = "openai"

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict) or "custom_id" not in obj or "result" in obj:
            return False
        if isinstance(obj.get("body"), dict) and ("url" in obj or "method" in obj):
            return True
        response = obj.get("response", ...)
        if response is None or (isinstance(response, dict) and "status_code" in response):
            return True
        return response is ... and isinstance(obj.get("error"), dict)

    def split(self, obj: dict[str, Any], loc: Location) -> tuple[str, Row]:
        row: Row = {"provider": self.provider}
        if "body" in obj:
            body = expect_dict(obj.get("body"), "body")
            url = str_or_none(obj.get("url"), "url") or "/v1/chat/completions"
            row["request_raw"] = json_text(body)
            row["model"] = str_or_none(body.get("model"), "body.model")
            try:
                if url.endswith("/chat/completions"):
                    converted = chat_request(body)
                    row["request"], row["request_sha256"] = converted.json, converted.sha256
                    issue = converted.issue
                    if converted.user is not None:
                        row["user_id"] = converted.user
                elif url.endswith("/responses"):
                    request, issues = responses_request(body)
                    if body.get("previous_response_id") is not None:
                        issues.insert(0, "previous_response_id")
                    row["request"], row["request_sha256"] = canonical_request(request)
                    issue = issues[0] if issues else None
                else:
                    raise BadRecord("url", f"unsupported endpoint {url[:60]!r}")
            except BadRecord as exc:
                raise _renamed(exc, "body") from None
            if issue is not None:
                row["replayable"], row["replay_issue"] = False, issue
            return "request", row
        if "response" not in obj and "error" not in obj:
            raise BadRecord("body", "missing required field (neither a request nor a result)")
        response = obj.get("response")
        error = obj.get("error")
        attributes = []
        if id_text(obj.get("id")) is not None:
            attributes.append(("batch_request_id", str(obj["id"])))
        if response is not None:
            response = expect_dict(response, "response")
            row["response_raw"] = json_text(response)
            if id_text(response.get("request_id")) is not None:
                attributes.append(("request_id", str(response["request_id"])))
            body = expect_dict(response.get("body"), "response.body", required=False)
            status = response.get("status_code")
            try:
                if body.get("error") is not None or (isinstance(status, int) and status >= 400):
                    err = body.get("error")
                    kind = err.get("type") or err.get("code") if isinstance(err, dict) else None
                    row["status"], row["finish_reason"] = "error", "error"
                    row["error_type"] = str(kind) if kind else f"http_{status}"
                elif body.get("object") == "response":
                    responses_response(body, row)
                else:
                    chat_response(body, row)
            except BadRecord as exc:
                raise _renamed(exc, "response.body") from None
            created = body.get("created", body.get("created_at"))
            if isinstance(created, int | float) and not isinstance(created, bool):
                row["timestamp"] = timestamp_us(created, "response.body.created")
        elif error is not None:
            err = expect_dict(error, "error")
            row["status"], row["finish_reason"] = "error", "error"
            row["error_type"] = str(err.get("code") or err.get("type") or "error")
        row["attributes"] = attributes or None
        return "result", row
