"""Checkpoints: a model's state dict in safetensors, with everything needed to rebuild it.

The safetensors header holds one JSON entry (key :data:`HEADER_KEY`)::

    {"format_version": 1,
     "model": {"spec": ModelSpec.to_dict(), "task": ..., "num_classes": ...},
     "metadata": {...}}   # the caller's: epoch, metrics, training config, ...

so :func:`load_checkpoint` rebuilds any checkpoint from its path alone. Loading never
executes code from the file (safetensors holds tensors and strings only, no pickle), and
files are written atomically: a file under its final name is always complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path
from .models import ImageModel, ModelSpec, build_model

HEADER_KEY = "finetune_invariance"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, foreign, or does not fit its model."""


def _header_json(model: ImageModel, metadata: dict[str, Any]) -> str:
    header = {
        "format_version": FORMAT_VERSION,
        "model": {"spec": model.spec.to_dict(), "task": model.task, "num_classes": model.num_classes},
        "metadata": metadata,
    }
    try:
        return json.dumps(header, allow_nan=True)
    except TypeError as err:
        bad = [k for k, v in metadata.items() if not _json_serialisable(v)]
        raise TypeError(f"checkpoint metadata entries {bad} are not JSON-serialisable: {err}") from err


def _json_serialisable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def epoch_checkpoint(directory: str | os.PathLike, epoch: int) -> Path:
    """Where a training run keeps its checkpoint of ``epoch`` (0 = the starting weights)."""
    return Path(directory) / f"epoch_{int(epoch):03d}.safetensors"


def save_checkpoint(path: str | os.PathLike, model: ImageModel, metadata: dict[str, Any]) -> Path:
    """Write ``model``'s state dict and ``metadata`` (JSON-serialisable) to ``path`` atomically."""
    header = _header_json(model, metadata)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={HEADER_KEY: header})
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The parsed JSON header and the CPU tensors of a checkpoint file, without building a model.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (naming
    the path) for a corrupt or truncated file or one not written by :func:`save_checkpoint`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get(HEADER_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {err}") from err
    if raw is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not a checkpoint of this workflow (no '{HEADER_KEY}' header)"
        )
    header = json.loads(raw)
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {header.get('format_version')}, expected {FORMAT_VERSION}"
        )
    return header, tensors


def _check_state_fits(path: Path, model: ImageModel, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit its own model description: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    for key, value in expected.items():
        if value.shape != tensors[key].shape:
            raise CheckpointError(
                f"checkpoint {path}: tensor '{key}' has shape {tuple(tensors[key].shape)}, "
                f"the model expects {tuple(value.shape)}"
            )


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[ImageModel, dict[str, Any]]:
    """Rebuild the model saved at ``path`` (from its header alone) and return it with the
    caller's metadata. The architecture is built without fetching any pretrained weights;
    every tensor then comes from the file."""
    path = Path(path)
    header, tensors = read_checkpoint(path)
    saved = header["model"]
    spec = ModelSpec.from_dict(saved["spec"])
    # A random-weight shell of the same architecture and normalisation, filled from the file.
    model = build_model(replace(spec, weights="scratch"), saved["task"], saved["num_classes"])
    _check_state_fits(path, model, tensors)
    model.load_state_dict(tensors)
    model.spec = spec  # keep the provenance of the starting weights
    return model.to(map_location), header["metadata"]
