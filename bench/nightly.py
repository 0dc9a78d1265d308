"""The nightly drift watch: false alerts over simulated months, a planted change, and its cost.

Prints one JSON line with three parts:

- `aa`: `--months` simulated months of 30 A/A nights (no change planted): per night, each rule
  check of the baseline is a binomial draw (n records, its pass rate), the replayed baseline
  against what production logged a paired difference with 4% discordance, and the A/A noise
  floor a proportion; `drift.findings` runs after every night as the flow runs it. The share of
  months with at least one alert (`false_alert_rate`, with its Monte-Carlo SE) is to be ≤ α;
  `naive_rate` is the same months tested afresh every night with a 95% interval (what the
  always-valid sequence avoids).
- `planted`: real nightly runs (in process, the fake provider over HTTP, a local webhook on
  127.0.0.1) over `--nights` nights of the demo's traffic; from night 12 on the fake provider
  serves the pinned baseline as a new snapshot with 3 pp more broken JSON. The night the snapshot
  change was found, the night the quality drop was (and the night the power calculation
  predicts), and the alerts POSTed: one for the change (the quality drop that follows a snapshot
  change already alerted joins that change's record instead of alerting again).
- `timing`: one night on `--records` records, in process (`reference_seconds`) and as the
  Prefect `nightly` flow on a temporary Prefect API started before timing (`seconds`), each on
  a night of its own (a fresh cache salt: every request really sent); `ratio` = flow / stages.

    python bench/nightly.py [--months 200] [--nights 16] [--records 500]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalpipe.flows.drift import ARM_AA, ARM_LOGGED_DIFF, NightSummary, findings
from evalpipe.gate.canary import msprt_half_width
from tests.flows.nights import nightly_spec

CHECKS = {"valid_json": (0.97, 0.02), "no_refusal": (0.99, 0.02), "concise": (0.95, 0.02)}
"""Simulated checks: (pass rate, margin)."""
N_PER_NIGHT = 400
ALPHA = 0.05
SNAP = {"baseline": {"models": ["m"], "fingerprints": ["fp_1"]}}


def _aa(months: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    margins = {name: m for name, (_, m) in CHECKS.items()}
    alerted = naive = 0
    for _ in range(months):
        nights: list[NightSummary] = []
        seen = naive_seen = False
        for night in range(30):
            metrics: dict[tuple[str, str], tuple[int, float, float]] = {}
            for name, (p, margin) in CHECKS.items():
                x = rng.binomial(N_PER_NIGHT, p) / N_PER_NIGHT
                metrics[("baseline", name)] = (N_PER_NIGHT, x, x * (1 - x) / N_PER_NIGHT)
                # paired replay − logged: ±1 on 4% of records, symmetric
                up, down = rng.multinomial(N_PER_NIGHT, [0.02, 0.02, 0.96])[:2]
                d = (up - down) / N_PER_NIGHT
                var = ((up + down) / N_PER_NIGHT - d * d) / N_PER_NIGHT
                metrics[(ARM_LOGGED_DIFF, name)] = (N_PER_NIGHT, d, var)
                if night and not naive_seen:  # a fresh 95% test against the first night
                    first = nights[0].metrics[("baseline", name)]
                    se = math.sqrt(first[2] + metrics[("baseline", name)][2])
                    diff = x - first[1]
                    naive_seen = abs(diff) > 1.96 * se and abs(diff) > margin
            aa = rng.binomial(N_PER_NIGHT, 0.7) / N_PER_NIGHT
            metrics[(ARM_AA, "exact")] = (N_PER_NIGHT, aa, aa * (1 - aa) / N_PER_NIGHT)
            nights.append(NightSummary(f"n{night:02d}", metrics, SNAP, {"c": "GO"}))
            found = findings(nights, margins, alpha=ALPHA)
            seen = seen or any(not f.event for f in found)
        alerted += seen
        naive += naive_seen
    rate = alerted / months
    return {
        "months": months,
        "nights_per_month": 30,
        "records_per_night": N_PER_NIGHT,
        "checks": len(CHECKS),
        "false_alert_rate": rate,
        "mc_se": math.sqrt(max(rate * (1 - rate), 1 / months) / months),
        "alpha": ALPHA,
        "naive_rate": naive / months,
    }


class _Hook(BaseHTTPRequestHandler):
    posts: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.posts.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _spec(folder: Path, *, records: int, drift: str, hook: str | None) -> Path:
    """The tests' nightly spec (tests/flows/nights.py) over a plain sample of the demo week."""
    return nightly_spec(
        folder,
        drift_night=drift,
        name="bench-nightly",
        traffic={"path": "traffic.jsonl.gz", "sample": {"n": records}},
        gate={"margins": {"valid_json": 0.02}},
        **({"alerts": {"webhook_url": hook}} if hook else {}),
    )


