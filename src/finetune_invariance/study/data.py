"""Datasets of the study behind one interface, their augmentations, and the batch-side
image helpers.

:func:`get_dataset` returns a torch ``Dataset`` of ``(image, label)``: image a float32
C x H x W tensor in [0, 1] at the dataset's *native* resolution (:data:`.catalog.DATASETS`), label
an ``int``. Resizing to the model's input size happens per batch, on the device, with
:func:`resize_to_model` (docs/method.md: finetune datasets are upsampled to 224).

Training augmentations (:data:`AUGMENTATIONS`, config ``finetune.augment``):

- ``authors``: the authors' transfer augmentation (their ``deep-learning-base``
  ``TRAIN_TRANSFORMS_TRANSFER_DEFAULT``, used by their finetuning script):
  RandomResizedCrop to the model's input size, horizontal flip, ColorJitter(0.25, 0.25,
  0.25), RandomRotation(2), on the decoded 8-bit image, so its items are already at the
  model's size. Their test transform, Resize + CenterCrop to that size, is the study's
  bilinear upsampling on the device for the square datasets (up to 8-bit rounding) and
  Pets' native loading (below).
- ``crop_flip``: random crop after zero-padding by 1/8 of the side and a horizontal flip,
  at the native size (the usual CIFAR recipe; the embedded scale model's alternative).
- ``none``: the native images.

Real datasets (torchvision classes, files under a configurable ``root``):

- ``cifar10`` / ``cifar100``: the official train (50 000) / test (10 000) splits, 32x32.
- ``eurosat``: torchvision has no split. The study uses a fixed stratified 80/20 split of
  the 27 000 images (``sklearn.model_selection.train_test_split(stratify=labels,
  test_size=0.2, random_state=0)`` over the ImageFolder order), 64x64.
- ``oxford_pets``: the official ``trainval`` (3680) / ``test`` (3669) splits, 37 breeds.
  Images vary in size; they are loaded as the authors' test transform does: the shorter
  side resized to 224 (bilinear, aspect ratio kept), then the centre 224x224 crop.

Generated datasets of the offline mini study (``shapes``, ``textures``, ``digits``):
``<root>/<name>/<split>.npz`` written by :mod:`finetune_invariance.study.synthetic`.

Your own images (config ``kind: folder``, :class:`FolderImageDataset`): ``root/train/<class>/*``
and ``root/test/<class>/*``, any image Pillow reads, converted to RGB; classes sorted by
name (:func:`.catalog.folder_index`). Their native size is the config's ``image_size``:
each image is loaded as Pets' are (:func:`shorter_side_crop`), so a square image of that
size is read unchanged.

Every kind reaches a model the same way: items at the native size, resized per batch to
the model's input size by :func:`resize_to_model` (the authors' augmentation alone crops
to the model's size itself).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset

from . import synthetic
from .catalog import (
    EUROSAT_TEST_FRACTION,
    PETS_NATIVE_SIZE,
    PETS_SPLITS,
    SPLITS,
    dataset_facts,
    folder_facts,
    folder_index,
    sample_indices,
)

EUROSAT_SPLIT_SEED = 0
AUGMENTATIONS = ("none", "crop_flip", "authors")

Transform = Callable[[Any], torch.Tensor]
Loader = Callable[[Path, str, bool, "Transform | None"], Dataset]
"""load(root, split, download, decode) -> the split, each decoded 8-bit PIL image passed
through ``decode`` (None: the dataset's native float32 tensor)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where they are expected (and download was not requested)."""


# --- generated datasets ---------------------------------------------------------------


class NpzImageDataset(Dataset):
    """A split written by :mod:`finetune_invariance.study.synthetic`, held in memory as uint8;
    ``decode`` takes each image as a PIL image (None: a float32 tensor in [0, 1])."""

    def __init__(self, path: Path, decode: Transform | None = None):
        try:
            with np.load(path, allow_pickle=False) as arrays:  # no pickle: data files never run code
                missing = {"images", "labels"} - set(arrays.files)
                if missing:
                    raise ValueError(f"{path} lacks arrays {sorted(missing)}; found {arrays.files}")
                images, labels = arrays["images"], arrays["labels"]
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"generated dataset file {path} is damaged ({type(err).__name__}: {err}); expected the .npz that "
                "synthetic.generate writes: delete it and rerun (the workflow's generate_dataset makes it again)"
            ) from err
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"{path}: expected uint8 images N x H x W x C and N labels, "
                f"got images {images.dtype} {images.shape} and labels {labels.shape}"
            )
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # N x C x H x W
        self.labels = labels.astype(np.int64)
        self.decode = decode

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.decode is None:
            return self.images[index].float() / 255.0, int(self.labels[index])
        from PIL import Image

        return self.decode(Image.fromarray(self.images[index].permute(1, 2, 0).numpy())), int(self.labels[index])


