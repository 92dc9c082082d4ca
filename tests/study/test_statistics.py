"""Pearson's r with undefined cases made explicit, and the Bonferroni correction."""

import math
import warnings

import pytest
from scipy import stats

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
