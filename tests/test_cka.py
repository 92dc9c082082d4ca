"""Linear CKA against a naive implementation of docs/method.md and against its known properties."""

import itertools

import numpy as np
import pytest
import torch

from finetune_invariance.cka import MinibatchCKA, cka_matrix, linear_cka, normalized_centered_gram, unbiased_hsic


def naive_cka(x: np.ndarray, y: np.ndarray) -> float:
    """docs/method.md literally: HSIC(K, L) = trace(K H L H), CKA = HSIC(K,L) / sqrt(HSIC(K,K) HSIC(L,L))."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    k, l = x @ x.T, y @ y.T
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def naive_unbiased_hsic(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al. (2012) Theorem 2: HSIC_1 as a U-statistic over distinct index tuples."""
    n = len(x)
    k, l = x @ x.T, y @ y.T
    pairs = sum(k[i, j] * l[i, j] for i, j in itertools.permutations(range(n), 2))
    triples = sum(k[i, j] * l[i, q] for i, j, q in itertools.permutations(range(n), 3))
    quads = sum(k[i, j] * l[q, r] for i, j, q, r in itertools.permutations(range(n), 4))
    falling = lambda m: np.prod([n - t for t in range(m)])  # noqa: E731  (n)_m = n!/(n-m)!
    return pairs / falling(2) + quads / falling(4) - 2 * triples / falling(3)


@pytest.fixture
def xy():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 7, generator=g)
    y = x @ torch.randn(7, 5, generator=g) + 0.5 * torch.randn(20, 5, generator=g)
    return x, y


@pytest.mark.parametrize("form", ["auto", "gram", "feature"])
def test_matches_naive_trace_formula(xy, form):
    x, y = xy
    assert linear_cka(x, y, form=form) == pytest.approx(naive_cka(x.numpy(), y.numpy()), abs=1e-12)


def test_gram_form_equals_feature_form_when_features_outnumber_inputs():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 40, generator=g), torch.randn(6, 30, generator=g)
    assert linear_cka(x, y, form="gram") == pytest.approx(linear_cka(x, y, form="feature"), abs=1e-12)


