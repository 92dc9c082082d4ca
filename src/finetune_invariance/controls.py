"""Planted-effect controls: (pretrained, finetuned) pairs whose answer is known by construction.

A metric that reports an effect earns trust by reporting effects that are known to be
there, and none where there are none. Each function here takes a trained timm
:class:`~timm.models.vision_transformer.VisionTransformer` q of depth D (or its layered
view) and returns a :class:`Control`: two models of D + 1 layers (the metrics compare
layer l with layer l), with what each finetuned layer computes known exactly:

- :func:`identical_copy`: (q, q), the negative control;
- :func:`reinitialised_from`: (q, r), r = q with blocks k..D-1 rewritten
  (:func:`rewritten_from`): layers 0..k-1 unchanged, every layer from k on new;
- :func:`expanded`: (r, r with s identity blocks inserted before block k): finetuned layer
  j computes pretrained layer j - s from layer k + s on, while finetuned layers k..k+s-1
  hold layer k - 1, from before the rewriting: pretrained invariances moved s layers
  deeper (expansion, above the diagonal);
- :func:`compressed`: the same two models the other way round: finetuned layer j computes
  pretrained layer j + s, and finetuned layer j + s is s rewriting blocks further:
  invariances moved s layers earlier (compression, below the diagonal);
- :func:`linearly_mapped`: (q, A q): finetuned layer l reads q's layer l through a fixed
  invertible, non-orthogonal linear map A_l (:class:`LinearMap`) from layer k on: the
  same level sets, so the same invariances, but another similarity (CKA divergence set to
  :data:`MAPPED_CKA_DIVERGENCE` on the control's images);
- :func:`collapsed`: (q, P q): finetuned layer l, for l < k, is q's layer l projected onto
  its leading principal directions on the control's images (:class:`LinearMap`,
  non-invertible): invariances gained (everything the projection drops), CKA divergence
  at most :data:`COLLAPSED_CKA_DIVERGENCE`: the mirror of the linear map.

An identity block is a copy of a block whose attention output projection and MLP output
layer are zero: a pre-norm residual block then returns its input exactly, and so do its
gradients. A rewritten block is redrawn at random (each tensor at its trained mean and
sd), its output layers amplified by :data:`REWRITE_GAIN` and its attention sharpened by
:data:`ATTENTION_SHARPENING`, so that it changes the representation it receives
substantially and amplifies small differences in it. Both are needed because the flow
contrasts finetuned layer j with finetuned layer i under pretrained layer i's inversions,
and the blocks of a trained residual network each add little to the representation they
pass on: a model computing layer i + 1 where layer i was, or a block redrawn at its trained
scale, shows almost no flow or forgetting (measured on the scale model's 12-block source:
|flow| < 0.006 for a 1- and a 5-layer shift, forgetting within 0.005 of the floor three
layers after a redrawn block). Compression needs the sharpening: a layer computed from
another has every invariance of it, so STIR(f_i | p_i) falls below STIR(f_j | p_i) (j < i)
only where f's blocks j+1..i amplify what the inversion through p_i left unmatched
(docs/controls.md). Layers are numbered as in :mod:`finetune_invariance.layers`: 0..D-1
block outputs, D the final normalised, pooled representation.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .cka import centered
from .layers import LayeredModel, LayerGroup, as_layers

#: Factor on a rewritten block's output layers: each then changes its input by a large
#: fraction of its norm (a trained block of the scale model, by a few percent).
REWRITE_GAIN = 10.0
#: Factor on a rewritten block's query and key weights (its attention logits grow by its
#: square): a sharp attention moves with small changes of its input, so the rewritten
#: blocks amplify the inversion's residual and compression shows in the flow (measured on
#: the scale model's source: planted compression cells +0.003..+0.02 without it).
ATTENTION_SHARPENING = 6.0
#: CKA divergence 1 - CKA(p_l(X), A_l p_l(X)) the linear map plants at each mapped layer
#: (on the control's images X): five times the smallest change the checks count.
MAPPED_CKA_DIVERGENCE = 0.1
#: Largest CKA divergence the collapse may plant: half the smallest change the checks count.
COLLAPSED_CKA_DIVERGENCE = 0.01
#: Smallest gain of the linear map (its condition number at most 1 / this).
MIN_MAP_GAIN = 1e-3


@dataclass(frozen=True)
class Control:
    """A control pair and its finetuned layers' known origin.

    ``source_layer[j]`` is the layer of ``pretrained`` that layer j of ``finetuned``
    computes exactly (bit for bit on the same inputs), or None where it computes
    something the pretrained model has in no layer.
    """

    name: str
    pretrained: nn.Module
    finetuned: nn.Module
    source_layer: tuple[int | None, ...]
    #: finetuned layer l -> the map it reads pretrained layer ``source_layer[l]`` through
    #: (f_l = A p_i exactly up to float rounding, instead of f_l = p_i bit for bit).
    maps: dict[int, LinearMap] = dataclasses.field(default_factory=dict)

    def moved_cells(self) -> list[tuple[int, int]]:
        """(pretrained layer i, finetuned layer j) of every layer that moved (i != j):
        below the diagonal (j < i) for compression, above it (j > i) for expansion."""
        return [(i, j) for j, i in enumerate(self.source_layer) if i is not None and i != j]

    def planted_flow_cells(self) -> list[tuple[int, int]]:
        """The moved cells (i, j) whose Invariance Flow STIR(f_j | p_i) - STIR(f_i | p_i) is
        positive by construction: f_j computes p_i and f_i does not (a moved cell whose
        finetuned layer i also computes p_i has flow 0)."""
        return [(i, j) for i, j in self.moved_cells() if self.source_layer[i] != i]

    def mapped_layers(self) -> list[int]:
        """Layers l where the finetuned model reads the pretrained layer through a map."""
        return sorted(self.maps)

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
    projection and the MLP output layer multiplied by :data:`REWRITE_GAIN` and the query
    and key weights by :data:`ATTENTION_SHARPENING`."""
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
            query_and_key = 2 * rewriting.attn.qkv.out_features // 3
            rewriting.attn.qkv.weight[:query_and_key].mul_(ATTENTION_SHARPENING)
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


