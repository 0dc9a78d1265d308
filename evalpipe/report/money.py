"""What the switch means in money and time: cost per request, latency and the projected month.

The projection multiplies each arm's observed mean cost per answered request by the logged traffic
volume: requests per day over the logged window (records kept, plus those sampled out or dropped as
duplicates, which production served too) × 30. Breakdowns by a slice column or the hour of day use
each group's share of the logged records and the arm's mean cost within that group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from evalpipe.gate.numbers import finite

__all__ = ["ArmMoney", "Breakdown", "BreakdownRow", "Money", "money", "money_in"]

DAYS_PER_MONTH: Final = 30
GROUPS_SHOWN: Final = 20
"""Values of a breakdown shown before the rest are summed into one row."""
_MIN_WINDOW_DAYS: Final = 1 / 24


@dataclass(frozen=True)
class ArmMoney:
    arm: str
    answered: int
    cost_per_request: float | None
    monthly: float | None
    latency: tuple[float | None, float | None, float | None]
    """p50, p95, p99 in ms over answered requests."""
    ttft: tuple[float | None, float | None, float | None] | None
    """Time to first token p50, p95, p99 in ms; None when no response measured it."""


@dataclass(frozen=True)
class BreakdownRow:
    value: str
    records: int
    share: float
    monthly: dict[str, float | None]


@dataclass(frozen=True)
class Breakdown:
    dimension: str
    rows: list[BreakdownRow]


@dataclass(frozen=True)
class Money:
    logged: int
    """Requests production served in the window (records + sampled out + duplicates)."""
    days: float | None
    per_day: float | None
    """None when the window is too short (or has no timestamps) to project."""
    arms: list[ArmMoney]
    breakdowns: list[Breakdown] = field(default_factory=list)

    def arm(self, name: str) -> ArmMoney | None:
        return next((a for a in self.arms if a.arm == name), None)


def _q(v: Any) -> float | None:
    return float(v) if finite(v) else None


def _frame(records: pa.Table, columns: list[str]) -> tuple[pa.Table, list[str]]:
    """record_id, the hour of day and each slice column (as g0, g1, …) of every record."""
    cols: dict[str, Any] = {"record_id": records["record_id"]}
    names = []
    for k, col in enumerate(columns):
        cols[f"g{k}"] = pc.map_lookup(records["attributes"], col, "first")
        names.append(col)
    ts = records["timestamp"]
    cols[f"g{len(columns)}"] = pc.cast(pc.hour(ts), pa.string())
    names.append("hour of day (UTC)")
    return pa.table(cols), names


def money(
    records: pa.Table,
    responses: pa.Table,
    *,
    arms: list[str],
    slice_columns: list[str],
    extra_logged: int = 0,
) -> Money:
    """Cost, latency and the projected month per arm, in total and by slice column and hour.

    Args:
        records, responses: the run's tables.
        arms: the arms to show, baseline first.
        slice_columns: attribute names to break the month down by (e.g. tenant, feature).
        extra_logged: requests production served in the window that the run did not keep
            (sampled out, duplicates); they count towards the volume.
    """
    with duckdb.connect() as con:
        con.register(
            "responses_all",
            responses.select(
                ["record_id", "arm", "repeat", "status", "cost_usd", "latency_ms", "ttft_ms"]
            ),
        )
        return money_in(
            con, records, arms=arms, slice_columns=slice_columns, extra_logged=extra_logged
        )


def money_in(
    con: duckdb.DuckDBPyConnection,
    records: pa.Table,
    *,
    arms: list[str],
    slice_columns: list[str],
    extra_logged: int = 0,
) -> Money:
    """`money` of the responses in the view `responses_all` of `con` (a run's Parquet files,
    read in place: joined and ranked by DuckDB within its memory limit, no response held);
    `records` needs only record_id, timestamp and attributes."""
    frame, names = _frame(records, slice_columns)
    logged = records.num_rows + max(extra_logged, 0)
    days = per_day = None
    if records.num_rows:
        lo, hi = pc.min(records["timestamp"]).as_py(), pc.max(records["timestamp"]).as_py()
        if lo is not None and hi is not None:
            days = (hi - lo).total_seconds() / 86400
            per_day = logged / days if days >= _MIN_WINDOW_DAYS else None
    g = [f"g{k}" for k in range(len(names))]
    con.register("money_recs", frame)
    con.register("money_arms", pa.table({"arm": arms}))
    try:
        con.sql(
            "CREATE TEMP TABLE money_x AS SELECT resp.arm, resp.cost_usd, resp.latency_ms, "
            "resp.ttft_ms, "
            + ", ".join(f"recs.{c}" for c in g)
            + " FROM (SELECT record_id, arm, cost_usd, latency_ms, ttft_ms FROM responses_all"
            " WHERE status = 'ok' AND repeat = 0) resp JOIN money_recs recs USING (record_id)"
            " SEMI JOIN money_arms USING (arm)"
        )
        stats = con.sql(
            "SELECT arm, count(*) AS n, avg(cost_usd) AS cost,"
            " quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS lat,"
            " quantile_cont(ttft_ms, [0.5, 0.95, 0.99]) AS ttft, count(ttft_ms) AS n_ttft"
            " FROM money_x GROUP BY arm ORDER BY arm"
        ).to_arrow_table()
        by_group = []
        for c in g:
            counts = con.sql(
                f"SELECT coalesce({c}, '(none)') AS v, count(*) AS n FROM money_recs GROUP BY v "
                "ORDER BY n DESC, v"
            ).to_arrow_table()
            costs = con.sql(
                f"SELECT arm, coalesce({c}, '(none)') AS v, avg(cost_usd) AS cost FROM money_x "
                "GROUP BY arm, v ORDER BY arm, v"
            ).to_arrow_table()
            by_group.append((counts.to_pylist(), costs.to_pylist()))
    finally:
        con.execute("DROP TABLE IF EXISTS money_x")
        con.unregister("money_recs")
        con.unregister("money_arms")
    by_arm = {r["arm"]: r for r in stats.to_pylist()}
    out_arms = []
    for arm in arms:
        r = by_arm.get(arm)
        if r is None:
            out_arms.append(ArmMoney(arm, 0, None, None, (None, None, None), None))
            continue
        cost = _q(r["cost"])
        lat = tuple(_q(v) for v in (r["lat"] or [None] * 3))
        ttft = tuple(_q(v) for v in r["ttft"]) if r["n_ttft"] and r["ttft"] else None
        monthly = None if cost is None or per_day is None else cost * per_day * DAYS_PER_MONTH
        out_arms.append(ArmMoney(arm, int(r["n"]), cost, monthly, lat, ttft))  # type: ignore[arg-type]
    breakdowns = []
    if per_day is not None and records.num_rows:
        for name, (counts, costs) in zip(names, by_group, strict=True):
            cost_of = {(c["arm"], c["v"]): _q(c["cost"]) for c in costs}
            shown = counts[:GROUPS_SHOWN]
            rest = counts[GROUPS_SHOWN:]
            rows = []
            for c in shown:
                share = c["n"] / records.num_rows
                monthly = {}
                for arm in arms:
                    mean = cost_of.get((arm, c["v"]))
                    monthly[arm] = None if mean is None else mean * per_day * share * DAYS_PER_MONTH
                rows.append(BreakdownRow(str(c["v"]), int(c["n"]), share, monthly))
            if rest:
                n_rest = sum(c["n"] for c in rest)
                monthly = {}
                for arm in arms:
                    parts = [(cost_of.get((arm, c["v"])), c["n"] / records.num_rows) for c in rest]
                    known = [m * s for m, s in parts if m is not None]
                    monthly[arm] = sum(known) * per_day * DAYS_PER_MONTH if known else None
                rows.append(
                    BreakdownRow(
                        f"{len(rest):,} other values", n_rest, n_rest / records.num_rows, monthly
                    )
                )
            if name.startswith("hour"):
                rows.sort(key=lambda r: int(r.value) if r.value.isdigit() else 99)
                rows = [
                    BreakdownRow(
                        f"{int(r.value):02d}:00–{int(r.value) + 1:02d}:00",
                        r.records,
                        r.share,
                        r.monthly,
                    )
                    if r.value.isdigit()
                    else r
                    for r in rows
                ]
            breakdowns.append(Breakdown(name, rows))
    return Money(logged, days, per_day, out_arms, breakdowns)
