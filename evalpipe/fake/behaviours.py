"""The fake provider's model behaviours, chosen by model name, and the answer each one gives.

An answer depends only on the behaviour and the *content* of the request (system text, message
texts, the JSON schema or JSON mode asked for, the tools offered), never on the wire format: the
same conversation sent through the OpenAI or the Anthropic API gets the same answer. Every choice
is drawn from a hash of that content, so the same request always gets the same answer.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, NamedTuple

import orjson

from evalpipe.fake.hashing import alnum, draw, stable_hash
from evalpipe.fake.judge import judge_reply
from evalpipe.fake.schema import instance
from evalpipe.fake.support import (
    FILLERS,
    THANKS,
    Details,
    details,
    find_topic,
    free_text,
    handoff_summary,
)

__all__ = [
    "BEHAVIOURS",
    "MODELS",
    "NIGHT_ENV",
    "Answer",
    "Behaviour",
    "Conversation",
    "Resolved",
    "ToolCall",
    "answer",
    "capacity",
    "fake_night",
    "fault",
    "resolve_model",
]

Finish = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class Behaviour:
    """How a fake model answers."""

    name: str
    description: str
    latency_factor: float = 1.0
    """Multiplies the server's mean latency."""


BEHAVIOURS: Final[Mapping[str, Behaviour]] = {
    b.name: b
    for b in (
        Behaviour("baseline", "the production model: plain support answers, valid JSON"),
        Behaviour(
            "good", "same quality as baseline; rewords ~25% of free-text answers (±10% length)"
        ),
        Behaviour(
            "regressed", "breaks JSON on ~8% of structured requests; answers ~60% longer", 1.3
        ),
        Behaviour(
            "judge", "answers judge prompts with a verdict; anything else like baseline", 1.5
        ),
        Behaviour(
            "judgedrift",
            "a judge after a silent snapshot change: prefers longer answers, stops checking JSON,"
            " scores short answers low; anything else like baseline",
            1.5,
        ),
        Behaviour("flaky", "first attempt of ~20% of requests gets 503 or 429; then like baseline"),
        Behaviour("refuser", "refuses ~30% of requests; otherwise like baseline", 0.8),
        Behaviour("collapse", "always the same short answer", 0.5),
        Behaviour("slow", "like baseline, 10x the latency", 10.0),
        Behaviour("drifted", "like baseline, but breaks JSON on ~3% of structured requests"),
        Behaviour(
            "ratelimited",
            "429 with retry-after-ms and x-ratelimit-reset-requests above N requests in flight"
            " (`fake-ratelimited-N`, default 32); then like baseline",
        ),
        Behaviour(
            "overloaded",
            "503 (OpenAI) or 529 (Anthropic) above N requests in flight (`fake-overloaded-N`,"
            " default 32); then like baseline",
        ),
        Behaviour(
            "sporadic",
            "each attempt: 10% 429 with retry-after, whatever the load (a rate limit shared with"
            " other traffic); otherwise like baseline",
        ),
        Behaviour("throttled", "always 429 with retry-after-ms (a quota that never comes back)"),
        Behaviour("down", "always 503 (OpenAI) or 529 (Anthropic)"),
        Behaviour("hang", "first attempt of ~20% of requests never answers; then like baseline"),
        Behaviour(
            "reset", "first attempt of ~20% of requests is cut off mid-answer; then like baseline"
        ),
        Behaviour(
            "faulty",
            "each attempt: 10% 429 with retry-after, 5% 500, 2% no answer, 1% a malformed 200"
            " body, 1% cut off; otherwise like baseline",
        ),
    )
}

