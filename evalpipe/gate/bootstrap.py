"""Paired cluster bootstrap of latency quantile ratios and the mean cost ratio.

STATISTICS.md, "Latency and cost". Each replicate gives every cluster a Poisson(1) count (the
same count in both arms: the bootstrap is paired); a weighted quantile is then read off the
values sorted once. Counts are int8 (Poisson(1) never needs more), drawn in chunks of about 4M
cells, and only a window of the sorted values around each quantile is cumulated: the weight
below the window comes from one matrix product with per-cluster counts. A replicate whose
quantile falls outside its window (about never: the window is ±8 SD wide) is redone in full.
"""

from __future__ import annotations

import hashlib
import math
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from evalpipe.gate import dist

__all__ = ["RatioBoot", "poisson_counts", "quantile_bootstrap", "ratio_bootstrap", "seeded_rng"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

_CHUNK_CELLS: Final = 1 << 22


def _poisson_table() -> NDArray[np.int8]:
    # Inverse CDF of Poisson(1) at 2^-16 resolution: a uint16 draw indexes the count.
    cdf = dist.poisson_cdf(np.arange(16), 1.0)
    edges = np.round(cdf * 65536)
    return np.searchsorted(edges, np.arange(65536), side="right").astype(np.int8)


_POISSON: Final = _poisson_table()


def seeded_rng(seed: int, *purpose: object) -> np.random.Generator:
    """A generator drawn from hash(seed, purpose): the same draws whatever the row order."""
    digest = hashlib.sha256("\x1f".join(map(str, (seed, *purpose))).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def poisson_counts(rng: np.random.Generator, shape: tuple[int, int]) -> NDArray[np.int8]:
    """Poisson(1) counts of the given shape (int8), 16 random bits per count."""
    size = shape[0] * shape[1]
    raw = rng.bit_generator.random_raw((size + 3) // 4)
    return np.take(_POISSON, raw.view(np.uint16)[:size]).reshape(shape)


class RatioBoot(NamedTuple):
    """Candidate/baseline ratios of latency quantiles and mean cost, with their replicates.

    Arrays have one entry per statistic, in the order of `names`; `replicates` is (B, k).
    """

    names: tuple[str, ...]
    baseline: F64
    candidate: F64
    point: F64
    n: I64
    clusters: I64
    replicates: F64


class _Window(NamedTuple):
    percent: int
    clusters: I64  # cluster of each sorted value in the window
    values: F64  # sorted values in the window
    all_clusters: I64  # clusters of every sorted value (for a full recount)
    all_values: F64


def _quantile_index(n: int | I64, percent: int) -> int | I64:
    # Inverted CDF: the smallest value whose cumulative weight reaches percent% of the total.
    return (n * percent + 99) // 100 - 1


def _window(
    values: F64, codes: I64, n_clusters: int, percent: int, sizes: F64
) -> tuple[_Window, F64]:
    """The sorted values around the quantile, and per cluster the count of values below them."""
    order = np.argsort(values, kind="stable")
    sorted_values, sorted_codes = values[order], codes[order]
    k0 = int(_quantile_index(values.size, percent))
    q = percent / 100
    # ±8 SD of the replicate quantile's rank (clusters of size s add s² to the variance).
    half = math.ceil(8 * math.sqrt(q * (1 - q) * float(sizes @ sizes))) + 32
    lo, hi = max(0, k0 - half), min(values.size, k0 + half + 1)
    below = np.bincount(sorted_codes[:lo], minlength=n_clusters).astype(np.float64)
    window = _Window(
        percent, sorted_codes[lo:hi], sorted_values[lo:hi], sorted_codes, sorted_values
    )
    return window, below


def _point(window: _Window) -> float:
    return float(window.all_values[int(_quantile_index(window.all_values.size, window.percent))])


def quantile_bootstrap(
    cluster: NDArray[np.integer],
    values: F64,
    *,
    rng: np.random.Generator,
    b: int = 2000,
    percents: tuple[int, ...] = (50, 95),
) -> tuple[F64, F64]:
    """Cluster bootstrap of quantiles of one arm (unpaired: canary cohorts).

    Returns:
        (point quantiles (k,), replicates (b, k)); nan values are left out.
    """
    ok = np.isfinite(values)
    _, codes = np.unique(np.asarray(cluster)[ok], return_inverse=True)
    x = values[ok]
    k = len(percents)
    reps = np.full((b, k), np.nan)
    if x.size == 0:
        return np.full(k, np.nan), reps
    n_clusters = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=n_clusters).astype(np.float64)
    prepared = [_window(x, codes, n_clusters, pct, sizes) for pct in percents]
    point = np.array([_point(w) for w, _ in prepared])
    matrix = np.column_stack([sizes] + [below for _, below in prepared])
    chunk = max(1, min(b, _CHUNK_CELLS // n_clusters))
    for start in range(0, b, chunk):
        m = min(chunk, b - start)
        counts = poisson_counts(rng, (m, n_clusters))
        agg = np.rint(counts.astype(np.float64) @ matrix).astype(np.int64)
        for j, (w, _) in enumerate(prepared):
            reps[start : start + m, j] = _weighted_quantile(counts, w, agg[:, j + 1], agg[:, 0])
    return point, reps


def ratio_bootstrap(
    cluster: NDArray[np.integer],
    latency_baseline: F64,
    latency_candidate: F64,
    cost_baseline: F64,
    cost_candidate: F64,
    *,
    rng: np.random.Generator,
    b: int = 2000,
    percents: tuple[int, ...] = (50, 95),
) -> RatioBoot:
    """Paired cluster bootstrap of latency p50/p95 ratios and the mean cost ratio.

    Args:
        cluster: cluster code of each paired record (any integers).
        latency_baseline, latency_candidate: ms per record; nan leaves the pair out of latency.
        cost_baseline, cost_candidate: USD per record; nan leaves the pair out of cost.
        rng: from `seeded_rng`, so the result does not depend on row order.
        b: replicates.
        percents: latency quantiles, in percent.

    Returns:
        Ratios `latency_p50`, `latency_p95`, …, `cost` (candidate / baseline).
    """
    names = (*(f"latency_p{p}" for p in percents), "cost")
    k = len(names)
    lat_ok = np.isfinite(latency_baseline) & np.isfinite(latency_candidate)
    cost_ok = np.isfinite(cost_baseline) & np.isfinite(cost_candidate)
    used = lat_ok | cost_ok
    _, codes = np.unique(np.asarray(cluster)[used], return_inverse=True)
    n_clusters = int(codes.max()) + 1 if codes.size else 0
    lat_ok, cost_ok = lat_ok[used], cost_ok[used]
    lb, lc = latency_baseline[used][lat_ok], latency_candidate[used][lat_ok]
    cb, cc = cost_baseline[used][cost_ok], cost_candidate[used][cost_ok]
    lat_codes, cost_codes = codes[lat_ok], codes[cost_ok]

    n = np.array([lb.size] * len(percents) + [cb.size], dtype=np.int64)
    clusters = np.array(
        [np.unique(lat_codes).size] * len(percents) + [np.unique(cost_codes).size], dtype=np.int64
    )
    base = np.full(k, np.nan)
    cand = np.full(k, np.nan)
    reps = np.full((b, k), np.nan)
    columns: list[F64] = [np.bincount(lat_codes, minlength=n_clusters).astype(np.float64)]
    windows: list[tuple[_Window, _Window]] = []
    if lb.size:
        sizes = columns[0]
        for j, pct in enumerate(percents):
            wb, below_b = _window(lb, lat_codes, n_clusters, pct, sizes)
            wc, below_c = _window(lc, lat_codes, n_clusters, pct, sizes)
            base[j], cand[j] = _point(wb), _point(wc)
            columns.extend([below_b, below_c])
            windows.append((wb, wc))
    for costs in (cb, cc):
        columns.append(
            np.asarray(np.bincount(cost_codes, weights=costs, minlength=n_clusters), np.float64)
        )
    if cb.size:
        base[-1], cand[-1] = float(cb.mean()), float(cc.mean())
    with np.errstate(invalid="ignore", divide="ignore"):
        point = cand / base
    if cb.size and float(cb.sum()) > 0:
        point[-1] = float(cc.sum()) / float(cb.sum())
    if n_clusters == 0 or b <= 0:
        return RatioBoot(names, base, cand, point, n, clusters, reps)

    matrix = np.column_stack(columns)
    chunk = max(1, min(b, _CHUNK_CELLS // n_clusters))
    for start in range(0, b, chunk):
        m = min(chunk, b - start)
        counts = poisson_counts(rng, (m, n_clusters))
        agg = counts.astype(np.float64) @ matrix
        total = np.rint(agg[:, 0]).astype(np.int64)
        col = 1
        for j, (wb, wc) in enumerate(windows):
            qb = _weighted_quantile(counts, wb, np.rint(agg[:, col]).astype(np.int64), total)
            qc = _weighted_quantile(counts, wc, np.rint(agg[:, col + 1]).astype(np.int64), total)
            col += 2
            with np.errstate(invalid="ignore", divide="ignore"):
                reps[start : start + m, j] = qc / qb
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[start : start + m, -1] = agg[:, -1] / agg[:, -2]
    return RatioBoot(names, base, cand, point, n, clusters, reps)


def _weighted_quantile(counts: NDArray[np.int8], window: _Window, below: I64, total: I64) -> F64:
    """Weighted inverted-CDF quantile per replicate (row of counts)."""
    w, n_clusters = window.clusters.size, counts.shape[1]
    block = math.isqrt(w * n_clusters) + 1
    if w and 4 * block <= w:  # few large clusters (a wide window): sum whole blocks first
        return _block_quantile(counts, window, below, total, block)
    return _scan_quantile(counts, window, below, total)


def _scan_quantile(counts: NDArray[np.int8], window: _Window, below: I64, total: I64) -> F64:
    """`_weighted_quantile` by cumulating each replicate's weights over the whole window."""
    target = (total * window.percent + 99) // 100
    out = np.full(counts.shape[0], np.nan)
    ok = np.zeros(counts.shape[0], dtype=bool)
    if window.clusters.size:
        # Replicates a block at a time, so that the cumulated window (int64) stays near
        # _CHUNK_CELLS cells however wide the window is (few large clusters make it wide).
        rows = max(1, _CHUNK_CELLS // window.clusters.size)
        for s in range(0, counts.shape[0], rows):
            e = min(s + rows, counts.shape[0])
            cum = np.cumsum(counts[s:e, window.clusters], axis=1, dtype=np.int64)
            cum += below[s:e, None]
            hit = cum >= target[s:e, None]
            good = hit[:, -1] & (below[s:e] < target[s:e]) & (total[s:e] > 0)
            out[s:e][good] = window.values[hit[good].argmax(axis=1)]
            ok[s:e] = good
    _recount(counts, window, target, total, out, ok)
    return out


def _block_quantile(
    counts: NDArray[np.int8], window: _Window, below: I64, total: I64, block: int
) -> F64:
    """`_scan_quantile`'s answer (the same value: weights are whole numbers) without cumulating
    the whole window per replicate: each block of `block` sorted values gets its weight from one
    matrix product with its per-cluster counts, and only the block where the replicate's target
    is reached is cumulated value by value. For windows many times wider than the clusters are
    many (a few sessions of thousands of records), where the scan costs replicates × window."""
    target = (total * window.percent + 99) // 100
    m, n_clusters = counts.shape
    w = window.clusters.size
    n_blocks = -(-w // block)
    where = np.arange(w) // block * n_clusters + window.clusters
    per_block = np.bincount(where, minlength=n_blocks * n_clusters).reshape(n_blocks, n_clusters)
    # (exact: counts ≤ 15 times values per block, summed, stay far below 2^53)
    weights = np.rint(counts.astype(np.float64) @ per_block.T.astype(np.float64)).astype(np.int64)
    reached = np.cumsum(weights, axis=1) + below[:, None]
    out = np.full(m, np.nan)
    ok = reached[:, -1] >= target
    ok &= (below < target) & (total > 0)
    rows = np.flatnonzero(ok)
    first = (reached[rows] >= target[rows, None]).argmax(axis=1)  # the block reaching it
    before = np.where(first > 0, reached[rows, np.maximum(first - 1, 0)], below[rows])
    step = max(1, _CHUNK_CELLS // block)
    offsets = np.arange(block)
    for s in range(0, rows.size, step):
        r, b = rows[s : s + step], first[s : s + step]
        at = b[:, None] * block + offsets[None, :]
        inside = at < w
        at = np.minimum(at, w - 1)
        cum = np.cumsum(counts[r[:, None], window.clusters[at]] * inside, axis=1, dtype=np.int64)
        cum += before[s : s + step, None]
        k = (cum >= target[r, None]).argmax(axis=1)
        out[r] = window.values[b * block + k]
    _recount(counts, window, target, total, out, ok)
    return out


def _recount(
    counts: NDArray[np.int8],
    window: _Window,
    target: I64,
    total: I64,
    out: F64,
    ok: NDArray[np.bool_],
) -> None:
    for r in np.flatnonzero(~ok & (total > 0)):  # rare: the quantile left its window
        full = np.cumsum(counts[r, window.all_clusters], dtype=np.int64)
        out[r] = window.all_values[int(np.searchsorted(full, target[r]))]
