"""The fake's misbehaving models, through the real SDKs (one attempt each: max_retries=0)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from evalpipe.fake import serving
from evalpipe.fake.behaviours import FAULTS, fault
from evalpipe.providers.calls import server_delay_s


@pytest.fixture(scope="module")
def root() -> Iterator[str]:
    with serving(latency_ms=100.0, jitter=0.0) as url:
        yield url


def _ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Where is my order #{i}?"}]


async def _burst(root: str, model: str, n: int, *, claude: bool = False) -> list[object]:
    """n requests at once; each result is the answer or the exception."""
    if claude:
        c = anthropic.AsyncAnthropic(base_url=root, api_key="k", max_retries=0)
        calls = [
            c.messages.with_raw_response.create(model=model, max_tokens=50, messages=_ask(i))  # type: ignore[arg-type]
            for i in range(n)
        ]
    else:
        o = openai.AsyncOpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0)
        calls = [
            o.chat.completions.with_raw_response.create(model=model, messages=_ask(i))  # type: ignore[arg-type]
            for i in range(n)
        ]
    return list(await asyncio.gather(*calls, return_exceptions=True))


def test_ratelimited_answers_429_with_retry_after_above_its_capacity(root: str) -> None:
    results = asyncio.run(_burst(root, "fake-ratelimited-4", 12))
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    answered = [r for r in results if not isinstance(r, Exception)]
    assert len(answered) == 4 and len(limited) == 8
    headers = limited[0].response.headers
    assert headers["retry-after-ms"] == "250"
    assert headers["x-ratelimit-reset-requests"] == "250ms"
    assert server_delay_s(headers) == 0.25
    traffic = httpx.get(f"{root}/_fake/traffic").json()["fake-ratelimited-4"]
    assert traffic["statuses"] == {"200": 4, "429": 8}


def test_overloaded_answers_529_on_anthropic_and_503_on_openai(root: str) -> None:
    claude = asyncio.run(_burst(root, "fake-overloaded-2", 5, claude=True))
    assert (
        sum(isinstance(r, anthropic.APIStatusError) and r.status_code == 529 for r in claude) == 3
    )
    oai = asyncio.run(_burst(root, "fake-overloaded-3", 5))
    assert sum(isinstance(r, openai.InternalServerError) and r.status_code == 503 for r in oai) == 2


def test_down_and_throttled_never_answer(root: str) -> None:
    down = asyncio.run(_burst(root, "fake-down", 3))
    assert all(isinstance(r, openai.InternalServerError) for r in down)
    throttled = asyncio.run(_burst(root, "fake-throttled", 3, claude=True))
    assert all(isinstance(r, anthropic.RateLimitError) for r in throttled)


def test_reset_cuts_the_first_attempt_off_and_answers_the_second(root: str) -> None:
    first = asyncio.run(_burst(root, "fake-reset", 40))
    cut = [i for i, r in enumerate(first) if isinstance(r, openai.APIConnectionError)]
    assert 0 < len(cut) < 20
    again = asyncio.run(_burst(root, "fake-reset", 40))
    assert not any(isinstance(r, Exception) for r in again)


def test_hang_gives_no_answer_before_the_client_gives_up(root: str) -> None:
    client = openai.OpenAI(base_url=f"{root}/v1", api_key="k", max_retries=0, timeout=0.5)
    outcomes = []
    for i in range(15):
        try:
            client.chat.completions.create(model="fake-hang", messages=_ask(i))  # type: ignore[arg-type]
            outcomes.append("ok")
        except openai.APITimeoutError:
            outcomes.append("timeout")
            client.chat.completions.create(model="fake-hang", messages=_ask(i))  # type: ignore[arg-type]
    assert 0 < outcomes.count("timeout") < 10


def test_faulty_draws_each_fault_at_its_share() -> None:
    n = 100_000
    counts: dict[str | None, int] = {}
    for k in range(n):
        kind = fault(k / n)
        counts[kind] = counts.get(kind, 0) + 1
    for name, share in FAULTS:
        assert counts[name] == pytest.approx(share * n, abs=2)
