"""What the study knows about each dataset, without loading it (no torch import).

The workflow checks a config against these facts before any job runs (class counts,
test-set sizes for the sampled images); :mod:`.data` loads the datasets. Real datasets
are read with torchvision's classes from a configurable root; generated ones are written
by :mod:`.synthetic`; a folder of your own images (config ``kind: folder``) is indexed by
:func:`folder_index`, its facts are :func:`folder_facts`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import synthetic

SPLITS = ("train", "test")

EUROSAT_TEST_FRACTION = 0.2
PETS_NATIVE_SIZE = 224
PETS_SPLITS = {"train": "trainval", "test": "test"}  # the study's split name -> the official one


@dataclass(frozen=True)
class DatasetFacts:
    """One dataset: ``image_size`` is the native height = width in pixels; ``test_size`` the
    number of test images (generated datasets: the generator's default, which the config's
    ``n_test`` may change; ``train_size`` likewise); ``expected_path(root, split)`` the file or folder whose absence
    means "not there"; ``how_to_get`` (with ``{root}`` filled in) completes the error."""

    name: str
    num_classes: int
    image_size: int
    channels: int
    train_size: int
    test_size: int
    generated: bool
    expected_path: Callable[[Path, str], Path]
    how_to_get: str


def _download_hint(url: str, folder: str = "") -> str:
    return f"set 'download: true' in the config (or download=True), or fetch {url} and extract it into {{root}}{folder}"


def _generated(name: str) -> DatasetFacts:
    generator = synthetic.GENERATORS[name]
    return DatasetFacts(
        name=name,
        num_classes=len(generator.class_names),
        image_size=generator.image_size,
        channels=3,
        train_size=generator.default_n_train,
        test_size=generator.default_n_test,
        generated=True,
        expected_path=lambda root, split: synthetic.split_path(root, name, split),
        how_to_get=(
            f"generate it with: python -m finetune_invariance.study.synthetic --name {name} --root {{root}} --seed 0"
        ),
    )


DATASETS: dict[str, DatasetFacts] = {
    "cifar10": DatasetFacts(
        name="cifar10",
        num_classes=10,
        image_size=32,
        channels=3,
        train_size=50_000,
        test_size=10_000,
        generated=False,
        expected_path=lambda root, split: root / "cifar-10-batches-py",
        how_to_get=_download_hint("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    ),
    "cifar100": DatasetFacts(
        name="cifar100",
        num_classes=100,
        image_size=32,
        channels=3,
        train_size=50_000,
        test_size=10_000,
        generated=False,
        expected_path=lambda root, split: root / "cifar-100-python",
        how_to_get=_download_hint("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    ),
    "eurosat": DatasetFacts(
        name="eurosat",
        num_classes=10,
        image_size=64,
        channels=3,
        train_size=27_000 - round(27_000 * EUROSAT_TEST_FRACTION),
        test_size=round(27_000 * EUROSAT_TEST_FRACTION),
        generated=False,
        expected_path=lambda root, split: root / "eurosat" / "2750",
        how_to_get=_download_hint(
            "https://huggingface.co/datasets/torchgeo/eurosat/resolve/main/EuroSAT.zip", "/eurosat"
        ),
    ),
    "oxford_pets": DatasetFacts(
        name="oxford_pets",
        num_classes=37,
        image_size=PETS_NATIVE_SIZE,
        channels=3,
        train_size=3680,
        test_size=3669,
        generated=False,
        expected_path=lambda root, split: root / "oxford-iiit-pet" / "annotations" / f"{PETS_SPLITS[split]}.txt",
        how_to_get=_download_hint(
            "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz and annotations.tar.gz", "/oxford-iiit-pet"
        ),
    ),
    **{name: _generated(name) for name in synthetic.GENERATORS},
}


def dataset_facts(name: str) -> DatasetFacts:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset '{name}'; known datasets: {sorted(DATASETS)}")
    return DATASETS[name]


# --- a folder of your own images -------------------------------------------------------


class FolderDatasetError(ValueError):
    """A ``kind: folder`` dataset's folder is missing or not laid out as root/<split>/<class>/<image>."""


