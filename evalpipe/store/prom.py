"""metrics.prom: a finished run's figures as OpenMetrics text, for a Prometheus textfile collector
or a Pushgateway (`alerts.pushgateway_url`).

Per candidate, gated metric and slice: the estimate (Δ, or the ratio), its CI bounds, the margin
and the verdict as a number (0 GO, 1 NO-GO, 2 NOT-PROVEN, 3 INVALID, as the exit codes); per arm:
each rule check's value, latency p50/p95/p99, error rate and cost. Labelled by spec, candidate or
arm, the model snapshot each arm answered as, and the slice (`all` for the whole run).
"""

from __future__ import annotations

import logging
import math
import urllib.parse
from typing import Final

import duckdb

from evalpipe.notify import deliver
from evalpipe.store import Run, atomic_path

__all__ = ["VERDICT_NUMBER", "openmetrics", "push_metrics", "write_metrics_prom"]

log = logging.getLogger(__name__)

VERDICT_NUMBER: Final = {"GO": 0, "NO-GO": 1, "NOT-PROVEN": 2, "INVALID": 3}
"""A verdict as a number, as its exit code."""

_HELP: Final = {
    "evalpipe_gate_estimate": "Candidate minus baseline (or candidate/baseline for ratios).",
    "evalpipe_gate_ci_low": "Lower bound of the estimate's 95% interval.",
    "evalpipe_gate_ci_high": "Upper bound of the estimate's 95% interval.",
    "evalpipe_gate_margin": "Non-inferiority margin of the metric.",
    "evalpipe_gate_verdict": "Verdict: 0 GO, 1 NO-GO, 2 NOT-PROVEN, 3 INVALID.",
    "evalpipe_run_verdict": "Candidate verdict: 0 GO, 1 NO-GO, 2 NOT-PROVEN, 3 INVALID.",
    "evalpipe_arm_check": "Share of an arm's answers that pass a rule check.",
    "evalpipe_arm_latency_seconds": "Latency quantiles of an arm's answered requests.",
    "evalpipe_arm_error_rate": "Share of an arm's requests that ended in an error.",
    "evalpipe_arm_cost_usd": "Spend of an arm's requests at list prices.",
}


def _label(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(name: str, labels: dict[str, object], value: float | None) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    body = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
    number = repr(float(value)) if math.isfinite(value) else ("+Inf" if value > 0 else "-Inf")
    return f"{name}{{{body}}} {number}"


def openmetrics(run: Run) -> str:
    """The run's figures in the OpenMetrics text format (ending `# EOF`)."""
    spec = run.spec.name
    manifest = run.manifest()
    models = {arm: ", ".join(m) for arm, m in (manifest.get("models_seen") or {}).items()}
    samples: dict[str, list[str]] = {name: [] for name in _HELP}

    def add(name: str, labels: dict[str, object], value: float | None) -> None:
        line = _sample(name, labels, value)
        if line is not None:
            samples[name].append(line)

    for row in run.read_gate().to_pylist():
        if not row.get("gated"):
            continue
        labels = {
            "spec": spec,
            "candidate": row["candidate"],
            "model": models.get(row["candidate"], ""),
            "metric": row["metric"],
            "slice": f"{row['slice_col']}={row['slice_value']}" if row["slice_col"] else "all",
        }
        for name, key in (
            ("evalpipe_gate_estimate", "estimate"),
            ("evalpipe_gate_ci_low", "ci_low"),
            ("evalpipe_gate_ci_high", "ci_high"),
            ("evalpipe_gate_margin", "margin"),
        ):
            add(name, labels, row.get(key))
        add("evalpipe_gate_verdict", labels, VERDICT_NUMBER.get(str(row.get("verdict"))))
    for cand, c in (manifest.get("candidates") or {}).items():
        number = VERDICT_NUMBER.get(str(c.get("verdict")))
        add("evalpipe_run_verdict", {"spec": spec, "candidate": cand}, number)
    checks = [c.name for c in run.spec.checks]
    with duckdb.connect() as con:
        # (views over the run's files: a large run's tables are not read into memory)
        con.execute(
            f"CREATE VIEW r AS {run.select_sql('responses', ['arm', 'status', 'latency_ms', 'cost_usd'])}"
        )
        con.execute(
            f"CREATE VIEW s AS {run.select_sql('scores', ['arm', 'repeat', 'metric', 'value'])}"
        )
        arms = con.sql(
            "SELECT arm, quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FILTER (WHERE status = 'ok'),"
            " avg(CASE WHEN status = 'error' THEN 1.0 ELSE 0.0 END) FILTER "
            "(WHERE status <> 'skipped'), sum(cost_usd) FROM r WHERE arm <> 'logged' "
            "GROUP BY arm ORDER BY arm"
        ).fetchall()
        values = con.sql(
            "SELECT arm, metric, avg(value) FROM s WHERE repeat = 0 AND value IS NOT NULL "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    for arm, quantiles, error_rate, cost in arms:
        labels = {"spec": spec, "arm": arm, "model": models.get(arm, "")}
        for q, v in zip(("0.5", "0.95", "0.99"), quantiles or [], strict=False):
            add("evalpipe_arm_latency_seconds", {**labels, "quantile": q}, v / 1000 if v else v)
        add("evalpipe_arm_error_rate", labels, error_rate)
        add("evalpipe_arm_cost_usd", labels, cost)
    for arm, metric, value in values:
        if metric in checks:
            labels = {"spec": spec, "arm": arm, "model": models.get(arm, ""), "metric": metric}
            add("evalpipe_arm_check", labels, value)
    lines = []
    for name, help_text in _HELP.items():
        if samples[name]:
            lines += [f"# TYPE {name} gauge", f"# HELP {name} {help_text}", *samples[name]]
    return "\n".join([*lines, "# EOF"]) + "\n"


def write_metrics_prom(run: Run) -> str:
    """Write metrics.prom into the run's folder (and beside its report); returns the text."""
    text = openmetrics(run)
    targets = [run.path("metrics.prom")]
    report = run.manifest().get("report")
    if report:
        from pathlib import Path

        targets.append(Path(report).parent / "metrics.prom")
    for path in targets:
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    run.publish(targets[0])
    return text


def push_metrics(url: str, spec_name: str, text: str, *, timeout_s: float = 10.0) -> str:
    """PUT the metrics to a Pushgateway under job `evalpipe`, grouped by spec; returns `sent` or
    `failed: …` (never raises: monitoring must not fail a run)."""
    target = f"{url.rstrip('/')}/metrics/job/evalpipe/spec/{urllib.parse.quote(spec_name, safe='')}"
    body = text.removesuffix("# EOF\n").encode()  # the Pushgateway reads the Prometheus text format
    why = deliver(
        target, body, method="PUT", content_type="text/plain; version=0.0.4", timeout_s=timeout_s
    )
    if why == "sent":
        return why
    log.error("Pushgateway %s: %s; the run goes on", url, why)
    return f"failed: {why}"
