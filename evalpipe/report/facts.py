"""Run facts about replay fidelity, from the manifest: what was not sent, and why requests were skipped.

One wording for `evalpipe run` and the report, e.g. "12 records: `http_options`, `maxRetries` not
sent — framework setting" and "not replayable: previous_response_id 2, no content captured 1".
A fact that holds on some arms only names them ("on claude").
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final, TypeVar

from evalpipe.gate.numbers import count

__all__ = ["not_sent", "skipped"]

K = TypeVar("K", bound=Hashable)

_WORDS: Final = {"no_content_captured": "no content captured", "no reason logged": "no reason"}
"""Replay issues (FORMATS.md `replay_issue`) as a sentence says them."""
_KINDS: Final = ("not replayable", "untranslatable")


def _arms(manifest: Mapping[str, Any]) -> list[str]:
    return [a for a in manifest.get("coverage") or {} if a != "logged"]


def _on_arms(per_arm: Mapping[str, Iterable[K]], arms: list[str]) -> list[tuple[K, str]]:
    """Each fact once, first seen first, with ` on a, b` when it does not hold on every arm."""
    where: dict[K, list[str]] = {}
    for arm, facts in per_arm.items():
        for fact in facts:
            where.setdefault(fact, []).append(arm)
    return [(f, "" if set(a) >= set(arms) else f" on {', '.join(a)}") for f, a in where.items()]


def not_sent(manifest: Mapping[str, Any]) -> list[str]:
    """One phrase per reason a logged parameter was not sent: records, parameters, reason."""
    groups = {
        arm: [(g["reason"], tuple(g["params"]), int(g["records"])) for g in per_arm]
        for arm, per_arm in (manifest.get("params_not_replayed_reasons") or {}).items()
    }
    return [
        f"{count(records, 'record')}{on}: {', '.join(f'`{p}`' for p in params)} not sent — {reason}"
        for (reason, params, records), on in _on_arms(groups, _arms(manifest))
    ]


def _said(detail: str, n: int) -> str:
    detail = _WORDS.get(detail, detail)
    return f"{detail} ({n:,})" if detail[-1:].isdigit() else f"{detail} {n:,}"


def skipped(manifest: Mapping[str, Any]) -> list[str]:
    """One phrase per kind of skip: `not replayable: previous_response_id 2, no content captured 1`,
    `untranslatable on claude: n > 1 (3)`, `budget_usd reached 40`."""
    facts = {
        arm: [(str(reason), int(n)) for reason, n in per_arm.items()]
        for arm, per_arm in (manifest.get("skipped") or {}).items()
    }
    phrases: dict[str, list[str]] = {}  # a phrase's head → its counted details
    for (reason, n), on in _on_arms(facts, _arms(manifest)):
        kind, _, detail = reason.partition(": ")
        if kind in _KINDS:
            phrases.setdefault(f"{kind}{on}: ", []).append(_said(detail, n))
        else:
            phrases[f"{reason} {n:,}{on}"] = []
    return [head + ", ".join(details) for head, details in phrases.items()]
