"""The worst regressions of a candidate, side by side with the baseline (spec.report.top_examples).

A record regressed when a pass/fail check passed on the baseline and failed on the candidate, when
the candidate's own request failed while the baseline answered, or when a judge preferred the
baseline. Records are picked in SQL over the whole tables; only the few shown become Python.
Records take turns by the worst metric they failed, ranked by the gate's view (NO-GO metrics
first, critical checks first among them); within a metric, records failing more checks come first,
then a stable hash of the record id decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.report.figures import metric_label
from evalpipe.report.redact import redact_texts

__all__ = ["MAX_CHARS", "Example", "last_user_message", "worst_regressions"]

MAX_CHARS: Final = 1500
"""Longest text shown per side; the rest is cut with a note."""


@dataclass(frozen=True)
class Example:
    record_id: str
    failures: list[str]
    """What went wrong, e.g. `valid_json: passed on the baseline, failed on the candidate`."""
    attributes: list[tuple[str, str]]
    user_message: str
    baseline_output: str
    candidate_output: str


_SQL = """
WITH ranks AS (
    SELECT metric,
           row_number() OVER (
               ORDER BY coalesce(verdict = 'NO-GO', false) DESC, coalesce(critical, false) DESC,
                        coalesce(gated, false) DESC, p_adjusted NULLS LAST, idx
           ) AS rank
    FROM totals WHERE candidate = $cand
),
s AS (
    SELECT record_id, arm, metric, kind, passed, value FROM scores
    WHERE arm = 'baseline' OR arm = $cand
),
rule_fail AS (
    SELECT c.record_id, c.metric, 'check' AS why
    FROM s AS c JOIN s AS b
      ON b.record_id = c.record_id AND b.metric = c.metric AND b.arm = 'baseline'
    WHERE c.arm = $cand AND c.kind = 'rule' AND b.passed AND NOT c.passed
),
pair_loss AS (
    SELECT record_id, metric, 'pairwise' AS why
    FROM s WHERE arm = $cand AND kind = 'judge' AND metric IN (SELECT unnest($pairwise))
      AND value < 0.5
),
point_loss AS (
    SELECT c.record_id, c.metric, 'pointwise' AS why
    FROM s AS c JOIN s AS b
      ON b.record_id = c.record_id AND b.metric = c.metric AND b.arm = 'baseline'
    WHERE c.arm = $cand AND c.kind = 'judge' AND c.metric IN (SELECT unnest($pointwise))
      AND c.value < b.value
),
r AS (
    SELECT record_id, arm, status, error_origin FROM responses
    WHERE arm = 'baseline' OR arm = $cand
),
own_error AS (
    SELECT c.record_id, 'error_rate' AS metric, 'error' AS why
    FROM r AS c JOIN r AS b ON b.record_id = c.record_id AND b.arm = 'baseline'
    WHERE c.arm = $cand AND c.status = 'error' AND c.error_origin = 'candidate'
      AND b.status = 'ok'
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


def _describe(metric: str, why: str) -> str:
    label = metric_label(metric)
    if why == "check":
        return f"{label}: passed on the baseline, failed on the candidate"
    if why == "pairwise":
        return f"{label}: the judge preferred the baseline"
    if why == "pointwise":
        return f"{label}: the judge scored the candidate lower"
    return "the candidate's own request failed; the baseline answered"


def worst_regressions(
    candidates: list[str],
    *,
    gate: pa.Table,
    records: pa.Table,
    responses: pa.Table,
    scores: pa.Table,
    limit: int,
    slice_columns: list[str],
    redact: bool,
) -> dict[str, list[Example]]:
    """Per candidate, up to `limit` records where it did worse than the baseline, worst first."""
    out: dict[str, list[Example]] = {c: [] for c in candidates}
    if limit <= 0 or not candidates or scores.num_rows + responses.num_rows == 0:
        return out
    kinds = dict(zip(gate["metric"].to_pylist(), gate["kind"].to_pylist(), strict=True))
    pairwise = sorted(m for m, k in kinds.items() if k == "win_rate")
    pointwise = sorted(
        m for m, k in kinds.items() if k == "mean" and not str(m).startswith("diff.")
    )
    # Only repeat 0 of rule and judge scores can show a regression (diffs are most of the rows).
    keep = pc.and_(
        pc.fill_null(pc.equal(scores["repeat"], 0), False),
        pc.is_in(scores["kind"], value_set=pa.array(["rule", "judge"])),
    )
    scored = scores.filter(keep).select(["record_id", "arm", "metric", "kind", "passed", "value"])
    answered = responses.filter(pc.fill_null(pc.equal(responses["repeat"], 0), False)).select(
        ["record_id", "arm", "status", "error_origin"]
    )
    with duckdb.connect() as con:
        con.register("scores", scored)
        con.register("responses", answered)
        con.register("totals", _totals(gate))
        for cand in candidates:
            picked: pa.Table = con.sql(
                _SQL,
                params={
                    "cand": cand,
                    "pairwise": pairwise,
                    "pointwise": pointwise,
                    "limit": limit,
                },
            ).to_arrow_table()
            out[cand] = _examples(
                cand,
                picked,
                records=records,
                responses=responses,
                slice_columns=slice_columns,
                redact=redact,
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
    examples = []
    for i, row in enumerate(rows):
        rec = rec_by_id.get(row["record_id"], {})
        attrs = dict(rec.get("attributes") or [])
        shown = [(col, str(attrs[col])) for col in slice_columns if attrs.get(col) is not None]
        seen: list[str] = []
        for metric, why in zip(row["metrics"], row["whys"], strict=True):
            text = _describe(metric, why)
            if text not in seen:
                seen.append(text)
        examples.append(
            Example(
                record_id=str(row["record_id"]),
                failures=seen,
                attributes=shown,
                user_message=_cut(texts[3 * i], "(none)"),
                baseline_output=_cut(texts[3 * i + 1], "(no response)"),
                candidate_output=_cut(texts[3 * i + 2], "(no response)"),
            )
        )
    return examples


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
