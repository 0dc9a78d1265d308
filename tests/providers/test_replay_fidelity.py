"""Every corpus replays against the strict fake provider with zero 400s, on every kind of arm.

The corpus: the framework-shaped exports in `tests/providers/corpus/` (Langfuse from LangChain,
Vercel AI SDK, Google ADK, LlamaIndex and CrewAI apps, Responses recordings, OTel spans, chat and
Messages logs with their providers' own parameters), every file of `tests/ingest/corpus/` when
there is one, and one realistic record per adapter from the ingest round-trip test. Each is
ingested and replayed through the real SDKs on an OpenAI, an Anthropic and an OpenAI-compatible
arm. The fake answers an unknown parameter, a wrong type or a broken tool sequence with the real
APIs' 400; a replay must never earn one. `pytest -s` prints, per source format, the records
ingested, replayed, answered and skipped (with the reasons), and what was not sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pytest

from evalpipe.errors import EvalpipeError
from evalpipe.ingest import ingest_paths
from evalpipe.replay.engine import replay_records
from evalpipe.spec import Spec, spec_from_dict
from tests.ingest.test_round_trip import CASES

HERE = Path(__file__).parent
_LOGS = (".jsonl", ".jsonl.gz", ".json", ".parquet")  # what ingest reads (FORMATS.md)
CORPORA = (HERE / "corpus", HERE.parent / "ingest" / "corpus")
ARMS = {
    "baseline": ("openai", "gpt-4o-mini-2024-07-18"),
    "claude": ("anthropic", "claude-haiku-4-5"),
    "compatible": ("openai_compatible", "fake-good"),
}


class Source(NamedTuple):
    """A corpus entry: a name and how to get the path `ingest_paths` reads."""

    name: str
    path: Callable[[Path], Path]


def _sources() -> Iterator[Source]:
    for corpus in CORPORA:
        if corpus.is_dir():
            for f in sorted(corpus.iterdir()):
                if f.name.endswith(_LOGS):
                    yield Source(f"{corpus.parent.name}/{f.name}", lambda _, f=f: f)
    for case in CASES:
        yield Source(f"round_trip/{case.id}", case.values[0].write)


SOURCES = list(_sources())


def _spec(tmp: Path) -> Spec:
    (tmp / "t.jsonl").write_text("{}\n")
    arms = [
        {"name": name, "provider": provider, "model": model, "base_url": "builtin:fake"}
        for name, (provider, model) in ARMS.items()
    ]
    return spec_from_dict(
        {
            "name": "fidelity",
            "traffic": {"path": "t.jsonl"},
            "baseline": {k: v for k, v in arms[0].items() if k != "name"},
            "candidates": arms[1:],
            "limits": {"default": {"concurrency": 8, "max_retries": 0}},
        },
        spec_dir=tmp,
    )


class Replayed(NamedTuple):
    records: pa.Table
    quarantined: int
    responses: pa.Table


def _replay(source: Source, tmp: Path) -> Replayed:
    try:
        ingested = ingest_paths(source.path(tmp))
    except EvalpipeError:  # nothing usable in the file: every line quarantined
        return Replayed(pa.table({"source_format": pa.array([], pa.string())}), -1, pa.table({}))
    responses = replay_records(ingested.records, _spec(tmp), run_id="fidelity")
    return Replayed(ingested.records, ingested.quarantine.num_rows, responses)


def _summary(source: Source, run: Replayed) -> str:
    formats = Counter(run.records["source_format"].to_pylist())
    lines = [f"{source.name}: {dict(formats)} ingested, {max(run.quarantined, 0)} quarantined"]
    if not run.responses.num_rows:
        return lines[0] + " (nothing usable)"
    for arm in ARMS:
        rows = [r for r in run.responses.to_pylist() if r["arm"] == arm]
        status = Counter(r["status"] for r in rows)
        skipped = Counter(r["error_message"] for r in rows if r["status"] == "skipped")
        lost = Counter(
            f"{p['param']} ({p['reason']})"
            for r in rows
            for p in orjson.loads(r["params_not_replayed"] or "[]")
        )
        lines.append(
            f"  {arm}: replayed {status['ok'] + status['error']}, answered {status['ok']}, "
            f"skipped {dict(skipped)}; not sent {dict(lost)}"
        )
    return "\n".join(lines)


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_the_corpus_replays_with_zero_400s(
    source: Source, fake_provider: str, tmp_path: Path
) -> None:
    run = _replay(source, tmp_path)
    print(_summary(source, run))
    if not run.responses.num_rows:
        return
    rows: list[dict[str, Any]] = run.responses.to_pylist()
    refused = [r for r in rows if r["http_status"] == 400]
    assert not refused, [(r["arm"], r["record_id"], r["error_message"]) for r in refused]
    assert all(r["status"] in ("ok", "skipped") for r in rows), [
        (r["arm"], r["error_type"], r["error_message"]) for r in rows if r["status"] == "error"
    ]
    assert all(r["error_message"] for r in rows if r["status"] == "skipped")  # every skip says why
    for r in rows:
        for lost in orjson.loads(r["params_not_replayed"] or "[]"):
            assert set(lost) == {"param", "reason"} and lost["reason"]
