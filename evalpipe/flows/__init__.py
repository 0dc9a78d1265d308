"""Prefect flows: they only wire the `*_run` functions of `evalpipe.pipeline` together.

`shadow_eval` (the flow, in `shadow.py`) loads Prefect on first use; `run_in_process` runs the
same steps without it (`wiring.py`). The flows' modules are not named after their flows, so that
importing one never shadows the flow's name here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalpipe.flows.wiring import prefect_api_configured, run_in_process

__all__ = ["prefect_api_configured", "run_in_process", "shadow_eval"]

if TYPE_CHECKING:
    from evalpipe.flows.shadow import shadow_eval


def __getattr__(name: str) -> Any:
    if name == "shadow_eval":
        from evalpipe.flows.shadow import shadow_eval

        return shadow_eval
    raise AttributeError(f"module 'evalpipe.flows' has no attribute {name!r}")