def test_invariant_to_isotropic_scaling_and_orthogonal_transforms(xy):
    x, y = (t.double() for t in xy)  # so the transforms themselves add no float32 rounding
    q, _ = torch.linalg.qr(torch.randn(7, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    reference = linear_cka(x, y)
    assert linear_cka(3.7 * x, 0.01 * y) == pytest.approx(reference, abs=1e-10)
    assert linear_cka(x @ q, y) == pytest.approx(reference, abs=1e-10)


def test_symmetric_and_one_for_identical_inputs(xy):
    x, y = xy
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_accumulates_in_float64():
    # float32 inputs with a large common offset: centring and products in float32 would
    # lose about four significant digits. CKA is translation invariant, so the reference is
    # the naive formula on the same values centred exactly in float64 (the uncentred naive
    # product itself loses precision at this offset).
    g = torch.Generator().manual_seed(3)
    x = (1e4 + torch.randn(30, 50, generator=g)).float()
    y = (1e4 + torch.randn(30, 40, generator=g)).float()
    xd, yd = x.double().numpy(), y.double().numpy()
    expected = naive_cka(xd - xd.mean(0), yd - yd.mean(0))
    assert linear_cka(x, y, form="gram") == pytest.approx(expected, abs=1e-9)
    assert linear_cka(x, y, form="feature") == pytest.approx(expected, abs=1e-9)


def test_cka_matrix_matches_naive_for_every_pair():
    g = torch.Generator().manual_seed(4)
    xs = [torch.randn(12, d, generator=g) for d in (3, 8)]
    ys = [xs[0] @ torch.randn(3, 5, generator=g), torch.randn(12, 6, generator=g), xs[1]]
    m = cka_matrix(xs, ys)
    assert m.shape == (2, 3)
    for i, j in itertools.product(range(2), range(3)):
        assert m[i, j] == pytest.approx(naive_cka(xs[i].numpy(), ys[j].numpy()), abs=1e-12)


def test_unbiased_hsic_matches_u_statistic():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(7, 3, generator=g), torch.randn(7, 2, generator=g)
    expected = naive_unbiased_hsic(x.double().numpy(), y.double().numpy())
    assert unbiased_hsic(x, y) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_minibatch_cka_approaches_full_cka_for_large_n():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(6000, 4, generator=g)
    y = x @ torch.randn(4, 3, generator=g) + torch.randn(6000, 3, generator=g)
    accumulator = MinibatchCKA()
    for start in range(0, 6000, 300):
        accumulator.update(x[start : start + 300], y[start : start + 300])
    assert accumulator.n_batches == 20
    assert accumulator.compute() == pytest.approx(linear_cka(x, y), abs=0.01)


def test_minibatch_cka_is_not_inflated_by_many_features_like_small_batch_cka():
    # Independent high-dimensional representations: population CKA is 0. Biased CKA on a
    # 10-input batch is large; the unbiased estimate averaged over batches stays near 0.
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(400, 500, generator=g), torch.randn(400, 500, generator=g)
    accumulator = MinibatchCKA()
    for start in range(0, 400, 10):
        accumulator.update(x[start : start + 10], y[start : start + 10])
    assert linear_cka(x[:10], y[:10]) > 0.5
    assert abs(accumulator.compute()) < 0.05


def test_errors_name_the_problem(xy):
    x, y = xy
    with pytest.raises(ValueError, match="x has 20 inputs but y has 19"):
        linear_cka(x, y[:19])
    with pytest.raises(ValueError, match="identical for every input"):
        linear_cka(x, torch.ones(20, 3))
    with pytest.raises(ValueError, match="form must be"):
        linear_cka(x, y, form="exact")
    with pytest.raises(ValueError, match="at least 4 inputs"):
        unbiased_hsic(x[:3], y[:3])
    with pytest.raises(ValueError, match="before any update"):
        MinibatchCKA().compute()


def with_value(t: torch.Tensor, value: float) -> torch.Tensor:
    t = t.clone()
    t[2, 1] = value
    return t


@pytest.mark.parametrize("form", ["gram", "feature"])
def test_non_finite_representations_are_named_instead_of_giving_nan(xy, form):
    # Before: linear_cka returned nan without a word.
    x, y = xy
    with pytest.raises(ValueError, match=r"^x holds non-finite values \(1 NaN or inf of 140\)"):
        linear_cka(with_value(x, float("nan")), y, form=form)
    with pytest.raises(ValueError, match=r"^y holds non-finite values"):
        linear_cka(x, with_value(y, float("inf")), form=form)


def test_non_finite_values_are_named_in_matrix_gram_and_minibatch(xy):
    # Before: a matrix of nan, a Gram matrix of nan and a minibatch CKA of nan.
    x, y = xy
    bad = with_value(y, float("-inf"))
    with pytest.raises(ValueError, match=r"^ys\[1\] holds non-finite values"):
        cka_matrix([x, y], [y, bad])
    with pytest.raises(ValueError, match=r"^layer 3 holds non-finite values"):
        normalized_centered_gram(with_value(x, float("nan")), "layer 3")
    accumulator = MinibatchCKA()
    with pytest.raises(ValueError, match=r"^y holds non-finite values .* the unbiased HSIC estimator is undefined"):
        accumulator.update(x, bad)
    assert accumulator.n_batches == 0  # the bad batch left nothing behind
    accumulator.update(x, y)
    assert np.isfinite(accumulator.compute())


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_inputs_are_rejected_as_such(xy, n):
    # Before: "the representation is identical for every input", which blamed the data.
    x, y = xy
    message = rf"^x has {n} inputs but CKA needs at least 2 inputs"
    for form in ("gram", "feature"):
        with pytest.raises(ValueError, match=message):
            linear_cka(x[:n], y[:n], form=form)
    with pytest.raises(ValueError, match=message):
        normalized_centered_gram(x[:n])
    with pytest.raises(ValueError, match=rf"^xs\[0\] has {n} inputs"):
        cka_matrix([x[:n]], [y[:n]])


def test_cka_matrix_names_the_representation_of_other_inputs(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"xs\[0\] has 20 inputs but ys\[1\] has 19"):
        cka_matrix([x], [y, y[:19]])
