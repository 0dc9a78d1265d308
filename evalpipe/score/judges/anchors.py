"""Judge drift: a frozen anchor set with known verdicts, re-judged with every run.

Each packaged judge prompt ships its anchor set beside it (`prompts/<prompt>.anchors.jsonl`), one
item a line with a verdict people agree on:

* pairwise: ``{"id", "request", "answer_a", "answer_b", "verdict": "A" | "B" | "tie"}``
* pointwise: ``{"id", "request", "answer", "verdict": "high" | "low"}``
* reference: the pointwise fields and ``"reference"``.

``request`` is a canonical request object (``system``, ``messages``). A pointwise score counts
as `high` from the middle of the judge's scale up, so the set fits any `scale`.

The anchors go through the judge's own call path (`judges._judge_all`, `judges.score_pointwise`:
the same prompt, fences, redaction, limits, budget and cache) with the run id as cache salt, so a
resumed run reuses its answers but every new run asks the judge again. They come back as
tables.SCORES rows of arm `anchor` and kind `anchor`: `value` the judge's answer (pairwise: the
second answer's win share, 0 A, ½ tie, 1 B; otherwise the score), `passed` whether it matches the
known verdict, `detail` ``{"expected", "answer", "previous"}`` where `previous` is the answer the
previous run of the spec got from the same judge model and prompt (null when there is none).
`gate.validity.judge_drift` turns them into the alarm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import resources
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.errors import SpecError
from evalpipe.providers.prices import Price
from evalpipe.replay.cache import ResponseCache
from evalpipe.replay.limits import Budget
from evalpipe.replay.loop import run_async
from evalpipe.score.judges import (
    _judge_all,
    _judge_table,
    _Pair,
    _redacted,
    load_prompt,
    render_conversation,
    score_pointwise,
)
from evalpipe.spec import Judge, Spec
from evalpipe.tables import ARMS_ANCHOR, RECORDS, RESPONSES, SCORES, conform, from_rows

__all__ = ["ANCHOR_SUFFIX", "anchor_answer", "load_anchors", "score_anchors"]

log = logging.getLogger(__name__)

ANCHOR_SUFFIX: Final = ".anchors.jsonl"
_VERDICTS: Final = {
    "pairwise": frozenset({"A", "B", "tie"}),
    "pointwise": frozenset({"high", "low"}),
    "reference": frozenset({"high", "low"}),
}


def _default_prompt(judge: Judge) -> str:
    return {"pairwise": "pairwise_helpfulness@1", "reference": "reference@1"}.get(
        judge.type, "pointwise@1"
    )


def load_anchors(judge: Judge, spec: Spec) -> tuple[list[dict[str, Any]], str] | None:
    """(anchor items, where they came from) of a judge, or None when it has none: anchors off,
    or a prompt of its own without `anchors.path`.

    Raises:
        SpecError: an anchor file that is not JSON Lines of the judge type's fields.
    """
    if not judge.anchors.enabled:
        return None
    if judge.anchors.path is not None:
        path = spec.resolve_input(judge.anchors.path)
        text, source = path.read_text(encoding="utf-8"), judge.anchors.path
    else:
        name = judge.prompt or _default_prompt(judge)
        packaged = resources.files("evalpipe.score") / "prompts" / f"{name}{ANCHOR_SUFFIX}"
        if not packaged.is_file():
            log.info("judge %s: no anchor set ships with prompt %s", judge.name, name)
            return None
        text, source = packaged.read_text(encoding="utf-8"), f"{name}{ANCHOR_SUFFIX}"
    return _parse(text, source, judge), source


def _parse(text: str, source: str, judge: Judge) -> list[dict[str, Any]]:
    fields: tuple[str, ...] = ("answer_a", "answer_b") if judge.type == "pairwise" else ("answer",)
    if judge.type == "reference":
        fields += ("reference",)
    items, seen = [], set()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            item = None
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and isinstance(item.get("request"), dict)
            and all(isinstance(item.get(f), str) for f in fields)
            and item.get("verdict") in _VERDICTS[judge.type]
        )
        if not ok or item["id"] in seen:
            raise SpecError(
                f"judges.{judge.name}.anchors",
                f"{source} line {n} is not a {judge.type} anchor",
                f"Each line: id, request (object), {', '.join(fields)}, "
                f"verdict ({' | '.join(sorted(_VERDICTS[judge.type]))}); ids unique.",
            )
        seen.add(item["id"])
        items.append(item)
    return items


def anchor_answer(judge: Judge, value: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The judge's categorical answer per value: `A` / `B` / `tie` (a pairwise win share of the
    second answer) or `high` / `low` (a score, from the middle of the scale up)."""
    if judge.type == "pairwise":
        answer = pc.if_else(
            pc.less(value, 0.5), "A", pc.if_else(pc.greater(value, 0.5), "B", "tie")
        )
    else:
        low, high = judge.scale
        middle = (low + high) / 2
        answer = pc.if_else(pc.greater_equal(value, middle), "high", "low")
    out = answer.combine_chunks() if isinstance(answer, pa.ChunkedArray) else answer
    return out.cast(pa.string())


