"""The fake provider's judge persona: reads fenced answers, answers with a structured verdict.

The preference does not depend on which label (A or B) an answer has, so swapping the order
gives the mirror verdict: broken JSON loses to valid JSON, then the shorter answer wins when one is
more than 35% longer, near-identical answers tie, and otherwise a coin keyed by the unordered pair.
"""

from __future__ import annotations

import re
from typing import Final

import orjson
from rapidfuzz import fuzz

from evalpipe.fake.behaviours import h

__all__ = ["judge_answer", "parse_fences"]

_FENCE: Final = re.compile(
    r"<<<(REQUEST|ANSWER A|ANSWER B|ANSWER) ([0-9a-f]+)>>>\n(.*?)\n<<<END \1 \2>>>", re.S
)


def parse_fences(prompt: str) -> dict[str, str]:
    """Label → fenced text of a judge prompt (labels REQUEST, ANSWER A, ANSWER B, ANSWER)."""
    return {m.group(1): m.group(3) for m in _FENCE.finditer(prompt)}


def _broken_json(text: str, wants_json: bool) -> bool:
    if not wants_json and not text.lstrip().startswith("{"):
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return True
    return False


def _quality(text: str, wants_json: bool) -> int:
    return 0 if _broken_json(text, wants_json) else 1


def judge_answer(prompt: str) -> str | None:
    """The verdict JSON for a judge prompt, or None when the prompt is not one."""
    fences = parse_fences(prompt)
    wants_json = "JSON" in fences.get("REQUEST", "")
    if "ANSWER A" in fences and "ANSWER B" in fences:
        a, b = fences["ANSWER A"], fences["ANSWER B"]
        qa, qb = _quality(a, wants_json), _quality(b, wants_json)
        if qa != qb:
            winner, why = ("A" if qa > qb else "B"), "only one answer is valid JSON"
        elif max(len(a), len(b)) > 1.35 * max(1, min(len(a), len(b))):
            winner, why = ("A" if len(a) < len(b) else "B"), "the other answer is padded"
        elif a == b or fuzz.ratio(a, b) >= 90:
            winner, why = "tie", "the answers are essentially the same"
        else:
            first, second = sorted((a, b))
            pick = first if h(first, second) % 2 == 0 else second
            winner, why = ("A" if pick == a else "B"), "it addresses the request slightly better"
        return orjson.dumps(
            {
                "reasoning": f"Answer {winner} is preferred: {why}."
                if winner != "tie"
                else why.capitalize() + ".",
                "winner": winner,
            }
        ).decode()
    if "ANSWER" in fences:
        m = re.search(r"Scale: (\d+)-(\d+)", prompt)
        low, high = (int(m.group(1)), int(m.group(2))) if m else (1, 5)
        text = fences["ANSWER"]
        score = low if _broken_json(text, wants_json) else high - (1 if len(text) > 600 else 0)
        return orjson.dumps(
            {"reasoning": "Graded on the rubric.", "score": max(low, score)}
        ).decode()
    return None