# --- torchvision datasets -------------------------------------------------------------


def _unit_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1] as torchvision's classic ``ToTensor`` (the authors'): a
    division by 255, which a multiplication by 1/255 misses in the last bit."""
    return image.to(torch.float32).div(255)


def _to_tensor() -> Transform:
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), _unit_float])


def _load_cifar(cls_name: str) -> Loader:
    def load(root: Path, split: str, download: bool, decode: Transform | None) -> Dataset:
        import torchvision.datasets

        cls = getattr(torchvision.datasets, cls_name)
        return cls(str(root), train=split == "train", transform=decode or _to_tensor(), download=download)

    return load


def eurosat_split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` in the study's fixed stratified 80/20 EuroSAT split (seed 0)."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(len(labels)), test_size=EUROSAT_TEST_FRACTION, stratify=labels, random_state=EUROSAT_SPLIT_SEED
    )
    return np.sort(train if split == "train" else test)


def _load_eurosat(root: Path, split: str, download: bool, decode: Transform | None) -> Dataset:
    import torchvision.datasets

    full = torchvision.datasets.EuroSAT(str(root), transform=decode or _to_tensor(), download=download)
    return Subset(full, eurosat_split_indices(np.asarray(full.targets), split).tolist())


def shorter_side_crop(size: int) -> Transform:
    """The native loading of images of varying size (Pets, your folders): the authors' test
    transform (``Resize(size)``: shorter side to ``size``, bilinear, aspect ratio kept;
    ``CenterCrop(size)``) on the decoded image, then a float32 tensor. A square image of
    ``size`` pixels passes unchanged."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(size), v2.CenterCrop(size), _to_tensor()])


def pets_native() -> Transform:
    """Pets' native loading: :func:`shorter_side_crop` to 224."""
    return shorter_side_crop(PETS_NATIVE_SIZE)


def _load_pets(root: Path, split: str, download: bool, decode: Transform | None) -> Dataset:
    import torchvision.datasets

    return torchvision.datasets.OxfordIIITPet(
        str(root),
        split=PETS_SPLITS[split],
        target_types="category",
        transform=decode or pets_native(),
        download=download,
    )


class FolderImageDataset(Dataset):
    """One split of a ``kind: folder`` dataset (:func:`.catalog.folder_index`): each image
    decoded by Pillow as RGB and passed through ``decode`` (None: :func:`shorter_side_crop`
    to ``image_size``, the native size). An image Pillow cannot read raises a ValueError
    naming the file."""

    def __init__(self, root: Path, split: str, image_size: int, decode: Transform | None = None):
        self.items = folder_index(root).images[split]
        self.decode = decode or shorter_side_crop(image_size)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.items[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as err:  # UnidentifiedImageError is an OSError
            raise ValueError(
                f"image {path} cannot be read ({type(err).__name__}: {err}): replace it with an image Pillow reads "
                "(PNG, JPEG, ...) or remove it from the dataset folder"
            ) from None
        return self.decode(rgb), label


_LOADERS: dict[str, Loader] = {
    "cifar10": _load_cifar("CIFAR10"),
    "cifar100": _load_cifar("CIFAR100"),
    "eurosat": _load_eurosat,
    "oxford_pets": _load_pets,
    **{
        name: (
            lambda root, split, download, decode, name=name: NpzImageDataset(
                synthetic.split_path(root, name, split), decode
            )
        )
        for name in synthetic.GENERATORS
    },
}


# --- augmentation ---------------------------------------------------------------------


def authors_augmentation(image_size: int) -> Transform:
    """The authors' transfer augmentation (their ``TRAIN_TRANSFORMS_TRANSFER_DEFAULT(size)``)
    on a decoded 8-bit PIL image, ending in a float32 tensor in [0, 1] of ``image_size``
    squared; draws from torch's global RNG."""
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.25, 0.25, 0.25),
            v2.RandomRotation(2),
            _to_tensor(),
        ]
    )