# --- same invariances, other similarity (and the mirror) -------------------------------


class LinearMap(nn.Module):
    """A fixed linear map of a flattened representation, set by its action on orthonormal
    directions V (F x k): A = V diag(gains) V^T + rest (I - V V^T). Invertible when every
    gain and ``rest`` are non-zero (a rescaling of k directions), a projection onto V when
    the gains are 1 and ``rest`` is 0."""

    def __init__(self, directions: torch.Tensor, gains: torch.Tensor, rest: float):
        super().__init__()
        if directions.ndim != 2 or gains.shape != (directions.shape[1],):
            raise ValueError(
                f"need F x k directions and k gains, got {tuple(directions.shape)} and {tuple(gains.shape)}"
            )
        self.register_buffer("directions", directions.float().contiguous())
        self.register_buffer("gains", gains.float().contiguous())
        self.rest = float(rest)

    def extra_repr(self) -> str:
        return f"features={self.directions.shape[0]}, directions={self.directions.shape[1]}, rest={self.rest}"

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        along = features @ self.directions
        return self.rest * features + (along * (self.gains - self.rest)) @ self.directions.T

    def matrix(self) -> torch.Tensor:
        """A as an F x F matrix (for tests and documentation)."""
        return self(torch.eye(self.directions.shape[0], device=self.directions.device)).T


