"""An endpoint: one provider + model + base URL, its SDK client, its translation and its limits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Final
from urllib.parse import urlparse

import httpx

from evalpipe.errors import EvalpipeError
from evalpipe.providers.calls import CallOutcome, FatalProviderError
from evalpipe.providers.translate import TARGET_APIS, Translation, translate
from evalpipe.spec import BUILTIN_FAKE, Limit

__all__ = [
    "FAKE_URL_ENV",
    "INVALID_BODY_RETRIES",
    "CallOutcome",
    "Endpoint",
    "FatalProviderError",
]

INVALID_BODY_RETRIES: Final = 2
"""Retries of a request whose answer had a successful status but an unreadable body (fewer
than `max_retries` may allow: a proxy that answers HTML usually keeps doing so)."""

_PROBE_CONNECT_S: Final = 10.0
"""Longest wait for the first connection to an endpoint before the run stops (exit 4)."""

FAKE_URL_ENV: Final = "EVALPIPE_FAKE_URL"
"""Root URL of a running fake provider that `base_url: builtin:fake` points at."""


def _resolve_base_url(base_url: str | None, provider: str) -> str | None:
    if base_url != BUILTIN_FAKE:
        return base_url
    root = os.environ.get(FAKE_URL_ENV)
    if not root:
        raise EvalpipeError(
            "base_url builtin:fake needs the built-in fake provider; "
            "`evalpipe run` starts it, or set EVALPIPE_FAKE_URL to a running `evalpipe fake-provider`"
        )
    return root.rstrip("/") + ("/v1" if provider != "anthropic" else "")


class Endpoint:
    """Sends canonical requests to one model through its provider's real SDK."""

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        base_url: str | None,
        api_key_env: str | None,
        limit: Limit,
        default_max_tokens: int = 1024,
        logged_provider: str | None = None,
    ) -> None:
        self.provider, self.model, self.limit = provider, model, limit
        self.base_url = _resolve_base_url(base_url, provider)
        # where the answers come from, in the cache key: the built-in fake is one provider
        # whatever port this run started it on (else a demo's repeat could never hit the cache)
        if base_url == BUILTIN_FAKE:
            self.host = BUILTIN_FAKE
        else:
            self.host = urlparse(self.base_url).netloc if self.base_url else provider
        self.default_max_tokens = default_max_tokens
        self._same_provider = (logged_provider or provider) == (
            "openai" if provider == "openai_compatible" else provider
        )
        self._api_key_env = api_key_env
        self._client: Any = None
        self._call: Callable[[Any, dict[str, Any]], Awaitable[CallOutcome]] | None = None
        self._shared: dict[Hashable, Any] | None = None

    def share(self, clients: dict[Hashable, Any]) -> None:
        """Take SDK clients from `clients` and leave new ones there: the run's endpoints of one
        URL and model (a partition's each) then share one client and its connection pool
        instead of opening their own (a quarter slower at 256 in flight, measured). Shared
        clients are closed by their owner, not by `aclose`."""
        self._shared = clients

    def client(self) -> Any:
        """The SDK client (its SDK imported on first use: a second's import for the Anthropic one).

        It sends each attempt once: replay retries (replay/retry.py), so that every attempt
        passes the run's limits and the adaptive concurrency sees each 429.
        """
        if self._client is None:
            timeout = self.limit.timeout_s or 60.0
            connections = self.limit.concurrency or 32
            key = (self.provider, self.base_url, self._api_key_env, timeout, connections)
            if self._shared is not None and key in self._shared:
                self._client, self._call = self._shared[key]
                return self._client
            make: Callable[..., Any]
            if self.provider == "anthropic":
                from evalpipe.providers.anthropic import call_anthropic, make_anthropic_client

                make, self._call = make_anthropic_client, call_anthropic
            else:
                from evalpipe.providers.openai import call_openai, make_openai_client

                make, self._call = make_openai_client, call_openai
            self._client = make(
                base_url=self.base_url,
                api_key_env=self._api_key_env,
                timeout_s=timeout,
                connections=connections,
            )
            if self._shared is not None:
                self._shared[key] = (self._client, self._call)
        return self._client

    def build(self, request: dict[str, Any]) -> dict[str, Any]:
        """The SDK keyword arguments for a canonical request (raises Untranslatable)."""
        return self.translate(request).kwargs

    def translate(self, request: dict[str, Any]) -> Translation:
        """The SDK keyword arguments for a canonical request and the logged parameters they
        leave out (raises Untranslatable)."""
        return translate(
            request,
            api=TARGET_APIS[self.provider],
            model=self.model,
            default_max_tokens=self.default_max_tokens,
        )

    async def send(self, kwargs: dict[str, Any]) -> CallOutcome:
        """One attempt; raises FatalProviderError when the provider refuses the arm itself."""
        client = self.client()
        assert self._call is not None
        return await self._call(client, kwargs)

    async def probe(self) -> None:
        """Check that anything answers at the endpoint's URL (any HTTP status will do).

        Without it, a `base_url` where nothing listens costs the SDK's retries on every request
        (about a minute) and ends as an INVALID run instead of a configuration error.

        Raises:
            FatalProviderError: the connection is refused, the host unknown, or the connect
                timed out.
        """
        url = str(self.client().base_url)
        connect = min(self.limit.timeout_s or 60.0, _PROBE_CONNECT_S)
        parts = httpx.URL(url)
        if not _proxied(parts.host):  # a TCP connect says it (no HTTP client or TLS to set up)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(parts.host, port), connect
                )
            except (OSError, TimeoutError) as exc:
                raise _nothing_answers(url, exc) from None
            writer.close()
            return
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(connect, read=connect)) as http:
                await http.get(url)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _nothing_answers(url, exc) from None
        except httpx.HTTPError:
            pass  # something answered, however oddly: the requests themselves decide

    async def aclose(self) -> None:
        """Close its own SDK client (a shared one stays open for the others)."""
        if self._client is not None and self._shared is None:
            await self._client.close()
        self._client = None


def _nothing_answers(url: str, exc: BaseException) -> FatalProviderError:
    return FatalProviderError(
        None,
        f"nothing answers at {url} ({str(exc) or type(exc).__name__})",
        "Check base_url, and that the server is running and reachable.",
    )


def _proxied(host: str) -> bool:
    """Whether a proxy is set in the environment (then the probe asks over HTTP, through it,
    as the SDK will); `host` on NO_PROXY is not proxied."""
    env = {k.lower(): v for k, v in os.environ.items()}
    if not any(env.get(k) for k in ("http_proxy", "https_proxy", "all_proxy")):
        return False
    bypass = [h.strip().lstrip(".") for h in env.get("no_proxy", "").split(",") if h.strip()]
    return not any(b == "*" or host == b or host.endswith("." + b) for b in bypass)
