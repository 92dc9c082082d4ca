"""Representation inversion, the STIR recipe (docs/method.md, "Representation inversion").

For model m, layer l and target images X, find X' with m_l(X') close to m_l(X):

- start from seed images X'_0 (default 'super-noise': standard normal, not clamped);
- per-sample loss  ||m_l(x') - m_l(x)||_2 / ||m_l(x)||_2  on flattened representations;
- step  x' <- clamp(x' - step_size * g / (||g||_2 + 1e-10), 0, 1), g the gradient of the
  batch-mean loss with respect to that sample's x';
- keep per sample the best of x'_0 .. x'_T (T + 1 evaluations), replacing only on a
  strictly lower loss; model in eval mode, input clamped inside the forward.

This is what the published STIR code does with the ``robustness``-style attacker
(targeted, use_best=True, step_size 0.5): its L2 step with a huge eps and its fork's
'unconstrained' step are both this normalised gradient step followed by the clamp (the
eps ball never binds), so the eps projection is left out. Given the same model, target
images and seed images, the inversions are the same.

All layers of one model are inverted in one batched optimisation: L copies of the n
images, copy a driven by layer ``layers[a]``'s loss, each copy leaving the network
after its own layer. Every step is normalised per sample, so a sample's path does not
depend on what else is in the batch: inverting all layers together, or in memory-sized
chunks, gives the same images as inverting one layer at a time.

Precision (``invert(precision=...)``, recorded in :class:`Inversions`): 'fp32' is the
recipe as published, float32 throughout with the global TF32 flags left as the caller set
them. 'tf32' lets CUDA matmuls and convolutions use TF32 for the duration (on the CPU it
is exactly 'fp32'). 'bf16' runs the model's forward under bfloat16 autocast on the
images' device, so its backward runs in bfloat16 too; the representations leave the
model as float32 and the loss, the best-iterate comparison and the step normalisation are
float32. The target representations m_l(X) are computed under the same autocast as the
iterates, so the loss compares representations of the same precision: an iterate equal to
its target has loss 0. What reduced precision costs: the representations carry rounding
errors (about 0.3% of their norm in bf16), so once a loss nears that level the gradient
direction degrades and the inversion stops improving sooner than in fp32; layers whose
losses fall low move most. benchmarks/inversion_precision.py measures the shift of STIR
and forgetting next to the seed-to-seed spread of fp32.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .atomic import atomic_path
from .layers import (
    LayeredModel,
    NonFiniteError,
    as_layers,
    check_images,
    describe_nonfinite_parameters,
    measuring,
)
from .inversion_settings import (
    CPU_MEMORY_BUDGET,
    DEFAULT_ITERATIONS,
    DEFAULT_PRECISION,
    DEFAULT_STEP_SIZE,
    GRADIENT_EPSILON,
    check_precision,
)

_FORMAT = "finetune_invariance.Inversions/2"


def super_noise(shape: Sequence[int], seed: int) -> torch.Tensor:
    """'super-noise' seed images: standard normal of ``shape`` (n, C, H, W), one draw per image.

    Drawn on the CPU from ``torch.Generator().manual_seed(seed)`` so the same seed gives
    the same noise on any device. :func:`invert` starts every layer of a model from this
    same draw (copy a of image k starts at ``super_noise(...)[k]`` for every a). The
    published code draws from torch's global generator instead; to reproduce one of its
    draws, pass those images as ``seed_images``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)


