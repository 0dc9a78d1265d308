"""The worst regressions of a candidate, side by side with the baseline (spec.report.top_examples).

A record regressed when a pass/fail check passed on the baseline and failed on the candidate, when
the candidate's own request failed while the baseline answered, or when a judge preferred the
baseline. Records are picked in SQL over the whole tables; only the few shown become Python.
Records take turns by the worst metric they failed, ranked by the gate's view (NO-GO metrics
first, critical checks first among them); within a metric, records failing more checks come first,
then a stable hash of the record id decides.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.report.figures import metric_label
from evalpipe.report.redact import redact_texts

__all__ = [
    "MAX_CHARS",
    "CheckResult",
    "Example",
    "last_user_message",
    "pick_examples",
    "pick_examples_from",
    "word_diff",
]

MAX_CHARS: Final = 1500
"""Longest text shown per side; the rest is cut with a note."""


@dataclass(frozen=True)
class CheckResult:
    """One check or judge on one record, for both arms."""

    metric: str
    label: str
    baseline: str
    candidate: str
    change: str
    """`worse`, `better` or empty."""


@dataclass(frozen=True)
class Example:
    record_id: str
    failures: list[str]
    """What went wrong (or, for an improvement, right), e.g. `valid_json: passed on the
    baseline, failed on the candidate`."""
    attributes: list[tuple[str, str]]
    user_message: str
    baseline_output: str
    candidate_output: str
    metrics: list[str] = field(default_factory=list)
    """The metrics that moved on this record (for the page's filter)."""
    checks: list[CheckResult] = field(default_factory=list)
    rationale: list[tuple[str, str]] = field(default_factory=list)
    """(judge metric, what the judge said): the score's `rationale` (or one kept in its detail)."""
    diff_baseline: list[tuple[str, str]] = field(default_factory=list)
    """The baseline's words as (kind, text): `same` or `del` (not in the candidate's answer)."""
    diff_candidate: list[tuple[str, str]] = field(default_factory=list)
    """The candidate's words as (kind, text): `same` or `ins` (not in the baseline's answer)."""
    improvement: bool = False


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_DIFF_MAX_TOKENS: Final = 3000


def word_diff(a: str, b: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Word-level diff of two texts: a's segments (`same`/`del`) and b's (`same`/`ins`).

    Whitespace and punctuation are tokens of their own, so joining a side's segments gives its
    text back exactly. Very long texts come back as one `same` segment each (no highlighting).
    """
    ta, tb = _TOKEN.findall(a), _TOKEN.findall(b)
    if len(ta) + len(tb) > _DIFF_MAX_TOKENS:
        return [("same", a)], [("same", b)]
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []

    def add(side: list[tuple[str, str]], kind: str, text: str) -> None:
        if not text:
            return
        if side and side[-1][0] == kind:
            side[-1] = (kind, side[-1][1] + text)
        else:
            side.append((kind, text))

    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            add(left, "same", "".join(ta[i1:i2]))
            add(right, "same", "".join(tb[j1:j2]))
        else:
            add(left, "del", "".join(ta[i1:i2]))
            add(right, "ins", "".join(tb[j1:j2]))
    return left, right


_SQL_TEMPLATE = """
WITH ranks AS (
    SELECT metric,
           row_number() OVER (
               ORDER BY coalesce(verdict = 'NO-GO', false) DESC, coalesce(critical, false) DESC,
                        coalesce(gated, false) DESC, p_adjusted NULLS LAST, idx
           ) AS rank
    FROM totals WHERE candidate = $cand
),
rule_fail AS (
    SELECT record_id, metric, 'check' AS why
    FROM pairs WHERE cand = $cand AND kind = 'rule' AND {rule}
),
pair_loss AS (
    SELECT record_id, metric, 'pairwise' AS why
    FROM pairs WHERE cand = $cand AND kind = 'judge' AND metric IN (SELECT unnest($pairwise))
      AND {pair}
),
point_loss AS (
    SELECT record_id, metric, 'pointwise' AS why
    FROM pairs WHERE cand = $cand AND kind = 'judge' AND metric IN (SELECT unnest($pointwise))
      AND {point}
),
own_error AS (
    SELECT record_id, 'error_rate' AS metric, 'error' AS why
    FROM rpairs WHERE cand = $cand AND {error}
),
fails AS (
    SELECT * FROM rule_fail UNION ALL SELECT * FROM pair_loss
    UNION ALL SELECT * FROM point_loss UNION ALL SELECT * FROM own_error
),
ranked AS (
    SELECT f.record_id, f.metric, f.why, coalesce(k.rank, 1000) AS rank
    FROM fails AS f LEFT JOIN ranks AS k ON k.metric = f.metric
),
per_record AS (
    SELECT record_id,
           min(rank) AS best,
           count(*) AS n_fail,
           list(metric ORDER BY rank, metric) AS metrics,
           list(why ORDER BY rank, metric) AS whys
    FROM ranked
    GROUP BY record_id
)
-- Take turns between the failing metrics, so one NO-GO metric cannot hide another.
SELECT record_id, best, n_fail, metrics, whys,
       row_number() OVER (PARTITION BY best ORDER BY n_fail DESC, md5(record_id), record_id)
           AS turn
FROM per_record
ORDER BY turn, best, record_id
LIMIT $limit
"""
_WORSE: Final = {
    "rule": "b_passed AND NOT c_passed",
    "pair": "c_value < 0.5",
    "point": "c_value < b_value",
    "error": "c_status = 'error' AND c_origin = 'candidate' AND b_status = 'ok'",
}
_BETTER: Final = {
    "rule": "NOT b_passed AND c_passed",
    "pair": "c_value > 0.5",
    "point": "c_value > b_value",
    "error": "b_status = 'error' AND b_origin = 'candidate' AND c_status = 'ok'",
}
# Each candidate's score beside the baseline's on the same record and metric, built once for
# every candidate and both directions (a pairwise judge has no baseline row: b_* are null).
# Only the rows some direction can show are kept (the union of _WORSE's and _BETTER's tests:
# a check that changed, a judge value off 0.5 or off the baseline's): at 1M records the rest
# is ~10M rows that only spilled.
_PAIRS: Final = """
CREATE OR REPLACE TEMP TABLE pairs AS
SELECT c.arm AS cand, c.record_id, c.metric, c.kind, b.passed AS b_passed, c.passed AS c_passed,
       b.value AS b_value, c.value AS c_value
FROM scores AS c LEFT JOIN scores AS b
  ON b.record_id = c.record_id AND b.metric = c.metric AND b.arm = 'baseline'
WHERE c.arm <> 'baseline'
  AND (b.passed <> c.passed OR c.value <> 0.5 OR c.value <> b.value);
CREATE OR REPLACE TEMP TABLE rpairs AS
SELECT c.arm AS cand, c.record_id, c.status AS c_status, c.error_origin AS c_origin,
       b.status AS b_status, b.error_origin AS b_origin
FROM responses AS c JOIN responses AS b ON b.record_id = c.record_id AND b.arm = 'baseline'
WHERE c.arm <> 'baseline' AND (c.status = 'error' OR b.status = 'error');
"""
_SQL: Final = {
    False: _SQL_TEMPLATE.format(**_WORSE),
    True: _SQL_TEMPLATE.format(**_BETTER),
}


def _totals(gate: pa.Table) -> pa.Table:
    totals = gate.filter(pc.is_null(gate["slice_col"])).select(
        ["candidate", "metric", "verdict", "critical", "gated", "p_adjusted"]
    )
    return totals.append_column("idx", pa.array(range(totals.num_rows), pa.int64()))


def last_user_message(request_json: str | None) -> str:
    """The text of the request's last user message (the canonical request, FORMATS.md)."""
    if not request_json:
        return "(request not captured)"
    try:
        request = orjson.loads(request_json)
    except orjson.JSONDecodeError:
        return request_json
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return "(no messages)"
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return "(no user message)"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind == "tool_result":
            parts.append(f"[tool result] {part.get('content', '')}")
        elif kind == "image":
            parts.append("[image]")
    return "\n".join(parts)


def _cut(text: str | None, empty: str) -> str:
    if text is None:
        return empty
    if len(text) <= MAX_CHARS:
        return text
    return f"{text[:MAX_CHARS]}… ({len(text) - MAX_CHARS:,} more characters)"


def _describe(metric: str, why: str, improve: bool = False) -> str:
    label = metric_label(metric)
    if improve:
        return {
            "check": f"{label}: failed on the baseline, passed on the candidate",
            "pairwise": f"{label}: the judge preferred the candidate",
            "pointwise": f"{label}: the judge scored the candidate higher",
        }.get(why, "the baseline's own request failed; the candidate answered")
    if why == "check":
        return f"{label}: passed on the baseline, failed on the candidate"
    if why == "pairwise":
        return f"{label}: the judge preferred the baseline"
    if why == "pointwise":
        return f"{label}: the judge scored the candidate lower"
    return "the candidate's own request failed; the baseline answered"


def pick_examples(
    candidates: list[str],
    *,
    gate: pa.Table,
    records: pa.Table,
    responses: pa.Table,
    scores: pa.Table,
    limit: int,
    slice_columns: list[str],
    redact: bool,
) -> tuple[dict[str, list[Example]], dict[str, list[Example]]]:
    """Per candidate, its worst regressions and its best improvements (up to `limit` each)."""
    with duckdb.connect() as con:
        con.register("scores_all", scores)
        con.register("responses_all", responses)
        con.register("records_all", records)
        return pick_examples_from(
            con,
            candidates,
            gate=gate,
            limit=limit,
            slice_columns=slice_columns,
            redact=redact,
        )


def pick_examples_from(
    con: duckdb.DuckDBPyConnection,
    candidates: list[str],
    *,
    gate: pa.Table,
    limit: int,
    slice_columns: list[str],
    redact: bool,
) -> tuple[dict[str, list[Example]], dict[str, list[Example]]]:
    """`pick_examples` over a connection whose views `scores_all`, `responses_all` and
    `records_all` hold the run's tables (a run's Parquet files, read out of core): examples
    picked by ORDER BY … LIMIT, then only the picked records' rows read."""
    got = _pick(
        con,
        candidates,
        gate=gate,
        limit=limit,
        slice_columns=slice_columns,
        redact=redact,
    )
    return got[False], got[True]


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    table = con.sql(sql).to_arrow_table()
    assert table is not None
    return table


def _pick(
    con: duckdb.DuckDBPyConnection,
    candidates: list[str],
    *,
    gate: pa.Table,
    limit: int,
    slice_columns: list[str],
    redact: bool,
    directions: tuple[bool, ...] = (False, True),
) -> dict[bool, dict[str, list[Example]]]:
    out: dict[bool, dict[str, list[Example]]] = {
        d: {c: [] for c in candidates} for d in (False, True)
    }
    if limit <= 0 or not candidates:
        return out
    ((rows,),) = con.execute(
        "SELECT (SELECT count(*) FROM scores_all) + (SELECT count(*) FROM responses_all)"
    ).fetchall()
    if not rows:
        return out
    kinds = dict(zip(gate["metric"].to_pylist(), gate["kind"].to_pylist(), strict=True))
    pairwise = sorted(m for m, k in kinds.items() if k == "win_rate")
    pointwise = sorted(
        m for m, k in kinds.items() if k == "mean" and not str(m).startswith("diff.")
    )
    # Only repeat 0 of rule and judge scores can show a regression (diffs are most of the rows).
    scored = "FROM scores_all WHERE repeat = 0 AND kind IN ('rule', 'judge')"
    has = {str(c) for (c, *_) in con.execute("DESCRIBE scores_all").fetchall()}
    rationale = "rationale" if "rationale" in has else "NULL::VARCHAR AS rationale"  # (older runs)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE scores AS SELECT record_id, arm, metric, kind, passed, "
        f"value {scored}"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE responses AS SELECT record_id, arm, status, error_origin "
        "FROM responses_all WHERE repeat = 0"
    )
    con.register("totals", _totals(gate))
    con.execute(_PAIRS)
    picked = {
        (improve, cand): con.sql(
            _SQL[improve],
            params={
                "cand": cand,
                "pairwise": pairwise,
                "pointwise": pointwise,
                "limit": limit,
            },
        ).to_arrow_table()
        for improve in directions
        for cand in candidates
    }
    # The shown records' rows, read once for every candidate and direction.
    ids = pa.chunked_array([t["record_id"] for t in picked.values()], pa.string())
    con.register("shown_ids", pa.table({"record_id": pc.unique(ids.combine_chunks())}))
    shown_where = "record_id IN (SELECT record_id FROM shown_ids)"
    shown = _rows(
        con,
        f"SELECT record_id, arm, metric, kind, passed, value, detail, {rationale} {scored} "
        f"AND {shown_where}",
    )
    shown_records = _rows(
        con, f"SELECT record_id, request, attributes FROM records_all WHERE {shown_where}"
    )
    shown_responses = _rows(con, f"SELECT * FROM responses_all WHERE {shown_where}")
    for (improve, cand), table in picked.items():
        out[improve][cand] = _examples(
            cand,
            table,
            records=shown_records,
            responses=shown_responses,
            slice_columns=slice_columns,
            redact=redact,
            improve=improve,
            scored=shown,
        )
    return out


def _examples(
    candidate: str,
    picked: pa.Table,
    *,
    records: pa.Table,
    responses: pa.Table,
    slice_columns: list[str],
    redact: bool,
    improve: bool = False,
    scored: pa.Table | None = None,
) -> list[Example]:
    """The picked records' texts (the only per-row Python: a few rows)."""
    if picked.num_rows == 0:
        return []
    ids = picked["record_id"]
    recs = records.filter(pc.is_in(records["record_id"], value_set=ids.combine_chunks()))
    rec_by_id = {
        r["record_id"]: r for r in recs.select(["record_id", "request", "attributes"]).to_pylist()
    }
    resp = responses.filter(
        pc.and_(
            pc.and_(
                pc.is_in(responses["record_id"], value_set=ids.combine_chunks()),
                pc.equal(responses["repeat"], 0),
            ),
            pc.is_in(responses["arm"], value_set=pa.array(["baseline", candidate])),
        )
    ).select(
        [
            "record_id",
            "arm",
            "status",
            "output_text",
            "output_tool_calls",
            "error_type",
            "error_message",
        ]
    )
    out_by = {(r["record_id"], r["arm"]): r for r in resp.to_pylist()}

    texts: list[str | None] = []
    rows = picked.to_pylist()
    for row in rows:
        rec = rec_by_id.get(row["record_id"], {})
        texts.append(last_user_message(rec.get("request")))
        texts.append(_output(out_by.get((row["record_id"], "baseline"))))
        texts.append(_output(out_by.get((row["record_id"], candidate))))
    if redact:
        texts = redact_texts(texts)
    checks, rationale = _checks(candidate, ids, scored) if scored is not None else ({}, {})
    if redact and rationale:
        flat = [(rid, m, t) for rid, pairs in rationale.items() for m, t in pairs]
        clean = redact_texts([t for _, _, t in flat])
        rationale = {}
        for (rid, m, _), t in zip(flat, clean, strict=True):
            rationale.setdefault(rid, []).append((m, _cut(t, "")))
    examples = []
    for i, row in enumerate(rows):
        rec = rec_by_id.get(row["record_id"], {})
        attrs = dict(rec.get("attributes") or [])
        shown = [(col, str(attrs[col])) for col in slice_columns if attrs.get(col) is not None]
        seen: list[str] = []
        for metric, why in zip(row["metrics"], row["whys"], strict=True):
            text = _describe(metric, why, improve)
            if text not in seen:
                seen.append(text)
        base_text = _cut(texts[3 * i + 1], "(no response)")
        cand_text = _cut(texts[3 * i + 2], "(no response)")
        left, right = word_diff(base_text, cand_text)
        rid = str(row["record_id"])
        examples.append(
            Example(
                record_id=rid,
                failures=seen,
                attributes=shown,
                user_message=_cut(texts[3 * i], "(none)"),
                baseline_output=base_text,
                candidate_output=cand_text,
                metrics=list(dict.fromkeys(str(m) for m in row["metrics"])),
                checks=checks.get(rid, []),
                rationale=rationale.get(rid, []),
                diff_baseline=left,
                diff_candidate=right,
                improvement=improve,
            )
        )
    return examples


_RATIONALE_KEYS: Final = ("rationale", "reasoning", "explanation", "reason")


def _result(kind: str, passed: Any, value: Any, pairwise: bool) -> str:
    if passed is not None:
        return "pass" if passed else "fail"
    if value is None:
        return "—"
    if pairwise:
        return "candidate wins" if value > 0.5 else "baseline wins" if value < 0.5 else "tie"
    return f"{value:g}"


def _checks(
    candidate: str, ids: pa.ChunkedArray, scored: pa.Table
) -> tuple[dict[str, list[CheckResult]], dict[str, list[tuple[str, str]]]]:
    """Every check's and judge's result of the picked records, both arms, and judge rationales."""
    keep = pc.and_(
        pc.is_in(scored["record_id"], value_set=ids.combine_chunks()),
        pc.is_in(scored["arm"], value_set=pa.array(["baseline", candidate])),
    )
    rows = scored.filter(keep).to_pylist()
    by: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["record_id"], r["metric"]), {})[r["arm"]] = r
    checks: dict[str, list[CheckResult]] = {}
    rationale: dict[str, list[tuple[str, str]]] = {}
    for (rid, metric), arms in sorted(by.items()):
        b, c = arms.get("baseline"), arms.get(candidate)
        if c is not None and c["kind"] == "judge" and b is None:  # pairwise: one row per pair
            base_text = "—"
            cand_text = _result("judge", None, c["value"], True)
            change = {"candidate wins": "better", "baseline wins": "worse"}.get(cand_text, "")
        else:
            base_text = _result("", b["passed"], b["value"], False) if b else "—"
            cand_text = _result("", c["passed"], c["value"], False) if c else "—"
            change = ""
            if b and c and b["passed"] is not None and c["passed"] is not None:
                change = "worse" if b["passed"] and not c["passed"] else ""
                change = "better" if c["passed"] and not b["passed"] else change
            elif b and c and b["value"] is not None and c["value"] is not None:
                change = "worse" if c["value"] < b["value"] else ""
                change = "better" if c["value"] > b["value"] else change
        checks.setdefault(rid, []).append(
            CheckResult(metric, metric_label(metric), base_text, cand_text, change)
        )
        detail = (c or {}).get("detail")
        stored = (c or {}).get("rationale")
        if stored and (c or {}).get("kind") == "judge" and stored.strip():
            rationale.setdefault(rid, []).append((metric, stored.strip()))
        elif detail and (c or {}).get("kind") == "judge":
            try:
                parsed = orjson.loads(detail)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                for key in _RATIONALE_KEYS:
                    if isinstance(parsed.get(key), str) and parsed[key].strip():
                        rationale.setdefault(rid, []).append((metric, parsed[key].strip()))
                        break
    return checks, rationale


def _output(resp: dict[str, Any] | None) -> str | None:
    if resp is None:
        return None
    if resp["status"] != "ok":
        message = resp.get("error_message") or ""
        return f"[{resp['status']}: {resp.get('error_type') or 'error'}] {message}".rstrip()
    text = resp.get("output_text") or ""
    calls = resp.get("output_tool_calls")
    if calls and calls not in ("[]", "null"):
        text = (text + "\n" if text else "") + f"[tool calls] {calls}"
    return text