def _predicted_night(n_json: int, p: float, drop: float, margin: float, ref_nights: int) -> int:
    """Nights after the change until the always-valid interval excludes 0 (and |Δ| > margin)."""
    a = ALPHA / 4  # 2 checks × (drift, logged)
    for k in range(1, 365):
        var = p * (1 - p) / (n_json * ref_nights) + (p - drop) * (1 - p + drop) / (n_json * k)
        if drop > float(msprt_half_width(var, margin**2, a)) and drop > margin:
            return k
    return -1


def _planted(nights: int, records: int, change_night: int) -> dict[str, Any]:
    from evalpipe.fake.behaviours import DRIFT_BREAK_RATE, NIGHT_ENV
    from evalpipe.flows.watch import nightly_steps
    from evalpipe.flows.wiring import IN_PROCESS
    from evalpipe.spec import load_spec

    first = date(2026, 11, 1)
    change = first + timedelta(days=change_night - 1)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    out: dict[str, Any] = {"change_night": change_night, "nights": nights, "records": records}
    with tempfile.TemporaryDirectory() as tmp:
        spec = load_spec(_spec(Path(tmp), records=records, drift=change.isoformat(), hook=hook))
        per_night = []
        for i in range(nights):
            night = first + timedelta(days=i)
            os.environ[NIGHT_ENV] = night.isoformat()
            before = len(_Hook.posts)
            result = nightly_steps(spec, IN_PROCESS, night=night)
            keys = sorted(f["key"] for f in result["new"])
            found = sorted(f["key"] for f in result["findings"])
            per_night.append(
                {"night": i + 1, "new": keys, "found": found, "posts": len(_Hook.posts) - before}
            )
        server.shutdown()
        triage = _triage_records(Path(tmp))
    snapshot = [p["night"] for p in per_night if "snapshot:baseline" in p["new"]]
    drop = [p["night"] for p in per_night if "drift:valid_json" in p["found"]][:1]
    out.update(
        snapshot_found_on=snapshot,
        quality_drop_found_on=drop,
        quality_drop_predicted_on=change_night
        - 1
        + _predicted_night(max(triage, 1), 1.0 - 1e-3, DRIFT_BREAK_RATE, 0.02, change_night - 1),
        alerts_posted=len(_Hook.posts),
        alert_nights=[p["night"] for p in per_night if p["posts"]],
        per_night=per_night,
        triage_records_per_night=triage,
    )
    return out


def _triage_records(folder: Path) -> int:
    import duckdb

    runs = sorted((folder / "store" / "runs").glob("*/records.parquet"))
    rows = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{runs[0]}') WHERE attributes['feature'] = 'triage'"
    ).fetchall()
    return int(rows[0][0]) if rows else 0


def _timing(records: int) -> dict[str, Any]:
    from prefect.testing.utilities import prefect_test_harness

    from evalpipe.flows.watch import nightly_steps
    from evalpipe.flows.wiring import IN_PROCESS
    from evalpipe.spec import load_spec

    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness(server_startup_timeout=120):
        from evalpipe.flows import nightly_watch

        path = _spec(Path(tmp), records=records, drift="2099-01-01", hook=None)
        spec = load_spec(path)
        nightly_watch(str(path), night="2026-10-01")  # warm: Prefect's first flow run, imports
        started = time.perf_counter()
        flow_result = nightly_watch(str(path), night="2026-10-02")
        flow_s = time.perf_counter() - started
        started = time.perf_counter()
        direct = nightly_steps(spec, IN_PROCESS, night=date(2026, 10, 3))
        direct_s = time.perf_counter() - started
    assert flow_result["status"] == direct["status"] == "ok", (flow_result, direct)
    return {
        "records": records,
        "seconds": round(flow_s, 3),
        "reference_seconds": round(direct_s, 3),
        "ratio": round(flow_s / direct_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=200)
    parser.add_argument("--nights", type=int, default=16)
    parser.add_argument("--change-night", type=int, default=12)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from evalpipe.fake import serving
    from evalpipe.providers.endpoint import FAKE_URL_ENV

    aa = _aa(args.months, args.seed)
    with serving(host="127.0.0.1", port=0, latency_ms=20.0) as root:
        os.environ[FAKE_URL_ENV] = root
        planted = _planted(args.nights, args.records, args.change_night)
        timing = _timing(args.records)
    print(json.dumps({"aa": aa, "planted": planted, "timing": timing}))


if __name__ == "__main__":
    main()
