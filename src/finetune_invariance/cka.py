"""Linear CKA (Kornblith et al., 2019) and its unbiased minibatch estimate (Nguyen et al., 2021).

docs/method.md, "Linear CKA": for X (n x p) and Y (n x q) with K = X X^T, L = Y Y^T and
H = I - 11^T / n,

    HSIC(K, L) = trace(K H L H),    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)).

Since H K H = Xc Xc^T for the column-centred Xc, trace(K H L H) = <Xc Xc^T, Yc Yc^T>_F
(the "Gram form", n^2 (p + q) work) = ||Xc^T Yc||_F^2 (the "feature form", n p q work).
Everything is accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

Form = Literal["auto", "gram", "feature"]


def _check_representation(x: torch.Tensor, name: str, min_inputs: int = 2, needs: str = "CKA") -> None:
    """ValueError naming ``name`` unless ``x`` is an (n, features) representation CKA can use.

    n must be at least ``min_inputs`` (with one input, centring leaves nothing to compare)
    and every value finite (a NaN or inf would make the CKA NaN without a word).
    """
    if x.ndim != 2:
        raise ValueError(f"{name} must be an (n, features) representation, got shape {tuple(x.shape)}")
    if len(x) < min_inputs:
        raise ValueError(f"{name} has {len(x)} inputs but {needs} needs at least {min_inputs} inputs")
    finite = torch.isfinite(x)
    if not finite.all():
        raise ValueError(
            f"{name} holds non-finite values ({int((~finite).sum())} NaN or inf of {finite.numel()}): "
            f"{needs} is undefined; check the model or the inputs that produced it"
        )


def _check_same_inputs(
    named: Sequence[tuple[torch.Tensor, str]], min_inputs: int = 2, needs: str = "CKA"
) -> None:
    """Every (representation, name) passes :func:`_check_representation`, all with the same n."""
    for representation, name in named:
        _check_representation(representation, name, min_inputs, needs)
    first, first_name = named[0]
    n = len(first)
    for representation, name in named[1:]:
        if len(representation) != n:
            raise ValueError(
                f"{first_name} has {n} inputs but {name} has {len(representation)}: "
                "CKA compares representations of the same inputs"
            )


def centered(x: torch.Tensor) -> torch.Tensor:
    """Xc = H X in float64: each feature minus its mean over the n inputs."""
    x = x.detach().to(torch.float64)
    return x - x.mean(dim=0, keepdim=True)


def centered_gram(x: torch.Tensor) -> torch.Tensor:
    """H K H = Xc Xc^T (n x n, float64), the centred linear kernel of docs/method.md."""
    xc = centered(x)
    return xc @ xc.T


def normalized_centered_gram(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """H K H / ||H K H||_F, so that linear CKA (docs/method.md) is the Frobenius inner product of two of these.

    Raises ValueError naming ``name`` when ``x`` is not an (n, features) representation of
    at least 2 inputs, holds NaN or inf, or is the same for all inputs (CKA undefined).
    """
    _check_representation(x, name)
    return _normalized_centered_gram(x, name)


def _normalized_centered_gram(x: torch.Tensor, name: str) -> torch.Tensor:
    gram = centered_gram(x)
    norm = torch.linalg.matrix_norm(gram)  # sqrt(HSIC(K, K))
    if norm == 0:
        raise ValueError(f"the representation {name} is identical for every input: CKA is undefined")
    return gram / norm


def cka_from_grams(a: torch.Tensor, b: torch.Tensor) -> float:
    """CKA from two :func:`normalized_centered_gram` matrices: <A, B>_F."""
    return float((a * b).sum())


def _gram_cost(n: int, p: int, q: int) -> int:
    return n * n * (p + q + 1)


def _feature_cost(n: int, p: int, q: int) -> int:
    return n * (p * q + p * p + q * q)


def linear_cka(x: torch.Tensor, y: torch.Tensor, form: Form = "auto") -> float:
    """Linear CKA(X, Y) of docs/method.md for (n, p) and (n, q) representations, in float64.

    ``form`` picks the Gram form (n^2 (p + q) work) or the feature form (n (p q + p^2 + q^2));
    ``"auto"`` takes the cheaper. Both compute the same quantity.
    """
    _check_same_inputs([(x, "x"), (y, "y")])
    (n, p), q = x.shape, y.shape[1]
    if form == "auto":
        form = "gram" if _gram_cost(n, p, q) <= _feature_cost(n, p, q) else "feature"
    if form == "gram":
        return cka_from_grams(_normalized_centered_gram(x, "x"), _normalized_centered_gram(y, "y"))
    if form != "feature":
        raise ValueError(f"form must be 'auto', 'gram' or 'feature', got {form!r}")
    xc, yc = centered(x), centered(y)
    hsic_xy = torch.linalg.matrix_norm(xc.T @ yc) ** 2  # trace(KHLH) = ||Xc^T Yc||_F^2
    hsic_xx = torch.linalg.matrix_norm(xc.T @ xc) ** 2
    hsic_yy = torch.linalg.matrix_norm(yc.T @ yc) ** 2
    for hsic, name in ((hsic_xx, "x"), (hsic_yy, "y")):
        if hsic == 0:
            raise ValueError(f"the representation {name} is identical for every input: CKA is undefined")
    return float(hsic_xy / torch.sqrt(hsic_xx * hsic_yy))


def cka_matrix(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> np.ndarray:
    """M[i, j] = linear CKA(xs[i], ys[j]) (docs/method.md) for lists of layer representations of the same n inputs.

    Each Gram matrix is centred and normalised once per layer, and all pairs come from one
    matrix product of the flattened Grams.
    """
    if not xs or not ys:
        raise ValueError(f"need at least one representation on each side, got {len(xs)} and {len(ys)}")
    named = [(x, f"xs[{i}]") for i, x in enumerate(xs)] + [(y, f"ys[{j}]") for j, y in enumerate(ys)]
    _check_same_inputs(named)
    grams = [_normalized_centered_gram(x, name).flatten() for x, name in named]
    a, b = torch.stack(grams[: len(xs)]), torch.stack(grams[len(xs) :])
    return (a @ b.T).cpu().numpy()


def _hollow_gram(x: torch.Tensor) -> torch.Tensor:
    """K~ = X X^T with its diagonal set to 0, in float64."""
    x = x.detach().to(torch.float64)
    return (x @ x.T).fill_diagonal_(0)


def _unbiased_hsic_from_hollow_grams(k: torch.Tensor, l: torch.Tensor) -> float:
    n = len(k)
    k_rows, l_rows = k.sum(dim=1), l.sum(dim=1)
    value = (
        (k * l).sum()  # tr(K~ L~), both symmetric
        + k_rows.sum() * l_rows.sum() / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (k_rows @ l_rows)  # 1^T K~ L~ 1 = (K~ 1) . (L~ 1)
    ) / (n * (n - 3))
    return float(value)


def unbiased_hsic(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased linear HSIC estimator (Song et al., 2012; Nguyen et al., 2021, eq. 3), n >= 4.

    With K~, L~ the Gram matrices with zeroed diagonals:

        HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))
    """
    _check_minibatch(x, y)
    return _unbiased_hsic_from_hollow_grams(_hollow_gram(x), _hollow_gram(y))


