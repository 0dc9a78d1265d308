"""LLM judges: prompts with fenced untrusted text, both orders, cached calls, parsed verdicts."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Final, NamedTuple

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.errors import ProviderError, SpecError
from evalpipe.providers.calls import FatalProviderError
from evalpipe.providers.endpoint import Endpoint
from evalpipe.providers.prices import Price
from evalpipe.replay.cache import ResponseCache
from evalpipe.replay.engine import Progress, cached_call, limits_of
from evalpipe.replay.limits import Budget, EndpointLimits
from evalpipe.replay.loop import run_async
from evalpipe.spec import Judge, Spec
from evalpipe.tables import ARMS_LOGGED, SCORES, from_rows

__all__ = [
    "fence",
    "injection_flags",
    "judge_sample",
    "load_prompt",
    "parse_rationale",
    "parse_score",
    "parse_verdict",
    "render_conversation",
    "score_pairwise",
    "score_pointwise",
    "score_reference",
]

log = logging.getLogger(__name__)

SCORER_VERSION: Final = "judge@2"  # 2: look-alike fences escaped, injection flag, reference
_LT: Final = "<\uff1c\ufe64\u2039\u3008\u27e8\u276e\u276c\u2329\u02c2"
_INVISIBLE: Final = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
_FENCE_BREAK = re.compile(f"[{_LT}](?:[{_INVISIBLE}\\s]*[{_LT}]){{2,}}")
"""Three or more `<` or look-alikes (fullwidth, small, angle brackets, single guillemets),
possibly split by invisible characters or spaces: anything that could pass for a fence line."""
_WINNER = re.compile(r'"winner"\s*:\s*"(A|B|tie)"', re.IGNORECASE)

VERDICT_SCHEMA: Final = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "winner": {"enum": ["A", "B", "tie"]}},
    "required": ["reasoning", "winner"],
    "additionalProperties": False,
}


def fence(label: str, text: str, nonce: str) -> str:
    """Untrusted text between fence lines keyed by a nonce it cannot guess or close.

    Runs of `<` and their look-alikes in the text become `«<`, so no line inside can pass for
    a fence, whatever nonce it guesses.
    """
    safe = _FENCE_BREAK.sub("«<", text)
    return f"<<<{label} {nonce}>>>\n{safe}\n<<<END {label} {nonce}>>>"


def injection_flags(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Per text: whether it matches the judge-injection patterns (gate/validity.py's list)."""
    from evalpipe.gate.validity import INJECTION_PATTERN

    hits = pc.match_substring_regex(texts, INJECTION_PATTERN, ignore_case=True)
    return (
        pc.fill_null(hits, False).combine_chunks()
        if isinstance(hits, pa.ChunkedArray)
        else pc.fill_null(hits, False)
    )


def load_prompt(name: str | None, default: str, spec: Spec) -> tuple[str, str]:
    """(template text, prompt version) of a packaged prompt `name@N` or a file path."""
    name = name or default
    packaged = resources.files("evalpipe.score") / "prompts" / f"{name}.md"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8"), name
    path = spec.resolve_input(name)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        return text, f"{Path(name).stem}#{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    raise SpecError(
        "judges.prompt",
        f"no packaged prompt or file named `{name}`",
        "Use e.g. pairwise_helpfulness@1 or a path.",
    )


def render_conversation(request_json: str) -> str:
    """The logged conversation as plain text for a judge (system, turns, the format asked for)."""
    req = orjson.loads(request_json)
    lines = []
    if req.get("system"):
        lines.append(f"[system]\n{req['system']}")
    for m in req.get("messages") or []:
        parts = m.get("content") or []
        if isinstance(parts, str):
            text = parts
        else:
            text = "\n".join(
                p.get("text", "") if p.get("type") == "text" else f"[{p.get('type')}]"
                for p in parts
            )
        lines.append(f"[{m.get('role')}]\n{text}")
    fmt = req.get("response_format")
    if fmt and fmt.get("type") == "json_schema":
        lines.append(
            "[required answer format]\nJSON matching: " + orjson.dumps(fmt.get("schema")).decode()
        )
    elif fmt:
        lines.append("[required answer format]\nJSON")
    return "\n\n".join(lines)


