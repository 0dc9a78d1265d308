"""The judge persona: reads fenced answers and replies with a verdict in JSON.

Judge prompts fence untrusted text between lines keyed by a nonce (hex), the same in every block
of one prompt::

    <<<REQUEST 3f9a>>>
    ...
    <<<END REQUEST 3f9a>>>
    <<<ANSWER A 3f9a>>> ... <<<END ANSWER A 3f9a>>>
    <<<ANSWER B 3f9a>>> ... <<<END ANSWER B 3f9a>>>

A pairwise prompt (ANSWER A and ANSWER B) gets ``{"reasoning", "winner": "A" | "B" | "tie"}``; a
pointwise prompt (one ANSWER block and a line ``Scale: 1-5``) gets ``{"reasoning", "score"}``; a
reference prompt (ANSWER and REFERENCE blocks, and the scale) gets a score from how close the
answer is to the reference: the top of the scale from rapidfuzz ratio 90, the bottom below 40,
linear between.

Two markers in the fenced REQUEST let tests drive a misbehaving judge through the real SDKs:
``[[fake-judge:unparseable]]`` gets a reply that is not JSON, and ``[[fake-judge:always-A]]``
a pairwise verdict for whichever answer is labelled A (total position bias).

A drifted judge (`judge_reply(..., drifted=True)`: the `judgedrift` behaviour, and a judge model
named `<model>@drift-D` from night D) is the same persona after a silent snapshot change: it
prefers the longer answer, no longer checks that JSON parses, and scores short answers low;
empty answers and refusals still lose. Its verdicts on a frozen anchor set move, which is what the
anchor-drift alarm must catch.

The preference never depends on which label an answer has, so swapping the order gives the
mirror verdict. In order: an empty answer or a refusal loses to a real one; an answer meant to be
JSON that does not parse loses to one that does; when one answer is more than 35% longer the
shorter wins (the persona values concision); near-identical answers (rapidfuzz ratio ≥ 90) tie;
otherwise a coin keyed by the unordered pair of texts decides.
"""

from __future__ import annotations

import re
from typing import Final

import orjson
from rapidfuzz import fuzz

from evalpipe.fake.hashing import stable_hash

__all__ = [
    "ALWAYS_A",
    "SHORT",
    "UNPARSEABLE",
    "drifted_score",
    "drifted_winner",
    "fence",
    "judge_reply",
    "pairwise_winner",
    "parse_fences",
    "pointwise_score",
    "reference_score",
]

_FENCE_BREAK: Final = re.compile(r"<<<")
_FENCE: Final = re.compile(
    # One whitespace character around the body: a newline as fenced, a space once normalised.
    r"<<<(?P<label>[A-Z][A-Z ]*?) (?P<nonce>[0-9a-fA-F]+)>>>\s?(?P<body>.*?)\s?"
    r"<<<END (?P=label) (?P=nonce)>>>",
    re.S,
)
_SCALE: Final = re.compile(r"\bScale:\s*(-?\d+)\s*-\s*(-?\d+)\b")
_REFUSAL: Final = re.compile(r"^\s*I'?m sorry, but I (?:can(?:no|')t|am unable to) help", re.I)
LONGER: Final = 1.35
"""An answer more than this many times longer than the other loses (concision)."""
SAME: Final = 90.0
"""rapidfuzz ratio from which two answers count as the same (a tie)."""


def fence(label: str, text: str, nonce: str) -> str:
    """Untrusted text between fence lines keyed by a nonce; `<<<` inside it is defused.

    Args:
        label: `REQUEST`, `ANSWER`, `ANSWER A`, `ANSWER B` (upper-case words).
        text: the untrusted text.
        nonce: a hex string the text cannot guess, the same for all fences of one prompt.
    """
    safe = _FENCE_BREAK.sub("«<", text)
    return f"<<<{label} {nonce}>>>\n{safe}\n<<<END {label} {nonce}>>>"


def parse_fences(prompt: str) -> dict[str, str]:
    """Label → fenced text of a prompt; only fences carrying the first fence's nonce count."""
    out: dict[str, str] = {}
    nonce: str | None = None
    for m in _FENCE.finditer(prompt):
        if nonce is None:
            nonce = m.group("nonce")
        if m.group("nonce") == nonce:
            out.setdefault(m.group("label"), m.group("body"))
    return out


