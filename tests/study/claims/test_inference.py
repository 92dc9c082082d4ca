"""The claims' tests against SciPy's own implementations and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finetune_invariance.study.claims.inference import (
    correlation_gap,
    drift,
    equivalence_interval,
    leave_one_out_r,
    mcnemar_p_bound,
    mcnemar_text,
    r_interval,
    spearman,
    welch_p,
)


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


@pytest.mark.parametrize("n, correct_first, correct_second", [(10, 7, 7), (10, 3, 6), (9, 0, 9), (8, 4, 5)])
def test_mcnemar_text_of_a_first_accuracy_not_higher_says_what_every_pairing_gives(n, correct_first, correct_second):
    second = np.arange(n) < correct_second
    pairings = (np.isin(np.arange(n), right) for right in itertools.combinations(range(n), correct_first))
    assert min(exact_mcnemar(first, second) for first in pairings) >= 0.5
    assert mcnemar_text(correct_first, correct_second, n) == "not higher: McNemar's one-sided p >= 0.5"


def test_mcnemar_text_of_a_higher_first_accuracy_is_the_bound():
    assert mcnemar_text(6, 2, 8) == f"McNemar p <= {mcnemar_p_bound(6, 2, 8):.2g}" == "McNemar p <= 0.14"


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


def test_welch_p_is_scipys_one_sided_test_and_undefined_without_two_seeds_or_spread():
    higher, lower = [0.52, 0.55, 0.50], [0.40, 0.47]
    expected = stats.ttest_ind(higher, lower, equal_var=False, alternative="greater").pvalue
    assert welch_p(higher, lower) == pytest.approx(expected)
    assert welch_p(lower, higher) == pytest.approx(1 - expected)
    assert math.isnan(welch_p([0.5], lower)) and math.isnan(welch_p([0.5, 0.5], [0.4, 0.4]))


def test_correlation_gap_is_the_fisher_z_difference_and_its_standard_error():
    gap, error = correlation_gap(0.97, 13, 0.86, 13)
    assert gap == pytest.approx(np.arctanh(0.97) - np.arctanh(0.86))
    assert error == pytest.approx(math.sqrt(2 / 10))
    assert all(math.isnan(v) for v in correlation_gap(0.9, 3, 0.5, 10))  # no standard error over 3 points


def test_r_interval_covers_the_true_r_at_its_level():
    """Over draws of 20 points from a bivariate normal with rho = 0.3, the 90% interval
    covers 0.3 in about 90% of draws (binomial s.e. 0.0095 over 1000 draws)."""
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(1000):
        x = rng.normal(size=20)
        y = 0.3 * x + math.sqrt(1 - 0.09) * rng.normal(size=20)
        low, high = r_interval(float(np.corrcoef(x, y)[0, 1]), 20, 0.05)
        covered += low < 0.3 < high
    assert abs(covered / 1000 - 0.9) < 4 * 0.0095
    assert all(math.isnan(v) for v in r_interval(math.nan, 20, 0.05))


def test_leave_one_out_r_is_pearson_without_each_point():
    x, y = [1.0, 2.0, 4.0, 3.0, 5.0], [0.1, 0.5, 0.7, 0.2, 0.9]
    expected = [stats.pearsonr(np.delete(x, i), np.delete(y, i)).statistic for i in range(5)]
    assert leave_one_out_r(x, y) == pytest.approx(expected)
    with pytest.raises(ValueError, match="length >= 4"):
        leave_one_out_r([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
