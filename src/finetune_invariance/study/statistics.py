"""The statistics the study's correlation analyses share: Pearson's r with its p-value,
the Bonferroni correction, and the shuffles of a series that permutation tests read.

A series that is constant across the correlated points has no defined Pearson r (the
std of a single layer, for instance, is 0 at every epoch): its r and p are NaN, reported
as undefined, never as a correlation of 0 or a significant one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Pearson r and two-sided p-value (``scipy.stats.pearsonr``); (NaN, NaN) if either
    series is constant. Needs at least 3 points (2 points always give r = +-1)."""
    from scipy import stats  # lazy: SciPy is slow to import and only the analyses need it

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"pearson needs two series of the same length >= 3, got {len(x)} and {len(y)}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    result = stats.pearsonr(x, y)
    return float(result.statistic), float(result.pvalue)


def pearson_columns(columns: np.ndarray, y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pearson` of each column of ``columns`` (n x k) with ``y`` (n), at once: the
    hypothesis family against one accuracy series. r is the same formula; the p-value is
    scipy's, from the exact distribution of r under independence (a beta distribution on
    [-1, 1] with both shapes n/2 - 1). NaN where a column or ``y`` is constant."""
    from scipy import stats

    columns, y = np.asarray(columns, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(y)
    if columns.ndim != 2 or len(columns) != n or n < 3:
        raise ValueError(f"pearson_columns needs an n x k array and a series of length n >= 3, got {columns.shape} and {n}")
    r = np.full(columns.shape[1], np.nan)
    p = np.full(columns.shape[1], np.nan)
    varying = np.ptp(columns, axis=0) > 0
    if np.ptp(y) == 0 or not varying.any():
        return r, p
    x = columns[:, varying] - columns[:, varying].mean(axis=0)
    yc = y - y.mean()
    x /= np.linalg.norm(x, axis=0)
    yc /= np.linalg.norm(yc)
    r[varying] = np.clip(yc @ x, -1.0, 1.0)
    p[varying] = 2 * stats.beta(n / 2 - 1, n / 2 - 1, loc=-1, scale=2).cdf(-np.abs(r[varying]))
    return r, p


def bonferroni(p_value: float, family_size: int) -> float:
    """min(1, p * family size); NaN stays NaN."""
    if family_size < 1:
        raise ValueError(f"family_size must be >= 1, got {family_size}")
    return min(1.0, p_value * family_size) if not math.isnan(p_value) else math.nan


def shuffled_columns(values: Sequence[float], shuffles: int, seed: int) -> np.ndarray:
    """``shuffles`` random orderings of ``values`` as the columns of an n x shuffles array
    (for :func:`pearson_columns`), drawn in order from ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=np.float64)
    return np.stack([rng.permutation(values) for _ in range(shuffles)], axis=1)