@dataclass(frozen=True)
class Inversions:
    """Inverted images X'_l of target images X through the layers of one model.

    ``images[a]`` are the inversions through layer ``layers[a]`` (in [0, 1]; a seed that
    was never improved on is stored clamped, which the model's clamping forward sees the
    same way); ``losses[a, k]`` is the best loss ||m_l(x') - m_l(x)|| / ||m_l(x)||.
    ``seed`` is the super-noise seed, or None when seed images were passed in;
    ``precision`` is the :data:`.inversion_settings.PRECISIONS` entry the inversion ran in (files written
    before it was recorded load as 'fp32', the only precision there was).
    """

    images: torch.Tensor  # (L, n, C, H, W) float32
    losses: torch.Tensor  # (L, n) float32
    layers: tuple[int, ...]
    targets: torch.Tensor  # (n, C, H, W) float32, the X that was inverted
    seed: int | None
    iterations: int
    step_size: float
    precision: str = "fp32"

    def __post_init__(self) -> None:
        L, n = len(self.layers), len(self.targets)
        check_precision(self.precision)
        if self.targets.ndim != 4:
            raise ValueError(f"targets must be (n, C, H, W), got shape {tuple(self.targets.shape)}")
        if tuple(self.images.shape) != (L, *self.targets.shape):
            raise ValueError(
                f"images have shape {tuple(self.images.shape)}, expected {(L, *self.targets.shape)} "
                f"for {L} layers of {n} targets"
            )
        if tuple(self.losses.shape) != (L, n):
            raise ValueError(f"losses have shape {tuple(self.losses.shape)}, expected {(L, n)}")
        if len(set(self.layers)) != L:
            raise ValueError(f"layers {self.layers} contain duplicates")

    def for_layer(self, layer: int) -> torch.Tensor:
        """The (n, C, H, W) inversions through ``layer``."""
        if layer not in self.layers:
            raise KeyError(f"layer {layer} was not inverted; inverted layers: {list(self.layers)}")
        return self.images[self.layers.index(layer)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write a safetensors file atomically (temporary file, then rename).

        The settings go into one header entry of sorted JSON: safetensors does not keep the
        order of several entries, so the same inversions would otherwise give other bytes.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            "images": self.images.detach().float().cpu().contiguous(),
            "losses": self.losses.detach().float().cpu().contiguous(),
            "targets": self.targets.detach().float().cpu().contiguous(),
        }
        settings = {
            "layers": list(self.layers),
            "seed": self.seed,
            "iterations": self.iterations,
            "step_size": self.step_size,
            "precision": self.precision,
        }
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={_FORMAT: json.dumps(settings, sort_keys=True)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Inversions:
        """Read a file written by :meth:`save`.

        ValueError naming the file, what was expected and how to recover if it is not one
        (truncated by a killed copy, overwritten, or another kind of safetensors file).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"inversions file {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {key: f.get_tensor(key) for key in f.keys()}
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise _not_an_inversions_file(path, f"it is not a readable safetensors file ({err})") from err
        if _FORMAT not in metadata:
            raise _not_an_inversions_file(path, f"its metadata has no '{_FORMAT}' entry (keys {sorted(metadata)})")
        missing = [k for k in ("images", "losses", "targets") if k not in tensors]
        if missing:
            raise _not_an_inversions_file(path, f"it lacks the tensors {missing}")
        try:
            settings = json.loads(metadata[_FORMAT])
            return cls(
                images=tensors["images"],
                losses=tensors["losses"],
                layers=tuple(settings["layers"]),
                targets=tensors["targets"],
                seed=settings["seed"],
                iterations=settings["iterations"],
                step_size=settings["step_size"],
                precision=settings["precision"],
            )
        except (KeyError, ValueError, TypeError) as err:
            raise _not_an_inversions_file(path, f"it is inconsistent: {err}") from err


def _not_an_inversions_file(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not an Inversions file: {problem}; expected a safetensors file of format {_FORMAT!r} "
        "written by Inversions.save (images, losses, targets). Delete it and rerun the inversion job that "
        "writes it (finetune_invariance.inversion.invert, then .save)."
    )


def invert(
    model: torch.nn.Module,
    images: torch.Tensor,
    layers: Sequence[int] | None = None,
    *,
    seed: int | None = None,
    seed_images: torch.Tensor | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    step_size: float = DEFAULT_STEP_SIZE,
    memory_budget: int | None = None,
    precision: str = DEFAULT_PRECISION,
    progress: bool | tqdm = True,
) -> Inversions:
    """Invert ``images`` (float32, n, C, H, W in [0, 1]) through ``layers`` (default: all) of ``model``.

    Give exactly one of ``seed`` (super-noise from :func:`super_noise`, the same draw for
    every layer) and ``seed_images`` (n, C, H, W, used for every layer). The L x n copies
    are optimised together in chunks whose estimated activation memory fits
    ``memory_budget`` bytes (default: half the free GPU memory, or
    :data:`.inversion_settings.CPU_MEMORY_BUDGET` on the CPU);
    chunking does not change the result. ``model`` is anything :func:`as_layers` accepts;
    it is put in eval mode with frozen parameters for the duration and restored after.

    ``precision``: 'fp32' (the published recipe), 'tf32' or 'bf16', as the module
    docstring describes; the global TF32 flags are restored afterwards.

    ``progress``: True shows a bar of this inversion's :func:`inversion_steps`, False
    none; a tqdm bar (anything with ``update(n)``) is advanced instead, by the images each
    gradient step moves, so that one bar can cover several inversions (``stir.compare``).
    """
    layered = as_layers(model)
    layers = layered.check_layers(layers)
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers {layers} contain duplicates")
    if iterations < 0 or step_size <= 0:
        raise ValueError(f"need iterations >= 0 and step_size > 0, got {iterations} and {step_size}")
    check_precision(precision)
    _check_target_images(images)
    start = _seed_images(images, seed, seed_images)
    n, n_copies = len(images), len(layers) * len(images)
    # Copy q = a * n + k is image k inverted through layers[a].
    item_layers = torch.tensor(layers).repeat_interleave(n)
    item_images = torch.arange(n).repeat(len(layers)).to(images.device)
    best_x = torch.empty((n_copies, *images.shape[1:]), device=images.device)
    best_loss = torch.empty(n_copies, device=images.device)
    with measuring(layered), _tf32(precision == "tf32"):
        targets = _target_representations(layered, images, layers, precision)
        copy_bytes = [_bytes_per_copy(layered, images, layer, precision) for layer in layers]
        chunks = _plan_chunks(
            [copy_bytes[q // n] for q in range(n_copies)], _budget(memory_budget, images), item_layers
        )
        steps = inversion_steps(len(layers), n, iterations)
        with _progress_bar(progress, steps, f"inverting {len(layers)} layers x {n} images") as bar:
            for chunk in chunks:
                best_x[chunk], best_loss[chunk] = _descend(
                    _loss_function(layered, item_layers[chunk], item_images[chunk], targets, precision),
                    start[item_images[chunk]],
                    item_layers[chunk],
                    n_images=n,
                    iterations=iterations,
                    step_size=step_size,
                    layered=layered,
                    on_step=lambda size=len(item_layers[chunk]): bar.update(size),
                )
    return Inversions(
        images=best_x.clamp(0, 1).view(len(layers), *images.shape),
        losses=best_loss.view(len(layers), n),
        layers=tuple(layers),
        targets=images.detach().clone(),
        seed=None if seed is None else int(seed),
        iterations=int(iterations),
        step_size=float(step_size),
        precision=precision,
    )


def inversion_steps(n_layers: int, n_images: int, iterations: int) -> int:
    """Image-steps of one :func:`invert` call: one gradient step of one image through one layer.

    The unit of its progress: it does not depend on how the copies are chunked, so the
    work of several inversions adds up before any of them starts.
    """
    return n_layers * n_images * iterations


def _progress_bar(progress: bool | tqdm, total: int, desc: str) -> AbstractContextManager:
    """The caller's bar as is (the caller closes it), or a bar of this inversion (hidden if ``progress`` is False)."""
    if not isinstance(progress, bool):
        return nullcontext(progress)
    return tqdm(total=total, disable=not progress, desc=desc, unit="image-step", unit_scale=True)


def _check_target_images(images: torch.Tensor) -> None:
    check_images(images, "images")
    if images.ndim != 4:
        raise ValueError(f"images must be float32 (n, C, H, W) in [0, 1], got shape {tuple(images.shape)}")


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions if ``enabled``; the caller's flags restored after."""
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        if enabled:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def _model_precision(precision: str, device: torch.device) -> AbstractContextManager:
    """The context for the model's forward: bfloat16 autocast for 'bf16', else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _seed_images(images: torch.Tensor, seed: int | None, seed_images: torch.Tensor | None) -> torch.Tensor:
    if (seed is None) == (seed_images is None):
        raise ValueError("give exactly one of seed (super-noise) and seed_images")
    if seed_images is None:
        return super_noise(images.shape, seed).to(images.device)
    if seed_images.shape != images.shape:
        raise ValueError(f"seed_images have shape {tuple(seed_images.shape)} but images {tuple(images.shape)}")
    return seed_images.detach().float().to(images.device)


def _target_representations(
    layered: LayeredModel, images: torch.Tensor, layers: list[int], precision: str
) -> dict[int, torch.Tensor]:
    """m_l(X) for every layer, in the iterates' precision; the loss divides by their norms, so none may be zero."""
    with torch.no_grad(), _model_precision(precision, images.device):
        reps = dict(zip(layers, layered.representations(images, layers)))
    for layer, rep in reps.items():
        zero = torch.nonzero(torch.linalg.vector_norm(rep, dim=1) == 0).flatten()
        if len(zero):
            raise ValueError(
                f"layer {layer}: the representation of image {int(zero[0])} is zero, so its relative loss is undefined"
            )
    return reps


def _loss_function(
    layered: LayeredModel,
    item_layers: torch.Tensor,
    item_images: torch.Tensor,
    targets: dict[int, torch.Tensor],
    precision: str,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """x' -> per-copy loss ||m_l(x') - m_l(x)|| / ||m_l(x)||, l and x the copy's layer and target.

    The model runs in ``precision``; the loss itself is float32.
    """

    def losses(x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(len(x))
        with _model_precision(precision, x.device):
            groups = layered.representations_per_sample(x, item_layers)
        for group in groups:
            target = targets[group.layer][item_images[group.index]]
            relative = torch.linalg.vector_norm(group.features - target, dim=1) / torch.linalg.vector_norm(
                target, dim=1
            )
            out = out.index_copy(0, group.index, relative)
        return out

    return losses


def _descend(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    item_layers: torch.Tensor,
    *,
    n_images: int,
    iterations: int,
    step_size: float,
    layered: LayeredModel,
    on_step: Callable[[], object],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The STIR descent for a batch of copies: best iterate and best loss per copy."""
    x, best_x = start.clone(), start
    best_loss = torch.full((len(x),), math.inf, device=x.device)
    for t in range(iterations + 1):
        stepping = t < iterations
        with torch.set_grad_enabled(stepping):
            x.requires_grad_(stepping)
            losses = loss_fn(x)
        _check_finite("loss", losses, item_layers, t, layered)
        improved = losses.detach() < best_loss  # strictly lower: ties keep the earlier iterate
        best_loss = torch.where(improved, losses.detach(), best_loss)
        best_x = torch.where(improved.view(-1, *([1] * (x.ndim - 1))), x.detach(), best_x)
        if not stepping:
            break
        # Gradient of the mean over the n images: every copy's loss carries weight 1/n.
        (grad,) = torch.autograd.grad(losses.sum() / n_images, x)
        grad_norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)
        _check_finite("gradient", grad_norm, item_layers, t, layered)
        step = grad / (grad_norm + GRADIENT_EPSILON).view(-1, *([1] * (grad.ndim - 1)))
        x = (x.detach() - step_size * step).clamp(0, 1)
        on_step()
    return best_x, best_loss


def _check_finite(
    what: str, values: torch.Tensor, item_layers: torch.Tensor, iteration: int, layered: LayeredModel
) -> None:
    bad = ~torch.isfinite(values)
    if bad.any():
        first = int(torch.nonzero(bad).flatten()[0])
        raise NonFiniteError(
            f"inversion through layer {int(item_layers[first])}: non-finite {what} at iteration {iteration} "
            f"({int(bad.sum())} of {len(values)} copies); {describe_nonfinite_parameters(layered)}"
        )


def _bytes_per_copy(layered: LayeredModel, images: torch.Tensor, layer: int, precision: str) -> int:
    """Estimated memory of one more copy inverted through ``layer``, in bytes.

    Measured, not modelled: the activation bytes autograd saves for a batch of two copies
    minus those for one, the model running in ``precision`` (weights excluded; their
    bfloat16 casts are made once per batch, so the difference cancels them), plus the
    copy's own float32 buffers (x', its gradient, the best iterate and its seed; the
    target representation and the loss's difference).
    """
    weights = {t.untyped_storage().data_ptr() for t in (*layered.parameters(), *layered.buffers())}

    def measure(batch: int) -> tuple[int, int]:
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                storages[storage.data_ptr()] = storage.nbytes()
            return t

        x = images[:1].detach().expand(batch, *images.shape[1:]).clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with _model_precision(precision, x.device):
                (group,) = layered.representations_per_sample(x, [layer] * batch)
            torch.linalg.vector_norm(group.features, dim=1)  # the loss saves its input too
        return sum(storages.values()), group.features.shape[1]

    saved_one, n_features = measure(1)
    saved_two, _ = measure(2)
    float_bytes = 4
    return max(saved_two - saved_one, 0) + float_bytes * (4 * images[0].numel() + 2 * n_features)


def _budget(memory_budget: int | None, images: torch.Tensor) -> int:
    if memory_budget is not None:
        if memory_budget <= 0:
            raise ValueError(f"memory_budget must be positive, got {memory_budget}")
        return int(memory_budget)
    if images.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(images.device)
        return free // 2
    return CPU_MEMORY_BUDGET


def _plan_chunks(copy_bytes: list[int], budget: int, item_layers: torch.Tensor) -> list[slice]:
    """Consecutive runs of copies whose estimated memory fits ``budget`` (greedy)."""
    chunks, begin, used = [], 0, 0
    for q, size in enumerate(copy_bytes):
        if size > budget:
            raise ValueError(
                f"memory_budget of {budget} bytes is below the ~{size} bytes one copy needs "
                f"at layer {int(item_layers[q])}"
            )
        if used + size > budget:
            chunks.append(slice(begin, q))
            begin, used = q, 0
        used += size
    chunks.append(slice(begin, len(copy_bytes)))
    return chunks
