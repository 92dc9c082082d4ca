"""The tests behind the claims' thresholds that the correlation analyses do not share.

- :func:`mcnemar_p_bound`: McNemar's exact paired test of two accuracies measured on the
  same inputs, bounded from the two correct counts alone (the robust-accuracy table keeps
  no per-input outcomes);
- :func:`welch_p`: Welch's one-sided t-test of two seed means ("significantly");
- :func:`equivalence_interval`: the interval of a two one-sided tests (TOST) equivalence
  test on per-seed differences;
- :func:`correlation_gap` and :func:`r_interval`: Fisher's z of a correlation, for "lower"
  and for "no clear trend";
- :func:`spearman`: Spearman's rank correlation;
- :func:`drift`: the fitted change of a series across its span;
- :func:`leave_one_out_r` (beyond the paper): how much a correlation across epochs rests
  on one epoch.

SciPy is imported lazily: only the claims job needs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..statistics import pearson


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


def mcnemar_text(correct_first: int, correct_second: int, n: int, p_bound: float | None = None) -> str:
    """The McNemar evidence of two accuracies on the same ``n`` inputs: 'McNemar p <= 0.031'
    (:func:`mcnemar_p_bound`, or ``p_bound`` where the caller has computed it), or, where
    the first is not higher, that the one-sided test cannot pass (its p is at least 0.5
    whatever the pairing)."""
    if correct_first <= correct_second:
        return "not higher: McNemar's one-sided p >= 0.5"
    if p_bound is None:
        p_bound = mcnemar_p_bound(correct_first, correct_second, n)
    return f"McNemar p <= {p_bound:.2g}"


def welch_p(higher: Sequence[float], lower: Sequence[float]) -> float:
    """Welch's one-sided t-test p-value that the mean of ``higher`` (per-seed values)
    exceeds that of ``lower``. Undefined (NaN) with fewer than two values on a side, or
    where both have no spread (nothing to test a difference against)."""
    from scipy import stats

    a, b = np.asarray(higher, dtype=np.float64), np.asarray(lower, dtype=np.float64)
    if len(a) < 2 or len(b) < 2 or np.isnan(a).any() or np.isnan(b).any():
        return math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.nan
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    return float(stats.t.sf(t, df))


def fisher_z(r: float) -> float:
    return float(np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15)))


def correlation_gap(higher: float, n_higher: int, lower: float, n_lower: int) -> tuple[float, float]:
    """Fisher's z of ``higher`` minus that of ``lower`` (r over n points each, independent
    samples) and the standard error of that difference, sqrt(1/(n1-3) + 1/(n2-3));
    undefined (NaN, NaN) with fewer than 4 points on a side."""
    if min(n_higher, n_lower) < 4:
        return math.nan, math.nan
    return fisher_z(higher) - fisher_z(lower), math.sqrt(1 / (n_higher - 3) + 1 / (n_lower - 3))


def r_interval(r: float, n: int, alpha: float) -> tuple[float, float]:
    """The (1 - 2 alpha) interval of a correlation r over n points by Fisher's z: a TOST
    equivalence test at level alpha within (-m, m) holds iff it lies inside. NaN if r is."""
    from scipy import stats

    if math.isnan(r):
        return math.nan, math.nan
    if n < 4:
        raise ValueError(f"r_interval needs 4 or more points, got {n}")
    half = float(stats.norm.ppf(1 - alpha)) / math.sqrt(n - 3)
    z = fisher_z(r)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


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


def leave_one_out_r(x: Sequence[float], y: Sequence[float]) -> np.ndarray:
    """Pearson r of the two series without point i, for each i (4 points or more): how
    much r rests on a single point."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 4:
        raise ValueError(f"leave_one_out_r needs two series of the same length >= 4, got {len(x)} and {len(y)}")
    return np.array([pearson(np.delete(x, i), np.delete(y, i))[0] for i in range(len(x))])
