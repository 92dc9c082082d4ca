"""Inversions kept on disk, keyed by everything that determines them (docs/method.md,
"Representation inversion").

An inversion is a function of the model (its weights, its normalisation and which
modules its layers are), the target images, the seed and the recipe (iterations, step
size, precision), and of nothing else: how the copies are chunked does not change it.
So a file named by a hash of exactly these can be reused by any later comparison that
needs the same inversions: a rerun, or a second finetuned model compared with the same
pretrained one. A model is identified by its content, not its name or path: the bytes of
its state dict (normalisation buffers included) and its module structure (``repr``,
which names the module types, sizes and, for :class:`.layers.HookedLayers`, the hooked
modules). Changing one weight, one image or the seed is another entry.

Files are :class:`.inversion.Inversions` files (safetensors, written atomically, so a
killed run never leaves one that looks complete). An entry that cannot be read, or whose
settings disagree with its key, is reported and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: the command line's --help names the cache without it
    import torch

    from .inversion import Inversions

#: Part of every key: a change of what an entry means (the recipe, the layer convention)
#: raises it, so that older entries are never mistaken for current ones.
CACHE_VERSION = 1
#: Bytes of an entry's file beyond its tensors (the safetensors header), at most.
ENTRY_HEADER_BYTES = 1024


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/finetune-invariance/inversions`` (``~/.cache/...`` without it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "finetune-invariance" / "inversions"


def entry_bytes(num_layers: int, images_shape: Sequence[int]) -> int:
    """The size of an entry's file: a model's inversions of (n, C, H, W) images through
    ``num_layers`` layers (float32 images, losses and targets, :meth:`.inversion.Inversions.save`)."""
    n, per_image = images_shape[0], math.prod(images_shape[1:])
    return 4 * (num_layers * n * per_image + num_layers * n + n * per_image) + ENTRY_HEADER_BYTES


def _update_with_tensor(digest: "hashlib._Hash", tensor: torch.Tensor) -> None:
    """dtype, shape and the raw bytes of ``tensor`` (on the CPU, contiguous)."""
    import torch

    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the layered view of ``model``: its module structure and every state-dict tensor."""
    from .layers import as_layers

    layered = as_layers(model)
    digest = hashlib.sha256()
    digest.update(f"{type(layered).__module__}.{type(layered).__qualname__}\n{layered!r}\n".encode())
    for name, tensor in layered.state_dict().items():
        digest.update(name.encode())
        _update_with_tensor(digest, tensor)
    return digest.hexdigest()


def images_fingerprint(images: torch.Tensor) -> str:
    """SHA-256 of the images' dtype, shape and bytes."""
    digest = hashlib.sha256()
    _update_with_tensor(digest, images)
    return digest.hexdigest()


@dataclass(frozen=True)
class InversionKey:
    """What an inversion of all layers of a model depends on (fingerprints from this module)."""

    model: str
    images: str
    seed: int
    iterations: int
    step_size: float
    precision: str

    def digest(self) -> str:
        fields = {**asdict(self), "cache_version": CACHE_VERSION}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def matches(self, inversions: Inversions, num_layers: int) -> bool:
        """Whether stored ``inversions`` are what this key describes (all ``num_layers`` layers)."""
        return (
            inversions.seed == self.seed
            and inversions.iterations == self.iterations
            and inversions.step_size == self.step_size
            and inversions.precision == self.precision
            and inversions.layers == tuple(range(num_layers))
            and images_fingerprint(inversions.targets.float()) == self.images
        )


def inversion_keys(
    models: Mapping[str, torch.nn.Module], images: torch.Tensor, seeds: Sequence[int], **recipe: object
) -> dict[tuple[str, int], InversionKey]:
    """The key of every (model name, seed) inversion of ``images`` with ``recipe``
    (iterations, step_size, precision), each model and the images hashed once."""
    images_key = images_fingerprint(images)
    keys = {}
    for name, model in models.items():
        model_key = model_fingerprint(model)
        keys.update({(name, seed): InversionKey(model_key, images_key, seed, **recipe) for seed in seeds})
    return keys


class InversionCache:
    """A folder of inversions of all layers, one file per :class:`InversionKey`.

    ``reused`` and ``stored`` count the entries read and written through this object.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.reused = 0
        self.stored = 0

    def path(self, key: InversionKey) -> Path:
        return self.directory / f"{key.digest()}.safetensors"

    def load(self, key: InversionKey, num_layers: int) -> Inversions | None:
        """The stored inversions of ``key``, or None if there are none (or none usable, with a warning)."""
        from .inversion import Inversions

        path = self.path(key)
        if not path.exists():
            return None
        try:
            inversions = Inversions.load(path)
        except ValueError as err:
            warnings.warn(f"inversion cache: {err}; inverting again and replacing it", stacklevel=2)
            return None
        if not key.matches(inversions, num_layers):
            warnings.warn(
                f"inversion cache: {path} does not hold the inversions its name stands for "
                f"(seed {inversions.seed}, {inversions.iterations} iterations, layers {list(inversions.layers)}); "
                "inverting again and replacing it",
                stacklevel=2,
            )
            return None
        self.reused += 1
        return inversions

    def store(self, key: InversionKey, inversions: Inversions) -> Path:
        path = inversions.save(self.path(key))
        self.stored += 1
        return path
