"""What was replayed, per arm: answered, failed (by origin), skipped, cached, spent, models seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from evalpipe.spec import Spec
from evalpipe.tables import ARMS_LOGGED

__all__ = ["ArmCoverage", "arm_coverage", "arm_coverage_in", "arm_order"]


@dataclass(frozen=True)
class ArmCoverage:
    arm: str
    requests: int
    replayed: int
    """Answered (status ok)."""
    errored: int
    errored_infrastructure: int
    """429, 5xx, connection and transport timeouts after retries (and errors of unknown origin)."""
    errored_candidate: int
    """The arm's own failure: a 4xx on its request, a content filter, its own timeout."""
    skipped: int
    cache_hits: int
    repeats: int
    cost_usd: float
    latency_p50_ms: float | None
    models: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "errored": self.errored,
            "errored_infrastructure": self.errored_infrastructure,
            "errored_candidate": self.errored_candidate,
            "skipped": self.skipped,
            "cache_hits": self.cache_hits,
        }


def arm_order(spec: Spec, arms: list[str]) -> list[str]:
    """baseline, the candidates in spec order, logged, then anything else."""
    first = ["baseline", *(c.name for c in spec.candidates), ARMS_LOGGED]
    return [a for a in first if a in arms] + sorted(a for a in arms if a not in first)


_SQL = """
SELECT arm,
       count(*) AS requests,
       count(*) FILTER (WHERE status = 'ok') AS replayed,
       count(*) FILTER (WHERE status = 'error') AS errored,
       count(*) FILTER (WHERE status = 'error' AND coalesce(error_origin, '') <> 'candidate')
           AS errored_infrastructure,
       count(*) FILTER (WHERE status = 'error' AND error_origin = 'candidate') AS errored_candidate,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE cache_hit) AS cache_hits,
       count(DISTINCT repeat) AS repeats,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       quantile_cont(latency_ms, 0.5) FILTER (WHERE status = 'ok') AS latency_p50_ms,
       coalesce(list(DISTINCT response_model ORDER BY response_model)
                FILTER (WHERE response_model IS NOT NULL), []) AS models
FROM responses_all
GROUP BY arm
ORDER BY arm
"""


def arm_coverage(responses: pa.Table, spec: Spec) -> list[ArmCoverage]:
    """One entry per arm present in the responses, in `arm_order`."""
    with duckdb.connect() as con:
        con.register(
            "responses_all",
            responses.select(
                [
                    "arm",
                    "status",
                    "error_origin",
                    "cache_hit",
                    "repeat",
                    "cost_usd",
                    "latency_ms",
                    "response_model",
                ]
            ),
        )
        return arm_coverage_in(con, spec)


def arm_coverage_in(con: duckdb.DuckDBPyConnection, spec: Spec) -> list[ArmCoverage]:
    """`arm_coverage` of the view `responses_all` in `con` (a run's Parquet files, read in
    place: counted out of core, no response held)."""
    rows: list[dict[str, Any]] = con.sql(_SQL).to_arrow_table().to_pylist()
    by_arm = {r["arm"]: r for r in rows if r["arm"] is not None}
    out = []
    for arm in arm_order(spec, list(by_arm)):
        r = by_arm[arm]
        out.append(
            ArmCoverage(
                arm=arm,
                requests=int(r["requests"]),
                replayed=int(r["replayed"]),
                errored=int(r["errored"]),
                errored_infrastructure=int(r["errored_infrastructure"]),
                errored_candidate=int(r["errored_candidate"]),
                skipped=int(r["skipped"]),
                cache_hits=int(r["cache_hits"]),
                repeats=int(r["repeats"]),
                cost_usd=float(r["cost_usd"]),
                latency_p50_ms=None if r["latency_p50_ms"] is None else float(r["latency_p50_ms"]),
                models=[str(m) for m in r["models"]],
            )
        )
    return out
