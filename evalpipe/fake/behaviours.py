"""Deterministic model behaviours of the fake provider, chosen by model name.

An answer depends only on the behaviour and the *content* of the request (system text, message
texts, the JSON schema asked for, the tools offered), never on the wire format: the same
conversation sent through the OpenAI or the Anthropic API gets the same answer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

__all__ = ["BEHAVIOURS", "Answer", "Behaviour", "answer", "resolve_model"]


@dataclass(frozen=True)
class Behaviour:
    name: str
    latency_factor: float = 1.0


BEHAVIOURS: Final[dict[str, Behaviour]] = {
    b.name: b
    for b in (
        Behaviour("baseline"),
        Behaviour("good", 0.9),
        Behaviour("regressed", 1.2),
        Behaviour("judge"),
        Behaviour("flaky"),
        Behaviour("refuser"),
        Behaviour("collapse"),
        Behaviour("slow", 10.0),
    )
}

# model name → (behaviour, snapshot it answers as)
_MODELS: Final[dict[str, tuple[str, str]]] = {
    "gpt-4o-mini-2024-07-18": ("baseline", "gpt-4o-mini-2024-07-18"),
    "gpt-4o-mini": ("baseline", "gpt-4o-mini-2024-07-18"),
    "claude-haiku-4-5": ("good", "claude-haiku-4-5-20251001"),
    "claude-haiku-4-5-20251001": ("good", "claude-haiku-4-5-20251001"),
    "gpt-4.1-mini-2025-04-14": ("regressed", "gpt-4.1-mini-2025-04-14"),
    "gpt-4.1-mini": ("regressed", "gpt-4.1-mini-2025-04-14"),
    "gpt-4.1-2025-04-14": ("judge", "gpt-4.1-2025-04-14"),
    "gpt-4.1": ("judge", "gpt-4.1-2025-04-14"),
    "claude-sonnet-4-5": ("judge", "claude-sonnet-4-5-20250929"),
}


def resolve_model(model: str) -> tuple[Behaviour, str] | None:
    """(behaviour, snapshot) of a model name, or None for an unknown model (→ 404)."""
    if model in _MODELS:
        name, snapshot = _MODELS[model]
        return BEHAVIOURS[name], snapshot
    m = re.fullmatch(r"fake-([a-z]+)(?:-.*)?", model)
    if m and m.group(1) in BEHAVIOURS:
        return BEHAVIOURS[m.group(1)], model
    return None


@dataclass
class Answer:
    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish: str = "stop"  # stop | length | tool_calls


def h(*parts: object) -> int:
    """A stable 64-bit hash of the parts."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


_TOPICS: Final = [
    (
        "refund",
        "billing",
        "I've checked your order and started a refund to your original payment method. "
        "Refunds usually arrive within 5–7 business days, and you'll get a confirmation email as soon as it is issued.",
    ),
    (
        "invoice",
        "billing",
        "You can download every invoice from Settings → Billing → Invoices. "
        "If a company name or VAT number is missing, update it there and the next invoice will include it.",
    ),
    (
        "charge",
        "billing",
        "I can see the charge you mean. It is the renewal of your annual plan; "
        "if you did not intend to renew, I can cancel it and refund the full amount today.",
    ),
    (
        "password",
        "account",
        "You can reset your password from the sign-in page with “Forgot password”. "
        "The reset link is valid for 30 minutes; if it doesn't arrive, check your spam folder.",
    ),
    (
        "login",
        "account",
        "Sign-in problems are usually caused by an expired session. "
        "Please clear your browser cookies for our site and sign in again; two-factor codes refresh every 30 seconds.",
    ),
    (
        "account",
        "account",
        "I've looked at your account settings. You can change the email address, "
        "plan and team members under Settings → Account, and changes take effect immediately.",
    ),
    (
        "shipping",
        "shipping",
        "Your parcel left our warehouse and is with the carrier. "
        "Tracking updates can lag by up to 24 hours; the estimated delivery is within 3 business days.",
    ),
    (
        "delivery",
        "shipping",
        "I'm sorry the delivery is late. I've opened a trace with the carrier, "
        "and if the parcel hasn't moved in 48 hours we'll send a replacement at no cost.",
    ),
    (
        "order",
        "shipping",
        "I found your order. It is packed and will ship today; "
        "you'll receive a tracking link by email as soon as the carrier scans it.",
    ),
    (
        "cancel",
        "billing",
        "I can cancel that for you. Your subscription stays active until the end of the "
        "current billing period, and you won't be charged again.",
    ),
    (
        "error",
        "technical",
        "Thanks for the details. This error appears when the app cache is out of date. "
        "Please update to the latest version and restart; if it persists, send us the error code shown.",
    ),
    (
        "bug",
        "technical",
        "Thanks for reporting this. I've reproduced the issue and passed it to our engineers "
        "with your steps; I'll update you here as soon as a fix is released.",
    ),
    (
        "crash",
        "technical",
        "I'm sorry the app keeps crashing. Please update to the latest version; "
        "if it still crashes, a log from Settings → Help → Send diagnostics will let us find the cause quickly.",
    ),
    (
        "api",
        "technical",
        "API requests return 429 when you exceed your plan's rate limit. "
        "Spread requests over time or retry with exponential backoff; higher limits come with the Business plan.",
    ),
]
_FALLBACK: Final = (
    "other",
    "Thanks for reaching out. I've noted your request and a member of our team "
    "will follow up by email within one business day.",
)
_OPENERS: Final = [
    "Thanks for getting in touch.",
    "Thanks for your message.",
    "Happy to help with this.",
    "Thanks for the details.",
]
_CLOSERS: Final = [
    "Is there anything else I can help with?",
    "Let me know if you have any other questions.",
    "I'm here if you need anything else.",
    "Have a great day!",
]
_GOOD_OPENERS: Final = [
    "Thank you for contacting us.",
    "Glad to help.",
    "Thanks for writing in.",
    "I can help with that.",
]
_FILLER: Final = [
    "I completely understand how frustrating this can be, and I want to make sure we get this fully resolved for you.",
    "Please don't hesitate to reach out again at any time, as our support team is available around the clock.",
    "As a reminder, you can also find many helpful articles in our knowledge base, which covers a wide range of topics.",
    "We truly value your business and appreciate your patience while we look into this matter for you.",
    "For your security, please never share your password or full card number with anyone, including our staff.",
]
_PRIORITY_WORDS: Final = {
    "urgent": "urgent",
    "asap": "urgent",
    "immediately": "high",
    "again": "high",
    "still": "high",
    "whenever": "low",
}


