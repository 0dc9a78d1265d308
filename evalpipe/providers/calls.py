"""What every provider call returns, and how a failure is classified (FORMATS.md, responses)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import httpx

__all__ = [
    "CIRCUIT_OPEN",
    "INVALID_BODY",
    "CallOutcome",
    "FatalProviderError",
    "api_key",
    "api_status_failure",
    "classify_exception",
    "classify_status",
    "failure_class",
    "invalid_body_failure",
    "server_delay_s",
    "status_error_type",
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
    retry_after_s: float | None = None
    """Wait the server asked for before a retry (not a column)."""

    def row(self) -> dict[str, Any]:
        """Its columns."""
        row = asdict(self)
        del row["retry_after_s"]
        return row


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


_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: str | None) -> float | None:
    """A delay header as seconds: a number, an OpenAI duration (`6m0s`, `20ms`), an HTTP date or
    an RFC 3339 time (Anthropic's `anthropic-ratelimit-*-reset`); None when unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _UNIT_S[u] for n, u in parts)
    when: datetime | None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


def server_delay_s(headers: Any) -> float | None:
    """Seconds the server asks a client to wait before retrying, from a response's headers.

    `retry-after-ms`, then `retry-after`, then the reset time of the exhausted limit
    (`x-ratelimit-reset-requests` / `-tokens`, Anthropic's `anthropic-ratelimit-*-reset`; the later
    of them when none says which is exhausted). None when the headers say nothing.
    """
    if headers is None:
        return None
    ms = _seconds(headers.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000
    after = _seconds(headers.get("retry-after"))
    if after is not None and after > 0:
        return after
    resets: list[float] = []
    exhausted: list[float] = []
    for prefix in ("x-ratelimit", "anthropic-ratelimit"):
        for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
            if prefix == "x-ratelimit":
                reset, remaining = f"{prefix}-reset-{kind}", f"{prefix}-remaining-{kind}"
            else:
                reset, remaining = f"{prefix}-{kind}-reset", f"{prefix}-{kind}-remaining"
            seconds = _seconds(headers.get(reset))
            if seconds is None:
                continue
            resets.append(max(seconds, 0.0))
            if headers.get(remaining) in ("0", 0):
                exhausted.append(max(seconds, 0.0))
    if exhausted:
        return max(exhausted)
    return max(resets) if resets else None


def classify_status(status: int) -> tuple[ErrorOrigin, bool]:
    """(origin, fatal) of an HTTP error status."""
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


CIRCUIT_OPEN: Final = "CircuitOpen"
"""error_type of a request never sent: the endpoint's breaker found its provider down."""


def failure_class(http_status: int | None, error_type: str | None) -> str:
    """The class of a failed request (spec.FallbackOn) from its row's http_status and error_type."""
    if error_type == CIRCUIT_OPEN:
        return "provider_down"
    if error_type == INVALID_BODY:
        return "invalid_body"
    if http_status == 429:
        return "rate_limit"
    if http_status in (503, 529):
        return "overloaded"
    if http_status is not None and (http_status >= 500 or http_status == 408):
        return "server_error"
    if http_status is not None:
        return "bad_request"
    return "timeout" if error_type and "Timeout" in error_type else "connection"


def short(message: str, limit: int = 300) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


_STATUS_ERRORS: Final = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "ContentTooLargeError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_ANTHROPIC_STATUS_ERRORS: Final = {
    402: "PaymentRequiredError",
    501: "HTTPNotImplementedError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
    529: "OverloadedError",
}


def status_error_type(status: int, provider: str) -> str:
    """The SDK's error class name for an HTTP status (what an online failure's row says), for
    failures read from a batch's results rather than raised."""
    if provider == "anthropic" and status in _ANTHROPIC_STATUS_ERRORS:
        return _ANTHROPIC_STATUS_ERRORS[status]
    if status in _STATUS_ERRORS:
        return _STATUS_ERRORS[status]
    return "InternalServerError" if status >= 500 else "APIStatusError"


def status_failure(
    status: int, message: str, error_type: str, *, started: float, headers: Any = None
) -> CallOutcome:
    """The outcome of one attempt answered with an HTTP error (`started`: perf_counter).

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
        retry_after_s=server_delay_s(headers),
    )


def transport_failure(exc: BaseException, *, started: float) -> CallOutcome:
    """The outcome of one attempt that failed to connect, was cut off or timed out."""
    return CallOutcome(
        status="error",
        error_origin=classify_exception(exc),
        error_type=type(exc).__name__,
        error_message=short(str(exc)),
        latency_ms=(time.perf_counter() - started) * 1000,
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


def api_status_failure(exc: Any, *, started: float) -> CallOutcome:
    """`status_failure` of an SDK's `APIStatusError` (openai's and anthropic's have the same
    fields): the API's own error message when its body holds one, the response's headers.

    Raises:
        FatalProviderError: on auth and unknown-model statuses.
    """
    body, message = exc.body, exc.message
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            message = str(inner["message"])
    response = getattr(exc, "response", None)
    return status_failure(
        exc.status_code,
        message,
        type(exc).__name__,
        started=started,
        headers=response.headers if response is not None else None,
    )