def score_anchors(
    judge: Judge,
    spec: Spec,
    *,
    run_id: str,
    cache: ResponseCache | None = None,
    budget: Budget | None = None,
    prices: dict[str, Price] | None = None,
    redact: Callable[[list[str]], list[str]] | None = None,
    previous: pa.Table | None = None,
) -> pa.Table:
    """tables.SCORES rows (arm `anchor`, kind `anchor`) of the judge on its anchor set.

    Args:
        previous: earlier anchor rows (tables.SCORES; any judges, models and prompts); the
            answers of this judge's model and prompt are set beside this run's.
    """
    loaded = load_anchors(judge, spec)
    if loaded is None:
        return SCORES.empty_table()
    items, source = loaded
    budget = budget or Budget(spec.budget_usd)
    if judge.type == "pairwise":
        table = _pairwise(items, judge, spec, run_id, cache, budget, prices or {}, redact)
    else:
        table = _pointwise(items, judge, spec, run_id, cache, budget, prices or {}, redact)
    expected = dict((i["id"], i["verdict"]) for i in items)
    ids = table["record_id"]
    want = pa.array([expected[r] for r in ids.to_pylist()], pa.string())
    answer = anchor_answer(judge, table["value"])
    before = _previous(previous, judge, table)
    detail = [
        orjson.dumps({"expected": e, "answer": a, "previous": p, "source": source}).decode()
        for e, a, p in zip(want.to_pylist(), answer.to_pylist(), before, strict=True)
    ]
    passed = pc.and_(pc.is_valid(table["value"]), pc.equal(answer, want))
    table = table.set_column(
        table.schema.get_field_index("kind"),
        "kind",
        pa.array(["anchor"] * table.num_rows, pa.string()),
    )
    table = table.set_column(table.schema.get_field_index("passed"), "passed", passed)
    table = table.set_column(
        table.schema.get_field_index("detail"), "detail", pa.array(detail, pa.string())
    )
    return conform(table, SCORES).sort_by("record_id")


def _previous(previous: pa.Table | None, judge: Judge, table: pa.Table) -> list[str | None]:
    """The previous run's answer per anchor of `table`, when the same judge model and prompt
    answered it."""
    n = table.num_rows
    if previous is None or previous.num_rows == 0 or n == 0:
        return [None] * n
    version = table["prompt_version"][0].as_py()
    mine = previous.filter(
        pc.and_(
            pc.and_(
                pc.equal(previous["arm"], ARMS_ANCHOR), pc.equal(previous["metric"], judge.name)
            ),
            pc.and_(
                pc.equal(previous["judge_model"], judge.model),
                pc.equal(previous["prompt_version"], version),
            ),
        )
    )
    answers: dict[str, str | None] = {}
    for rid, detail in zip(mine["record_id"].to_pylist(), mine["detail"].to_pylist(), strict=True):
        try:
            parsed = orjson.loads(detail) if detail else {}
        except orjson.JSONDecodeError:
            parsed = {}
        answers[rid] = parsed.get("answer") if isinstance(parsed, dict) else None
    return [answers.get(r) for r in table["record_id"].to_pylist()]


def _pairwise(
    items: list[dict[str, Any]],
    judge: Judge,
    spec: Spec,
    run_id: str,
    cache: ResponseCache | None,
    budget: Budget,
    prices: dict[str, Price],
    redact: Callable[[list[str]], list[str]] | None,
) -> pa.Table:
    template, version = load_prompt(judge.prompt, "pairwise_helpfulness@1", spec)
    pairs = [
        _Pair(
            i["id"],
            ARMS_ANCHOR,
            render_conversation(orjson.dumps(i["request"]).decode()),
            i["answer_a"],
            i["answer_b"],
        )
        for i in items
    ]
    pairs = _redacted(pairs, redact)
    results = run_async(
        _judge_all(
            pairs,
            template,
            judge,
            spec,
            run_id=run_id,
            cache=cache,
            budget=budget,
            prices=prices,
            on_progress=None,
            salt=f"anchors:{run_id}",
        )
    )
    rows = [
        {"record_id": p.record_id, "arm": ARMS_ANCHOR, "value": v, "error": e, "rationale": why}
        for p, (v, _detail, e, _cost, why) in zip(pairs, results, strict=True)
    ]
    return _judge_table(rows, judge, version, run_id)


def _pointwise(
    items: list[dict[str, Any]],
    judge: Judge,
    spec: Spec,
    run_id: str,
    cache: ResponseCache | None,
    budget: Budget,
    prices: dict[str, Price],
    redact: Callable[[list[str]], list[str]] | None,
) -> pa.Table:
    records = from_rows(
        [
            {
                "record_id": i["id"],
                "request": orjson.dumps(i["request"]).decode(),
                "reference": i.get("reference"),
            }
            for i in items
        ],
        RECORDS,
    )
    responses = from_rows(
        [
            {
                "run_id": run_id,
                "record_id": i["id"],
                "arm": ARMS_ANCHOR,
                "repeat": 0,
                "status": "ok",
                "output_text": i["answer"],
            }
            for i in items
        ],
        RESPONSES,
    )
    every = judge.model_copy(update={"sample": None})  # the whole set, whatever the sample
    return score_pointwise(
        responses,
        records,
        every,
        spec,
        run_id=run_id,
        cache=cache,
        budget=budget,
        prices=prices,
        redact=redact,
        salt=f"anchors:{run_id}",
    )
