"""Paired cluster bootstrap of ratios: exact against a brute-force replay, order-free, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from evalpipe.gate.bootstrap import (
    _POISSON,
    _weighted_quantile,
    _Window,
    poisson_counts,
    ratio_bootstrap,
    seeded_rng,
)


def _data(n: int = 300, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 60, n) * 7 + 3  # arbitrary cluster codes
    lb = rng.lognormal(6, 0.6, n)
    lc = lb * rng.lognormal(0.1, 0.2, n)
    cb = rng.uniform(0.001, 0.003, n)
    cc = cb * 0.8
    return cluster, lb, lc, cb, cc


def _inverted_cdf(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    expanded = np.repeat(values[order], weights[order])
    k = int(np.ceil(len(expanded) * q)) - 1
    return float(expanded[k])


def test_poisson_counts_have_poisson_1_moments() -> None:
    counts = poisson_counts(seeded_rng(0, "moments"), (200, 5000)).astype(float)
    assert counts.mean() == pytest.approx(1.0, abs=0.005)
    assert counts.var() == pytest.approx(1.0, abs=0.01)
    assert _POISSON.dtype == np.int8


def test_replicates_equal_a_brute_force_replay_of_the_same_counts() -> None:
    cluster, lb, lc, cb, cc = _data()
    boot = ratio_bootstrap(cluster, lb, lc, cb, cc, rng=seeded_rng(7, "x"), b=40)
    assert boot.names == ("latency_p50", "latency_p95", "cost")
    _, codes = np.unique(cluster, return_inverse=True)
    counts = poisson_counts(seeded_rng(7, "x"), (40, codes.max() + 1))
    for r in range(40):
        w = counts[r, codes].astype(np.int64)
        for j, q in enumerate((0.5, 0.95)):
            expected = _inverted_cdf(lc, w, q) / _inverted_cdf(lb, w, q)
            assert boot.replicates[r, j] == pytest.approx(expected, rel=1e-12)
        assert boot.replicates[r, 2] == pytest.approx((w @ cc) / (w @ cb), rel=1e-9)


def test_point_estimates_are_inverted_cdf_quantiles_and_the_mean_ratio() -> None:
    cluster, lb, lc, cb, cc = _data()
    boot = ratio_bootstrap(cluster, lb, lc, cb, cc, rng=seeded_rng(0, "p"), b=10)
    assert boot.baseline[1] == pytest.approx(np.quantile(lb, 0.95, method="inverted_cdf"))
    assert boot.candidate[0] == pytest.approx(np.quantile(lc, 0.5, method="inverted_cdf"))
    assert boot.point[2] == pytest.approx(cc.sum() / cb.sum())
    assert list(boot.n) == [300, 300, 300]


def test_result_does_not_depend_on_row_order() -> None:
    cluster, lb, lc, cb, cc = _data()
    perm = np.random.default_rng(5).permutation(cluster.size)
    a = ratio_bootstrap(cluster, lb, lc, cb, cc, rng=seeded_rng(3, "o"), b=50)
    b = ratio_bootstrap(
        cluster[perm], lb[perm], lc[perm], cb[perm], cc[perm], rng=seeded_rng(3, "o"), b=50
    )
    np.testing.assert_array_equal(a.replicates[:, :2], b.replicates[:, :2])
    np.testing.assert_allclose(a.replicates[:, 2], b.replicates[:, 2], rtol=1e-12)


def test_missing_values_leave_pairs_out_of_their_measure_only() -> None:
    cluster, lb, lc, cb, cc = _data()
    lb = lb.copy()
    lb[:10] = np.nan
    boot = ratio_bootstrap(cluster, lb, lc, cb, cc, rng=seeded_rng(0, "m"), b=5)
    assert list(boot.n) == [290, 290, 300]


def test_a_quantile_outside_its_window_is_recounted_in_full() -> None:
    values = np.arange(10, dtype=np.float64)
    clusters = np.arange(10, dtype=np.int64)
    counts = np.ones((3, 10), dtype=np.int8)
    counts[1, :8] = 0  # p50 of replicate 1 lies at value 8 or 9, far above the window
    window = _Window(50, clusters[4:6], values[4:6], clusters, values)
    below = (counts[:, :4].sum(axis=1)).astype(np.int64)
    total = counts.sum(axis=1).astype(np.int64)
    got = _weighted_quantile(counts, window, below, total)
    for r in range(3):
        assert got[r] == _inverted_cdf(values, counts[r].astype(np.int64), 0.5)


def test_seeded_rng_is_a_function_of_seed_and_purpose() -> None:
    a = seeded_rng(1, "bootstrap", "cand").random(3)
    assert np.array_equal(a, seeded_rng(1, "bootstrap", "cand").random(3))
    assert not np.array_equal(a, seeded_rng(2, "bootstrap", "cand").random(3))
    assert not np.array_equal(a, seeded_rng(1, "bootstrap", "other").random(3))


@pytest.mark.parametrize(
    ("n", "clusters", "percent", "block"),
    [(60_000, 40, 50, 500), (60_000, 40, 95, 777), (20_000, 3, 99, 64), (3_000, 2_000, 50, 7)],
)
def test_block_quantile_equals_the_scan(n: int, clusters: int, percent: int, block: int) -> None:
    """Few large clusters make the window about as wide as the run: the weights are summed a
    block at a time first, and the quantile of every replicate is the scan's, exactly."""
    from evalpipe.gate import bootstrap as bs

    rng = np.random.default_rng(n + clusters)
    codes = rng.integers(0, clusters, n)
    values = rng.gamma(2.0, 100.0, n).round(0)  # (ties)
    sizes = np.bincount(codes, minlength=clusters).astype(np.float64)
    window, below_cluster = bs._window(values, codes, clusters, percent, sizes)
    counts = bs.poisson_counts(bs.seeded_rng(7, "test"), (150, clusters))
    below = np.rint(counts.astype(np.float64) @ below_cluster).astype(np.int64)
    total = np.rint(counts.astype(np.float64) @ sizes).astype(np.int64)

    scan = bs._scan_quantile(counts, window, below, total)
    blocks = bs._block_quantile(counts, window, below, total, block)

    assert np.array_equal(scan, blocks, equal_nan=True)
    assert np.isfinite(scan).mean() > 0.9
