"""Planted-effect controls: (pretrained, finetuned) pairs whose answer is known by construction.

A metric that reports an effect earns trust by reporting effects that are known to be
there, and none where there are none. Each function here takes a trained timm
:class:`~timm.models.vision_transformer.VisionTransformer` q of depth D and returns a
pair of models of depth D (the metrics compare layer l with layer l), built by surgery,
with the pretrained layer that each finetuned layer computes exactly:

- :func:`identical_copy`: (q, q), the negative control;
- :func:`reinitialised_from`: (q, r), r = q with blocks k..D-1 rewritten
  (:func:`rewritten_from`): a change localised from layer k on;
- :func:`expanded`: (r, r with s identity blocks inserted before block k): finetuned layer
  j computes pretrained layer j - s from layer k + s on, while finetuned layers k..k+s-1
  hold layer k - 1, from before the rewriting: pretrained invariances moved s layers
  deeper (expansion, above the diagonal);
- :func:`compressed`: the same two models the other way round: finetuned layer j computes
  pretrained layer j + s, and finetuned layer j + s is s rewriting blocks further:
  invariances moved s layers earlier (compression, below the diagonal).

An identity block is a copy of a block whose attention output projection and MLP output
layer are zero: a pre-norm residual block then returns its input exactly, and so do its
gradients. A rewritten block is redrawn at random (each tensor at its trained mean and
sd) with its output layers amplified by :data:`REWRITE_GAIN`, so that it changes the
representation it receives substantially. Both are needed because the flow contrasts
finetuned layer j with finetuned layer i under pretrained layer i's inversions, and the
blocks of a trained residual network each add little to the representation they pass on:
a model computing layer i + 1 where layer i was, or a block redrawn at its trained scale,
shows almost no flow or forgetting (measured on the scale model's 12-block source:
|flow| < 0.006 for a 1- and a 5-layer shift, forgetting within 0.005 of the floor three
layers after a redrawn block). Layers are numbered as in :mod:`finetune_invariance.layers`:
0..D-1 block outputs, D the final normalised, pooled representation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

#: Factor on a rewritten block's output layers: each then changes its input by a large
#: fraction of its norm (a trained block of the scale model, by a few percent).
REWRITE_GAIN = 10.0


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


def with_identities_inserted(vit: VisionTransformer, block: int, count: int) -> VisionTransformer:
    """A copy of ``vit`` with ``count`` identity blocks inserted before block ``block`` and its
    last ``count`` blocks dropped (same depth D): its layer j is ``vit``'s layer j for
    j < block, the input of block ``block`` for block <= j < block + count (the token
    embedding when ``block`` is 0), and ``vit``'s layer j - count from block + count on."""
    depth = _depth(vit)
    _check_block(block, depth, 0, depth - 1, "the block the identities are inserted before")
    if not 1 <= count <= depth - block - 1:
        raise ValueError(f"{count} identity blocks before block {block} leave no block of a model of depth {depth}")
    surgery = copy.deepcopy(vit)
    blocks = list(surgery.blocks)
    identities = [identity_block(blocks[max(block - 1, 0)]) for _ in range(count)]
    surgery.blocks = nn.Sequential(*blocks[:block], *identities, *blocks[block : depth - count])
    return surgery


def identical_copy(vit: VisionTransformer) -> Control:
    """(q, q): every metric must sit at the floor an unchanged model gives."""
    depth = _depth(vit)
    return Control("identical_copy", vit, copy.deepcopy(vit), tuple(range(depth + 1)))


def rewritten_from(vit: VisionTransformer, block: int, seed: int = 0) -> VisionTransformer:
    """A copy of ``vit`` whose blocks ``block``..D-1 are rewritten: every tensor redrawn from
    a normal with that tensor's own mean and sd (seeded), then the attention output
    projection and the MLP output layer multiplied by :data:`REWRITE_GAIN`."""
    depth = _depth(vit)
    _check_block(block, depth, 1, depth - 1, "the first rewritten block")
    rewritten = copy.deepcopy(vit)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in rewritten.blocks[block:].parameters():
            spread = parameter.std() if parameter.numel() > 1 else parameter.new_zeros(())
            draw = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
            parameter.copy_(parameter.mean() + spread * draw)
        for rewriting in rewritten.blocks[block:]:
            for layer in (rewriting.attn.proj, rewriting.mlp.fc2):
                layer.weight.mul_(REWRITE_GAIN)
    return rewritten


def reinitialised_from(vit: VisionTransformer, block: int, seed: int = 0) -> Control:
    """(q, q with blocks ``block``..D-1 rewritten, :func:`rewritten_from`): the embedding,
    the blocks before ``block`` and the final norm are q's, so layers 0..block-1 are
    unchanged and the layers from ``block`` on are new."""
    depth = _depth(vit)
    origin = tuple(j if j < block else None for j in range(depth + 1))
    return Control(f"reinitialised_from_block_{block}", vit, rewritten_from(vit, block, seed), origin)


def _check_shift(block: int, shift: int, depth: int) -> None:
    if shift < 1 or block + shift > depth - 1:
        raise ValueError(
            f"moving invariances by {shift} layers from block {block} leaves no moved layer in a model of "
            f"depth {depth} (needs 1 <= shift <= {depth - 1 - block})"
        )


def expanded(vit: VisionTransformer, block: int, shift: int, seed: int = 0) -> Control:
    """(r, r with ``shift`` identity blocks inserted before ``block``), r = ``vit`` rewritten
    from ``block`` on: finetuned layer j computes pretrained layer j - ``shift`` for
    j >= ``block`` + ``shift`` (the cells (j - shift, j) above the diagonal), and finetuned
    layers ``block``..``block`` + ``shift`` - 1 compute layer ``block`` - 1, from before the
    rewriting. The pooled layer is new."""
    depth = _depth(vit)
    _check_shift(block, shift, depth)
    pretrained = rewritten_from(vit, block, seed)
    finetuned = with_identities_inserted(pretrained, block, shift)
    origin = [
        *range(block),
        *(block - 1 for _ in range(shift)),
        *(j - shift for j in range(block + shift, depth)),
        None,
    ]
    return Control(f"expanded_by_{shift}_from_block_{block}", pretrained, finetuned, tuple(origin))


def compressed(vit: VisionTransformer, block: int, shift: int, seed: int = 0) -> Control:
    """(r with ``shift`` identity blocks inserted before ``block``, r), r = ``vit`` rewritten
    from ``block`` on: finetuned layer j computes pretrained layer j + ``shift`` for
    ``block`` <= j <= D - 1 - ``shift`` (the cells (j + shift, j) below the diagonal), while
    finetuned layer j + ``shift`` is ``shift`` rewriting blocks further. Finetuned layer
    ``block`` - 1 is pretrained layers ``block`` - 1..``block`` + ``shift`` - 1 at once
    (counted as unchanged); its last ``shift`` layers and the pooled layer are new."""
    depth = _depth(vit)
    _check_shift(block, shift, depth)
    finetuned = rewritten_from(vit, block, seed)
    pretrained = with_identities_inserted(finetuned, block, shift)
    origin = [*range(block), *(j + shift for j in range(block, depth - shift))]
    origin += [None] * (depth + 1 - len(origin))
    return Control(f"compressed_by_{shift}_from_block_{block}", pretrained, finetuned, tuple(origin))