MODELS: Final[Mapping[str, tuple[str, str]]] = {
    # model name: (behaviour, model name the response carries)
    "gpt-4o-mini-2024-07-18": ("baseline", "gpt-4o-mini-2024-07-18"),
    "gpt-4o-mini": ("baseline", "gpt-4o-mini-2024-07-18"),
    "claude-haiku-4-5": ("good", "claude-haiku-4-5"),
    "claude-haiku-4-5-20251001": ("good", "claude-haiku-4-5-20251001"),
    "gpt-4.1-mini-2025-04-14": ("regressed", "gpt-4.1-mini-2025-04-14"),
    "gpt-4.1-mini": ("regressed", "gpt-4.1-mini-2025-04-14"),
    "gpt-4.1-2025-04-14": ("judge", "gpt-4.1-2025-04-14"),
    "gpt-4.1": ("judge", "gpt-4.1-2025-04-14"),
    "claude-sonnet-4-5": ("judge", "claude-sonnet-4-5"),
    "claude-sonnet-4-5-20250929": ("judge", "claude-sonnet-4-5-20250929"),
}
"""Named models; besides these, `fake-<behaviour>[-anything]` selects a behaviour directly, and
`<model>@drift-YYYY-MM-DD` is `<model>` that silently changes on that night (`NIGHT_ENV`)."""

_FAKE_NAME: Final = re.compile(r"fake-([a-z]+)(?:-.*)?")
_DRIFT_NAME: Final = re.compile(r"(.+)@drift-(\d{4}-\d{2}-\d{2})")

NIGHT_ENV: Final = "EVALPIPE_FAKE_NIGHT"
"""The date (YYYY-MM-DD) the fake provider believes it is, read per request (default: today,
UTC). A `<model>@drift-D` model answers as `<model>` before night D and, from D on, as the
`drifted` behaviour (a judge model: the `judgedrift` behaviour) under a new snapshot name (`<snapshot>-rev2`, hence a new
`system_fingerprint`): a provider that changed a pinned model under its users."""

DRIFTED_SUFFIX: Final = "-rev2"
DRIFT_BREAK_RATE: Final = 0.03
_CAPACITY: Final = re.compile(r"fake-[a-z]+-(\d+)(?:-.*)?")
DEFAULT_CAPACITY: Final = 32
"""Requests in flight a `ratelimited` or `overloaded` model takes when its name gives no N."""

FAULTS: Final[tuple[tuple[str, float], ...]] = (
    ("429", 0.10),
    ("500", 0.05),
    ("hang", 0.02),
    ("malformed", 0.01),
    ("reset", 0.01),
)
"""The `faulty` model's faults and the share of attempts each gets."""
SPORADIC_429_RATE: Final = 0.10
"""Share of a `sporadic` model's attempts answered 429, drawn per attempt."""


def capacity(model: str) -> int:
    """Requests in flight a `fake-<behaviour>-N` model takes (N, else DEFAULT_CAPACITY)."""
    m = _CAPACITY.fullmatch(model)
    return int(m.group(1)) if m else DEFAULT_CAPACITY


def fault(u: float) -> str | None:
    """The `faulty` model's fault for an attempt drawn at `u` in [0, 1) (None: it answers)."""
    for name, share in FAULTS:
        if u < share:
            return name
        u -= share
    return None


GOOD_REWORD_RATE: Final = 0.25
REGRESSED_BREAK_RATE: Final = 0.08
REFUSAL_RATE: Final = 0.30
FLAKY_RATE: Final = 0.20
REFUSAL: Final = "I'm sorry, but I can't help with that."
COLLAPSED: Final = "Thank you for your message. We will get back to you."


class Resolved(NamedTuple):
    """A model name's behaviour and the model name its responses carry."""

    behaviour: Behaviour
    snapshot: str


def resolve_model(model: str) -> Resolved | None:
    """The behaviour behind a model name, or None for an unknown model (the server's 404)."""
    drift = _DRIFT_NAME.fullmatch(model)
    if drift is not None:
        before = resolve_model(drift.group(1))
        try:
            switch = date.fromisoformat(drift.group(2))
        except ValueError:
            return None
        if before is None or fake_night() < switch:
            return before
        changed = "judgedrift" if before.behaviour.name == "judge" else "drifted"
        return Resolved(BEHAVIOURS[changed], before.snapshot + DRIFTED_SUFFIX)
    if model in MODELS:
        name, snapshot = MODELS[model]
        return Resolved(BEHAVIOURS[name], snapshot)
    m = _FAKE_NAME.fullmatch(model)
    if m and m.group(1) in BEHAVIOURS:
        return Resolved(BEHAVIOURS[m.group(1)], model)
    return None