def crop_flip(image_size: int) -> Transform:
    """Random crop after zero-padding by image_size // 8 (4 px for 32x32, the usual CIFAR
    recipe) and a horizontal flip with probability 0.5, on a native float tensor; draws
    from torch's global RNG."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(image_size, padding=image_size // 8), v2.RandomHorizontalFlip(0.5)])


class AugmentedDataset(Dataset):
    """``base`` with ``transform`` applied to each image (labels untouched)."""

    def __init__(self, base: Dataset, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[index]
        return self.transform(image), label


# --- public entry points --------------------------------------------------------------


def get_dataset(
    name: str,
    split: str,
    root: str | os.PathLike,
    download: bool = False,
    augment: str = "none",
    image_size: int | None = None,
    folder_size: int | None = None,
) -> Dataset:
    """One split of a dataset: items (float32 C x H x W image in [0, 1], int label), at the
    native size, or at ``image_size`` (the model's input size) with ``augment='authors'``.

    ``augment`` is one of :data:`AUGMENTATIONS` (module docstring). ``folder_size``: the
    dataset is a folder of your own images at ``root`` of that native size (config ``kind:
    folder``; ``name`` only names it). Raises :class:`DatasetNotFoundError` naming the
    expected location and how to obtain the files when they are absent and ``download`` is
    False.
    """
    root = Path(root)
    if folder_size is not None and not root.is_dir():
        raise DatasetNotFoundError(f"dataset '{name}' ({split}) not found: its folder {root} does not exist")
    info = dataset_facts(name) if folder_size is None else folder_facts(name, root, folder_size)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
    if augment not in AUGMENTATIONS:
        raise ValueError(
            f"augment must be one of {list(AUGMENTATIONS)}, got {augment!r} (it was a boolean: "
            "true is now 'crop_flip', false is 'none')"
        )
    if augment == "authors" and image_size is None:
        raise ValueError("augment='authors' crops to the model's input size: give image_size")
    expected = info.expected_path(root, split)
    if not download and not expected.exists():
        raise DatasetNotFoundError(
            f"dataset '{name}' ({split}) not found: expected {expected}; {info.how_to_get.format(root=root)}"
        )
    load = _LOADERS[name] if folder_size is None else _folder_loader(folder_size)
    if augment == "authors":
        return load(root, split, download, authors_augmentation(image_size))
    dataset = load(root, split, download, None)
    return AugmentedDataset(dataset, crop_flip(info.image_size)) if augment == "crop_flip" else dataset


def _folder_loader(image_size: int) -> Loader:
    def load(root: Path, split: str, download: bool, decode: Transform | None) -> Dataset:
        return FolderImageDataset(root, split, image_size, decode)

    return load


def resize_to_model(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a batch (N x C x H x W) to the model's input size, on its device.

    Returns ``images`` itself when it already has that size. Half-pixel centres
    (align_corners=False) and antialiasing when shrinking, like PIL's bilinear resize.
    """
    target = (size, size) if isinstance(size, int) else tuple(size)
    if images.ndim != 4:
        raise ValueError(f"images must be a batch N x C x H x W, got shape {tuple(images.shape)}")
    if tuple(images.shape[-2:]) == target:
        return images
    return F.interpolate(images, size=target, mode="bilinear", align_corners=False, antialias=True)


def sample_images(dataset: Dataset, n: int, seed: int, image_size: int | tuple[int, int]) -> torch.Tensor:
    """The ``n`` images of one seeded draw (:func:`sample_indices`) of ``dataset`` at the
    model's input size: float32 (n, C, H, W) in [0, 1] (STIR's target images X)."""
    indices = sample_indices(len(dataset), n, seed)
    images = torch.stack([dataset[int(i)][0] for i in indices])
    return resize_to_model(images, image_size)


def uint8_images(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Every image of ``dataset`` as uint8 (N, H, W, C) with its int64 label: the layout of
    the published CIFAR-C files (exact for 8-bit sources, whose [0, 1] floats are k / 255)."""
    images = np.stack(
        [(dataset[i][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for i in range(len(dataset))]
    )
    labels = np.array([dataset[i][1] for i in range(len(dataset))], dtype=np.int64)
    return images, labels
