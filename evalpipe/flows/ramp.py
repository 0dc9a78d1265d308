"""The canary ramp's steps, wired once (no Prefect): `canary_steps`, `canary_status`.

Step N (1-based) decides on the logs production served up to the end of step N (the ramp's
`until`), with the ramp cut after step N. Each step's own window (the logs served since that step
began) gives that step's sample-ratio test and its estimates; the earlier steps' windows are read
again only because the sequential decision combines every step so far: the canary gate's sequential looks over steps 1..N
(STATISTICS.md, "Sequential looks") give promote (GO), roll back (NO-GO), hold (NOT-PROVEN) or
invalid (INVALID, e.g. a sample-ratio mismatch). Each step is a run of its own, recorded in its
manifest (`canary`), so `canary_status` can answer a rollout controller.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from evalpipe.errors import EvalpipeError
from evalpipe.flows.alerts import alert_payload, post_alert
from evalpipe.flows.watch import night_series
from evalpipe.flows.wiring import Stages, shadow_steps
from evalpipe.spec import Spec, Window
from evalpipe.store import find_runs, latest_complete_run, open_run, store_root

__all__ = ["DECISIONS", "canary_status", "canary_steps", "step_spec"]

DECISIONS: Final = {
    "GO": "promote",
    "NO-GO": "rollback",
    "NOT-PROVEN": "hold",
    "INVALID": "invalid",
}
"""The gate's verdict → the ramp's decision (exit codes 0, 1, 2, 3 as the verdicts')."""


def step_spec(spec: Spec, step: int) -> Spec:
    """The spec as step `step` (1-based) decides it: the ramp up to it, logs up to its end."""
    ramp = spec.gate.ramp
    if spec.mode != "canary" or not ramp:
        raise EvalpipeError("a canary needs `mode: canary` and a `gate.ramp` in the spec")
    if not 1 <= step <= len(ramp):
        raise EvalpipeError(f"--step {step}: the ramp has steps 1 to {len(ramp)}")
    window = spec.traffic.window
    start = window.start if window is not None else None
    traffic = spec.traffic.model_copy(
        update={"window": Window(start=start, end=ramp[step - 1].until)}
    )
    gate = spec.gate.model_copy(update={"ramp": ramp[:step]})
    return spec.model_copy(update={"traffic": traffic, "gate": gate})


def _decide(spec: Spec, step: int, stages: Stages, store: str | None) -> dict[str, Any]:
    sspec = step_spec(spec, step)
    run = latest_complete_run(sspec, store=store) or open_run(sspec, store=store)
    result = shadow_steps(run, stages)
    manifest = run.manifest()
    verdicts: dict[str, dict[str, Any]] = manifest.get("candidates") or {}
    reason = str(next(iter(verdicts.values()), {}).get("reason", ""))
    decision = {
        "spec": spec.name,
        "series": night_series(spec),
        "step": step,
        "steps": len(spec.gate.ramp),
        "weight": spec.gate.ramp[step - 1].weight,
        "until": spec.gate.ramp[step - 1].until.isoformat(),
        "decision": DECISIONS[str(result["verdict"])],
        "verdict": result["verdict"],
        "exit_code": result["exit_code"],
        "reason": reason,
        "run_id": run.run_id,
        "report": manifest.get("report"),
        "decided_at": datetime.now(UTC).isoformat(timespec="microseconds"),
    }
    run.update_manifest(canary=decision)
    return decision


def canary_steps(
    spec: Spec, stages: Stages, *, step: int | None = None, store: str | None = None
) -> list[dict[str, Any]]:
    """Decide step `step`, or walk the ramp from step 1 until a step does not promote.

    Returns:
        The decisions made, in step order (the last is the ramp's current decision).
    """
    before = canary_status(spec, store=store)
    if step is not None:
        out = [_decide(spec, step, stages, store)]
    else:
        out = []
        for n in range(1, len(spec.gate.ramp) + 1):
            out.append(_decide(spec, n, stages, store))
            if out[-1]["decision"] in ("rollback", "invalid"):
                break
    _announce(spec, before, out[-1])
    return out


def _announce(spec: Spec, before: dict[str, Any], now: dict[str, Any]) -> None:
    """POST the decision to `alerts.webhook_url` when it differs from the last one (once)."""
    url = spec.alerts.webhook_url
    if not url or "${" in url:
        return
    if (before.get("step"), before.get("decision")) == (now["step"], now["decision"]):
        return
    text = f"canary step {now['step']} of {now['steps']}: {now['decision']} — {now['reason']}"
    now["alert"] = post_alert(
        url,
        alert_payload(spec.name, f"ramp step {now['step']}", [{"text": text}], []),
        retries=spec.alerts.retries,
        timeout_s=spec.alerts.timeout_s,
    )


def canary_status(spec: Spec, *, store: str | None = None) -> dict[str, Any]:
    """The ramp's newest decision, for a rollout controller (Argo Rollouts, Flagger).

    `decision` is `promote`, `hold`, `rollback`, `invalid`, or `none` before any step ran.
    """
    series = night_series(spec)
    decisions = [
        dict(m["canary"])
        for m in find_runs(store_root(store or spec.store))
        if (m.get("canary") or {}).get("series") == series
    ]
    if not decisions:
        return {"spec": spec.name, "series": series, "decision": "none", "step": 0}
    # the newest decision, not the newest run id: runs begun in one second sort by their hex
    return max(decisions, key=lambda d: str(d.get("decided_at") or ""))
