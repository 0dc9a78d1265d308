"""Holm's step-down (the NO-GO family) and Benjamini-Hochberg q-values (slices).

STATISTICS.md, "Multiplicity" and "Slices". Both take a vector of p-values and return adjusted
values in the same order; nan entries are left out of the family and stay nan.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["benjamini_hochberg", "holm"]


def holm(p: ArrayLike) -> NDArray[np.float64]:
    """Holm-adjusted p-values: `max_{j≤i} (m − j + 1) · p_(j)`, capped at 1.

    Rejecting where the adjusted p ≤ level is Holm's step-down procedure at that level.
    """
    values = np.asarray(p, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(values))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(values[idx], kind="stable")]
    scaled = (m - np.arange(m)) * values[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def benjamini_hochberg(p: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg q-values: `min_{j≥i} m · p_(j) / j`, capped at 1."""
    values = np.asarray(p, dtype=np.float64)
    out = np.full(values.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(values))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(values[idx], kind="stable")]
    scaled = values[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out
