"""The statistics the study's correlation analyses share: Pearson's r with its p-value,
the Bonferroni correction, the shuffles of a series that permutation tests read, and
(beyond the paper) the permutation test that respects time series
(:func:`circular_surrogates`, :func:`surrogate_p_values`).

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


def circular_surrogates(values: Sequence[float]) -> np.ndarray:
    """Every circular shift of a series and of its time reversal: the 2n columns of an
    n x 2n array (for :func:`pearson_columns`-style products), the first the series itself.

    A permutation test of the correlation between two epoch series that shuffles one of
    them assumes its epochs exchangeable, which an autocorrelated series (a learning
    curve) is not: shuffles break the autocorrelation, so spurious correlations between
    two smooth series look significant. Shifting the series along a circle (and reversing
    it) keeps every lag of its autocorrelation, but at the one seam where the end meets the
    start, and keeps any outlying epoch as it is; under independence of a stationary
    series from the other it is exact (a stationary Gaussian series is also
    time-reversible). The price is resolution: there are only 2n of them, so a p-value
    cannot fall below 1 / (2n) (0.025 at 20 epochs, 0.05 at 10).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 3:
        raise ValueError(f"circular_surrogates needs a series of 3 or more values, got shape {values.shape}")
    forward = [np.roll(values, shift) for shift in range(len(values))]
    backward = [np.roll(values[::-1], shift) for shift in range(len(values))]
    return np.stack(forward + backward, axis=1)


def smallest_surrogate_p(n: int) -> float:
    """The smallest p-value :func:`surrogate_p_values` can give over n points: 1 / (2n)."""
    return 1.0 / (2 * n)


def _unit_columns(columns: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm; NaN where a column is constant."""
    centred = columns - columns.mean(axis=0)
    norms = np.linalg.norm(centred, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.ptp(columns, axis=0) > 0, centred / norms, np.nan)


def surrogate_p_values(columns: np.ndarray, y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided permutation p-values of Pearson's r of each column of ``columns`` (n x k,
    one family of hypotheses) with ``y`` (n), over the 2n :func:`circular_surrogates` of
    ``y``; the hypotheses' series are kept as they are, so their dependence on each other
    is kept too.

    Returns (p, p_familywise): p[h] is the share of surrogates whose |r| with column h
    reaches the observed |r|; p_familywise[h] is the share whose largest |r| over the whole
    family reaches column h's observed |r| (Westfall & Young's single-step max-T
    adjustment, which holds the family-wise error at the level without assuming the
    hypotheses independent, as Bonferroni does). The identity is among the surrogates, so
    neither is below 1 / (2n). NaN where r is undefined (a constant column or ``y``); the
    family maximum skips undefined columns.
    """
    columns, y = np.asarray(columns, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(y)
    if columns.ndim != 2 or len(columns) != n or n < 3:
        raise ValueError(
            f"surrogate_p_values needs an n x k array and a series of length n >= 3, got {columns.shape} and {n}"
        )
    k = columns.shape[1]
    p, p_familywise = np.full(k, np.nan), np.full(k, np.nan)
    if np.ptp(y) == 0 or k == 0:
        return p, p_familywise
    x = _unit_columns(columns)  # n x k
    surrogates = _unit_columns(circular_surrogates(y))  # n x 2n
    r = np.abs(surrogates.T @ x)  # 2n x k; row 0 is the observed
    observed = r[0] - 1e-12  # a surrogate equal to the observed (a symmetric series) reaches it
    defined = ~np.isnan(observed)
    if not defined.any():
        return p, p_familywise
    p[defined] = (r[:, defined] >= observed[defined]).mean(axis=0)
    largest = np.nanmax(r[:, defined], axis=1)
    p_familywise[defined] = (largest[:, None] >= observed[defined]).mean(axis=0)
    return p, p_familywise
