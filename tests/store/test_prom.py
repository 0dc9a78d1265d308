"""metrics.prom: written by every run, parsed back with prometheus_client's OpenMetrics parser,
and pushed to a (local) Pushgateway."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as prometheus_text_families

from evalpipe.flows import run_in_process
from evalpipe.spec import load_spec
from evalpipe.store import open_run
from tests.flows.nights import nightly_spec

SMALL = {"path": "traffic.jsonl.gz", "sample": {"n": 30}}


def test_every_run_writes_openmetrics_that_prometheus_client_parses(
    fake_provider: str, tmp_path: Path
) -> None:
    received: list[tuple[str, bytes]] = []

    class Gateway(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        path = nightly_spec(tmp_path, traffic=SMALL, alerts={"pushgateway_url": url})
        run = open_run(load_spec(path))
        result = run_in_process(run)
    finally:
        server.shutdown()
    text = run.path("metrics.prom").read_text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    verdict = families["evalpipe_run_verdict"].samples
    codes = {0: "GO", 1: "NO-GO", 2: "NOT-PROVEN", 3: "INVALID"}
    assert [codes[int(s.value)] for s in verdict] == [result["verdict"]]
    estimates = families["evalpipe_gate_estimate"].samples
    labels: dict[str, Any] = estimates[0].labels
    assert {"spec", "candidate", "model", "metric", "slice"} <= set(labels)
    assert labels["spec"] == "nightly-test" and labels["candidate"] == "haiku"
    latency = families["evalpipe_arm_latency_seconds"].samples
    quantiles = {(s.labels["arm"], s.labels["quantile"]) for s in latency}
    assert ("baseline", "0.99") in quantiles and ("haiku", "0.5") in quantiles
    base = next(s for s in families["evalpipe_arm_check"].samples if s.labels["arm"] == "baseline")
    assert base.labels["model"] == "gpt-4o-mini-2024-07-18" and 0 <= base.value <= 1
    (push_path, body) = received[0]
    assert push_path == "/metrics/job/evalpipe/spec/nightly-test"
    pushed = {f.name for f in prometheus_text_families(body.decode())}
    assert "evalpipe_gate_verdict" in pushed
