"""Checkpoint files: a model's state dict in safetensors, with what is needed to rebuild it.

The safetensors header holds one JSON entry (key ``HEADER_KEY``; the format's names live
in the library's :mod:`..checkpoint_format`, whose command line reads these files too)::

    {"format_version": 1,
     "model": {"spec": ModelSpec.to_dict(), "task": ..., "num_classes": ...},
     "metadata": {...}}   # the caller's: epoch, test metrics, training config, ...

so :func:`finetune_invariance.study.models.load_checkpoint` rebuilds any checkpoint from
its path alone. This module is the file format only (it never builds a model). Loading
never executes code from the file (safetensors holds tensors and strings only, no
pickle); files are written atomically, and the same model and metadata always give the
same bytes (one header entry, its JSON keys sorted), so a checksum identifies a result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path
from ..checkpoint_format import FORMAT_VERSION, HEADER_KEY
from .results_folder import restore_published_checkpoint


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, foreign, or does not fit its model."""


def _header_json(model: Any, metadata: dict[str, Any]) -> str:
    header = {
        "format_version": FORMAT_VERSION,
        "model": {"spec": model.spec.to_dict(), "task": model.task, "num_classes": model.num_classes},
        "metadata": metadata,
    }
    try:
        return json.dumps(header, allow_nan=True, sort_keys=True)
    except TypeError as err:
        bad = [k for k, v in metadata.items() if not _json_serialisable(v)]
        raise TypeError(f"checkpoint metadata entries {bad} are not JSON-serialisable: {err}") from err


def _json_serialisable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def save_checkpoint(path: str | os.PathLike, model: Any, metadata: dict[str, Any]) -> Path:
    """Write ``model``'s state dict and ``metadata`` (JSON-serialisable) to ``path`` atomically.

    ``model`` is an :class:`~finetune_invariance.study.models.ImageModel` (its ``spec``,
    ``task`` and ``num_classes`` go into the header).
    """
    header = _header_json(model, metadata)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={HEADER_KEY: header})
    return Path(path)


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file written by :func:`save_checkpoint` (a weights
    file of another origin, e.g. timm's, has no header entry of this study)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return HEADER_KEY in (f.metadata() or {})
    except (SafetensorError, OSError):
        return False


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata a checkpoint was saved with (epoch, test metrics, run, training
    config, ...), from its header alone (no tensor is read)."""
    return _read(path, tensors=False)[0]["metadata"]


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The parsed JSON header and the CPU tensors of a checkpoint file, without building a model.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` naming the
    path, what was expected and how to recover for a corrupt or truncated file or one not
    written by :func:`save_checkpoint`.
    """
    return _read(path, tensors=True)


def _read(path: str | os.PathLike, tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; {restore_published_checkpoint(path)}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            raw = (f.metadata() or {}).get(HEADER_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file ({err}); {restore_published_checkpoint(path)}"
        ) from err
    if raw is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not a checkpoint of this study (no '{HEADER_KEY}' header entry); "
            "a file written by save_checkpoint was expected"
        )
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"checkpoint {path} has a damaged '{HEADER_KEY}' header ({err}); {restore_published_checkpoint(path)}"
        ) from err
    if header.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {header.get('format_version')}, expected {FORMAT_VERSION}; {restore_published_checkpoint(path)}"
        )
    return header, tensors
