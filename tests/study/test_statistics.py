"""Pearson's r with undefined cases made explicit, and the Bonferroni correction."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from finetune_invariance.study import statistics
from finetune_invariance.study.statistics import bonferroni, pearson


def test_pearson_is_scipys_and_undefined_for_a_constant_series():
    x, y = [1.0, 2.0, 4.0, 3.0], [0.1, 0.5, 0.7, 0.2]
    expected = stats.pearsonr(x, y)
    assert pearson(x, y) == pytest.approx((expected.statistic, expected.pvalue))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r, p = pearson([0.3, 0.3, 0.3], [1.0, 2.0, 3.0])
    assert math.isnan(r) and math.isnan(p)


def test_pearson_needs_three_points_of_equal_series():
    with pytest.raises(ValueError, match="length >= 3"):
        pearson([1.0, 2.0], [2.0, 1.0])
    with pytest.raises(ValueError, match="same length"):
        pearson([1.0, 2.0, 3.0], [1.0, 2.0])


def test_bonferroni_multiplies_caps_at_one_and_keeps_undefined():
    assert bonferroni(1e-4, 352) == pytest.approx(0.0352)
    assert bonferroni(0.01, 352) == 1.0
    assert math.isnan(bonferroni(math.nan, 88))
    with pytest.raises(ValueError, match="family_size"):
        bonferroni(0.1, 0)


def test_pearson_columns_is_pearson_of_each_column():
    rng = np.random.default_rng(0)
    y = rng.normal(size=12)
    columns = np.column_stack([rng.normal(size=12), y + 0.1 * rng.normal(size=12), np.ones(12), -y])
    r, p = statistics.pearson_columns(columns, y)
    for k in range(columns.shape[1]):
        expected_r, expected_p = statistics.pearson(columns[:, k], y)
        np.testing.assert_allclose([r[k], p[k]], [expected_r, expected_p], rtol=1e-9, atol=1e-15, equal_nan=True)
    assert np.isnan(r[2]) and np.isnan(p[2])  # a constant column has no r
    assert np.all(np.isnan(statistics.pearson_columns(columns, np.ones(12))[0]))



def test_shuffled_columns_are_orderings_of_the_values_drawn_from_the_seed():
    values = [0.1, 0.5, 0.2, 0.9]
    columns = statistics.shuffled_columns(values, shuffles=50, seed=7)
    assert columns.shape == (4, 50)
    assert (np.sort(columns, axis=0) == np.sort(values)[:, None]).all()
    rng = np.random.default_rng(7)
    assert (columns[:, 0] == rng.permutation(np.array(values))).all()
    assert (columns[:, 1] == rng.permutation(np.array(values))).all()
