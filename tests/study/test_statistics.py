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


# --- beyond the paper: the permutation test that respects time series ----------------------


def test_circular_surrogates_are_every_shift_of_the_series_and_of_its_reversal():
    values = np.array([0.1, 0.5, 0.2, 0.9])
    surrogates = statistics.circular_surrogates(values)
    assert surrogates.shape == (4, 8) and (surrogates[:, 0] == values).all()
    expected = {tuple(np.roll(values, s)) for s in range(4)} | {tuple(np.roll(values[::-1], s)) for s in range(4)}
    assert {tuple(column) for column in surrogates.T} == expected
    with pytest.raises(ValueError, match="3 or more"):
        statistics.circular_surrogates([1.0, 2.0])


def _naive_surrogate_p(columns: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same test by loops over scipy's r: every shift of y and of y reversed."""
    n, k = columns.shape
    transforms = [np.roll(y, s) for s in range(n)] + [np.roll(y[::-1], s) for s in range(n)]
    r = np.array([[abs(stats.pearsonr(columns[:, h], t).statistic) for h in range(k)] for t in transforms])
    observed = r[0]
    p = (r >= observed - 1e-12).mean(axis=0)
    p_fwer = (r.max(axis=1)[:, None] >= observed - 1e-12).mean(axis=0)
    return p, p_fwer


def test_surrogate_p_values_match_a_naive_enumeration():
    rng = np.random.default_rng(3)
    y = rng.normal(size=9)
    columns = np.column_stack([rng.normal(size=9), y + 0.3 * rng.normal(size=9), np.cumsum(rng.normal(size=9))])
    p, p_fwer = statistics.surrogate_p_values(columns, y)
    expected_p, expected_fwer = _naive_surrogate_p(columns, y)
    np.testing.assert_allclose(p, expected_p)
    np.testing.assert_allclose(p_fwer, expected_fwer)
    assert (p_fwer >= p).all() and p.min() >= statistics.smallest_surrogate_p(9)


def test_surrogate_p_values_are_undefined_where_r_is_and_skip_those_in_the_family_maximum():
    rng = np.random.default_rng(4)
    y = rng.normal(size=10)
    columns = np.column_stack([y + 0.01 * rng.normal(size=10), np.ones(10)])
    p, p_fwer = statistics.surrogate_p_values(columns, y)
    assert np.isnan(p[1]) and np.isnan(p_fwer[1])
    assert p[0] == p_fwer[0] == pytest.approx(1 / 20)  # only the identity reaches r = 0.9999
    assert np.isnan(statistics.surrogate_p_values(columns, np.ones(10))[0]).all()


def _ar1(rng: np.random.Generator, phi: float, shape: tuple[int, ...], n: int) -> np.ndarray:
    """Stationary AR(1) series x_t = phi x_(t-1) + e_t, unit innovations: shape + (n,)."""
    noise = rng.normal(size=(*shape, n))
    series = np.empty_like(noise)
    series[..., 0] = noise[..., 0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        series[..., t] = phi * series[..., t - 1] + noise[..., t]
    return series


#: The embedded study's shape: 20 epochs, a STIR-sized family of 352 correlated hypotheses.
EPOCHS, FAMILY, REPLICATIONS = 20, 352, 2000


def _family(rng: np.random.Generator, phi: float) -> np.ndarray:
    """n x FAMILY autocorrelated series that share a common component (like aggregates of the same layers)."""
    return (0.7 * _ar1(rng, phi, (1,), EPOCHS) + 0.7 * _ar1(rng, phi, (FAMILY,), EPOCHS)).T


def _familywise_rejections(phi: float, p_familywise, replications: int = REPLICATIONS) -> int:
    """In how many of ``replications`` independent (family, accuracy) pairs of AR(1) series
    any member passes the family-wise test at 0.05."""
    rng = np.random.default_rng(11)
    return sum(
        np.nanmin(p_familywise(_family(rng, phi), _ar1(rng, phi, (), EPOCHS))) < 0.05 for _ in range(replications)
    )


def _binomial_bound(rate: float, replications: int = REPLICATIONS) -> int:
    """The most rejections a test with error ``rate`` gives in ``replications`` draws but
    once in a thousand (the binomial's 0.999 quantile: 5% + 3.1 s.e.)."""
    return int(stats.binom.ppf(0.999, replications, rate))


def _shuffle_p_familywise(columns: np.ndarray, y: np.ndarray, shuffles: int = 199) -> np.ndarray:
    """Max-T over shuffles of y (each epoch exchangeable): the test the surrogates replace."""

    def unit(a: np.ndarray) -> np.ndarray:
        a = a - a.mean(axis=0)
        return a / np.linalg.norm(a, axis=0)

    x = unit(columns)
    r = np.abs(unit(np.column_stack([y, statistics.shuffled_columns(y, shuffles, seed=0)])).T @ x)
    return (r.max(axis=1)[:, None] >= r[0] - 1e-12).mean(axis=0)


@pytest.mark.parametrize("phi", [0.0, 0.5])
def test_the_family_wise_error_on_autocorrelated_series_with_no_relation_holds_5_percent(phi):
    rejections = _familywise_rejections(phi, lambda columns, y: statistics.surrogate_p_values(columns, y)[1])
    assert rejections <= _binomial_bound(0.05), f"{rejections}/{REPLICATIONS} family-wise rejections at phi = {phi}"


def test_the_harness_catches_a_test_that_ignores_autocorrelation():
    """Shuffling the epochs of an AR(1) series with phi = 0.5 breaks its autocorrelation:
    the same harness finds its family-wise error far above 5%."""
    rejections = _familywise_rejections(0.5, _shuffle_p_familywise, replications=300)
    assert rejections > _binomial_bound(0.05, replications=300), f"{rejections}/300"


def test_a_planted_relation_is_found_family_wise():
    """The planted-robustness control's recipe: accuracy = the standardised member + noise
    of sd 0.3 (expected r 0.96), with autocorrelated series (phi = 0.5): found in 95% of
    replications or more."""
    rng = np.random.default_rng(12)
    found = 0
    for _ in range(200):
        columns = _family(rng, 0.5)
        member = (columns[:, 0] - columns[:, 0].mean()) / columns[:, 0].std()
        _, p_familywise = statistics.surrogate_p_values(columns, member + rng.normal(0, 0.3, EPOCHS))
        found += p_familywise[0] < 0.05
    assert found >= 190


def test_one_shared_outlier_fools_the_parametric_p_but_not_the_surrogates():
    """x is 0 but for one outlying epoch, y is noise with an outlier at the same epoch:
    Pearson's parametric p is astronomically small, while |r| reaches its observed value
    only where a surrogate puts y's outlier back on x's: the identity and one reversal, 2 of
    the 2n surrogates, p = 1 / n."""
    rng = np.random.default_rng(0)
    n = 20
    x, y = np.zeros(n), rng.normal(size=n)
    x[0], y[0] = 10.0, 10.0
    assert pearson(x, y)[1] < 1e-6
    p, p_familywise = statistics.surrogate_p_values(x[:, None], y)
    assert p[0] == p_familywise[0] == pytest.approx(1 / n)
