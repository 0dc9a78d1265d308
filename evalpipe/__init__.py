"""evalpipe: is it safe to change the model behind an AI feature?

The front door: everything users and flows call is importable from here. Names load lazily so
that `evalpipe --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evalpipe.version import __version__

_EXPORTS: dict[str, str] = {
    # spec
    "Spec": "evalpipe.spec",
    "load_spec": "evalpipe.spec",
    "spec_from_dict": "evalpipe.spec",
    # errors
    "EvalpipeError": "evalpipe.errors",
    "SpecError": "evalpipe.errors",
    "InputError": "evalpipe.errors",
    "NoUsableRecordsError": "evalpipe.errors",
    "ProviderError": "evalpipe.errors",
    "StoreError": "evalpipe.errors",
    # tables
    "RECORDS": "evalpipe.tables",
    "RESPONSES": "evalpipe.tables",
    "SCORES": "evalpipe.tables",
    "GATE": "evalpipe.tables",
    # stages (table → table)
    "ingest_paths": "evalpipe.ingest",
    "select_records": "evalpipe.ingest",
    "replay_records": "evalpipe.replay.engine",
    "score_responses": "evalpipe.score",
    "gate_scores": "evalpipe.gate",
    "write_report": "evalpipe.report",
    # runs in the store
    "Run": "evalpipe.store",
    "open_run": "evalpipe.store",
    "ingest_run": "evalpipe.pipeline",
    "replay_run": "evalpipe.pipeline",
    "score_run": "evalpipe.pipeline",
    "gate_run": "evalpipe.pipeline",
    "report_run": "evalpipe.pipeline",
    # results
    "GateResult": "evalpipe.gate.verdict",
    "CandidateVerdict": "evalpipe.gate.verdict",
}

__all__ = [
    "GATE",
    "RECORDS",
    "RESPONSES",
    "SCORES",
    "CandidateVerdict",
    "EvalpipeError",
    "GateResult",
    "InputError",
    "NoUsableRecordsError",
    "ProviderError",
    "Run",
    "Spec",
    "SpecError",
    "StoreError",
    "__version__",
    "gate_run",
    "gate_scores",
    "ingest_paths",
    "ingest_run",
    "load_spec",
    "open_run",
    "replay_records",
    "replay_run",
    "report_run",
    "score_responses",
    "score_run",
    "select_records",
    "spec_from_dict",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evalpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from evalpipe.errors import (
        EvalpipeError,
        InputError,
        NoUsableRecordsError,
        ProviderError,
        SpecError,
        StoreError,
    )
    from evalpipe.gate import gate_scores
    from evalpipe.gate.verdict import CandidateVerdict, GateResult
    from evalpipe.ingest import ingest_paths, select_records
    from evalpipe.pipeline import gate_run, ingest_run, replay_run, report_run, score_run
    from evalpipe.replay.engine import replay_records
    from evalpipe.report import write_report
    from evalpipe.score import score_responses
    from evalpipe.spec import Spec, load_spec, spec_from_dict
    from evalpipe.store import Run, open_run
    from evalpipe.tables import GATE, RECORDS, RESPONSES, SCORES
