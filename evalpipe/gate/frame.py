"""The gate's view of a run: one slot per record, per arm, per metric (STATISTICS.md, "Which records count").

Records are put in record_id order, so every array here is indexed by that position and no
result depends on the order of rows in the input tables. Response states fold status and
error_origin into four codes; the mapping of errors onto metric values happens in `shadow.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from evalpipe.spec import Spec
from evalpipe.tables import column_values

__all__ = [
    "INFRA",
    "MISSING",
    "OK",
    "OWN_ERROR",
    "ArmData",
    "Frame",
    "MetricValues",
    "ScoreIndex",
    "build_frame",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

MISSING: Final = 0
"""No response (skipped, not replayed)."""
OK: Final = 1
OWN_ERROR: Final = 2
"""The arm's own failure (4xx on its request, content filter, its own timeout)."""
INFRA: Final = 3
"""Infrastructure failure after retries (429, 5xx, connection); an error of unknown origin too."""


@dataclass(frozen=True)
class ArmData:
    """One arm's repeat-0 responses, one slot per record."""

    state: NDArray[np.int8]
    latency: F64
    cost: F64
    length: F64
    text: pa.Array
    """output_text per record (null where there is no ok response)."""
    model: str | None
    ttft: F64
    """Time to first token in ms (nan where not streamed)."""

    def count(self, state: int) -> int:
        return int(np.count_nonzero(self.state == state))


@dataclass(frozen=True)
class MetricValues:
    """One metric on one arm, one slot per record."""

    has_row: NDArray[np.bool_]
    value: F64
    """nan where the row is missing or null."""
    agree: NDArray[np.bool_]
    """Pairwise judges: the two orders agreed."""


@dataclass(frozen=True)
class ScoreIndex:
    """Repeat-0 score rows as arrays, looked up by (metric, arm)."""

    n_records: int
    ridx: I64
    metric: I64
    arm: I64
    value: F64
    agree: NDArray[np.bool_]
    metrics: list[str]
    arms: list[str]

    def get(self, metric: str, arm: str) -> MetricValues:
        has = np.zeros(self.n_records, dtype=bool)
        value = np.full(self.n_records, np.nan)
        agree = np.zeros(self.n_records, dtype=bool)
        if metric in self.metrics and arm in self.arms:
            sel = (self.metric == self.metrics.index(metric)) & (self.arm == self.arms.index(arm))
            rows = self.ridx[sel]
            has[rows] = True
            value[rows] = self.value[sel]
            agree[rows] = self.agree[sel]
        return MetricValues(has, value, agree)


@dataclass(frozen=True)
class Frame:
    record_ids: pa.Array
    cluster: I64
    """Cluster code per record (records without a cluster value are their own cluster)."""
    clustered: bool
    slices: dict[str, tuple[I64, list[str]]]
    """Slice column → (code per record, −1 where null; the value of each code)."""
    distinct_input: NDArray[np.bool_]
    """The first record (by id) of each distinct request."""
    arms: dict[str, ArmData]
    scores: ScoreIndex

    @property
    def n(self) -> int:
        return len(self.record_ids)


def _codes(values: pa.ChunkedArray | pa.Array) -> tuple[I64, list[str]]:
    labels = pc.unique(pc.drop_null(values)).sort()
    idx = pc.index_in(values, value_set=labels)
    return np.asarray(pc.fill_null(idx, -1), dtype=np.int64), labels.to_pylist()


