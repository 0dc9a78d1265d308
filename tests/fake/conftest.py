"""One fake provider for the fake's own tests (real HTTP on a free loopback port)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from evalpipe.fake import serving

TRIAGE_SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "eval_sets" / "demo" / "triage.schema.json").read_text()
)
SYSTEM = "You are the support assistant of an online shop. Be friendly and concise."

_ASKS = (
    "I want a refund for order #{n}, it arrived broken.",
    "Why was I charged twice this month? Card ending {n}.",
    "Please send me the invoice for order #{n}.",
    "I can't reset my password, the link never arrives.",
    "I'm locked out after the 2FA code failed {n} times.",
    "Where is my order #{n}? Tracking hasn't moved.",
    "My delivery is late again, order #{n}.",
    "Please cancel my subscription, customer {n}.",
    "The app crashes when I open report {n}.",
    "Export fails with error E{n}.",
    "Our API calls get 429 errors at {n} requests a minute.",
    "How do I add a team member? We have {n} seats.",
    "Do you ship to Canada? Asking for store {n}.",
)
_MOODS = ("", " This is urgent!", " Thanks in advance.", " I'm really frustrated.", " No rush.")


def tickets(n: int, seed: int = 1) -> list[str]:
    """`n` distinct support tickets."""
    rng = random.Random(seed)
    return [
        rng.choice(_ASKS).format(n=rng.randrange(1000, 99999)) + rng.choice(_MOODS) + f" (#{i})"
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def fake_root() -> Iterator[str]:
    """Root URL of a fake provider serving in this process (1 ms mean latency)."""
    with serving(latency_ms=1.0) as root:
        yield root


@pytest.fixture(scope="session")
def oai(fake_root: str) -> Iterator[openai.OpenAI]:
    """An OpenAI SDK client on the fake."""
    client = openai.OpenAI(base_url=f"{fake_root}/v1", api_key="test-key", max_retries=2)
    yield client
    client.close()


@pytest.fixture(scope="session")
def claude(fake_root: str) -> Iterator[anthropic.Anthropic]:
    """An Anthropic SDK client on the fake."""
    client = anthropic.Anthropic(base_url=fake_root, api_key="test-key", max_retries=2)
    yield client
    client.close()
