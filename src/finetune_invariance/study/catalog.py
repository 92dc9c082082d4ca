"""What the study knows about each dataset, without loading it (no torch import).

The workflow checks a config against these facts before any job runs (class counts,
test-set sizes for the sampled images); :mod:`.data` loads the datasets. Real datasets
are read with torchvision's classes from a configurable root; generated ones are written
by :mod:`.synthetic`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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
        image_size=synthetic.IMAGE_SIZE,
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


def sample_indices(dataset_len: int, n: int, seed: int) -> np.ndarray:
    """The seeded draw of ``n`` distinct indices of ``range(dataset_len)`` used by STIR and
    robustness: ``numpy.random.default_rng(seed).choice(dataset_len, n, replace=False)``,
    sorted ascending (int64)."""
    if not 0 < n <= dataset_len:
        raise ValueError(f"n must be in 1..{dataset_len} (the dataset size), got {n}")
    return np.sort(np.random.default_rng(seed).choice(dataset_len, size=n, replace=False)).astype(np.int64)