def parse_verdict(text: str | None) -> str | None:
    """`A`, `B`, `tie`, or None when the judge's answer cannot be read."""
    if not text:
        return None
    try:
        obj = orjson.loads(text)
        winner = obj.get("winner") if isinstance(obj, dict) else None
        if isinstance(winner, str) and winner.lower() in ("a", "b", "tie"):
            return "tie" if winner.lower() == "tie" else winner.upper()
    except orjson.JSONDecodeError:
        pass
    m = _WINNER.search(text)
    if m:
        return "tie" if m.group(1).lower() == "tie" else m.group(1).upper()
    return None


_SCORE = re.compile(r'"score"\s*:\s*(-?\d+(?:\.\d+)?)')
_REASONING = re.compile(r'"reasoning"\s*:\s*"((?:[^"\\]|\\.)*)"')
_ANSWER_LABEL = re.compile(r"\b([Aa])nswer ([AB])\b")
RATIONALE_CHARS: Final = 600
"""Longest rationale kept per score row (the judge is asked for one or two sentences)."""


def parse_rationale(text: str | None) -> str | None:
    """The judge's `reasoning` from its structured answer (trimmed, at most RATIONALE_CHARS),
    or None when it gave none."""
    if not text:
        return None
    why: Any = None
    try:
        obj = orjson.loads(text)
        why = obj.get("reasoning") if isinstance(obj, dict) else None
    except orjson.JSONDecodeError:
        m = _REASONING.search(text)
        if m:
            try:
                why = orjson.loads(f'"{m.group(1)}"')
            except orjson.JSONDecodeError:
                why = None
    if not isinstance(why, str) or not why.strip():
        return None
    short = " ".join(why.split())
    return short if len(short) <= RATIONALE_CHARS else short[: RATIONALE_CHARS - 1] + "…"


def _named(rationale: str, candidate_is_a: bool) -> str:
    """A pairwise rationale with `answer A` / `answer B` named as the candidate's or the baseline's
    (the labels are randomised per call, so they mean nothing to a reader)."""

    def name(m: re.Match[str]) -> str:
        is_candidate = (m.group(2) == "A") == candidate_is_a
        who = "the candidate's answer" if is_candidate else "the baseline's answer"
        return who[0].upper() + who[1:] if m.group(1) == "A" else who

    return _ANSWER_LABEL.sub(name, rationale)


def parse_score(text: str | None, low: int, high: int) -> float | None:
    """The judge's score when it is a number within [low, high], else None."""
    if not text:
        return None
    value: Any = None
    try:
        obj = orjson.loads(text)
        value = obj.get("score") if isinstance(obj, dict) else None
    except orjson.JSONDecodeError:
        m = _SCORE.search(text)
        value = float(m.group(1)) if m else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if low <= value <= high else None


