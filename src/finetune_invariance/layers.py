"""A model's layer representations (docs/method.md, "Models and layers").

Every metric of the library looks at a model through :class:`LayeredModel`: layers are
numbered ``0 .. num_layers - 1`` and each gives one flattened float32 vector per image.
For a timm Vision Transformer of depth D (:class:`ViTLayers`) there are D + 1 layers:
layer l < D is the output of transformer block l (all tokens, class/prefix tokens
included, flattened to T * D numbers) and layer D is the final normalised, pooled
representation (``norm`` as at the end of timm's ``forward_features``, then
``forward_head(pre_logits=True)``: pool and fc_norm). The same definition serves every
family timm builds as a ``VisionTransformer`` (:func:`token_layout` says which tokens a
layer holds: class, distillation and register tokens, patches; and what the last layer
pools); only the register tokens have an alternative (``register_tokens=False`` leaves
them out of the block layers). Any other network can be read through forward hooks on
named modules (:class:`HookedLayers`).

Images are in [0, 1]; the model's input normalisation (clamp, then mean/std) is the
first step of every forward, so the inversion works in pixel space.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .preprocessing import InputNormalization


class NonFiniteError(FloatingPointError):
    """A representation, loss or gradient contains NaN or inf."""


def check_images(images: torch.Tensor, name: str = "images", min_images: int = 1) -> None:
    """ValueError naming ``name`` unless ``images`` is a float32 tensor of >= ``min_images`` images in [0, 1].

    The models clamp and normalise their input themselves (docs/method.md, "Models and layers"),
    so uint8 pixels would be clamped to black and white without a word, and images already
    normalised would be clamped as well.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim == 0 or len(images) < min_images:
        raise ValueError(f"{name} holds {len(images) if images.ndim else 0} images; at least {min_images} are needed")
    if images.dtype != torch.float32:
        raise ValueError(
            f"{name} are {images.dtype}: images must be float32 in [0, 1] (the models normalise them themselves)"
        )
    outside = ~((images >= 0) & (images <= 1))  # NaN counts as outside
    if outside.any():
        finite = images[torch.isfinite(images)]
        span = f"[{float(finite.min()):.3g}, {float(finite.max()):.3g}]" if finite.numel() else "none"
        raise ValueError(
            f"{name} have {int(outside.sum())} values outside [0, 1] or NaN (finite range {span}): "
            "images must be float32 in [0, 1] (the models normalise them themselves)"
        )


class LayerGroup(NamedTuple):
    """The samples of a batch whose representation was taken at one layer."""

    layer: int
    index: torch.Tensor  # positions of these samples in the batch, int64, on the images' device
    features: torch.Tensor  # (len(index), F) flattened representations, float32