def _topic(text: str) -> tuple[str, str]:
    low = text.lower()
    for keyword, category, sentence in _TOPICS:
        if keyword in low:
            return category, sentence
    return _FALLBACK


def _summary(text: str, words: int) -> str:
    clean = re.sub(r"\s+", " ", text).strip()
    parts = clean.split(" ")
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def _value(schema: dict[str, Any], key: str, text: str, seed: int, verbose: bool) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        options = schema["enum"]
        if key == "category":
            cat = _topic(text)[0]
            if cat in options:
                return cat
        if key == "priority":
            for word, level in _PRIORITY_WORDS.items():
                if word in text.lower() and level in options:
                    return level
            return "normal" if "normal" in options else options[seed % len(options)]
        if key == "sentiment":
            neg = any(
                w in text.lower()
                for w in ("angry", "terrible", "still", "again", "worst", "late", "not")
            )
            pick = "negative" if neg else "neutral"
            return pick if pick in options else options[seed % len(options)]
        return options[h(seed, key) % len(options)]
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        return _object(schema, text, seed, verbose)
    if kind == "array":
        item = schema.get("items") or {"type": "string"}
        return [_value(item, key, text, seed + i, verbose) for i in range(1 + seed % 2)]
    if kind == "boolean":
        return any(
            w in text.lower() for w in ("lawyer", "manager", "human", "chargeback", "urgent")
        )
    if kind == "integer":
        return int(seed % 5) + 1
    if kind == "number":
        return round((seed % 1000) / 10, 1)
    words = 24 if verbose else 12
    if key == "summary":
        prefix = "The customer is writing to let us know that " if verbose else "Customer: "
        return prefix + _summary(text, words)
    return _summary(text, 4)


def _object(schema: dict[str, Any], text: str, seed: int, verbose: bool) -> dict[str, Any]:
    props = schema.get("properties") or {}
    return {k: _value(v, k, text, h(seed, k), verbose) for k, v in props.items()}


def _last_user(messages: list[tuple[str, str]]) -> str:
    for role, text in reversed(messages):
        if role == "user":
            return text
    return messages[-1][1] if messages else ""


def answer(
    behaviour: Behaviour,
    system: str,
    messages: list[tuple[str, str]],
    *,
    schema: dict[str, Any] | None,
    json_mode: bool,
    tools: list[dict[str, Any]],
    max_tokens: int | None,
) -> Answer:
    """The behaviour's answer to a conversation (provider-neutral)."""
    from evalpipe.fake.judge import judge_answer

    last = _last_user(messages)
    key = h(
        system,
        *(f"{r}:{t}" for r, t in messages),
        orjson.dumps(schema or {}, option=orjson.OPT_SORT_KEYS),
    )
    name = behaviour.name
    if name == "judge":
        verdict = judge_answer(last)
        if verdict is not None:
            return Answer(verdict)
        name = "baseline"
    if name == "collapse":
        return Answer("Thank you for your message.")
    if name == "refuser" and key % 100 < 30:
        return Answer("I'm sorry, but I can't help with that.")
    verbose = name == "regressed"
    if schema is not None or json_mode:
        obj = _object(schema, last, key, verbose) if schema else {"answer": _topic(last)[1]}
        text = orjson.dumps(obj).decode()
        if name == "regressed" and key % 1000 < 80:  # ~8% broken JSON
            style = (key >> 12) % 3
            if style == 0:
                text = "Sure! Here is the JSON you asked for:\n" + text
            elif style == 1:
                text = text[: max(10, len(text) * 2 // 3)]
            else:
                text = "```json\n" + text + "\n```"
    elif tools and ("look up" in last.lower() or "check" in last.lower() or key % 10 < 3):
        tool = tools[key % len(tools)]
        args = _object(tool.get("parameters") or {}, last, key, False)
        return Answer(
            "",
            [{"id": f"call_{key % 10**12:012d}", "name": tool["name"], "arguments": args}],
            "tool_calls",
        )
    else:
        _, core = _topic(last)
        if "summar" in system.lower():
            core = "Summary for the agent: " + _summary(
                " ".join(t for r, t in messages if r == "user"), 40
            )
        opener, closer = _OPENERS[key % 4], _CLOSERS[(key >> 8) % 4]
        if name == "good" and key % 100 < 25:
            opener, closer = _GOOD_OPENERS[key % 4], _CLOSERS[(key >> 16) % 4]
        text = f"{opener} {core} {closer}"
        if verbose:
            count = 1 if (key >> 20) % 10 < 6 else 2  # ~60% longer on average
            extra = [_FILLER[((key >> 24) + i) % len(_FILLER)] for i in range(count)]
            text = f"{opener} {core} {' '.join(extra)} {closer}"
    if max_tokens is not None and len(text) > max_tokens * 4:
        return Answer(text[: max_tokens * 4], finish="length")
    return Answer(text)
