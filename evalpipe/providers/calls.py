"""What every provider call returns, and how a failure is classified (FORMATS.md, responses)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import httpx

__all__ = [
    "INVALID_BODY",
    "CallOutcome",
    "FatalProviderError",
    "api_key",
    "classify_exception",
    "classify_status",
    "invalid_body_failure",
    "status_failure",
    "transport_failure",
]

INVALID_BODY: Final = "InvalidResponseBody"
"""error_type of a successful status whose body is not the API's answer (a proxy's HTML page,
truncated JSON, another schema): transient, retried a few times."""

ErrorOrigin = Literal["infrastructure", "candidate"]


class FatalProviderError(Exception):
    """The provider refused the whole arm (auth, unknown model): the run stops early."""

    def __init__(self, status: int | None, message: str, fix: str) -> None:
        self.status, self.message, self.fix = status, message, fix
        super().__init__(message)


@dataclass
class CallOutcome:
    """One provider answer (or failure), in the columns of tables.RESPONSES."""

    status: str = "ok"
    response_model: str | None = None
    system_fingerprint: str | None = None
    output_text: str | None = None
    output_tool_calls: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    error_origin: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    attempts: int = 1

    def row(self) -> dict[str, Any]:
        """Its columns."""
        return asdict(self)


def api_key(env: str, base_url: str | None) -> str:
    """The API key from the environment variable `env`.

    Local servers (the fake provider, vLLM, Ollama) need no key: one on 127.0.0.1 or localhost
    gets a placeholder.

    Raises:
        FatalProviderError: when the variable is unset and the endpoint is not local.
    """
    key = os.environ.get(env)
    if key:
        return key
    if base_url and ("127.0.0.1" in base_url or "localhost" in base_url):
        return "evalpipe-local"
    raise FatalProviderError(None, f"{env} is not set", f"Export {env} with an API key.")


def classify_status(status: int) -> tuple[ErrorOrigin, bool]:
    """(origin, fatal) of an HTTP error status after the SDK's retries."""
    if status in (401, 403, 404):
        return "candidate", True
    if status == 429 or status >= 500 or status == 408:
        return "infrastructure", False
    return "candidate", False


def classify_exception(exc: BaseException) -> ErrorOrigin:
    """Origin of a transport failure: a read timeout is the model's, the rest the network's."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, httpx.ReadTimeout):
            return "candidate"
        if isinstance(cause, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
            return "infrastructure"
        cause = cause.__cause__ or cause.__context__
    return "infrastructure"


def short(message: str, limit: int = 300) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


def status_failure(
    status: int, message: str, error_type: str, *, started: float, max_retries: int
) -> CallOutcome:
    """The outcome of an HTTP error left after the SDK's retries (`started`: perf_counter).

    Raises:
        FatalProviderError: on auth and unknown-model statuses, which no retry fixes.
    """
    origin, fatal = classify_status(status)
    text = short(message)
    if fatal:
        fix = (
            "Check the API key in the environment."
            if status in (401, 403)
            else "Check the model name and that this key can use it."
        )
        raise FatalProviderError(status, text, fix)
    return CallOutcome(
        status="error",
        error_origin=origin,
        http_status=status,
        error_type=error_type,
        error_message=text,
        latency_ms=(time.perf_counter() - started) * 1000,
        attempts=max_retries + 1 if origin == "infrastructure" else 1,
    )


def transport_failure(exc: BaseException, *, started: float, max_retries: int) -> CallOutcome:
    """The outcome of a connection failure or timeout left after the SDK's retries."""
    return CallOutcome(
        status="error",
        error_origin=classify_exception(exc),
        error_type=type(exc).__name__,
        error_message=short(str(exc)),
        latency_ms=(time.perf_counter() - started) * 1000,
        attempts=max_retries + 1,
    )


def invalid_body_failure(
    exc: BaseException, *, status: int, started: float, expected: str
) -> CallOutcome:
    """The outcome of a `status` response whose body could not be read as `expected`."""
    detail = short(f"{type(exc).__name__}: {exc}", 200)
    return CallOutcome(
        status="error",
        error_origin="infrastructure",
        http_status=status,
        error_type=INVALID_BODY,
        error_message=f"the {status} response is not {expected} ({detail})",
        latency_ms=(time.perf_counter() - started) * 1000,
    )
