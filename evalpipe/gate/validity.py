"""Signs that an evaluation cannot be trusted: collapsed outputs, judge injection (INVALID rule 4),
custom scorers that failed, judges that disagree with people (`labels.min_kappa`), judges whose
answers on their frozen anchor set moved (`judges[].anchors`).

Both work on whole text columns: pyarrow compute for normalising and matching, rapidfuzz for
the similarity of distinct outputs to the most common ones.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray
from rapidfuzz import fuzz, process

from evalpipe.gate.agreement import Agreement, agreement
from evalpipe.gate.frame import query_table
from evalpipe.gate.numbers import pct
from evalpipe.spec import Spec

__all__ = [
    "INJECTION_PATTERN",
    "INJECTION_VERSION",
    "Calibration",
    "Drift",
    "ScoringValidity",
    "collapse_share",
    "injection_share",
    "judge_calibration",
    "judge_drift",
    "position_bias",
    "scorer_failures",
    "scoring_validity",
]

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]

INJECTION_VERSION: Final = "injection@1"
"""Version of `INJECTION_PATTERN`; bump it when the list changes."""

_INJECTION: Final = (
    r"ignore\s+(all\s+|the\s+)?(previous|prior|above|earlier|preceding)?\s*(instructions|prompts?)",
    r"ignore\s+(all|previous|the\s+above)\s+instructions",
    r"<\|(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>",
    r"\[/?INST\]|<</?SYS>>|###\s*(system|instruction)\s*:",
    r"\n\n(human|assistant)\s*:",
    r"\byou\s+are\s+now\s+(a|an|the|my)\s+(\w+\s+)?"
    r"(assistant|ai|model|judge|grader|evaluator|rater|system|chatbot|dan)\b",
    r"\byou\s+are\s+now\s+(dan|jailbroken|unrestricted|free\s+from|in\s+\w+\s+mode)",
    r"\b(dear|attention|hey|hello|note\s+to(\s+the)?|to\s+the)\s+(ai\s+)?(evaluator|grader|judge|rater)s?\b",
    r"\b(evaluator|grader|judge|rater)s?\s*:",
    r"\b(give|assign|award)\s+(this|my|the)\s+(response|answer|output)\s+(a\s+)?"
    r"(perfect|full|maximum|max|top|high(est)?)\s+(score|rating|mark|grade)",
    r"\b(rate|score|grade)\s+(this|my)\s+(response|answer|output)\s+(as\s+)?(a\s+)?"
    r"(10|ten|5|five|100|perfect|highest|the\s+best)\b",
    r"\b(prefer|choose|pick|select)\s+(response|answer|output|assistant)\s+[ab12]\b",
    r"\b(response|answer|output)\s+[ab]\s+is\s+(clearly\s+|much\s+)?(better|superior|preferred)",
    r"\"winner\"\s*:\s*\"(a|b)\"",
)
INJECTION_PATTERN: Final = "|".join(f"(?:{p})" for p in _INJECTION)
"""Case-insensitive RE2 pattern of text aimed at the judge rather than the user."""


_SCORER_FAILED: Final = r"^check .+ \(scorer .+\): "
"""How `errors.ScorerError` messages start (the `error` of a failed custom scorer's rows)."""


def scorer_failures(scores: pa.Table | duckdb.DuckDBPyConnection) -> list[str]:
    """One reason per custom scorer that failed (raised, or answered the wrong shape): a check
    that could not be computed leaves the evaluation unable to say what it claims.

    `scores`: the table, or a DuckDB connection with a `scores` view (`frame.GateTables`)."""
    with _scores_view(scores) as con:
        errors = con.execute(
            "SELECT DISTINCT error FROM scores WHERE kind = 'rule' AND error IS NOT NULL "
            "AND regexp_matches(error, ?)",
            [_SCORER_FAILED],
        ).fetchall()
    return [f"a check could not be computed: {e}" for e in sorted(e for (e,) in errors)]


@contextmanager
def _scores_view(
    scores: pa.Table | duckdb.DuckDBPyConnection,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection whose view `scores` is `scores` (given a connection: itself)."""
    if isinstance(scores, duckdb.DuckDBPyConnection):
        yield scores
        return
    with duckdb.connect() as con:
        con.register("scores", scores)
        yield con


def injection_share(texts: pa.Array | pa.ChunkedArray | Iterable[pa.Array]) -> float:
    """Share of non-null outputs matching `INJECTION_PATTERN` (0 when there are none); `texts`
    may come in batches (an arm's outputs read a batch at a time)."""
    batches = [texts] if isinstance(texts, pa.Array | pa.ChunkedArray) else texts
    hits = total = 0
    for batch in batches:
        valid = pc.drop_null(batch)
        total += len(valid)
        if len(valid):
            matched = pc.match_substring_regex(valid, INJECTION_PATTERN, ignore_case=True)
            hits += int(pc.sum(matched).as_py() or 0)
    return float(hits) / total if total else 0.0


def _normalise(texts: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    lowered = pc.utf8_lower(texts)
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(lowered, r"\s+", " "))


_NORMALISE_ROWS: Final = 25_000
"""Outputs normalised at a time (each step of `_normalise` copies the text)."""


_CDIST_ROWS: Final = 50_000
"""Distinct texts compared with the most common ones at a time."""

_COUNT_MEMORY: Final = "256MB"
"""DuckDB's memory for counting an arm's texts (beyond it, it spills to disk)."""


def collapse_share(
    texts: pa.Array | pa.ChunkedArray | Iterable[pa.Array],
    *,
    top: int = 5,
    similarity: float = 0.95,
    database: duckdb.DuckDBPyConnection | None = None,
) -> float:
    """Share of outputs equal or nearly equal (rapidfuzz ratio ≥ similarity) to the `top` most common.

    Outputs are lower-cased with whitespace collapsed first. Pass one output per distinct
    input, so that a repeated question answered the same way is not counted as collapse. The
    texts may come in batches (an arm's outputs, a batch at a time): each is normalised
    `_NORMALISE_ROWS` at a time and counted in DuckDB, so a million answers are never held at
    once in this process: in temporary tables of `database` (a cursor of it: its memory limit
    then bounds the texts' source and their counts together), else of a database of its own
    (within `_COUNT_MEMORY`), spilling to disk beyond; either goes with the connection.
    """
    from evalpipe.memory import release_freed_memory
    from evalpipe.store import out_of_core_config

    batches = [texts] if isinstance(texts, pa.Array | pa.ChunkedArray) else texts
    total = 0
    if database is None:
        con = duckdb.connect(config=out_of_core_config(_COUNT_MEMORY))
    else:
        con = database.cursor()
    with con:
        con.execute("CREATE TEMP TABLE normalised (v VARCHAR)")
        for batch in batches:
            valid = pc.drop_null(batch)
            total += len(valid)
            for start in range(0, len(valid), _NORMALISE_ROWS):
                chunk = pa.table({"v": _normalise(valid.slice(start, _NORMALISE_ROWS))})
                con.register("chunk", chunk)
                con.execute("INSERT INTO normalised SELECT v FROM chunk")
                con.unregister("chunk")
            release_freed_memory()  # (what reading and normalising the batch freed)
        if total == 0:
            return 0.0
        con.execute(
            "CREATE TEMP TABLE counts AS SELECT v, count(*) AS c FROM normalised GROUP BY v"
        )
        con.execute("DROP TABLE normalised")
        head = [
            str(v)
            for (v,) in con.execute(
                "SELECT v FROM counts ORDER BY c DESC, v ASC LIMIT ?", [top]
            ).fetchall()
        ]
        # Only strings of compatible length can reach the ratio: 2·min / (a + b) ≥ similarity.
        head_len = [len(h) for h in head]  # (code points, as DuckDB's length)
        lo = min(head_len) * similarity / (2 - similarity)
        hi = max(head_len) * (2 - similarity) / similarity
        reader = con.sql(
            "SELECT v, c FROM counts WHERE length(v) >= ? AND length(v) <= ?", params=[lo, hi]
        ).to_arrow_reader(_CDIST_ROWS)
        close = 0
        for part in reader:
            scores = process.cdist(
                part.column(0).to_pylist(),
                head,
                scorer=fuzz.ratio,
                score_cutoff=similarity * 100,
                dtype=np.float32,
            )
            near = scores.max(axis=1) >= similarity * 100
            close += int(np.asarray(part.column(1), dtype=np.int64)[near].sum())
    return float(close) / total


# --- judges against people ---------------------------------------------------------------------


class Calibration(NamedTuple):
    """One label set beside one judge: who was labelled, the figures, the bar it must clear."""

    label: str
    judge: str
    arm: str
    kind: str
    figures: Agreement
    min_kappa: float | None

    @property
    def kappa(self) -> float:
        """The κ that decides: unweighted for binary labels, quadratic-weighted otherwise."""
        return self.figures.kappa if self.kind == "binary" else self.figures.weighted_kappa

    def below(self) -> bool:
        return self.min_kappa is not None and not (self.kappa >= self.min_kappa)

    def sentence(self) -> str:
        f = self.figures
        which = "κ" if self.kind == "binary" else "weighted κ"
        matrix = "; ".join(
            f"judge {_cat(c)}: " + ", ".join(str(int(x)) for x in row)
            for c, row in zip(f.categories, f.confusion, strict=True)
        )
        bar = f" (below {self.min_kappa:.2f})" if self.below() else ""
        return (
            f"the {self.judge} judge agrees with the labels `{self.label}` at {which} = "
            f"{self.kappa:.2f}{bar}: agreement {pct(f.agreement)} on {f.n:,} records "
            f"(always the most common label: {pct(f.majority)}); confusion matrix, columns "
            f"people {', '.join(_cat(c) for c in f.categories)}: {matrix}"
        )


def _cat(c: float) -> str:
    return f"{c:g}"


def _categorise(
    judge_values: F64, people: F64, kind: str, scale: tuple[int, int], mapped: bool
) -> tuple[F64, F64, list[float]]:
    lo, hi = scale
    if kind == "preference":
        cats = [0.0, 0.5, 1.0]
        return _three(judge_values), _three(people), cats
    if kind == "binary":
        return (
            (judge_values >= (lo + hi) / 2).astype(np.float64),
            (people >= 0.5).astype(np.float64),
            [0.0, 1.0],
        )
    if mapped:  # labels given on 0–1 by `range`: back onto the judge's scale
        people = lo + people * (hi - lo)
    cats = [float(c) for c in range(lo, hi + 1)]
    return np.clip(np.round(judge_values), lo, hi), np.clip(np.round(people), lo, hi), cats


def _three(w: F64) -> F64:
    return np.where(w > 0.5, 1.0, np.where(w < 0.5, 0.0, 0.5))


def judge_calibration(
    scores: pa.Table | duckdb.DuckDBPyConnection, records: pa.Table, spec: Spec
) -> list[Calibration]:
    """Agreement and κ of each judge with the labels that calibrate it (`labels.<name>.judge`):
    the judge's repeat-0 scores of the labelled arm beside the labels, record by record."""
    from evalpipe.score.labels import label_values  # only specs with labels pay its import

    judges = {j.name: j for j in spec.judges}
    out = []
    for name, label in spec.labels.items():
        if label.judge is None:
            continue
        judge = judges[label.judge]
        default = (
            spec.candidates[0].name if judge.type == "pairwise" and spec.candidates else "logged"
        )
        arm = label.arm or default
        people = label_values(name, label, records, spec)
        with _scores_view(scores) as con:
            judged = query_table(
                con,
                "SELECT record_id, value FROM scores WHERE metric = ? AND arm = ? "
                "AND repeat = 0 AND value IS NOT NULL",
                [judge.name, arm],
            )
        both = judged.join(people, "record_id", right_suffix="_people", join_type="inner")
        jv = np.asarray(both["value"], dtype=np.float64)
        pv = np.asarray(both["value_people"], dtype=np.float64)
        a, b, cats = _categorise(jv, pv, label.kind, judge.scale, label.range is not None)
        out.append(
            Calibration(name, judge.name, arm, label.kind, agreement(a, b, cats), label.min_kappa)
        )
    return out


def position_bias(
    scores: pa.Table | duckdb.DuckDBPyConnection, judge: str, arm: str
) -> tuple[float, float, int]:
    """(share of pairs where the judge chose the same position in both orders, share where
    that position was the first, pairs judged in both orders) of a pairwise judge's rows."""
    with _scores_view(scores) as con:
        # w1, w2: the candidate's win in each order; fa: the candidate was answer A first. The
        # answer labelled A won the first order when (w1 = 1) = fa, the second when
        # (w2 = 1) = NOT fa; the same position both times is position, not content (ties: not).
        ((same, first, n),) = con.execute(
            """
            WITH d AS (
                SELECT CAST(json_extract(detail, '$.orders[0]') AS DOUBLE) AS w1,
                       CAST(json_extract(detail, '$.orders[1]') AS DOUBLE) AS w2,
                       CAST(json_extract(detail, '$.first_a') AS BOOLEAN) AS fa
                FROM scores
                WHERE metric = ? AND arm = ? AND value IS NOT NULL
                  AND json_valid(detail) AND json_extract(detail, '$.orders') IS NOT NULL
                  AND json_extract(detail, '$.first_a') IS NOT NULL
            ), p AS (
                SELECT ((w1 = 1) = fa) AS a_first, ((w2 = 1) = NOT fa) AS a_second,
                       w1 <> 0.5 AND w2 <> 0.5 AS decided
                FROM d
            )
            SELECT count(*) FILTER (WHERE decided AND a_first = a_second),
                   count(*) FILTER (WHERE decided AND a_first AND a_second),
                   count(*)
            FROM p
            """,
            [judge, arm],
        ).fetchall()
    if n == 0:
        return math.nan, math.nan, 0
    return same / n, first / n, int(n)


class Drift(NamedTuple):
    """One judge on its anchor set: agreement with the known verdicts and with the previous run."""

    judge: str
    judge_model: str
    prompt_version: str
    n: int
    """Anchors judged (answered)."""
    agreed: int
    """Anchors whose answer matches the known verdict."""
    compared: int
    """Anchors the previous run of the spec also answered (same judge model and prompt)."""
    changed: int
    """Of those, anchors answered differently this time."""
    failed: int
    """Anchors the judge gave no usable answer on."""
    min_agreement: float
    max_changed: float

    @property
    def agreement(self) -> float:
        """Share of the anchors answered as known (an anchor without an answer does not agree)."""
        total = self.n + self.failed
        return self.agreed / total if total else math.nan

    @property
    def changed_share(self) -> float:
        return self.changed / self.compared if self.compared else math.nan

    def alarm(self) -> bool:
        low = not (self.agreement >= self.min_agreement)  # no answer at all is an alarm too
        moved = self.compared > 0 and self.changed_share > self.max_changed
        return low or moved

    def sentence(self) -> str:
        text = (
            f"the {self.judge} judge ({self.judge_model}, {self.prompt_version}) agrees with "
            f"{self.agreed} of {self.n + self.failed} anchor verdicts ({pct(self.agreement)}; "
            f"bar {pct(self.min_agreement, 0)})"
        )
        if self.compared:
            text += (
                f" and answered {self.changed} of {self.compared} anchors differently from the "
                f"previous run ({pct(self.changed_share)}; limit {pct(self.max_changed, 0)})"
            )
        if self.alarm():
            text = (
                "the judge changed, not the candidate: "
                + text
                + "; its verdicts on the candidates cannot be compared with earlier runs"
            )
        return text


_DRIFT_SQL: Final = """
SELECT metric, min(judge_model) AS judge_model, min(prompt_version) AS prompt_version,
       count(*) FILTER (WHERE value IS NOT NULL) AS n,
       count(*) FILTER (WHERE value IS NOT NULL AND passed) AS agreed,
       count(*) FILTER (WHERE value IS NULL) AS failed,
       count(*) FILTER (WHERE json_extract_string(detail, '$.previous') IS NOT NULL
                          AND value IS NOT NULL) AS compared,
       count(*) FILTER (WHERE json_extract_string(detail, '$.previous') IS NOT NULL
                          AND value IS NOT NULL
                          AND json_extract_string(detail, '$.previous')
                              <> json_extract_string(detail, '$.answer')) AS changed
FROM anchors
GROUP BY metric
ORDER BY metric
"""


def judge_drift(scores: pa.Table | duckdb.DuckDBPyConnection, spec: Spec) -> list[Drift]:
    """Each judge's figures on its anchor set (rows of kind `anchor`, `score.judges.anchors`)."""
    with _scores_view(scores) as con:
        figures = (
            con.sql(
                "WITH anchors AS (SELECT metric, judge_model, prompt_version, value, passed, "
                "detail FROM scores WHERE kind = 'anchor') " + _DRIFT_SQL
            )
            .to_arrow_table()
            .to_pylist()
        )
    if not figures:
        return []
    judges = {j.name: j for j in spec.judges}
    out = []
    for f in figures:
        judge = judges.get(str(f["metric"]))
        if judge is None:
            continue
        out.append(
            Drift(
                judge.name,
                str(f["judge_model"]),
                str(f["prompt_version"]),
                int(f["n"]),
                int(f["agreed"]),
                int(f["compared"]),
                int(f["changed"]),
                int(f["failed"]),
                judge.anchors.min_agreement,
                judge.anchors.max_changed,
            )
        )
    return out


class ScoringValidity(NamedTuple):
    """What the scores say about the evaluation itself, for every candidate."""

    reasons: list[str]
    """INVALID reasons (a scorer that failed, a judge below `min_kappa`)."""
    figures: dict[str, dict[str, dict[str, float]]]
    """Candidate → metric → figures shown beside it (κ, agreement, position bias)."""
    calibrations: list[Calibration]
    drift: tuple[Drift, ...] = ()


def scoring_validity(
    scores: pa.Table | duckdb.DuckDBPyConnection, records: pa.Table, spec: Spec
) -> ScoringValidity:
    """Scorer failures, judges' agreement with people and with their anchor sets, and position
    bias (INVALID reasons and figures that `gate_scores` adds to every candidate)."""
    reasons = scorer_failures(scores)
    calibrations = judge_calibration(scores, records, spec) if spec.labels else []
    for c in calibrations:
        log.info("%s", c.sentence())
        if c.below():
            reasons.append(c.sentence())
    drift = judge_drift(scores, spec)
    for d in drift:
        log.info("%s", d.sentence())
        if d.alarm():
            reasons.append(d.sentence())
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for cand in spec.candidates:
        per: dict[str, dict[str, float]] = {}
        for j in spec.judges:
            if j.type == "pairwise":
                rate, first, n = position_bias(scores, j.name, cand.name)
                if n:
                    per.setdefault(j.name, {}).update(
                        position_bias_rate=rate, position_bias_first=first
                    )
        for c in calibrations:
            f = c.figures
            per.setdefault(c.judge, {}).update(
                {
                    f"labels_{c.label}_n": float(f.n),
                    f"labels_{c.label}_agreement": f.agreement,
                    f"labels_{c.label}_kappa": f.kappa,
                    f"labels_{c.label}_weighted_kappa": f.weighted_kappa,
                    f"labels_{c.label}_majority": f.majority,
                }
            )
        for d in drift:
            per.setdefault(d.judge, {}).update(
                anchors_n=float(d.n + d.failed), anchors_agreement=d.agreement
            )
            if d.compared:
                per[d.judge]["anchors_changed"] = d.changed_share
        figures[cand.name] = per
    return ScoringValidity(reasons, figures, calibrations, tuple(drift))
