"""Power: MDE, n needed, and the dry-run sizing of a pass/fail check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from evalpipe.gate.paired import newcombe_paired
from evalpipe.gate.power import mde, n_needed, n_needed_for_check, n_needed_to_reject


def _go_share(n: int, cells: list[float], delta: float, runs: int, seed: int) -> float:
    """GO share of `runs` simulated runs of n independent pairs (the gate's Newcombe rule)."""
    counts = np.random.default_rng(seed).multinomial(n, cells, size=runs)
    _, low, _ = newcombe_paired(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    return float(np.mean(low > -delta))


@pytest.mark.parametrize(("delta", "discordance"), [(0.02, 0.01), (0.02, 0.05), (0.05, 0.02)])
def test_n_needed_for_check_delivers_the_power_it_states(delta: float, discordance: float) -> None:
    # The normal formula asked for 197 records at 1% discordance: 46% of such runs showed GO.
    n = int(n_needed_for_check(delta, discordance))
    half = discordance / 2
    share = _go_share(n, [0.9 - half, half, half, 0.1 - half], delta, 400, seed=7)
    # at least 80% (2 pp + 2 Monte-Carlo SEs of 400 runs), and not wastefully more: with a few
    # discordant pairs the power jumps by a few points from one n to the next
    assert 0.8 - 0.045 <= share <= 0.88


def test_n_needed_for_check_without_discordance_is_the_all_agree_bound() -> None:
    # Both arms pass 90% and agree everywhere: Newcombe's limit still sits about 3.8/n below 0.
    n = n_needed_for_check(0.02, discordance=0.0)
    assert 150 <= n <= 200
    assert _go_share(int(n), [0.9, 0.0, 0.0, 0.1], 0.02, 200, seed=1) >= 0.8


def test_n_needed_for_check_rejects_a_bad_margin() -> None:
    with pytest.raises(ValueError):
        n_needed_for_check(0.0)


def test_mde_uses_alpha_over_2k_and_power() -> None:
    z = stats.norm.ppf(1 - 0.05 / (2 * 10)) + stats.norm.ppf(0.8)
    assert mde(0.01, 10) == pytest.approx(z * 0.01)
    # Few clusters: t instead of z.
    t = stats.t.ppf(1 - 0.05 / 2, 9) + stats.t.ppf(0.8, 9)
    assert mde(0.01, 1, df=9) == pytest.approx(t * 0.01)
    assert math.isnan(mde(math.nan))


def test_n_needed_spreads_power_over_k_metrics() -> None:
    se, n, delta = 0.01, 500, 0.02
    q1 = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    q5 = stats.norm.ppf(0.975) + stats.norm.ppf(0.8 ** (1 / 5))
    assert n_needed(n, se, delta, 1) == math.ceil(n * (q1 * se / delta) ** 2)
    assert n_needed(n, se, delta, 5) == math.ceil(n * (q5 * se / delta) ** 2)
    assert n_needed(n, se, delta, 5) > n_needed(n, se, delta, 1)
    assert n_needed_to_reject(n, se, 0.01, 2) == math.ceil(
        n * ((stats.norm.ppf(1 - 0.05 / 4) + stats.norm.ppf(0.8)) * se / 0.01) ** 2
    )


def _clustered_check(
    rng: np.random.Generator, runs: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`runs` A/A runs of one pass/fail check on n records in sessions of 5, whose flips come in
    sessions (Beta rates, as in bench/gate_calibration.py): baseline, candidate, session, run."""
    g = n // 5
    up, down = 0.04, 0.1 * 0.04 / 0.9  # fail→pass and pass→fail, so that the true Δ is 0

    def per_session(mean: float) -> np.ndarray:
        return np.repeat(rng.beta(4 * mean, 4 * (1 - mean), (runs, g)), 5, axis=1)

    base = rng.random((runs, n)) < 0.9
    flip = rng.random((runs, n)) < np.where(base, per_session(down), per_session(up))
    session = np.arange(runs)[:, None] * g + np.arange(n)[None, :] // 5
    run = np.repeat(np.arange(runs), n)
    return base.ravel().astype(float), (base ^ flip).ravel().astype(float), session.ravel(), run


def test_gate_n_needed_delivers_its_power_on_clustered_pairs() -> None:
    import pyarrow as pa

    from evalpipe.gate import gate_scores
    from evalpipe.gate.estimates import pass_rate
    from evalpipe.spec import spec_from_dict
    from evalpipe.tables import RECORDS, RESPONSES, SCORES, conform

    # A large pilot run through the gate; its n_needed for the check is then simulated.
    n = 50_000
    base, cand, session, _ = _clustered_check(np.random.default_rng(3), 1, n)
    ids = pa.array([f"r{i:06d}" for i in range(n)])
    records = conform(
        pa.table({"record_id": ids, "session_id": pa.array(session.astype(str))}), RECORDS
    )
    arms = [("baseline", base), ("cand", cand)]
    zeros = pa.array(np.zeros(n, np.int32))
    responses = pa.concat_tables(
        conform(
            pa.table(
                {
                    "record_id": ids,
                    "arm": [a] * n,
                    "repeat": zeros,
                    "status": ["ok"] * n,
                    "output_text": pa.array([f"{a} {i}" for i in range(n)]),
                }
            ),
            RESPONSES,
        )
        for a, _ in arms
    )
    scores = pa.concat_tables(
        conform(
            pa.table(
                {
                    "record_id": ids,
                    "arm": [a] * n,
                    "repeat": zeros,
                    "kind": ["rule"] * n,
                    "metric": ["ok"] * n,
                    "value": v,
                }
            ),
            SCORES,
        )
        for a, v in arms
    )
    spec = spec_from_dict(
        {
            "name": "power",
            "traffic": {"path": "*.jsonl"},
            "baseline": {"provider": "openai", "model": "b"},
            "candidates": [{"name": "cand", "provider": "openai", "model": "c"}],
            "checks": [{"name": "ok", "type": "json_valid"}],
            "gate": {"cluster": "session_id"},
        },
        spec_dir=Path("."),
    )
    result = gate_scores(scores, responses, records, spec, run_id="p", bootstrap_b=20)
    row = next(r for r in result.table.to_pylist() if r["metric"] == "ok" and not r["slice_col"])
    needed = int(row["n_needed"]) // 5 * 5
    runs = 400
    b, c, s, g = _clustered_check(np.random.default_rng(4), runs, needed)
    est = pass_rate(b, c, s, g, runs, margin=0.02, critical=False, clustered=True, alpha=0.05)
    share = float(np.mean(est.ci_low > -0.02))
    # GO with power 0.8^(1/k) for k = 2 gated metrics (the check and error_rate); the normal
    # formula with one SE asked for too few records: 67% of such runs showed GO
    assert abs(share - 0.8**0.5) <= 0.045
