"""Checkpoints in the layout of the original ViT / AugReg ``.npz`` files, written for tests
(the model tests load a tiny one; the paper rehearsal loads one at ViT-B/32's shapes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

#: The shapes of the authors' ``B_32-i1k-...npz``: ViT-B/32 at 224 (a 7 x 7 grid of patches).
VIT_B32 = dict(width=768, depth=12, heads=12, patch=32, grid=7, mlp=3072)


def write_augreg_npz(
    path: str | Path, seed: int = 0, width=32, depth=2, heads=2, patch=8, grid=4, mlp=128, std: float = 1.0
) -> dict[str, torch.Tensor]:
    """A checkpoint in the layout of the original ViT / AugReg ``.npz`` files (the authors'
    ``B_32-i1k-...npz``): Flax parameter paths, kernels (in, out), patch kernel HWIO,
    attention kernels split by head, a 1000-class head; every value drawn from a normal
    distribution of standard deviation ``std``. Returns the arrays."""
    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(std)

    head_dim = width // heads
    arrays = {
        "embedding/kernel": normal(patch, patch, 3, width),
        "embedding/bias": normal(width),
        "cls": normal(1, 1, width),
        "Transformer/posembed_input/pos_embedding": normal(1, 1 + grid * grid, width),
        "Transformer/encoder_norm/scale": normal(width),
        "Transformer/encoder_norm/bias": normal(width),
        "head/kernel": normal(width, 1000),
        "head/bias": normal(1000),
    }
    for i in range(depth):
        block = f"Transformer/encoderblock_{i}/"
        for norm in ("LayerNorm_0", "LayerNorm_2"):
            arrays[f"{block}{norm}/scale"], arrays[f"{block}{norm}/bias"] = normal(width), normal(width)
        for name in ("query", "key", "value"):
            arrays[f"{block}MultiHeadDotProductAttention_1/{name}/kernel"] = normal(width, heads, head_dim)
            arrays[f"{block}MultiHeadDotProductAttention_1/{name}/bias"] = normal(heads, head_dim)
        arrays[f"{block}MultiHeadDotProductAttention_1/out/kernel"] = normal(heads, head_dim, width)
        arrays[f"{block}MultiHeadDotProductAttention_1/out/bias"] = normal(width)
        arrays[f"{block}MlpBlock_3/Dense_0/kernel"], arrays[f"{block}MlpBlock_3/Dense_0/bias"] = normal(width, mlp), normal(mlp)
        arrays[f"{block}MlpBlock_3/Dense_1/kernel"], arrays[f"{block}MlpBlock_3/Dense_1/bias"] = normal(mlp, width), normal(width)
    np.savez(path, **arrays)
    return {key: torch.from_numpy(value) for key, value in arrays.items()}