class MappedLayers(LayeredModel):
    """``base`` with layer l read through ``maps[l]`` (the other layers as they are): what
    the inversion, STIR and CKA see is the mapped representation, through the same code
    path as any model's layers (:meth:`LayeredModel.representations`,
    :meth:`LayeredModel.representations_per_sample`)."""

    def __init__(self, base: LayeredModel, maps: dict[int, LinearMap]):
        super().__init__()
        bad = [layer for layer in maps if not 0 <= layer < base.num_layers]
        if bad:
            raise ValueError(f"maps for layers {bad} of a model with layers 0..{base.num_layers - 1}")
        self.base = base
        self.maps = nn.ModuleDict({str(layer): linear for layer, linear in sorted(maps.items())})
        self.num_layers = base.num_layers

    def _map(self, layer: int, features: torch.Tensor) -> torch.Tensor:
        linear = self.maps[str(layer)] if str(layer) in self.maps else None
        return features if linear is None else linear(features)

    def _forward(self, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        return [self._map(layer, rep) for layer, rep in zip(layers, self.base._forward(images, layers))]

    def representations_per_sample(self, images, layer_of_sample) -> list[LayerGroup]:
        return [
            LayerGroup(group.layer, group.index, self._map(group.layer, group.features))
            for group in self.base.representations_per_sample(images, layer_of_sample)
        ]


def _principal(representation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values (descending) and right singular vectors (F x r, columns) of the
    representation centred over its n inputs, in float64 (:func:`.cka.centered`)."""
    _, values, vectors = torch.linalg.svd(centered(representation), full_matrices=False)
    return values, vectors.T


def planted_cka_divergence(singular_values: torch.Tensor, gains: torch.Tensor) -> float:
    """1 - CKA(X, X A) for the centred X with these singular values and A scaling its i-th
    principal direction by ``gains[i]`` (closed form: CKA = sum g^2 s^4 / sqrt(sum s^4 *
    sum g^4 s^4))."""
    s4 = singular_values.double() ** 4
    g2 = gains.double() ** 2
    return float(1 - (g2 * s4).sum() / torch.sqrt(s4.sum() * (g2**2 * s4).sum()))


def _rescaling(representation: torch.Tensor, divergence: float) -> LinearMap:
    """Rescale the leading principal direction of ``representation`` by the gain g in
    [:data:`MIN_MAP_GAIN`, 1] whose planted CKA divergence is ``divergence`` (the largest
    reachable where none is): the divergence grows as g falls."""
    values, vectors = _principal(representation)
    gains = torch.ones_like(values)

    def divergence_at(gain: float) -> float:
        gains[0] = gain
        return planted_cka_divergence(values, gains)

    low, high = MIN_MAP_GAIN, 1.0
    if divergence_at(low) > divergence:
        for _ in range(60):
            middle = (low * high) ** 0.5
            low, high = (middle, high) if divergence_at(middle) > divergence else (low, middle)
    return LinearMap(vectors[:, :1], torch.tensor([low]), rest=1.0)


def _projection(representation: torch.Tensor, divergence: float) -> LinearMap:
    """Project ``representation`` onto its fewest leading principal directions whose planted
    CKA divergence is at most ``divergence``: every other direction collapsed."""
    values, vectors = _principal(representation)
    for kept in range(1, len(values) + 1):
        gains = (torch.arange(len(values)) < kept).double()
        if planted_cka_divergence(values, gains) <= divergence:
            break
    return LinearMap(vectors[:, :kept], torch.ones(kept), rest=0.0)


def _check_layer(layer: int, base: LayeredModel, lowest: int, highest: int, what: str) -> None:
    if not lowest <= layer <= highest:
        raise ValueError(
            f"{what} must be a layer in {lowest}..{highest} of a model with layers 0..{base.num_layers - 1}, got {layer}"
        )


def _representations(layered: LayeredModel, images: torch.Tensor) -> list[torch.Tensor]:
    from .layers import measuring

    with measuring(layered), torch.no_grad():
        return layered.representations(images.to(layered.device))


def _read_through_maps(
    name: str,
    base: LayeredModel,
    images: torch.Tensor,
    layers: range,
    map_of: Callable[[torch.Tensor, float], LinearMap],
    divergence: float,
) -> Control:
    """(``base``, ``base`` with each of ``layers`` read through ``map_of(its representation
    on images, divergence)``): every layer keeps its origin (the map is recorded instead)."""
    reps = _representations(base, images)
    maps = {layer: map_of(reps[layer], divergence) for layer in layers}
    origin = tuple(range(base.num_layers))
    return Control(name, base, MappedLayers(base, maps), origin, maps)


def linearly_mapped(model: nn.Module, images: torch.Tensor, first_layer: int) -> Control:
    """(q, A q): finetuned layer l is q's layer l read through an invertible, non-orthogonal
    linear map A_l for l >= ``first_layer`` (q's layer l itself before): A_l rescales the
    leading principal direction of q's layer l on ``images`` so that the CKA divergence
    there is :data:`MAPPED_CKA_DIVERGENCE`. A_l p(x') = A_l p(x) exactly when p(x') = p(x),
    so both models have the same level sets (invariances) at every layer: learning and
    forgetting must sit at the floor while CKA divergence is clearly above 0. ``model``:
    anything :func:`~finetune_invariance.layers.as_layers` accepts (its layered view is the
    pretrained side)."""
    base = as_layers(model)
    _check_layer(first_layer, base, 0, base.num_layers - 1, "the first mapped layer")
    mapped = range(first_layer, base.num_layers)
    return _read_through_maps(
        f"linearly_mapped_from_layer_{first_layer}", base, images, mapped, _rescaling, MAPPED_CKA_DIVERGENCE
    )


def collapsed(model: nn.Module, images: torch.Tensor, last_layer: int) -> Control:
    """(q, P q): finetuned layer l is q's layer l projected onto its fewest leading
    principal directions on ``images`` that keep the CKA divergence at most
    :data:`COLLAPSED_CKA_DIVERGENCE`, for l <= ``last_layer`` (q's layer l itself after).
    P discards every other direction, so the finetuned layers up to ``last_layer`` are
    invariant to all that q's layer varies in there: learning (p's share of f's
    invariances) must rise above the floor while forgetting stays at it and CKA divergence
    barely moves, the paper's early-layer finding with a known answer."""
    base = as_layers(model)
    _check_layer(last_layer, base, 0, base.num_layers - 2, "the last collapsed layer")
    collapsed_layers = range(last_layer + 1)
    return _read_through_maps(
        f"collapsed_to_layer_{last_layer}", base, images, collapsed_layers, _projection, COLLAPSED_CKA_DIVERGENCE
    )
