"""The input side every model of the study shares: images in [0, 1], clamped, normalised.

docs/method.md puts the clamp and the mean/std normalisation inside the model's forward, so
inversion works in [0, 1] pixel space and the metrics see the same model the trainer
trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class _ClampWithBoundaryGradient(torch.autograd.Function):
    """clamp(x, 0, 1) whose gradient passes where 0 <= x <= 1, bounds included.

    PyTorch versions used by the STIR authors let gradient through at the bounds;
    current ``torch.clamp`` does not, which would freeze every pixel that an inversion
    step has projected onto 0 or 1. Pixels strictly outside [0, 1] get no gradient.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        inside = (x >= 0) & (x <= 1)
        return grad_output * inside.to(grad_output.dtype)


def clamp_unit_interval(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1], passing gradient at the bounds (see :class:`_ClampWithBoundaryGradient`)."""
    return _ClampWithBoundaryGradient.apply(x)


class InputNormalization(nn.Module):
    """x -> (clamp(x, 0, 1) - mean) / std, per channel; the first step of every model's forward."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (clamp_unit_interval(images) - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