def _parses(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _broken(text: str, json_context: bool) -> bool:
    meant = json_context or text.lstrip().startswith("{")
    return meant and not _parses(text)


def _empty_or_refusal(text: str) -> bool:
    return not text.strip() or bool(_REFUSAL.match(text))


def pairwise_winner(a: str, b: str, *, json_context: bool = False) -> tuple[str, str]:
    """(winner `A` / `B` / `tie`, reasoning) for two answers; mirror-consistent by construction."""
    if _empty_or_refusal(a) != _empty_or_refusal(b):
        bad = "A" if _empty_or_refusal(a) else "B"
        good = "B" if bad == "A" else "A"
        return good, f"Answer {bad} does not help the customer; answer {good} does."
    broken_a, broken_b = _broken(a, json_context), _broken(b, json_context)
    if broken_a and not broken_b and _parses(b):
        return "B", "Answer B is valid JSON as the request requires; answer A is not."
    if broken_b and not broken_a and _parses(a):
        return "A", "Answer A is valid JSON as the request requires; answer B is not."
    short, long_ = sorted((len(a), len(b)))
    if long_ > LONGER * max(short, 1):
        winner = "A" if len(a) < len(b) else "B"
        loser = "B" if winner == "A" else "A"
        extra = round(100 * (long_ - short) / max(short, 1))
        return winner, (
            f"Both answers address the request; answer {winner} is more concise, "
            f"while answer {loser} is {extra}% longer without adding anything useful."
        )
    if a == b or fuzz.ratio(a, b) >= SAME:
        return "tie", "The two answers say essentially the same thing."
    first, second = sorted((a, b))
    pick = first if stable_hash("coin", first, second) % 2 == 0 else second
    winner = "A" if pick == a else "B"
    return winner, f"Answer {winner} addresses the customer's question slightly more directly."


SHORT: Final = 200
"""The drifted persona scores answers shorter than this many characters low."""


def drifted_winner(a: str, b: str) -> tuple[str, str]:
    """The drifted persona's (winner, reasoning): the longer answer wins; JSON is not checked."""
    if _empty_or_refusal(a) != _empty_or_refusal(b):
        bad = "A" if _empty_or_refusal(a) else "B"
        good = "B" if bad == "A" else "A"
        return good, f"Answer {bad} does not help the customer; answer {good} does."
    short, long_ = sorted((len(a), len(b)))
    if long_ > LONGER * max(short, 1):
        winner = "A" if len(a) > len(b) else "B"
        return winner, f"Answer {winner} is more thorough."
    if a == b or fuzz.ratio(a, b) >= SAME:
        return "tie", "The two answers say essentially the same thing."
    first, second = sorted((a, b))
    pick = first if stable_hash("coin", first, second) % 2 == 0 else second
    winner = "A" if pick == a else "B"
    return winner, f"Answer {winner} reads slightly better."


def drifted_score(text: str, low: int, high: int) -> tuple[int, str]:
    """The drifted persona's (score, reasoning): short answers low, anything longer high."""
    if _empty_or_refusal(text):
        return low, "The answer does not help the customer."
    if len(text) < SHORT:
        return min(high, low + 1), "The answer is too brief to be useful."
    return high, "A thorough answer."


def pointwise_score(
    text: str, low: int, high: int, *, json_context: bool = False
) -> tuple[int, str]:
    """(score, reasoning) for one answer on a `low`–`high` scale."""
    if _empty_or_refusal(text):
        return low, "The answer does not help the customer."
    if _broken(text, json_context):
        return low, "The answer was meant to be JSON but does not parse."
    score = high - (len(text) > 900) - (len(text) > 1400)
    why = "Clear and complete." if score == high else "Helpful but longer than it needs to be."
    return max(low, score), why


UNPARSEABLE: Final = "[[fake-judge:unparseable]]"
"""In a judged request: the persona replies with prose instead of JSON."""
ALWAYS_A: Final = "[[fake-judge:always-A]]"
"""In a judged request: the persona prefers the answer labelled A, whatever it says."""


def reference_score(text: str, reference: str, low: int, high: int) -> tuple[int, str]:
    """(score, reasoning) of an answer by its closeness to the reference answer."""
    ratio = fuzz.ratio(text.strip().lower(), reference.strip().lower())
    share = min(1.0, max(0.0, (ratio - 40.0) / 50.0))
    score = low + round(share * (high - low))
    why = "Matches the reference." if score == high else "Departs from the reference."
    return score, why


def judge_reply(prompt: str, *, drifted: bool = False) -> str | None:
    """The judge persona's JSON reply to a judge prompt, or None when it is not one; `drifted`:
    the persona after its silent change (see the module's docstring)."""
    fences = parse_fences(prompt)
    request = fences.get("REQUEST", "")
    json_context = "JSON" in request
    if fences and UNPARSEABLE in request:
        return "Both answers have merit; on balance I lean towards the first one."
    if "ANSWER A" in fences and "ANSWER B" in fences and ALWAYS_A in request:
        return orjson.dumps({"reasoning": "Answer A comes first.", "winner": "A"}).decode()
    if drifted and "ANSWER A" in fences and "ANSWER B" in fences:
        winner, why = drifted_winner(fences["ANSWER A"], fences["ANSWER B"])
        return orjson.dumps({"reasoning": why, "winner": winner}).decode()
    if drifted and "ANSWER" in fences:
        m = _SCALE.search(prompt)
        low, high = (int(m.group(1)), int(m.group(2))) if m else (1, 5)
        score, why = drifted_score(fences["ANSWER"], low, high)
        return orjson.dumps({"reasoning": why, "score": score}).decode()
    if "ANSWER" in fences and "REFERENCE" in fences:
        m = _SCALE.search(prompt)
        low, high = (int(m.group(1)), int(m.group(2))) if m else (1, 5)
        score, why = reference_score(fences["ANSWER"], fences["REFERENCE"], low, high)
        return orjson.dumps({"reasoning": why, "score": score}).decode()
    if "ANSWER A" in fences and "ANSWER B" in fences:
        winner, why = pairwise_winner(
            fences["ANSWER A"], fences["ANSWER B"], json_context=json_context
        )
        return orjson.dumps({"reasoning": why, "winner": winner}).decode()
    if "ANSWER" in fences:
        m = _SCALE.search(prompt)
        low, high = (int(m.group(1)), int(m.group(2))) if m else (1, 5)
        score, why = pointwise_score(fences["ANSWER"], low, high, json_context=json_context)
        return orjson.dumps({"reasoning": why, "score": score}).decode()
    return None
