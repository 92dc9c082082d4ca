"""The images X of a comparison, from files, as the metrics take them: float32 in [0, 1].

:func:`load_images` reads a folder of image files (searched recursively, in sorted path
order) or an array file (``.npy``, or ``.npz`` with one array or an ``images`` array):
uint8 in 0..255, or floats already in [0, 1]; (n, H, W, C), (n, C, H, W) or (n, H, W)
for grey. Each image is scaled so that it covers the model's input size (bilinear,
antialiased) and centre-cropped to it, as the usual test transform does (Resize +
CenterCrop); an image of the input size is left exactly as it is. Grey images are
repeated to three channels for a three-channel model.

Of more than ``n`` images, a fixed random sample of ``n`` is taken (``sample_seed``; in
their original order), the same for every STIR seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the command line counts images without it
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")
NPZ_KEY = "images"


def sample_indices(total: int, n: int | None, sample_seed: int = 0) -> list[int]:
    """All of ``range(total)`` if ``n`` is None or at least ``total``, else a seeded sample of ``n``, sorted."""
    if n is not None and n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if n is None or n >= total:
        return list(range(total))
    import torch

    chosen = torch.randperm(total, generator=torch.Generator().manual_seed(sample_seed))[:n]
    return sorted(chosen.tolist())


def _image_files(folder: Path) -> list[Path]:
    """The image files of a folder, recursively, in sorted path order."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def count_images(path: str | os.PathLike) -> int:
    """How many images :func:`load_images` can take from ``path`` (reading no pixel of an image file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"images {path} do not exist: give a folder of image files or a .npy/.npz array")
    if path.is_dir():
        return len(_image_files(path))
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return len(_read_array_file(path, mmap_mode="r"))  # a .npy's header only
    raise ValueError(f"{path} is neither a folder of images nor an array file ({', '.join(ARRAY_SUFFIXES)})")


def load_images(
    path: str | os.PathLike,
    size: Sequence[int],
    channels: int = 3,
    n: int | None = None,
    sample_seed: int = 0,
) -> torch.Tensor:
    """(n, channels, H, W) float32 images in [0, 1] at ``size`` = (H, W) from ``path`` (see the module docstring)."""
    path = Path(path)
    size = (int(size[0]), int(size[1]))
    if not path.exists():
        raise FileNotFoundError(f"images {path} do not exist: give a folder of image files or a .npy/.npz array")
    if path.is_dir():
        files = _image_files(path)
        chosen = [files[k] for k in sample_indices(len(files), n, sample_seed)]
        images = [_read_image_file(file) for file in chosen]
        where = [str(file) for file in chosen]
    elif path.suffix.lower() in ARRAY_SUFFIXES:
        array = _read_array_file(path)
        chosen = sample_indices(len(array), n, sample_seed)
        images = [_unit_interval(array[k], f"{path}[{k}]") for k in chosen]
        where = [f"{path}[{k}]" for k in chosen]
    else:
        raise ValueError(f"{path} is neither a folder of images nor an array file ({', '.join(ARRAY_SUFFIXES)})")
    import torch

    return torch.stack([_fit(image, size, channels, name) for image, name in zip(images, where)])


def _read_image_file(path: Path) -> torch.Tensor:
    """(C, H, W) float32 in [0, 1]: grey stays one channel, everything else becomes RGB."""
    import torch
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")
            pixels = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
    except OSError as err:
        raise ValueError(f"image file {path} cannot be read ({err})") from err
    pixels = pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    return pixels.float() / 255


def _read_array_file(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """The image array of a .npy, or of a .npz's only array or its ``images`` array, as (n, C, H, W).

    ``mmap_mode`` (np.load's) maps a .npy instead of reading it (a .npz is read whole).
    """
    loaded = np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.keys())
            if NPZ_KEY not in keys and len(keys) != 1:
                raise ValueError(f"{path} holds arrays {keys}: name the images array '{NPZ_KEY}' or keep only it")
            array = loaded[NPZ_KEY if NPZ_KEY in keys else keys[0]]
    else:
        array = loaded
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4 and array.shape[1] in (1, 3):
        return array
    if array.ndim == 4 and array.shape[-1] in (1, 3):
        return array.transpose(0, 3, 1, 2)
    raise ValueError(
        f"{path} holds an array of shape {array.shape}: expected images as (n, H, W, C), (n, C, H, W) "
        "with C = 1 or 3, or (n, H, W)"
    )


def _unit_interval(image: np.ndarray, name: str) -> torch.Tensor:
    """uint8 pixels / 255, or floats that must already lie in [0, 1], as float32."""
    import torch

    if image.dtype == np.uint8:
        return torch.from_numpy(image.astype(np.float32)) / 255
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"{name} is {image.dtype}: images must be uint8 (0..255) or floats in [0, 1]")
    if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
        raise ValueError(
            f"{name} has float values outside [0, 1] (range {np.nanmin(image):.3g}..{np.nanmax(image):.3g}): "
            "give floats in [0, 1], or 0..255 pixels as uint8"
        )
    return torch.from_numpy(image.astype(np.float32))


def _fit(image: torch.Tensor, size: tuple[int, int], channels: int, name: str) -> torch.Tensor:
    """Channels matched, scaled to cover ``size`` and centre-cropped to it; unchanged at the right size."""
    from torchvision.transforms.v2 import functional as TF

    if image.shape[0] == 1 and channels == 3:
        image = image.expand(3, -1, -1)
    if image.shape[0] != channels:
        raise ValueError(f"{name} has {image.shape[0]} channels but the model takes {channels}")
    height, width = image.shape[-2:]
    if (height, width) == size:
        return image.contiguous()
    scale = max(size[0] / height, size[1] / width)
    covering = [max(size[0], round(height * scale)), max(size[1], round(width * scale))]
    resized = TF.resize(image, covering, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(resized, list(size)).clamp(0, 1).contiguous()
