"""The claims' tests against SciPy's own implementations and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finetune_invariance.study.claims.inference import (
    drift,
    equivalence_interval,
    leave_one_out_r,
    mcnemar_p_bound,
    permutation_p_value,
    spearman,
)
from finetune_invariance.study.statistics import pearson


def exact_mcnemar(first: np.ndarray, second: np.ndarray) -> float:
    """One-sided exact McNemar p of paired outcomes, by SciPy's binomial test on the discordant pairs."""
    b, c = int((first & ~second).sum()), int((~first & second).sum())
    return 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue


@pytest.mark.parametrize("n, correct_first, correct_second", [(8, 6, 2), (9, 5, 4), (10, 7, 7), (10, 3, 6), (7, 7, 0)])
def test_mcnemar_bound_is_the_largest_p_over_every_pairing(n, correct_first, correct_second):
    second = np.arange(n) < correct_second
    pairings = (np.isin(np.arange(n), right) for right in itertools.combinations(range(n), correct_first))
    largest = max(exact_mcnemar(first, second) for first in pairings)
    assert mcnemar_p_bound(correct_first, correct_second, n) == pytest.approx(largest)


def test_mcnemar_bound_refuses_counts_outside_the_inputs():
    with pytest.raises(ValueError, match="0..10"):
        mcnemar_p_bound(11, 3, 10)


def test_equivalence_interval_is_students_t_interval_at_1_minus_2_alpha():
    differences = [-0.24, -0.15, -0.06, -0.1]
    expected = stats.t.interval(0.9, len(differences) - 1, loc=np.mean(differences), scale=stats.sem(differences))
    assert equivalence_interval(differences, 0.05) == pytest.approx(expected)


@pytest.mark.parametrize("differences", [[0.1], [0.1, np.nan, 0.2], []])
def test_equivalence_interval_undefined_with_fewer_than_two_values(differences):
    assert all(math.isnan(v) for v in equivalence_interval(differences, 0.05))


def test_spearman_is_scipys_and_undefined_for_a_constant():
    x, y = [1, 2, 3, 4, 5, 6], [0.1, 0.3, 0.2, 0.2, 0.9, 0.5]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman(x, [0.4] * 6))


def test_drift_is_the_fitted_change_across_the_span():
    epochs = pd.Index([10, 11, 12, 13, 14])
    assert drift(pd.Series(0.5 + 0.02 * epochs, index=epochs)) == pytest.approx(0.08)
    assert drift(pd.Series([0.5, 0.6, 0.5, 0.6, 0.5], index=epochs)) == pytest.approx(0.0)  # noise without a trend


def _exact_permutation_p(x, y) -> float:
    """Share of all n! orderings of y with |r| >= |r observed| (the permutation test's
    exact p-value, by enumeration)."""
    observed = abs(np.corrcoef(x, y)[0, 1])
    hits = [abs(np.corrcoef(x, order)[0, 1]) >= observed - 1e-12 for order in itertools.permutations(y)]
    return float(np.mean(hits))


def test_permutation_p_approaches_the_exact_enumeration():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.9, 0.2])
    y = np.array([0.2, 0.3, 0.5, 0.7, 0.4, 0.8, 0.1])
    exact = _exact_permutation_p(x, y)  # 5040 orderings
    estimate = permutation_p_value(x, y, permutations=20_000, seed=1)
    assert estimate == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4)


def test_permutation_p_is_unchanged_by_monotone_affine_maps_and_never_zero():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=12), rng.normal(size=12)
    p = permutation_p_value(x, y, permutations=2000, seed=3)
    assert permutation_p_value(3 * x - 1, 0.5 * y + 7, permutations=2000, seed=3) == p
    assert permutation_p_value(x, x, permutations=999, seed=0) == pytest.approx(1 / 1000)
    assert math.isnan(permutation_p_value([1.0, 1.0, 1.0, 1.0], y[:4], permutations=10))


def test_one_shared_outlier_fools_the_parametric_p_but_not_the_permutation_p():
    """x is 0 but for one outlying point, y is noise with an outlier at the same point.
    Pearson's parametric p is astronomically small, while |r| reaches its observed value
    exactly when a shuffle puts y's outlier back on x's, 1 ordering in n: the permutation p
    is 1 / n."""
    rng = np.random.default_rng(0)
    n = 20
    x, y = np.zeros(n), rng.normal(size=n)
    x[0], y[0] = 10.0, 10.0
    assert pearson(x, y)[1] < 1e-6
    assert permutation_p_value(x, y, permutations=20_000, seed=0) == pytest.approx(1 / n, rel=0.15)
    noise = rng.normal(size=n)
    without = leave_one_out_r(x + 0.1 * noise, y)
    assert abs(without[0]) < 0.7 < without[1:].min()  # r rests on point 0 alone


def test_leave_one_out_r_is_pearson_without_each_point():
    x, y = [1.0, 2.0, 4.0, 3.0, 5.0], [0.1, 0.5, 0.7, 0.2, 0.9]
    expected = [stats.pearsonr(np.delete(x, i), np.delete(y, i)).statistic for i in range(5)]
    assert leave_one_out_r(x, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match="length >= 4"):
        leave_one_out_r([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
