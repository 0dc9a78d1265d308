"""Two `evalpipe run` processes replaying the same requests into one store at once pay for each
request once: one buys it, the other waits for its answer (replay.cache's claims)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import yaml

from evalpipe.fake import serving
from evalpipe.replay.cache import CLAIMS_ENV
from evalpipe.spec import load_spec
from evalpipe.store import open_run
from tests.replay.specs import demo_traffic_spec

N = 40
MODELS = ("gpt-4.1-mini", "claude-haiku-4-5")


def _requests_seen(root: str) -> int:
    traffic: dict[str, Any] = httpx.get(f"{root}/_fake/traffic").json()
    return sum(int(m["requests"]) for m in traffic.values())


def test_two_runs_at_once_on_one_store_pay_once_for_what_both_ask(tmp_path: Path) -> None:
    with serving(latency_ms=300.0, jitter=0.0, subprocess=True) as root:
        first = demo_traffic_spec(
            tmp_path / "a",
            root,
            name="gate-a",
            n=N,
            models=MODELS,
            store=str(tmp_path / "store"),
            limits={"default": {"concurrency": 4}},
        )
        second = tmp_path / "b.yaml"
        spec = yaml.safe_load(first.read_text())
        traffic = dict(spec["traffic"], path=str(tmp_path / "a" / spec["traffic"]["path"]))
        spec.update(name="gate-b", traffic=traffic)
        second.write_text(yaml.safe_dump(spec))
        env = dict(os.environ, **{CLAIMS_ENV: "1"})
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "evalpipe.cli", "run", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for path in (first, second)
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        assert all(p.returncode in (0, 1, 2, 3) for p in procs), outs
        seen = _requests_seen(root)

    runs = [
        open_run(
            load_spec(json.loads((folder / "manifest.json").read_text())["spec_path"]),
            folder.name,
            store=str(tmp_path / "store"),
        )
        for folder in sorted((tmp_path / "store" / "runs").iterdir())
    ]
    sent = [r.read_responses().filter(pc.field("arm") != "logged") for r in runs]
    assert [t.num_rows for t in sent] == [N * 2, N * 2]
    bought = [pc.sum(pc.invert(t["cache_hit"])).as_py() for t in sent]
    assert seen == N * 2  # each request once, though both runs asked it at the same time
    assert sum(bought) == N * 2 and min(bought) < N * 2  # (the second run did not pay for all)
    for t in sent:  # every row answered, the same answers in both runs
        assert pc.all(pc.equal(t["status"], "ok")).as_py()
    by_key = [
        dict(zip(t["request_key"].to_pylist(), t["output_text"].to_pylist(), strict=True))
        for t in sent
    ]
    assert by_key[0] == by_key[1]
