"""Drift across nights: the findings of one night, given the nights before it (no Prefect, no I/O).

A night is summarised by `NightSummary`: per arm and metric the mean, its n and the variance of
the mean (`night_metrics` in the catalog), the snapshots each arm answered with and each
candidate's verdict. `findings` compares tonight with the nights before it:

- **snapshot** (event): an arm's `response_model` or `system_fingerprint` set differs from the
  last evaluated night's.
- **drift** (state): the baseline's rule checks on the nights since the baseline's last snapshot
  change, pooled, against the nights before it (the first night when it never changed).
- **logged** (state): the replayed baseline against what production logged (paired, per
  record), pooled over the nights since the baseline's last snapshot change.
- **noise** (state): the baseline's A/A noise floor (`baseline.repeats: 2`), as drift.
- **verdict** (event): a candidate's verdict differs from the last evaluated night's.

A state measured over the nights since a baseline snapshot change carries that night in its
evidence (`change`): it is part of that change, which the nightly flow alerts once.

Each state is an always-valid mSPRT confidence sequence over the nights (STATISTICS.md,
"Sequential looks", with the mixing variance τ² = δ²): a finding when the sequence excludes 0
*and* the estimate is past the margin δ, at level α/m over the m sequences tested, so a month
of nightly looks keeps false alarms at α instead of α a night.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from evalpipe.gate.canary import msprt_half_width

__all__ = [
    "NOISE_MARGIN",
    "Finding",
    "NightSummary",
    "findings",
    "pool",
    "said_change",
    "to_say",
]

NOISE_MARGIN: Final = 0.05
"""How far the A/A noise floor (share of the baseline's own outputs that change) may move."""

ARM_LOGGED_DIFF: Final = "baseline-logged"
"""`night_metrics` arm of the paired difference replayed baseline − logged."""
ARM_AA: Final = "baseline-aa"
"""`night_metrics` arm of the baseline's diff metrics against itself (repeat ≥ 1)."""


@dataclass(frozen=True)
class NightSummary:
    """What the findings read of one evaluated night."""

    night: str
    metrics: dict[tuple[str, str], tuple[int, float, float]]
    """(arm, metric) → (n, mean, variance of the mean)."""
    snapshots: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """arm → {"models": [...], "fingerprints": [...]}."""
    verdicts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """One thing the night found, with its evidence."""

    key: str
    """What it is about (`snapshot:baseline`, `drift:valid_json`); states keep their key."""
    kind: str
    """snapshot, drift, logged, noise, verdict or night."""
    event: bool
    """An event is said on its night only; a state until it clears."""
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "event": self.event,
            "text": self.text,
            "evidence": self.evidence,
        }


def pool(rows: Sequence[tuple[int, float, float]]) -> tuple[int, float, float]:
    """Pool nightly (n, mean, variance of the mean) into one (n, mean, variance), weighted by n."""
    total = sum(n for n, _, _ in rows)
    if total == 0:
        return 0, math.nan, math.nan
    mean = sum(n * m for n, m, _ in rows) / total
    var = sum(n * n * v for n, _, v in rows) / (total * total)
    return total, mean, var


def _snapshot_changes(prev: NightSummary, now: NightSummary) -> list[Finding]:
    out = []
    for arm, seen in now.snapshots.items():
        before = prev.snapshots.get(arm)
        if before is None:
            continue
        changed = {
            k: (before.get(k, []), seen.get(k, []))
            for k in ("models", "fingerprints")
            if seen.get(k) and before.get(k) and set(seen[k]) != set(before[k])
        }
        if not changed:
            continue
        said = "; ".join(
            f"{'response model' if k == 'models' else 'system_fingerprint'} "
            f"{', '.join(a) or '?'} → {', '.join(b) or '?'}"
            for k, (a, b) in changed.items()
        )
        out.append(
            Finding(
                f"snapshot:{arm}",
                "snapshot",
                True,
                f"{arm} answered as a new snapshot since {prev.night}: {said}",
                {k: {"before": a, "now": b} for k, (a, b) in changed.items()},
            )
        )
    return out


def _segments(
    nights: Sequence[NightSummary],
) -> tuple[list[NightSummary], list[NightSummary], bool]:
    """(reference nights, nights since the baseline's last snapshot change, whether it changed):
    without a change, the first night is the reference and the rest follow it."""
    starts = [
        i
        for i in range(1, len(nights))
        if any(f.key == "snapshot:baseline" for f in _snapshot_changes(nights[i - 1], nights[i]))
    ]
    if not starts:
        return list(nights[:1]), list(nights[1:]), False
    start = starts[-1]
    before = starts[-2] if len(starts) > 1 else 0
    return list(nights[before:start]), list(nights[start:]), True


