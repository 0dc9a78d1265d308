"""`anthropic_batch@1`: Message Batches results, joined on ``custom_id`` with the request file.

Results are ``{"custom_id", "result": {"type": "succeeded", "message": {...}}}`` (or ``errored``
with an error, ``canceled``, ``expired``); the optional request file holds the batch's
``{"custom_id", "params": {...}}`` entries.
"""

from __future__ import annotations

from typing import Any, ClassVar

from evalpipe.ingest.anthropic_messages import anthropic_request, anthropic_response
from evalpipe.ingest.openai_batch import JoinedAdapter
from evalpipe.ingest.records import (
    BadRecord,
    Location,
    Row,
    canonical_request,
    expect_dict,
    json_text,
    str_or_none,
)

__all__ = ["AnthropicBatch"]


class AnthropicBatch(JoinedAdapter):
    """Anthropic Message Batches: results (+ the requests, when given)."""

    name: ClassVar[str] = "anthropic_batch"
    version: ClassVar[int] = 1
    provider: ClassVar[str | None] = "anthropic"

    @staticmethod
    def sniff(obj: Any) -> bool:
        if not isinstance(obj, dict) or "custom_id" not in obj:
            return False
        result = obj.get("result")
        if isinstance(result, dict):
            return result.get("type") in ("succeeded", "errored", "canceled", "expired")
        params = obj.get("params")
        return isinstance(params, dict) and "messages" in params

    def split(self, obj: dict[str, Any], loc: Location) -> tuple[str, Row]:
        row: Row = {"provider": self.provider}
        if "params" in obj:
            body = expect_dict(obj.get("params"), "params")
            request, issues = anthropic_request(body, "params")
            row["request"], row["request_sha256"] = canonical_request(request)
            row["request_raw"] = json_text(body)
            row["model"] = str_or_none(body.get("model"), "params.model")
            if issues:
                row["replayable"], row["replay_issue"] = False, issues[0]
            return "request", row
        result = expect_dict(obj.get("result"), "result")
        kind = result.get("type")
        row["response_raw"] = json_text(result)
        if kind == "succeeded":
            anthropic_response(result.get("message"), row, "result.message")
        elif kind == "errored":
            error = result.get("error")
            inner = error.get("error") if isinstance(error, dict) else None
            err = inner if isinstance(inner, dict) else error
            row["status"], row["finish_reason"] = "error", "error"
            row["error_type"] = (
                str(err.get("type") or "error") if isinstance(err, dict) else "error"
            )
        elif kind in ("canceled", "expired"):
            row["status"], row["finish_reason"], row["error_type"] = "error", "error", kind
        else:
            raise BadRecord("result.type", f"unknown result type {kind!r}")
        return "result", row