def _check_minibatch(x: torch.Tensor, y: torch.Tensor) -> None:
    _check_same_inputs([(x, "x"), (y, "y")], min_inputs=4, needs="the unbiased HSIC estimator")


class MinibatchCKA:
    """Minibatch CKA (Nguyen et al., 2021, eq. 2): unbiased HSICs averaged over minibatches.

    For n too large for one Gram matrix: call :meth:`update` with each minibatch's
    representations (same inputs in x and y), then :meth:`compute`:

        CKA = mean_b HSIC_1(X_b, Y_b) / sqrt(mean_b HSIC_1(X_b, X_b) * mean_b HSIC_1(Y_b, Y_b))

    Plain (biased) CKA of a small batch is inflated when features outnumber inputs; the
    unbiased HSIC is not, which is why minibatches are combined this way rather than by
    averaging per-batch CKAs.
    """

    def __init__(self) -> None:
        self._sums = np.zeros(3)  # HSIC(X, Y), HSIC(X, X), HSIC(Y, Y)
        self.n_batches = 0

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add one minibatch: representations x (b, p) and y (b, q) of the same b >= 4 inputs."""
        _check_minibatch(x, y)
        k, l = _hollow_gram(x), _hollow_gram(y)
        hsic = _unbiased_hsic_from_hollow_grams
        self._sums += (hsic(k, l), hsic(k, k), hsic(l, l))
        self.n_batches += 1

    def compute(self) -> float:
        """The CKA over all minibatches added so far."""
        if self.n_batches == 0:
            raise ValueError("MinibatchCKA.compute() called before any update()")
        xy, xx, yy = self._sums / self.n_batches
        if xx <= 0 or yy <= 0:
            raise ValueError(f"non-positive self-HSIC ({xx:.3g}, {yy:.3g}): CKA is undefined for these batches")
        return float(xy / np.sqrt(xx * yy))