def _arm(
    responses: pa.Table, ridx: I64, n: int, arm: str, model: str | None, timeout_ms: float
) -> ArmData:
    sel = np.asarray(pc.equal(responses["arm"], arm), dtype=bool) & (ridx >= 0)
    rows = np.flatnonzero(sel)
    sub = responses.take(pa.array(rows))
    where = ridx[rows]
    status = sub["status"]
    ok = np.asarray(pc.fill_null(pc.equal(status, "ok"), False), dtype=bool)
    err = np.asarray(pc.fill_null(pc.equal(status, "error"), False), dtype=bool)
    own = np.asarray(pc.fill_null(pc.equal(sub["error_origin"], "candidate"), False), dtype=bool)
    code = np.where(ok, OK, np.where(err & own, OWN_ERROR, np.where(err, INFRA, MISSING)))
    state = np.zeros(n, dtype=np.int8)
    state[where] = code
    latency = np.full(n, np.nan)
    latency[where] = np.asarray(pc.fill_null(sub["latency_ms"], np.nan), dtype=np.float64)
    latency[state == OWN_ERROR] = timeout_ms  # censored at the arm's timeout
    cost = np.full(n, np.nan)
    cost[where] = np.asarray(pc.fill_null(sub["cost_usd"], np.nan), dtype=np.float64)
    length = np.full(n, np.nan)
    length[where] = np.asarray(
        pc.fill_null(pc.utf8_length(pc.fill_null(sub["output_text"], "")), 0), dtype=np.float64
    )
    length[state == OWN_ERROR] = 0.0
    order = np.full(n, -1, dtype=np.int64)
    order[where[ok]] = rows[ok]
    text = responses["output_text"].take(pa.array(np.where(order >= 0, order, 0)))
    text = pc.if_else(pa.array(order >= 0), text, pa.scalar(None, pa.string()))
    ttft = np.full(n, np.nan)
    ttft[where] = np.asarray(pc.fill_null(sub["ttft_ms"], np.nan), dtype=np.float64)
    ttft[state == OWN_ERROR] = timeout_ms  # censored as latency is
    return ArmData(state, latency, cost, length, text.combine_chunks(), model, ttft)


def build_frame(scores: pa.Table, responses: pa.Table, records: pa.Table, spec: Spec) -> Frame:
    """Index records, repeat-0 responses and scores of the baseline and candidates by record."""
    records = records.sort_by("record_id")
    ids = records["record_id"].combine_chunks()
    n = len(ids)
    arm_names = ["baseline", *(c.name for c in spec.candidates)]

    if spec.gate.cluster:
        keys = column_values(records, spec.gate.cluster)
        keys = pc.if_else(pc.is_null(keys), pc.binary_join_element_wise("\x00", ids, ""), keys)
        cluster = np.asarray(pc.rank(keys, sort_keys="ascending", tiebreaker="dense"), np.int64) - 1
    else:
        cluster = np.arange(n, dtype=np.int64)
    slices = {col: _codes(column_values(records, col)) for col in spec.gate.slices}
    sha = records["request_sha256"]
    sha = pc.if_else(pc.is_null(sha), pc.binary_join_element_wise("\x00", ids, ""), sha)
    _, first = np.unique(np.asarray(pc.rank(sha, tiebreaker="dense")), return_index=True)
    distinct = np.zeros(n, dtype=bool)
    distinct[first] = True

    resp = responses.select(
        [
            "record_id",
            "arm",
            "repeat",
            "status",
            "error_origin",
            "latency_ms",
            "ttft_ms",
            "cost_usd",
            "output_text",
        ]
    )
    resp = resp.filter(pc.fill_null(pc.equal(resp["repeat"], 0), False))
    rid = np.asarray(pc.fill_null(pc.index_in(resp["record_id"], value_set=ids), -1), np.int64)
    arms = {}
    for name in arm_names:
        arm = spec.arm_named(name)
        timeout = spec.limit_for(arm.model).timeout_s or 60.0
        arms[name] = _arm(resp, rid, n, name, arm.model, timeout * 1000.0)

    # Masks and codes over the whole scores table: filtering it first would copy every string.
    sidx = np.asarray(pc.fill_null(pc.index_in(scores["record_id"], value_set=ids), -1), np.int64)
    arm_codes, arms_seen = _codes(scores["arm"])
    wanted = np.isin(arm_codes, [i for i, a in enumerate(arms_seen) if a in arm_names])
    repeat0 = np.asarray(pc.fill_null(pc.equal(scores["repeat"], 0), False), dtype=bool)
    keep = np.flatnonzero((sidx >= 0) & wanted & repeat0)
    metric_codes, metrics = _codes(scores["metric"])
    detail = scores["detail"]
    agree = np.asarray(
        pc.fill_null(
            pc.or_(
                pc.match_substring(detail, '"orders_agree":true'),
                pc.match_substring(detail, '"orders_agree": true'),
            ),
            False,
        ),
        dtype=bool,
    )
    index = ScoreIndex(
        n_records=n,
        ridx=sidx[keep],
        metric=metric_codes[keep],
        arm=arm_codes[keep],
        value=np.asarray(pc.fill_null(scores["value"], np.nan), dtype=np.float64)[keep],
        agree=agree[keep],
        metrics=metrics,
        arms=arms_seen,
    )
    return Frame(ids, cluster, spec.gate.cluster is not None, slices, distinct, arms, index)
