"""OpenTelemetry GenAI `gen_ai.evaluation.result` events of a finished run, sent by OTLP/HTTP to
`otel.endpoint` (the `otel` extra: `pip install 'evalpipe[otel]'`).

One event per candidate and gated metric (whole run): `gen_ai.evaluation.name` the metric,
`gen_ai.evaluation.score.value` the estimate (Δ, or the ratio), `gen_ai.evaluation.score.label`
the verdict, `gen_ai.evaluation.explanation` its reason; `evalpipe.*` attributes carry the run,
the candidate, the interval and the margin. A failed export is logged, never fails the run.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from evalpipe.store import Run

__all__ = ["EVENT_NAME", "emit_evaluation_events", "evaluation_events"]

log = logging.getLogger(__name__)

EVENT_NAME: Final = "gen_ai.evaluation.result"


def evaluation_events(run: Run) -> list[dict[str, Any]]:
    """The attributes of each event (one per candidate and gated metric of the whole run)."""
    manifest = run.manifest()
    models = {arm: ", ".join(m) for arm, m in (manifest.get("models_seen") or {}).items()}
    out = []
    for row in run.read_gate().to_pylist():
        if not row.get("gated") or row.get("slice_col") is not None:
            continue
        attributes = {
            "gen_ai.evaluation.name": row["metric"],
            "gen_ai.evaluation.score.value": row.get("estimate"),
            "gen_ai.evaluation.score.label": row.get("verdict"),
            "gen_ai.evaluation.explanation": row.get("reason"),
            "gen_ai.response.model": models.get(row["candidate"]),
            "evalpipe.spec": run.spec.name,
            "evalpipe.run_id": run.run_id,
            "evalpipe.candidate": row["candidate"],
            "evalpipe.ci_low": row.get("ci_low"),
            "evalpipe.ci_high": row.get("ci_high"),
            "evalpipe.margin": row.get("margin"),
            "evalpipe.n": row.get("n"),
        }
        out.append({k: v for k, v in attributes.items() if v is not None})
    return out


def emit_evaluation_events(run: Run, endpoint: str, *, timeout_s: float = 10.0) -> int:
    """Send the run's events to an OTLP/HTTP collector (`endpoint`/v1/logs); returns how many
    were sent (0 when the export failed or the `otel` extra is missing, which is logged)."""
    try:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.resources import Resource
    except ImportError:
        log.warning(
            "otel.endpoint is set but OpenTelemetry is not installed: "
            "pip install 'evalpipe[otel]'; no events sent"
        )
        return 0
    events = evaluation_events(run)
    provider = LoggerProvider(resource=Resource.create({"service.name": "evalpipe"}))
    exporter = OTLPLogExporter(endpoint=f"{endpoint.rstrip('/')}/v1/logs", timeout=timeout_s)
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    logger = provider.get_logger("evalpipe")
    for attributes in events:
        logger.emit(event_name=EVENT_NAME, attributes=attributes)
    sent = provider.force_flush(int(timeout_s * 1000))
    provider.shutdown()
    if not sent:
        log.error("OpenTelemetry events to %s were not all sent; the run goes on", endpoint)
        return 0
    return len(events)
