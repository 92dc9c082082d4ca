"""Planted-effect controls: (pretrained, finetuned) pairs whose answer is known by construction.

A metric that reports an effect earns trust by reporting effects that are known to be
there, and none where there are none. Each function here takes a trained timm
:class:`~timm.models.vision_transformer.VisionTransformer` q of depth D and returns a
pair of models of depth D (the metrics compare layer l with layer l), built by surgery, with
the pretrained layer that each finetuned layer computes exactly:

- :func:`identical_copy`: (q, q), the negative control;
- :func:`reinitialised_from`: (q, q with blocks k..D-1 re-initialised), a change
  localised from layer k on (layers 0..k-1 are q's);
- :func:`expanded`: (q, q with an identity block inserted before block m and its last
  block dropped): finetuned layer j computes pretrained layer j - 1 for m <= j <= D - 1,
  the pretrained invariances sit one layer deeper (expansion, above the diagonal);
- :func:`compressed`: the same two models the other way round: finetuned layer j computes
  pretrained layer j + 1 for m <= j <= D - 2, one layer earlier (compression, below the
  diagonal).

An identity block is a copy of a block whose attention output projection and MLP output
layer are zero: a pre-norm residual block then returns its input exactly, and so do its
gradients, so everything downstream of it is computed exactly as without it. (Removing a
block would not do: the blocks after it would see other inputs.) Layers are numbered as
in :mod:`finetune_invariance.layers`: 0..D-1 block outputs, D the final normalised, pooled
representation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from timm.models.vision_transformer import VisionTransformer, init_weights_vit_timm
from torch import nn


@dataclass(frozen=True)
class Control:
    """A control pair and its finetuned layers' known origin.

    ``source_layer[j]`` is the layer of ``pretrained`` that layer j of ``finetuned``
    computes exactly (bit for bit on the same inputs), or None where it computes
    something the pretrained model has in no layer.
    """

    name: str
    pretrained: VisionTransformer
    finetuned: VisionTransformer
    source_layer: tuple[int | None, ...]

    def moved_cells(self) -> list[tuple[int, int]]:
        """(pretrained layer i, finetuned layer j) of every layer that moved (i != j):
        below the diagonal (j < i) for compression, above it (j > i) for expansion."""
        return [(i, j) for j, i in enumerate(self.source_layer) if i is not None and i != j]

    def unchanged_layers(self) -> list[int]:
        """Layers l where the finetuned model computes the pretrained model's layer l."""
        return [j for j, i in enumerate(self.source_layer) if i == j]

    def changed_layers(self) -> list[int]:
        """Layers l where the finetuned model computes something new."""
        return [j for j, i in enumerate(self.source_layer) if i is None]


def _depth(vit: VisionTransformer) -> int:
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"controls need a timm VisionTransformer, got {type(vit).__name__}")
    return len(vit.blocks)


def _check_block(block: int, depth: int, lowest: int, highest: int, what: str) -> None:
    if not lowest <= block <= highest:
        raise ValueError(f"{what} must be a block in {lowest}..{highest} of a model of depth {depth}, got {block}")


def identity_block(block: nn.Module) -> nn.Module:
    """A copy of a pre-norm transformer block that returns its input exactly: its attention
    output projection and its MLP output layer (weights and biases) set to zero."""
    identity = copy.deepcopy(block)
    with torch.no_grad():
        for layer in (identity.attn.proj, identity.mlp.fc2):
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
    return identity


def with_identity_inserted(vit: VisionTransformer, block: int) -> VisionTransformer:
    """A copy of ``vit`` with an identity block inserted before block ``block`` and the
    last block dropped (same depth D): its layer j is ``vit``'s layer j for j < block and
    ``vit``'s layer j - 1 for block <= j <= D - 1; its pooled layer is the final norm of
    ``vit``'s layer D - 2."""
    depth = _depth(vit)
    _check_block(block, depth, 1, depth - 1, "the block the identity is inserted before")
    surgery = copy.deepcopy(vit)
    blocks = list(surgery.blocks)
    surgery.blocks = nn.Sequential(*blocks[:block], identity_block(blocks[block - 1]), *blocks[block : depth - 1])
    return surgery


def identical_copy(vit: VisionTransformer) -> Control:
    """(q, q): every metric must sit at the floor an unchanged model gives."""
    depth = _depth(vit)
    return Control("identical_copy", vit, copy.deepcopy(vit), tuple(range(depth + 1)))


def reinitialised_from(vit: VisionTransformer, block: int, seed: int = 0) -> Control:
    """(q, q with blocks ``block``..D-1 re-initialised by timm's ViT initialisation, seeded):
    the embedding, the blocks before ``block`` and the final norm are q's, so layers
    0..block-1 are unchanged and the layers from ``block`` on are new."""
    depth = _depth(vit)
    _check_block(block, depth, 1, depth - 1, "the first re-initialised block")
    finetuned = copy.deepcopy(vit)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        for module in finetuned.blocks[block:].modules():
            init_weights_vit_timm(module)
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()
    finally:
        torch.random.set_rng_state(generator_state)
    origin = tuple(j if j < block else None for j in range(depth + 1))
    return Control(f"reinitialised_from_block_{block}", vit, finetuned, origin)


def expanded(vit: VisionTransformer, block: int) -> Control:
    """(q, q with an identity inserted before ``block``): finetuned layer j computes the
    pretrained layer j - 1 for ``block`` <= j <= D - 1 (expansion, the cells (j - 1, j)
    above the diagonal); its pooled layer is new."""
    depth = _depth(vit)
    finetuned = with_identity_inserted(vit, block)
    origin = [*range(block), *(j - 1 for j in range(block, depth)), None]
    return Control(f"expanded_from_block_{block}", vit, finetuned, tuple(origin))


def compressed(vit: VisionTransformer, block: int) -> Control:
    """(q with an identity inserted before ``block``, q): finetuned layer j computes the
    pretrained layer j + 1 for ``block`` <= j <= D - 2 (compression, the cells (j + 1, j)
    below the diagonal). Finetuned layer ``block`` - 1 is pretrained layers ``block`` - 1
    and ``block`` at once (counted as unchanged); layers D - 1 and D are new."""
    depth = _depth(vit)
    pretrained = with_identity_inserted(vit, block)
    origin = [*range(block), *(j + 1 for j in range(block, depth - 1)), None, None]
    return Control(f"compressed_from_block_{block}", pretrained, vit, tuple(origin))
