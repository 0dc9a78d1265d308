"""Build a JSON value that conforms to a JSON schema, filled from what a ticket says.

Covers what structured outputs use: objects (required keys, `additionalProperties: false`),
arrays (`minItems`/`maxItems`), enums and consts, strings (length limits, common formats),
numbers and integers (bounds), booleans, `anyOf`/`oneOf`/`allOf`, nullable type lists and local
`$ref`s (`#/$defs/...`).
"""

from __future__ import annotations

from typing import Any

from evalpipe.fake.hashing import mix
from evalpipe.fake.support import Details, ticket_summary

__all__ = ["instance"]

_MAX_DEPTH = 6


def instance(schema: dict[str, Any], d: Details, text: str, seed: int, *, verbose: bool) -> Any:
    """A value conforming to `schema`, chosen from the ticket's details and a seed.

    Args:
        schema: the JSON schema (its `$defs`/`definitions` resolve `$ref`s).
        d: details read from the conversation (topic, priority, sentiment …).
        text: the customer's message, for short phrases.
        seed: picks among the options that the details leave open.
        verbose: write longer string values (the verbose behaviour).
    """
    return _value(schema, schema, "", d, text, seed, verbose, 0)


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    for _ in range(8):
        if not isinstance(ref, str) or not ref.startswith("#/"):
            break
        node: Any = root
        for part in ref[2:].split("/"):
            node = (
                node.get(part.replace("~1", "/").replace("~0", "~"), {})
                if isinstance(node, dict)
                else {}
            )
        schema = (
            {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
            if isinstance(node, dict)
            else {}
        )
        ref = node.get("$ref") if isinstance(node, dict) else None
    return schema


def _enum_choice(options: list[Any], key: str, d: Details, text: str, seed: int) -> Any:
    by_key = {
        "category": d.topic.category,
        "priority": d.priority,
        "urgency": d.priority,
        "severity": d.priority,
        "sentiment": d.sentiment,
        "tone": d.sentiment,
        "topic": d.topic.name,
        "intent": d.topic.name,
    }
    wanted = by_key.get(key.lower())
    if wanted in options:
        return wanted
    if key.lower() in ("priority", "urgency", "severity"):
        for fallback in ("normal", "medium", "low"):
            if fallback in options:
                return fallback
    low = text.lower()
    for option in options:
        if isinstance(option, str) and option and option.lower() in low:
            return option
    if "other" in options:
        return "other"
    return options[seed % len(options)]


def _string(
    schema: dict[str, Any], key: str, d: Details, text: str, seed: int, verbose: bool
) -> str:
    fmt, name = schema.get("format"), key.lower()
    if fmt == "date-time":
        out = f"2026-11-0{1 + seed % 8}T{9 + seed % 9:02d}:00:00Z"
    elif fmt == "date":
        out = f"2026-11-0{1 + seed % 8}"
    elif fmt == "email" or "email" in name:
        out = "customer@example.com"
    elif fmt in ("uri", "url") or name.endswith("url"):
        out = "https://example.com/help"
    elif fmt == "uuid":
        out = f"{seed & 0xFFFFFFFF:08x}-0000-4000-8000-{(seed >> 32) & 0xFFFFFFFFFFFF:012x}"
    elif "order" in name:
        out = d.order or "unknown"
    elif name in ("summary", "description", "title", "issue", "subject"):
        out = ticket_summary(d, verbose=verbose)
    elif name in ("reply", "answer", "response", "message", "draft", "suggested_reply"):
        out = d.topic.core.plain
    elif name in ("reason", "reasoning", "rationale", "explanation"):
        out = f"The message is about {d.topic.handoff}."
    elif name in ("next_step", "action", "next_action", "recommendation"):
        out = d.topic.agent_step.capitalize() + "."
    elif name in ("language", "lang", "locale"):
        out = "en"
    elif name in ("category", "topic", "intent"):
        out = d.topic.category
    else:
        words = text.split()
        out = " ".join(words[: 10 if verbose else 5]) or d.topic.summary
    low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
    if len(out) < low:
        out = (out + " ") * (low // max(1, len(out)) + 1)
    return out[:high] if isinstance(high, int) else out


def _number(schema: dict[str, Any], key: str, seed: int, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if "confidence" in key.lower() or "probability" in key.lower():
        value: float = 0.7 + (seed % 30) / 100
    elif low is not None and high is not None:
        value = low + (seed % 1000) / 1000 * (high - low)
    else:
        value = (low if low is not None else 0) + 1 + seed % 5
    if high is not None:
        value = min(value, high)
    if integer:
        value = int(value)
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            value += 1
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            value -= 1
        return int(value)
    return round(value, 2)


def _value(
    root: dict[str, Any],
    schema: Any,
    key: str,
    d: Details,
    text: str,
    seed: int,
    verbose: bool,
    depth: int,
) -> Any:
    if not isinstance(schema, dict):
        return None
    schema = _resolve(root, schema)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _enum_choice(schema["enum"], key, d, text, seed)
    for combo in ("anyOf", "oneOf"):
        options = schema.get(combo)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return _value(root, (usable or options)[0], key, d, text, seed, verbose, depth)
    if isinstance(schema.get("allOf"), list):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                part = _resolve(root, part)
                merged = {
                    **merged,
                    **part,
                    "properties": {**merged.get("properties", {}), **part.get("properties", {})},
                    "required": [*merged.get("required", []), *part.get("required", [])],
                }
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        return _value(root, {**rest, **merged}, key, d, text, seed, verbose, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "null":
        return None
    if kind == "object":
        if depth >= _MAX_DEPTH:
            return {}
        props = schema.get("properties") or {}
        out = {
            k: _value(root, sub, k, d, text, mix(seed, k), verbose, depth + 1)
            for k, sub in props.items()
        }
        for k in schema.get("required") or []:
            out.setdefault(
                k, ""
            )  # required but undeclared: only possible if extra keys are allowed
        return out
    if kind == "array":
        low = int(schema.get("minItems", 1))
        high = int(schema.get("maxItems", max(low, 3)))
        count = max(low, min(high, 1 + seed % 2))
        items = schema.get("items") or {"type": "string"}
        if depth >= _MAX_DEPTH:
            return []
        values = [
            _value(root, items, key, d, text, mix(seed, i), verbose, depth + 1)
            for i in range(count)
        ]
        if schema.get("uniqueItems"):
            unique: list[Any] = []
            for v in values:
                if v not in unique:
                    unique.append(v)
            values = unique if len(unique) >= low else values
        return values
    if kind == "boolean":
        if key.lower() in ("needs_human", "escalate", "needs_escalation", "human_required"):
            return d.needs_human
        return bool(seed % 2)
    if kind in ("integer", "number"):
        return _number(schema, key, seed, kind == "integer")
    return _string(schema, key, d, text, seed, verbose)
