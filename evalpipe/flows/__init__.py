"""Prefect flows: they only wire the `*_run` functions of `evalpipe.pipeline` together.

The flows — `shadow_eval` (`shadow-eval`, in `shadow.py`), `nightly_watch` (`nightly`, in
`nightly.py`; its steps in `watch.py`), `ci_gate` (`gate`, in `gate.py`) and `canary_ramp`
(`canary`, in `canary.py`) — load Prefect on first use; `run_in_process` runs the
same steps without it (`wiring.py`). The flows' modules are not named after their flows, so that
importing one never shadows the flow's name here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalpipe.flows.wiring import prefect_api_configured, run_in_process

__all__ = [
    "canary_ramp",
    "ci_gate",
    "nightly_watch",
    "prefect_api_configured",
    "run_in_process",
    "shadow_eval",
    "shadow_eval_many",
]

_FLOWS = {
    "shadow_eval": "evalpipe.flows.shadow",
    "shadow_eval_many": "evalpipe.flows.shadow",
    "nightly_watch": "evalpipe.flows.nightly",
    "ci_gate": "evalpipe.flows.gate",
    "canary_ramp": "evalpipe.flows.canary",
}
"""Flow → its module, imported (with Prefect) on first use."""

if TYPE_CHECKING:
    from evalpipe.flows.canary import canary_ramp
    from evalpipe.flows.gate import ci_gate
    from evalpipe.flows.nightly import nightly_watch
    from evalpipe.flows.shadow import shadow_eval, shadow_eval_many


def __getattr__(name: str) -> Any:
    if name in _FLOWS:
        import importlib

        return getattr(importlib.import_module(_FLOWS[name]), name)
    raise AttributeError(f"module 'evalpipe.flows' has no attribute {name!r}")