def fake_night() -> date:
    """The night the fake provider answers for (`NIGHT_ENV`, else today in UTC)."""
    text = os.environ.get(NIGHT_ENV)
    return date.fromisoformat(text) if text else datetime.now(UTC).date()


class ToolCall(NamedTuple):
    """A call of one offered tool, arguments as a JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What a behaviour answers, before any wire format."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish: Finish = "stop"
    refusal: bool = False
    """The text is a refusal (OpenAI puts it in `message.refusal` for structured output)."""
    stop_sequence: str | None = None
    """The stop sequence that ended the text, when one did."""


@dataclass(frozen=True)
class Conversation:
    """The provider-neutral content of a request: all an answer may depend on."""

    system: str
    messages: tuple[tuple[str, str], ...]
    """(role, text) turns; roles `user` / `assistant`; same-role runs merged."""
    schema: dict[str, Any] | None = None
    json_mode: bool = False
    tools: tuple[dict[str, Any], ...] = ()
    """Offered tools as `{"name", "description", "parameters"}`."""
    tool_choice: str | None = None
    """`auto`, `none`, `required`, or the name of a forced tool."""
    key: str = field(init=False)
    """Hex digest of the content; seeds every choice."""

    def __post_init__(self) -> None:
        content = {
            "system": self.system,
            "messages": self.messages,
            "schema": self.schema,
            "json": self.json_mode,
            "tools": [[t.get("name"), t.get("parameters")] for t in self.tools],
            "choice": self.tool_choice,
        }
        digest = stable_hash(orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode())
        object.__setattr__(self, "key", f"{digest:016x}")

    @classmethod
    def build(
        cls,
        system: str,
        messages: Sequence[tuple[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        json_mode: bool = False,
        tools: Sequence[dict[str, Any]] = (),
        tool_choice: str | None = None,
    ) -> Conversation:
        """Normalise raw turns: whitespace collapsed, empty turns dropped, same-role runs merged."""
        merged: list[tuple[str, str]] = []
        for role, text in messages:
            clean = " ".join(text.split())
            if not clean:
                continue
            role = "assistant" if role == "assistant" else "user"
            if merged and merged[-1][0] == role:
                merged[-1] = (role, merged[-1][1] + " " + clean)
            else:
                merged.append((role, clean))
        return cls(
            " ".join(system.split()),
            tuple(merged),
            schema,
            json_mode and schema is None,
            tuple(tools),
            tool_choice,
        )

    @property
    def last_user(self) -> str:
        """The last user turn (empty when there is none)."""
        return next((t for r, t in reversed(self.messages) if r == "user"), "")


def answer(
    behaviour: Behaviour | str,
    conversation: Conversation,
    *,
    max_tokens: int | None = None,
    stop: Sequence[str] = (),
) -> Answer:
    """The behaviour's answer to a conversation, the same whichever API carried it.

    Args:
        behaviour: a `Behaviour` or its name.
        conversation: the normalised request content (`Conversation.build`).
        max_tokens: truncates the text at about 4 characters a token (finish `length`).
        stop: stop sequences; the text ends before the first one found.
    """
    b = BEHAVIOURS[behaviour] if isinstance(behaviour, str) else behaviour
    out = _answer(b.name, conversation)
    if out.tool_calls:
        return out
    text = out.text
    for seq in stop:
        cut = text.find(seq) if seq else -1
        if cut >= 0:
            return Answer(text[:cut], finish="stop", refusal=out.refusal, stop_sequence=seq)
    if max_tokens is not None and len(text) > max_tokens * 4:
        return Answer(text[: max(0, max_tokens) * 4], finish="length", refusal=out.refusal)
    return out


def _answer(name: str, conv: Conversation) -> Answer:
    key = conv.key
    if name in ("judge", "judgedrift"):
        verdict = judge_reply(conv.last_user, drifted=name == "judgedrift")
        if verdict is not None:
            return Answer(verdict)
        name = "baseline"
    if name == "collapse":
        return Answer(COLLAPSED)
    if name == "refuser" and draw(key, "refuse") < REFUSAL_RATE:
        return Answer(REFUSAL, refusal=True)
    verbose = name == "regressed"
    last = conv.last_user
    earlier = [t for r, t in reversed(conv.messages) if r == "user"][1:]
    d = details(last, earlier=earlier)
    seed = stable_hash(key, "seed")
    if conv.schema is not None or conv.json_mode:
        if conv.schema is not None:
            value = instance(conv.schema, d, last, seed, verbose=verbose)
        else:
            value = {"category": d.topic.category, "reply": d.topic.core.plain}
        text = orjson.dumps(value).decode()
        rate = REGRESSED_BREAK_RATE if verbose else DRIFT_BREAK_RATE if name == "drifted" else 0
        if rate and draw(key, "break") < rate:
            text = _break_json(text, stable_hash(key, "how"))
        return Answer(text)
    call = _tool_call(conv, d, seed)
    if call is not None:
        return Answer("", (call,), "tool_calls")
    reworded = name == "good" and draw(key, "reword") < GOOD_REWORD_RATE
    render: Callable[[int, bool], str]
    if "summar" in conv.system.lower() or "handoff" in conv.system.lower():
        said = _customer_lines(last)
        opening, everything = details(said[0]), details(" ".join(said))
        d = everything._replace(topic=opening.topic, order=opening.order or everything.order)
        resolved = len(said) > 1 and find_topic(said[-1]) is THANKS
        replies = last.count("Assistant:")

        def render(n: int, reworded: bool) -> str:
            return handoff_summary(
                d,
                said[-1],
                len(said),
                replies,
                seed,
                resolved=resolved,
                reworded=reworded,
                fillers=n,
            )

    else:
        follow_up = sum(1 for r, _ in conv.messages if r == "user") > 1

        def render(n: int, reworded: bool) -> str:
            return free_text(d, seed, reworded=reworded, follow_up=follow_up, fillers=n)

    if not verbose:
        return Answer(render(0, reworded))
    # ~60% longer on average: at least a target factor in [1.36, 1.52], in whole filler sentences
    # (which overshoot by ~0.15); never under 1.35, so a concision-minded judge always notices.
    base = render(0, False)
    target = (1.36 + 0.16 * draw(key, "verbosity")) * len(base)
    text, n = base, 0
    while len(text) < target and n < len(FILLERS):
        n += 1
        text = render(n, False)
    return Answer(text)


def _customer_lines(transcript: str) -> list[str]:
    """The customer's messages in a `Customer: … Assistant: …` transcript (all of it if none)."""
    if "Customer:" not in transcript:
        return [transcript]
    return [part.split(" Assistant:", 1)[0].strip() for part in transcript.split("Customer:")[1:]]


