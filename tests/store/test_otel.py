"""OpenTelemetry GenAI evaluation events, received by a local OTLP/HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from evalpipe.flows import run_in_process
from evalpipe.spec import load_spec
from evalpipe.store import open_run
from tests.flows.nights import nightly_spec

logs_service = pytest.importorskip(
    "opentelemetry.proto.collector.logs.v1.logs_service_pb2",
    reason="the otel extra is not installed (pip install -e '.[dev]' installs it)",
)


def test_each_gated_metric_is_one_gen_ai_evaluation_result_event(
    fake_provider: str, tmp_path: Path
) -> None:
    bodies: list[tuple[str, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(logs_service.ExportLogsServiceResponse().SerializeToString())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        traffic = {"path": "traffic.jsonl.gz", "sample": {"n": 30}}
        path = nightly_spec(tmp_path, traffic=traffic, otel={"endpoint": endpoint})
        run = open_run(load_spec(path))
        run_in_process(run)
    finally:
        server.shutdown()
    assert bodies and all(p == "/v1/logs" for p, _ in bodies)
    records = []
    for _, body in bodies:
        request = logs_service.ExportLogsServiceRequest.FromString(body)
        for resource_logs in request.resource_logs:
            for scope_logs in resource_logs.scope_logs:
                records += list(scope_logs.log_records)
    assert {r.event_name for r in records} == {"gen_ai.evaluation.result"}
    events = [{a.key: a.value for a in r.attributes} for r in records]
    names = sorted(e["gen_ai.evaluation.name"].string_value for e in events)
    gate = run.read_gate().to_pylist()
    expected = sorted(r["metric"] for r in gate if r["gated"] and r["slice_col"] is None)
    assert names == expected
    first = events[0]
    assert first["evalpipe.candidate"].string_value == "haiku"
    assert first["gen_ai.evaluation.score.label"].string_value in {
        "GO",
        "NO-GO",
        "NOT-PROVEN",
        "INVALID",
    }
