"""USD per 1M tokens for common models; the spec's `prices:` overrides this table.

Figures are list prices as published by the providers; a model not listed costs 0 and is
reported as "price unknown" rather than guessed.
"""

from __future__ import annotations

from typing import Final, NamedTuple

__all__ = ["BATCH_DISCOUNT", "PRICES", "Price", "price_for"]


class Price(NamedTuple):
    input: float
    output: float
    cached_input: float


PRICES: Final[dict[str, Price]] = {
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30),
    "claude-opus-4-5": Price(5.00, 25.00, 0.50),
}


BATCH_DISCOUNT: Final = 0.5
"""Share of the list price a request sent through a provider's batch API costs (OpenAI Batch and
Anthropic Message Batches both bill half)."""


def price_for(model: str, overrides: dict[str, Price] | None = None) -> Price | None:
    """The price of a model: an override, the exact name, else its longest listed prefix."""
    if overrides and model in overrides:
        return overrides[model]
    if model in PRICES:
        return PRICES[model]
    best = max((k for k in PRICES if model.startswith(k)), key=len, default=None)
    return PRICES[best] if best else None
