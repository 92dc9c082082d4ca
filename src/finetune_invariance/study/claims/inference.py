"""The tests behind the claims' thresholds that the correlation analyses do not share.

- :func:`mcnemar_p_bound`: McNemar's exact paired test of two accuracies measured on the
  same inputs, bounded from the two correct counts alone (the robust-accuracy table keeps
  no per-input outcomes);
- :func:`equivalence_interval`: the interval of a two one-sided tests (TOST) equivalence
  test on per-seed differences;
- :func:`spearman`: Spearman's rank correlation;
- :func:`drift`: the fitted change of a series across its span;
- :func:`permutation_p_value` and :func:`leave_one_out_r` (beyond the paper): what
  Pearson's parametric p-value of a correlation across epochs rests on.

SciPy is imported lazily: only the claims job needs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..statistics import pearson, pearson_columns, shuffled_columns


def mcnemar_p_bound(correct_first: int, correct_second: int, n: int) -> float:
    """The largest one-sided exact McNemar p-value (alternative: the first accuracy is the
    higher) over every pairing of two sets of outcomes on the same ``n`` inputs with these
    correct counts.

    McNemar's test reads the discordant inputs: b right only the first time, c right only
    the second time, p = P(Binomial(b + c, 1/2) >= b). The counts fix b - c; the pairing
    fixes b + c, which the table does not record. Every pairing's p is at most this bound,
    so a bound below the level is a significant McNemar test whatever the pairing was.
    """
    from scipy import stats

    if not 0 <= correct_first <= n or not 0 <= correct_second <= n:
        raise ValueError(f"correct counts must lie in 0..{n}, got {correct_first} and {correct_second}")
    gain = correct_first - correct_second
    if gain <= 0:
        return 1.0  # the pairing with no discordant input (b = c = 0 when equal) gives p = 1
    # b: right at the first epoch only; c = b - gain: right at the second only.
    most = min(correct_first, n - correct_second, gain + min(correct_second, n - correct_first))
    b = np.arange(gain, most + 1)
    return float(stats.binom.sf(b - 1, 2 * b - gain, 0.5).max())


def equivalence_interval(differences: Sequence[float], alpha: float) -> tuple[float, float]:
    """The (1 - 2 alpha) Student-t interval of the mean of ``differences`` (one per seed):
    a TOST equivalence test at level alpha holds for margin m iff the interval lies inside
    (-m, m). Fewer than two values (or any NaN) leave it undefined: (NaN, NaN)."""
    from scipy import stats

    values = np.asarray(differences, dtype=np.float64)
    if len(values) < 2 or np.isnan(values).any():
        return math.nan, math.nan
    mean, error = float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))
    half = float(stats.t.ppf(1 - alpha, len(values) - 1)) * error
    return mean - half, mean + half


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's r of the average ranks); NaN if either series
    is constant (:func:`..statistics.pearson`)."""
    r, _ = pearson(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())
    return r


def drift(series: pd.Series) -> float:
    """The least-squares line's change from the first to the last point of ``series``
    (indexed by epoch): how far the series moves across its span, its noise aside."""
    if len(series) < 2:
        raise ValueError(f"drift needs at least 2 points, got {len(series)}")
    x = series.index.to_numpy(dtype=np.float64)
    slope = np.polyfit(x, series.to_numpy(dtype=np.float64), 1)[0]
    return float(slope * (x[-1] - x[0]))


def permutation_p_value(x: Sequence[float], y: Sequence[float], permutations: int, seed: int = 0) -> float:
    """Two-sided permutation p-value of Pearson's r: (1 + #{shuffles of y with |r| >= |r
    observed|}) / (1 + permutations), over ``permutations`` random shuffles of ``y``. It
    assumes only that the points are exchangeable when there is no correlation, where
    :func:`..statistics.pearson`'s parametric p also assumes normal series: one outlying
    point shared by both series gives a tiny parametric p, but about 1 / n here (the share
    of shuffles that put y's outlier back on x's). NaN where r is undefined."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    observed, _ = pearson(x, y)
    if math.isnan(observed):
        return math.nan
    r, _ = pearson_columns(shuffled_columns(y, permutations, seed), x)
    # A shuffle that reorders only equal values must count as reaching |r observed|.
    extreme = np.count_nonzero(np.abs(r) >= abs(observed) - 1e-12)
    return (1 + extreme) / (1 + permutations)


def leave_one_out_r(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Pearson r of the two series without point i, for each i (4 points or more): how
    much r rests on a single point."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 4:
        raise ValueError(f"leave_one_out_r needs two series of the same length >= 4, got {len(x)} and {len(y)}")
    return np.array([pearson(np.delete(x, i), np.delete(y, i))[0] for i in range(len(x))])