class LayeredModel(nn.Module, ABC):
    """A model seen as its layers 0 .. num_layers - 1 (the interface every metric uses)."""

    num_layers: int

    @property
    def device(self) -> torch.device:
        """Where the model's weights are: inputs are moved there."""
        return next(self.parameters()).device

    def representations(self, images: torch.Tensor, layers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """One (n, F_l) float32 tensor per requested layer (all layers if ``None``), in order.

        Raises :class:`NonFiniteError` naming the layer (and any broken weights) if a
        representation contains NaN or inf.
        """
        layers = self.check_layers(layers)
        reps = self._forward(images, layers)
        for layer, rep in zip(layers, reps):
            if not torch.isfinite(rep).all():
                raise NonFiniteError(
                    f"layer {layer}: representation contains NaN or inf; {describe_nonfinite_parameters(self)}"
                )
        return reps

    @abstractmethod
    def _forward(self, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """The representations of the (already validated) ``layers``, without finiteness checks."""

    def representations_per_sample(
        self, images: torch.Tensor, layer_of_sample: Sequence[int] | torch.Tensor
    ) -> list[LayerGroup]:
        """Each image's representation at its own layer ``layer_of_sample[k]``, grouped by layer.

        This generic version runs every image up to the deepest requested layer; subclasses
        that can let a sample leave the network early (:class:`ViTLayers`) override it.
        Gradients flow to ``images``. No finiteness check: the inversion checks its loss.
        """
        layer_of_sample = self._layer_tensor(layer_of_sample, len(images))
        present = sorted(set(layer_of_sample.tolist()))
        groups = []
        for layer, features in zip(present, self._forward(images, present)):
            index = torch.nonzero(layer_of_sample == layer).flatten().to(images.device)
            groups.append(LayerGroup(layer, index, features[index]))
        return groups

    def check_layers(self, layers: Sequence[int] | None) -> list[int]:
        """The requested layers as a list (all if ``None``); ValueError naming any out of range."""
        if layers is None:
            return list(range(self.num_layers))
        layers = [int(layer) for layer in layers]
        if not layers:
            raise ValueError("no layers requested")
        bad = [layer for layer in layers if not 0 <= layer < self.num_layers]
        if bad:
            raise ValueError(f"layer {bad[0]} is out of range: this model has layers 0..{self.num_layers - 1}")
        return layers

    def _layer_tensor(self, layer_of_sample: Sequence[int] | torch.Tensor, n: int) -> torch.Tensor:
        layer_of_sample = torch.as_tensor(layer_of_sample, dtype=torch.int64).cpu().flatten()
        if len(layer_of_sample) != n:
            raise ValueError(f"layer_of_sample has {len(layer_of_sample)} entries for {n} images")
        self.check_layers(layer_of_sample.unique().tolist())
        return layer_of_sample


def describe_nonfinite_parameters(model: nn.Module) -> str:
    """A clause for error messages: which parameters/buffers hold NaN or inf, or that none does."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    bad = [name for name, t in tensors if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        return f"non-finite weights: {shown}"
    return "all weights are finite, so the input or a numerical overflow produced it"


@contextmanager
def measuring(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration, restoring both afterwards.

    Eval mode is part of the method (docs/method.md: "the model is in eval mode"); freezing the
    parameters keeps autograd from saving what only a weight gradient would need (about a
    third of an inversion's activation memory on ViT-B/32). Each submodule's own mode is
    restored, so a model that was partly in eval mode stays that way.
    """
    modes = [(module, module.training) for module in model.modules()]
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in requires_grad:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for p, flag in requires_grad:
            p.requires_grad_(flag)


class TokenLayout(NamedTuple):
    """The tokens a timm ViT's blocks output, in their order, and what its last layer pools."""

    class_tokens: int  # 0 or 1, first
    distillation_tokens: int  # 0 or 1 (DeiT distilled), after the class token
    register_tokens: int  # DINOv2 'reg4': 4, after the class token
    patch_tokens: int  # the image's patches, last
    pooled: str  # the last layer, in words
    norm_pre: bool = False  # the embedded tokens are normalised before block 0 (CLIP)

    @property
    def prefix_tokens(self) -> int:
        return self.class_tokens + self.distillation_tokens + self.register_tokens

    def describe(self) -> str:
        """E.g. 'class token + 4 register tokens + 256 patches; last layer: ...'."""
        parts = [
            f"{n} {word}" if n > 1 else word
            for n, word in (
                (self.class_tokens, "class token"),
                (self.distillation_tokens, "distillation token"),
                (self.register_tokens, "register tokens" if self.register_tokens > 1 else "register token"),
            )
            if n
        ]
        pre = " (normalised by norm_pre before block 0)" if self.norm_pre else ""
        return " + ".join([*parts, f"{self.patch_tokens} patches"]) + f"{pre}; last layer: {self.pooled}"


def token_layout(vit: VisionTransformer) -> TokenLayout:
    """Which tokens the blocks of ``vit`` output and what :meth:`ViTLayers._pooled` reads
    (docs/method.md, "Which tokens a layer's representation holds, per family")."""
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"token_layout needs a timm VisionTransformer, got {type(vit).__name__}")
    classes = int(getattr(vit, "cls_token", None) is not None)
    distillation = int(getattr(vit, "dist_token", None) is not None)
    registers = int(getattr(vit, "num_reg_tokens", 0))
    norm = "fc_norm" if not isinstance(vit.fc_norm, nn.Identity) else "norm"
    if distillation:
        pooled = "the mean of the class and distillation tokens after the final norm (DeiT's two heads, averaged)"
    elif getattr(vit, "attn_pool", None) is not None:
        pooled = "attention pooling (MAP head) of the final normalised tokens"
    elif vit.global_pool == "token":
        pooled = f"the class token after the final {norm}"
    elif vit.global_pool:
        tokens = "all tokens" if getattr(vit, "pool_include_prefix", False) else "the patch tokens"
        pooled = f"global {vit.global_pool} pooling of {tokens}, then {norm}"
    else:
        pooled = f"every token after the final {norm}, flattened (no pooling)"
    norm_pre = not isinstance(vit.norm_pre, nn.Identity)
    return TokenLayout(classes, distillation, registers, vit.patch_embed.num_patches, pooled, norm_pre)


class ViTLayers(LayeredModel):
    """The D + 1 layers of a timm :class:`VisionTransformer` of depth D (docs/method.md, "Models and layers").

    ``normalization`` is the model's input step; by default
    ``InputNormalization(vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"])``.
    ``register_tokens``: whether the block layers hold the register tokens (DINOv2 'reg4')
    as they hold every other token the block outputs (the default), or leave them out.
    """

    def __init__(self, vit: VisionTransformer, normalization: nn.Module | None = None, register_tokens: bool = True):
        if not isinstance(vit, VisionTransformer):
            raise TypeError(f"ViTLayers needs a timm VisionTransformer, got {type(vit).__name__}")
        super().__init__()
        self.vit = vit
        self.normalization = normalization if normalization is not None else _default_normalization(vit)
        self.depth = len(vit.blocks)
        self.num_layers = self.depth + 1
        layout = token_layout(vit)
        # Positions of the register tokens to leave out of the block layers (none: keep all).
        first = layout.class_tokens + layout.distillation_tokens
        self._dropped = (
            (first, first + layout.register_tokens) if not register_tokens and layout.register_tokens else None
        )

    def extra_repr(self) -> str:
        """Whether the register tokens are left out (the inversion cache's key tells the layers apart)."""
        return "register_tokens=False" if self._dropped else ""

    def _block_layer(self, x: torch.Tensor) -> torch.Tensor:
        """A block's output (n, T, D) as the layer's (n, F) representation."""
        if self._dropped is not None:
            start, stop = self._dropped
            x = torch.cat([x[:, :start], x[:, stop:]], dim=1)
        return x.flatten(1).float()

    def _forward(self, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """One forward that stops after the deepest requested layer."""
        wanted = set(layers)
        outputs: dict[int, torch.Tensor] = {}
        x = self._tokens(images)
        for b in range(min(max(layers) + 1, self.depth)):
            x = self.vit.blocks[b](x)
            if b in wanted:
                outputs[b] = self._block_layer(x)
        if self.depth in wanted:
            outputs[self.depth] = self._pooled(x).float()
        return [outputs[layer] for layer in layers]

    def representations_per_sample(
        self, images: torch.Tensor, layer_of_sample: Sequence[int] | torch.Tensor
    ) -> list[LayerGroup]:
        """Truncated forward: a sample leaves after the block of its layer.

        The batch is sorted by layer, deepest first, so the samples that are done after
        block b are always the tail of what is still running: a layer-0 sample costs one
        block, not D. No finiteness check (the inversion checks its loss).
        """
        layer_of_sample = self._layer_tensor(layer_of_sample, len(images))
        order = torch.argsort(layer_of_sample, descending=True, stable=True)
        counts = torch.bincount(layer_of_sample, minlength=self.num_layers).tolist()
        order_dev = order.to(images.device)
        x = self._tokens(images[order_dev])
        running = len(order)
        groups = []
        for b in range(self.depth):
            if running == 0:
                break
            x = self.vit.blocks[b](x)
            done = counts[b]
            if done:
                groups.append(LayerGroup(b, order_dev[running - done : running], self._block_layer(x[-done:])))
                x = x[:-done]
                running -= done
        if running:
            groups.append(LayerGroup(self.depth, order_dev[:running], self._pooled(x).float()))
        return groups

    def _tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Input normalisation and the token embedding that precedes block 0 (timm's forward_features)."""
        self._check_images(images)
        vit = self.vit
        x = vit.patch_embed(self.normalization(images))
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        return vit.norm_pre(x)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer from the last block's output: final norm, then timm's pre-logits head."""
        return self.vit.forward_head(self.vit.norm(x), pre_logits=True)

    def _check_images(self, images: torch.Tensor) -> None:
        channels = self.vit.patch_embed.proj.in_channels
        if images.ndim != 4 or images.shape[1] != channels:
            raise ValueError(f"images must be (n, {channels}, H, W), got shape {tuple(images.shape)}")
        expected = self.vit.patch_embed.img_size
        fixed_size = expected is not None and not getattr(self.vit, "dynamic_img_size", False)
        if fixed_size and tuple(images.shape[-2:]) != tuple(expected):
            raise ValueError(f"images are {tuple(images.shape[-2:])} pixels but the model expects {tuple(expected)}")


def _default_normalization(vit: VisionTransformer) -> InputNormalization:
    """The timm config's mean/std, on the device of the model's weights."""
    cfg = vit.pretrained_cfg or {}
    if "mean" not in cfg or "std" not in cfg:
        raise ValueError("the model's pretrained_cfg has no mean/std: pass normalization= explicitly")
    return InputNormalization(cfg["mean"], cfg["std"]).to(next(vit.parameters()).device)


class _StopForward(Exception):
    """Raised from a hook once every requested layer is captured, to skip the rest of the forward."""


class HookedLayers(LayeredModel):
    """Layers of any network: layer l is the output of the module named ``module_names[l]``.

    Outputs are flattened per sample. The forward stops as soon as every requested layer
    has been captured, so list modules in the order the forward runs them for the early
    stop to save work. A module that runs more than once contributes its first output.
    ``normalization`` (default: none) is applied to the images before the model.
    """

    def __init__(self, model: nn.Module, module_names: Sequence[str], normalization: nn.Module | None = None):
        super().__init__()
        modules = dict(model.named_modules())
        missing = [name for name in module_names if name not in modules]
        if missing:
            some = ", ".join(list(name for name in modules if name)[:10])
            raise ValueError(f"modules {missing} are not in the {type(model).__name__}; some of its modules: {some}")
        if not module_names:
            raise ValueError("module_names is empty")
        self.model = model
        self.module_names = tuple(module_names)
        self.normalization = normalization if normalization is not None else nn.Identity()
        self.num_layers = len(self.module_names)

    def extra_repr(self) -> str:
        """The hooked modules, so that the repr (and the inversion cache's key) tells the layers apart."""
        return f"module_names={list(self.module_names)}"

    def _forward(self, images: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        wanted = set(layers)
        captured: dict[int, torch.Tensor] = {}
        modules = dict(self.model.named_modules())

        def capture(layer: int):
            def hook(module: nn.Module, inputs: object, output: object) -> None:
                if not isinstance(output, torch.Tensor):
                    raise TypeError(
                        f"layer {layer}: module '{self.module_names[layer]}' returned a "
                        f"{type(output).__name__}, not a tensor"
                    )
                captured.setdefault(layer, output.flatten(1).float())
                if len(captured) == len(wanted):
                    raise _StopForward

            return hook

        handles = [modules[self.module_names[layer]].register_forward_hook(capture(layer)) for layer in wanted]
        try:
            self.model(self.normalization(images))
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        never_ran = sorted(f"{layer} ('{self.module_names[layer]}')" for layer in wanted - captured.keys())
        if never_ran:
            raise RuntimeError(f"layers {never_ran} never ran in the model's forward")
        return [captured[layer] for layer in layers]


def as_layers(model: nn.Module) -> LayeredModel:
    """The layered view of ``model``.

    A :class:`LayeredModel` is returned as is; a timm VisionTransformer becomes
    :class:`ViTLayers` (normalisation from its pretrained_cfg); an object with a
    ``layered()`` method (the training code's ImageModel) gives ``model.layered()``.
    """
    if isinstance(model, LayeredModel):
        return model
    if isinstance(model, VisionTransformer):
        return ViTLayers(model)
    layered = getattr(model, "layered", None)
    if callable(layered):
        result = layered()
        if not isinstance(result, LayeredModel):
            raise TypeError(f"{type(model).__name__}.layered() returned a {type(result).__name__}, not a LayeredModel")
        return result
    raise TypeError(
        f"cannot find the layers of a {type(model).__name__}: wrap it as "
        "HookedLayers(model, module_names=[...], normalization=...) naming the modules whose outputs are the layers"
    )