@dataclass(frozen=True)
class FolderIndex:
    """The images of a dataset folder: class names sorted (a class's label is its position)
    and, per split, every image's path and label in the order of :func:`folder_index`."""

    root: Path
    classes: tuple[str, ...]
    images: dict[str, tuple[tuple[Path, int], ...]]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def folder_index(root: str | Path) -> FolderIndex:
    """``root/train/<class>/*`` and ``root/test/<class>/*``: classes are the folders of
    ``train`` sorted by name, images the visible files of each class folder sorted by name.

    :class:`FolderDatasetError` names the path for a missing ``root`` or split folder, a
    split without class folders, a file directly in a split folder, a class folder without
    images, and a test class that is not a train class. Whether each file is an image is
    seen when it is read (:class:`.data.FolderImageDataset` names an unreadable one).
    """
    root = Path(root)
    if not root.is_dir():
        raise FolderDatasetError(f"dataset folder {root} does not exist (expected {root}/train/<class>/<image>)")
    found: dict[str, dict[str, list[Path]]] = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            raise FolderDatasetError(
                f"dataset folder {root} has no '{split}' folder: expected {folder}/<class>/<image> "
                f"(one folder per class, in both {' and '.join(SPLITS)})"
            )
        entries = sorted(filter(_visible, folder.iterdir()))
        loose = [entry for entry in entries if not entry.is_dir()]
        if loose:
            raise FolderDatasetError(
                f"{loose[0]} is directly in {folder}: put each image in the folder of its class, {folder}/<class>/"
            )
        if not entries:
            raise FolderDatasetError(f"{folder} has no class folders: expected {folder}/<class>/<image>")
        found[split] = {
            entry.name: sorted(p for p in entry.iterdir() if _visible(p) and p.is_file()) for entry in entries
        }
        empty = [name for name, files in found[split].items() if not files]
        if empty:
            raise FolderDatasetError(
                f"class folder {folder / empty[0]} holds no images (every class needs at least one)"
            )
    classes = tuple(sorted(found["train"]))
    unknown = sorted(set(found["test"]) - set(classes))
    if unknown:
        raise FolderDatasetError(
            f"{root}/test has classes {unknown} that {root}/train does not have: a model cannot learn a class "
            f"it never sees in training (train classes: {list(classes)})"
        )
    label = {name: i for i, name in enumerate(classes)}
    images = {
        split: tuple((path, label[name]) for name in sorted(by_class) for path in by_class[name])
        for split, by_class in found.items()
    }
    return FolderIndex(root, classes, images)


def folder_facts(name: str, root: str | Path, image_size: int) -> DatasetFacts:
    """The facts of a ``kind: folder`` dataset at ``root`` of native size ``image_size``
    (:class:`FolderDatasetError` when the folder is not laid out as :func:`folder_index` reads)."""
    index = folder_index(root)
    return DatasetFacts(
        name=name,
        num_classes=len(index.classes),
        image_size=int(image_size),
        channels=3,
        train_size=len(index.images["train"]),
        test_size=len(index.images["test"]),
        generated=False,
        expected_path=lambda root, split: Path(root) / split,
        how_to_get="put the images in {root}/<split>/<class>/ (splits train and test, one folder per class)",
    )


def folder_root(root: str, workflow_dir: str | Path) -> Path:
    """A folder dataset's ``root`` from the config: a relative path is relative to the workflow's folder."""
    path = Path(root).expanduser()
    return path if path.is_absolute() else Path(workflow_dir) / path


def configured_facts(name: str, entry: Mapping[str, Any], workflow_dir: str | Path) -> DatasetFacts:
    """The facts of the config's dataset ``name`` (its ``datasets.<name>`` ``entry``)."""
    if entry["kind"] == "folder":
        return folder_facts(name, folder_root(entry["root"], workflow_dir), entry["image_size"])
    return dataset_facts(name)


def sample_indices(dataset_len: int, n: int, seed: int) -> np.ndarray:
    """The seeded draw of ``n`` distinct indices of ``range(dataset_len)`` used by STIR and
    robustness: ``numpy.random.default_rng(seed).choice(dataset_len, n, replace=False)``,
    sorted ascending (int64)."""
    if not 0 < n <= dataset_len:
        raise ValueError(f"n must be in 1..{dataset_len} (the dataset size), got {n}")
    return np.sort(np.random.default_rng(seed).choice(dataset_len, size=n, replace=False)).astype(np.int64)