def _break_json(text: str, how: int) -> str:
    style = how % 3
    if style == 0:
        return "Sure! Here is the JSON you asked for:\n\n" + text
    if style == 1:
        return text[: max(8, int(len(text) * (0.55 + 0.3 * ((how >> 8) % 100) / 100)))]
    return text[:-1] + ",}" if text.endswith("}") else text + ","


def _tool_call(conv: Conversation, d: Details, seed: int) -> ToolCall | None:
    tools = conv.tools
    if not tools or conv.tool_choice == "none":
        return None
    if conv.messages and conv.messages[-1][1].startswith("[tool result]"):
        return None  # answer from the tool's result
    low = conv.last_user.lower()
    chosen: dict[str, Any] | None = None
    if conv.tool_choice not in (None, "auto", "required"):
        chosen = next((t for t in tools if t.get("name") == conv.tool_choice), None)
    if chosen is None:
        for t in tools:
            words = re.split(r"[_\W]+", f"{t.get('name', '')}".lower())
            if any(len(w) > 3 and w in low for w in words):
                chosen = t
                break
    if chosen is None and conv.tool_choice == "required":
        chosen = tools[seed % len(tools)]
    if chosen is None:
        return None
    params = chosen.get("parameters") or {"type": "object", "properties": {}}
    args = instance(params, d, conv.last_user, seed, verbose=False)
    call_id = "call_" + alnum(conv.key, chosen.get("name"), length=24)
    return ToolCall(call_id, str(chosen.get("name")), args if isinstance(args, dict) else {})