def _hex(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def judge_sample(records: pa.Table, judge: Judge, spec: Spec) -> pa.Array:
    """Record ids of the judge's seeded sample, stratified by the gate's slice columns, and
    every eval-set case (`spec.eval_sets`: curated, so always judged).

    Proportional allocation: within each stratum records are ranked by sha256(seed, id) and the
    first ceil(share) kept; the union is trimmed to `judge.sample` by the same hash.
    """
    from evalpipe.spec import EVAL_SET_COLUMN
    from evalpipe.tables import column_values

    cases = pa.array([], pa.string())
    if spec.eval_sets:
        is_case = pc.is_valid(column_values(records, EVAL_SET_COLUMN))
        cases = records["record_id"].filter(is_case).combine_chunks()
        records = records.filter(pc.invert(is_case))
    traffic = _traffic_sample(records, judge, spec)
    return pa.concat_arrays([traffic, cases]) if len(cases) else traffic


def _traffic_sample(records: pa.Table, judge: Judge, spec: Spec) -> pa.Array:
    from evalpipe.tables import column_values

    ids = records["record_id"]
    if judge.sample is None or judge.sample >= records.num_rows:
        return ids.combine_chunks()
    strata = [column_values(records, c) for c in spec.gate.slices] or [
        pa.array([""] * records.num_rows)
    ]
    cols = {f"s{i}": pc.fill_null(s, "") for i, s in enumerate(strata)}
    table = pa.table({"record_id": ids, **cols})
    key = " || '\x1f' || ".join(cols)
    frac = judge.sample / records.num_rows
    from evalpipe.store import out_of_core_config

    # (a million records' hashes are ranked: DuckDB spills beyond its share, not the process)
    with duckdb.connect(config=out_of_core_config("256MB")) as con:
        con.register("t", table)
        out = con.sql(
            f"""
            WITH h AS (SELECT record_id, {key} AS stratum,
                              sha256(? || '\x1f' || record_id || '\x1f' || ?) AS u FROM t),
            r AS (SELECT *, row_number() OVER (PARTITION BY stratum ORDER BY u) AS rn,
                            count(*) OVER (PARTITION BY stratum) AS cnt FROM h)
            SELECT record_id FROM r WHERE rn <= ceil(cnt * ?) ORDER BY u LIMIT ?
            """,
            params=[str(spec.seed), f"judge-sample:{judge.name}", frac, judge.sample],
        ).to_arrow_table()
    assert out is not None
    return out["record_id"].combine_chunks()


def _sample_of(records: pa.Table, judge: Judge, spec: Spec, whole: pa.Array | None) -> pa.Array:
    """The judge's sample among `records`: `whole` (the sample over the whole run, when
    `records` is one partition of it) cut to these records, else drawn from `records`."""
    if whole is None:
        return judge_sample(records, judge, spec)
    ids = records["record_id"].combine_chunks()
    return ids.filter(pc.is_in(ids, value_set=whole))


async def _ask(
    endpoint: Endpoint,
    judge: Judge,
    prompt: str,
    schema_name: str,
    schema: dict[str, Any],
    *,
    cache: ResponseCache | None,
    budget: Budget,
    limits: EndpointLimits,
    prices: dict[str, Price],
    salt: str = "",
) -> dict[str, Any]:
    """One judge call (cached, within the budget and the run's limits) for JSON of `schema`;
    `salt` keys the cache apart (the anchors: per run, so that each run asks the judge anew)."""
    request = {
        "system": None,
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
        "response_format": {
            "type": "json_schema",
            "name": schema_name,
            "schema": schema,
            "strict": True,
        },
        "params": {"temperature": 0, "max_tokens": 400},
    }
    try:
        return await cached_call(
            endpoint,
            endpoint.build(request),
            repeat=0,
            cache=cache,
            salt=salt,
            budget=budget,
            limits=limits,
            prices=prices,
        )
    except FatalProviderError as exc:
        raise ProviderError(f"judge {judge.name}", judge.model, exc.message, exc.fix) from None


def _endpoint(judge: Judge, spec: Spec) -> Endpoint:
    return Endpoint(
        provider=judge.provider,
        model=judge.model,
        base_url=judge.base_url,
        api_key_env=judge.api_key_env,
        limit=spec.limit_for(judge.model),
    )


def _judge_table(rows: list[dict[str, Any]], judge: Judge, version: str, run_id: str) -> pa.Table:
    """tables.SCORES rows of one judge (kind `judge`, repeat 0), sorted by arm and record."""
    common = {
        "run_id": run_id,
        "repeat": 0,
        "scorer": judge.name,
        "kind": "judge",
        "metric": judge.name,
        "scorer_version": SCORER_VERSION,
        "judge_model": judge.model,
        "prompt_version": version,
    }
    table = from_rows([{**common, **r} for r in rows], SCORES)
    return table.sort_by([("arm", "ascending"), ("record_id", "ascending")])


class _Pair(NamedTuple):
    record_id: str
    arm: str
    conversation: str
    baseline: str
    candidate: str
    injection: bool = False
    """The candidate's answer matches the judge-injection patterns."""


def _redacted(pairs: list[_Pair], redact: Callable[[list[str]], list[str]] | None) -> list[_Pair]:
    """The pairs with their conversation and both answers PII-redacted (one call for all)."""
    if redact is None or not pairs:
        return pairs
    n = len(pairs)
    texts = redact(
        [p.conversation for p in pairs] + [p.baseline for p in pairs] + [p.candidate for p in pairs]
    )
    return [
        p._replace(conversation=texts[i], baseline=texts[n + i], candidate=texts[2 * n + i])
        for i, p in enumerate(pairs)
    ]


def score_pairwise(
    responses: pa.Table,
    records: pa.Table,
    judge: Judge,
    spec: Spec,
    *,
    run_id: str,
    cache: ResponseCache | None = None,
    budget: Budget | None = None,
    prices: dict[str, Price] | None = None,
    redact: Callable[[list[str]], list[str]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    sample: pa.Array | None = None,
) -> pa.Table:
    """Pairwise judge of each candidate against the baseline on the judge's sample.

    Each pair is judged in both orders; `value` is the candidate's mean win share over the two
    (1 win, ½ tie, 0 loss), so orders that contradict each other make a tie. Rows whose responses
    errored get a null value; the gate decides what an error means.
    """
    template, version = load_prompt(judge.prompt, "pairwise_helpfulness@1", spec)
    sample = _sample_of(records, judge, spec, sample)
    ok = pc.equal(responses["repeat"], 0)
    resp = responses.filter(ok)
    resp = resp.filter(pc.is_in(resp["record_id"], value_set=sample))
    base = resp.filter(pc.equal(resp["arm"], "baseline"))
    base_text = dict(
        zip(base["record_id"].to_pylist(), base["output_text"].to_pylist(), strict=True)
    )
    base_ok = dict(zip(base["record_id"].to_pylist(), base["status"].to_pylist(), strict=True))
    req_idx = pc.index_in(sample, value_set=records["record_id"])
    conv = dict(
        zip(
            sample.to_pylist(),
            [render_conversation(r) for r in records["request"].take(req_idx).to_pylist()],
            strict=True,
        )
    )
    pairs: list[_Pair] = []
    null_rows: list[dict[str, Any]] = []
    for cand in spec.candidates:
        c = resp.filter(pc.equal(resp["arm"], cand.name))
        for rid, text, status in zip(
            c["record_id"].to_pylist(),
            c["output_text"].to_pylist(),
            c["status"].to_pylist(),
            strict=True,
        ):
            if status != "ok" or base_ok.get(rid) != "ok":
                null_rows.append({"record_id": rid, "arm": cand.name, "error": "response not ok"})
                continue
            pairs.append(_Pair(rid, cand.name, conv[rid], base_text[rid] or "", text or ""))
    if pairs:
        flags = injection_flags(pa.array([p.candidate for p in pairs], pa.string())).to_pylist()
        pairs = [p._replace(injection=bool(f)) for p, f in zip(pairs, flags, strict=True)]
    pairs = _redacted(pairs, redact)
    results = run_async(
        _judge_all(
            pairs,
            template,
            judge,
            spec,
            run_id=run_id,
            cache=cache,
            budget=budget or Budget(spec.budget_usd),
            prices=prices or {},
            on_progress=on_progress,
        )
    )
    rows = [
        {
            "record_id": p.record_id,
            "arm": p.arm,
            "value": value,
            "detail": detail,
            "error": error,
            "rationale": why,
        }
        for p, (value, detail, error, _cost, why) in zip(pairs, results, strict=True)
    ]
    rows.extend(null_rows)
    return _judge_table(rows, judge, version, run_id)


async def _judge_all(
    pairs: list[_Pair],
    template: str,
    judge: Judge,
    spec: Spec,
    *,
    run_id: str,
    cache: ResponseCache | None,
    budget: Budget,
    prices: dict[str, Price],
    on_progress: Callable[[Progress], None] | None,
    salt: str = "",
) -> list[tuple[float | None, str | None, str | None, float, str | None]]:
    """(value, detail, error, cost, rationale) of each pair judged in both orders."""
    endpoint = _endpoint(judge, spec)
    limits = limits_of(endpoint, run_id)
    done = {"n": 0}

    async def one_order(
        pair: _Pair, candidate_is_a: bool
    ) -> tuple[float | None, str | None, float, str | None]:
        nonce = _hex(spec.seed, pair.record_id, pair.arm, judge.name, candidate_is_a)[:16]
        a, b = (
            (pair.candidate, pair.baseline) if candidate_is_a else (pair.baseline, pair.candidate)
        )
        prompt = template.format(
            nonce=nonce,
            request_fence=fence("REQUEST", pair.conversation, nonce),
            answer_a_fence=fence("ANSWER A", a, nonce),
            answer_b_fence=fence("ANSWER B", b, nonce),
        )
        result = await _ask(
            endpoint,
            judge,
            prompt,
            "verdict",
            VERDICT_SCHEMA,
            cache=cache,
            budget=budget,
            limits=limits,
            prices=prices,
            salt=salt,
        )
        cost = 0.0 if result.get("cache_hit") else float(result.get("cost_usd") or 0.0)
        if result.get("status") != "ok":
            return None, f"judge call failed: {result.get('error_type')}", cost, None
        text = result.get("output_text")
        why = parse_rationale(text)
        why = _named(why, candidate_is_a) if why else None
        winner = parse_verdict(text)
        if winner is None:
            return None, "unparseable judge answer", cost, why
        if winner == "tie":
            return 0.5, None, cost, why
        return (1.0 if (winner == "A") == candidate_is_a else 0.0), None, cost, why

    async def one(
        pair: _Pair,
    ) -> tuple[float | None, str | None, str | None, float, str | None]:
        first_a = int(_hex(spec.seed, pair.record_id, pair.arm, "order")[:8], 16) % 2 == 0
        (w1, e1, c1, r1), (w2, e2, c2, r2) = await asyncio.gather(
            one_order(pair, first_a), one_order(pair, not first_a)
        )
        done["n"] += 1
        if on_progress:
            on_progress(Progress("judge", judge.name, done["n"], len(pairs), budget.spent))
        flag = {"injection": True} if pair.injection else {}
        why = r1 if r1 == r2 or not r2 else f"{r1} (answers swapped:) {r2}" if r1 else r2
        if w1 is None or w2 is None:
            return None, orjson.dumps(flag).decode() if flag else None, e1 or e2, c1 + c2, why
        detail = {"orders": [w1, w2], "orders_agree": w1 == w2, "first_a": first_a, **flag}
        return (w1 + w2) / 2, orjson.dumps(detail).decode(), None, c1 + c2, why

    try:
        return list(await asyncio.gather(*(one(p) for p in pairs)))
    finally:
        await endpoint.aclose()


def _labelled_for(judge: Judge, spec: Spec, records: pa.Table) -> pa.Array:
    """Record ids whose `logged` answer this judge also scores: those with a label that
    calibrates it (`labels.<name>.judge`), so that its scores can be set beside people's."""
    from evalpipe.score.labels import label_values

    ids: list[str] = []
    for name, label in spec.labels.items():
        if label.judge == judge.name and (label.arm or "logged") == "logged":
            values = label_values(name, label, records, spec)
            ids.extend(values.filter(pc.is_valid(values["value"]))["record_id"].to_pylist())
    return pa.array(sorted(set(ids)), pa.string())


def score_pointwise(
    responses: pa.Table,
    records: pa.Table,
    judge: Judge,
    spec: Spec,
    *,
    run_id: str,
    cache: ResponseCache | None = None,
    budget: Budget | None = None,
    prices: dict[str, Price] | None = None,
    redact: Callable[[list[str]], list[str]] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    salt: str = "",
    sample: pa.Array | None = None,
) -> pa.Table:
    """Pointwise judge: a score on `judge.scale` for every replayed arm's answer in the sample.

    A `reference` judge (`judge.type`) also sees the record's reference answer; records without
    one get a null value and error `no reference`. The `logged` arm is judged only on records
    whose labels calibrate this judge. Unreadable answers are null with error
    `unparseable judge answer` (INVALID rule 3 counts them).
    """
    with_reference = judge.type == "reference"
    default_prompt = "reference@1" if with_reference else "pointwise@1"
    template, version = load_prompt(judge.prompt, default_prompt, spec)
    low, high = judge.scale
    sample = _sample_of(records, judge, spec, sample)
    resp = responses.filter(pc.equal(responses["repeat"], 0))
    in_sample = pc.is_in(resp["record_id"], value_set=sample)
    logged = pc.equal(resp["arm"], ARMS_LOGGED)
    labelled = pc.is_in(resp["record_id"], value_set=_labelled_for(judge, spec, records))
    resp = resp.filter(pc.or_(pc.and_(in_sample, pc.invert(logged)), pc.and_(logged, labelled)))
    req_idx = pc.index_in(resp["record_id"], value_set=records["record_id"])
    convs = [render_conversation(r) for r in records["request"].take(req_idx).to_pylist()]
    refs: list[str | None] = records["reference"].take(req_idx).to_pylist()
    texts = [t or "" for t in resp["output_text"].to_pylist()]
    flags = injection_flags(resp["output_text"]).to_pylist()
    if redact is not None and texts:
        present = [r for r in refs if r is not None]
        both = redact(convs + texts + present)
        convs, texts = both[: len(convs)], both[len(convs) : len(convs) + len(texts)]
        it = iter(both[len(convs) + len(texts) :])
        refs = [None if r is None else next(it) for r in refs]
    ids, arms, status = (
        resp["record_id"].to_pylist(),
        resp["arm"].to_pylist(),
        resp["status"].to_pylist(),
    )
    rubric = judge.rubric or (
        "Correct and complete as the reference is; follows the requested format."
        if with_reference
        else "Helpful, correct, follows the requested format, concise."
    )
    budget = budget or Budget(spec.budget_usd)
    endpoint = _endpoint(judge, spec)
    schema = {
        "type": "object",
        "properties": {"reasoning": {"type": "string"}, "score": {"type": "integer"}},
        "required": ["reasoning", "score"],
        "additionalProperties": False,
    }

    async def run_all() -> list[tuple[float | None, str | None, str | None]]:
        limits = limits_of(endpoint, run_id)
        done = {"n": 0}

        async def one(i: int) -> tuple[float | None, str | None, str | None]:
            if status[i] != "ok":
                return None, "response not ok", None
            if with_reference and refs[i] is None:
                return None, "no reference", None
            nonce = _hex(spec.seed, ids[i], arms[i], judge.name)[:16]
            prompt = template.format(
                nonce=nonce,
                rubric=rubric,
                low=low,
                high=high,
                request_fence=fence("REQUEST", convs[i], nonce),
                answer_fence=fence("ANSWER", texts[i], nonce),
                reference_fence=fence("REFERENCE", refs[i] or "", nonce),
            )
            result = await _ask(
                endpoint,
                judge,
                prompt,
                "score",
                schema,
                cache=cache,
                budget=budget,
                limits=limits,
                prices=prices or {},
                salt=salt,
            )
            done["n"] += 1
            if on_progress:
                on_progress(Progress("judge", judge.name, done["n"], len(ids), budget.spent))
            if result.get("status") != "ok":
                return None, f"judge call failed: {result.get('error_type')}", None
            text = result.get("output_text")
            value = parse_score(text, low, high)
            error = None if value is not None else "unparseable judge answer"
            return value, error, parse_rationale(text)

        try:
            return list(await asyncio.gather(*(one(i) for i in range(len(ids)))))
        finally:
            await endpoint.aclose()

    results = run_async(run_all())
    rows = [
        {
            "record_id": ids[i],
            "arm": arms[i],
            "value": v,
            "error": e,
            "detail": '{"injection":true}' if flags[i] else None,
            "rationale": why,
        }
        for i, (v, e, why) in enumerate(results)
    ]
    return _judge_table(rows, judge, version, run_id)


def score_reference(
    responses: pa.Table,
    records: pa.Table,
    judge: Judge,
    spec: Spec,
    **kwargs: Any,
) -> pa.Table:
    """Reference judge: `score_pointwise` with the record's reference answer in the prompt."""
    return score_pointwise(responses, records, judge, spec, **kwargs)