def _state(
    key: str,
    kind: str,
    what: str,
    ref: tuple[int, float, float] | None,
    post: tuple[int, float, float],
    margin: float,
    a: float,
    change: str | None = None,
) -> Finding | None:
    n_post, m_post, v_post = post
    if n_post == 0 or math.isnan(m_post):
        return None
    if ref is None:
        est, var = m_post, v_post
    else:
        n_ref, m_ref, v_ref = ref
        if n_ref == 0 or math.isnan(m_ref):
            return None
        est, var = m_post - m_ref, v_post + v_ref
    h = float(msprt_half_width(max(var, 1e-12), margin * margin, a))
    if not (abs(est) > h and abs(est) > margin):
        return None
    word = "fell" if est < 0 else "rose"
    return Finding(
        key,
        kind,
        False,
        f"{what} {word} by {abs(est) * 100:.1f} pp (always-valid {100 * (1 - a):.1f}% "
        f"interval {100 * (est - h):+.1f} to {100 * (est + h):+.1f} pp; margin "
        f"{margin * 100:.1f} pp)",
        {
            "estimate": est,
            "half_width": h,
            "margin": margin,
            "level": a,
            "n": n_post,
            **({"change": change} if change else {}),
        },
    )


def findings(
    nights: Sequence[NightSummary],
    margins: dict[str, float],
    *,
    alpha: float = 0.05,
) -> list[Finding]:
    """Tonight's findings (the last of `nights`, which are the evaluated nights, oldest first).

    Args:
        margins: rule check → its margin (the gate's catalogue).
        alpha: the family's level, split over every sequence tested.
    """
    if not nights:
        return []
    now = nights[-1]
    out: list[Finding] = []
    if len(nights) > 1:
        prev = nights[-2]
        out += _snapshot_changes(prev, now)
        for cand, verdict in now.verdicts.items():
            was = prev.verdicts.get(cand)
            if was and was != verdict:
                out.append(
                    Finding(
                        f"verdict:{cand}",
                        "verdict",
                        True,
                        f"candidate {cand}: {was} → {verdict}",
                        {"before": was, "now": verdict},
                    )
                )
    ref, post, changed = _segments(nights)
    change = post[0].night if changed else None
    logged_nights = post if changed else list(nights)
    aa_metrics = sorted({m for (arm, m) in now.metrics if arm == ARM_AA})
    tests = len(margins) * 2 + len(aa_metrics)
    a = alpha / max(tests, 1)

    def pooled(group: Sequence[NightSummary], arm: str, metric: str) -> tuple[int, float, float]:
        return pool([s.metrics[(arm, metric)] for s in group if (arm, metric) in s.metrics])

    for metric, margin in margins.items():
        if post:
            found = _state(
                f"drift:{metric}",
                "drift",
                f"baseline {metric} since {post[0].night} against the nights before",
                pooled(ref, "baseline", metric),
                pooled(post, "baseline", metric),
                margin,
                a,
                change,
            )
            out += [found] if found else []
        found = _state(
            f"logged:{metric}",
            "logged",
            f"replayed baseline {metric} against what production logged",
            None,
            pooled(logged_nights, ARM_LOGGED_DIFF, metric),
            margin,
            a,
            change,
        )
        out += [found] if found else []
    for metric in aa_metrics:
        if post:
            found = _state(
                f"noise:{metric}",
                "noise",
                f"baseline A/A {metric} (its agreement with itself)",
                pooled(ref, ARM_AA, metric),
                pooled(post, ARM_AA, metric),
                NOISE_MARGIN,
                a,
                change,
            )
            out += [found] if found else []
    return out


def said_change(alerted: dict[str, Any]) -> bool:
    """Whether a night's alert (`{"new": [...], "cleared": [...]}`) said a baseline snapshot
    change."""
    return any(f.get("key") == "snapshot:baseline" for f in alerted.get("new", []))


def to_say(
    before: dict[str, dict[str, Any]],
    states: dict[str, dict[str, Any]],
    events: list[dict[str, Any]],
    said: set[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What tonight's alert says: (new, cleared).

    Args:
        before: the states active after the last night, by key.
        states: tonight's states, by key (as dicts); those that follow an alerted change get
            `follows` set.
        events: tonight's events.
        said: nights whose alert said a baseline snapshot change.

    Events are said on their night, a state when it appears and once when it clears. A state
    measured since a baseline snapshot change already alerted (evidence `change` in `said`) is
    part of that change: recorded with `follows`, not alerted again, nor when it clears — one
    alert per change, however many nights its evidence takes to gather.
    """
    for f in states.values():
        change = (f.get("evidence") or {}).get("change")
        if change in said:
            f["follows"] = f"the baseline's snapshot change of {change}, alerted then"
    new = events + [f for k, f in states.items() if k not in before and not f.get("follows")]
    cleared = [
        f
        for k, f in before.items()
        if k not in states and not f.get("event") and not f.get("follows")
    ]
    return new, cleared
