"""The paper's datasets in their published on-disk formats, at a rehearsal's size.

:func:`write_paper_datasets` writes, under one data root, what torchvision and the study's
CIFAR-C reader read from a real download:

- ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
  ``batches.meta``, Python pickles (protocol 2, as the published Python 2 files) of dicts
  with ``data`` (N x 3072 uint8: the red, green and blue planes of each 32 x 32 image, row
  by row), ``labels``, ``filenames``, ``batch_label``; the meta file's ``label_names``;
- ``cifar-100-python/``: ``train``, ``test`` (``fine_labels`` and ``coarse_labels``) and
  ``meta`` (``fine_label_names``, ``coarse_label_names``);
- ``eurosat/2750/<Class>/<Class>_<k>.jpg``: 64 x 64 RGB JPEGs, one folder per class
  (the first classes of the published ten, so their indices are the published ones);
- ``oxford-iiit-pet/images/<Breed>_<k>.jpg`` (JPEGs of varied sizes and aspect ratios,
  one grayscale, as the published set has) and ``annotations/trainval.txt`` / ``test.txt``
  (``<image id> <class id 1..37> <species 1 cat, 2 dog> <breed id>`` per line);
- ``CIFAR-10-C/`` and ``CIFAR-100-C/``: ``<corruption>.npy`` for all 19 published
  corruptions, uint8 (5 n, 32, 32, 3), severity s in rows (s - 1) n .. s n - 1 where row
  i corrupts clean test image i, and ``labels.npy`` (uint8, the test labels five times).
  The published files have n = 10,000, the CIFAR test set; here n is the fixture's test set.

Only the counts differ from the published data: a few images per split, a few of the
classes. torchvision checks the CIFAR files against the MD5s of the published archives,
which these files cannot have; :func:`write_paper_datasets` returns their own MD5s for
``tests/rehearsal_site`` (module docstring there).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from finetune_invariance.study.cifar_c import ALL_CIFAR_C_CORRUPTIONS, ARCHIVES
from finetune_invariance.study.corruptions import SEVERITIES

N_TRAIN, N_TEST = 8, 4
EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway")  # the first 4 of the published 10
EUROSAT_PER_CLASS = 4  # the study's stratified 80/20 split of 16: 3 training and 1 test image per class
#: (image id prefix, class id, species, breed id) of the published annotations: cats are capitalised.
PETS_BREEDS = (("Abyssinian", 1, 1, 1), ("american_bulldog", 2, 2, 1), ("beagle", 5, 2, 4), ("Bengal", 6, 1, 2))
PETS_SIZES = ((500, 375), (375, 500), (300, 225), (240, 320), (224, 224))  # (width, height)


def _pickle(path: Path, entry: dict) -> str:
    path.write_bytes(pickle.dumps(entry, protocol=2))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _cifar_rows(images: np.ndarray) -> np.ndarray:
    """N x 32 x 32 x 3 -> the published N x 3072 rows (channel planes, row-major)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))


def _cifar_split(rng: np.random.Generator, n: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8), rng.integers(0, num_classes, size=n)


def _batch(images: np.ndarray, labels: np.ndarray, label_key: str, batch_label: str, **extra) -> dict:
    return {
        "batch_label": batch_label,
        label_key: [int(label) for label in labels],
        "data": _cifar_rows(images),
        "filenames": [f"rehearsal_{batch_label.replace(' ', '_')}_{i}.png" for i in range(len(labels))],
        **extra,
    }


def write_cifar10(root: Path, rng: np.random.Generator) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """The python version of CIFAR-10; returns (file -> MD5, test images, test labels)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_images, train_labels = _cifar_split(rng, N_TRAIN, 10)
    test_images, test_labels = _cifar_split(rng, N_TEST, 10)
    md5 = {}
    for k, rows in enumerate(np.array_split(np.arange(N_TRAIN), 5), start=1):
        batch = _batch(train_images[rows], train_labels[rows], "labels", f"training batch {k} of 5")
        md5[f"data_batch_{k}"] = _pickle(folder / f"data_batch_{k}", batch)
    md5["test_batch"] = _pickle(folder / "test_batch", _batch(test_images, test_labels, "labels", "testing batch 1 of 1"))
    meta = {"num_cases_per_batch": 10000, "label_names": [f"class_{i}" for i in range(10)], "num_vis": 3072}
    md5["batches.meta"] = _pickle(folder / "batches.meta", meta)
    return md5, test_images, test_labels


def write_cifar100(root: Path, rng: np.random.Generator) -> tuple[dict[str, str], np.ndarray, np.ndarray]:
    """The python version of CIFAR-100; returns (file -> MD5, test images, test labels)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    md5, test = {}, None
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        images, labels = _cifar_split(rng, n, 100)
        batch = _batch(images, labels, "fine_labels", f"{split}ing batch 1 of 1", coarse_labels=[int(label) // 5 for label in labels])
        md5[split] = _pickle(folder / split, batch)
        test = images, labels
    meta = {"fine_label_names": [f"fine_{i}" for i in range(100)], "coarse_label_names": [f"coarse_{i}" for i in range(20)]}
    md5["meta"] = _pickle(folder / "meta", meta)
    return md5, *test


def write_cifar_c(root: Path, dataset: str, test_images: np.ndarray, test_labels: np.ndarray, rng: np.random.Generator) -> None:
    """The published corrupted set of ``dataset`` for these clean test images: every
    corruption's file, each severity a block of one row per test image, in their order."""
    folder = root / ARCHIVES[dataset].folder
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", np.tile(test_labels.astype(np.uint8), len(SEVERITIES)))
    for corruption in ALL_CIFAR_C_CORRUPTIONS:
        blocks = [
            np.clip(test_images + rng.normal(0, 12 * severity, test_images.shape), 0, 255).astype(np.uint8)
            for severity in SEVERITIES
        ]
        np.save(folder / f"{corruption}.npy", np.concatenate(blocks))


def _jpeg(path: Path, rng: np.random.Generator, width: int, height: int, mode: str = "RGB") -> None:
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, "JPEG", quality=90)


def write_eurosat(root: Path, rng: np.random.Generator) -> None:
    for name in EUROSAT_CLASSES:
        folder = root / "eurosat" / "2750" / name
        folder.mkdir(parents=True)
        for k in range(1, EUROSAT_PER_CLASS + 1):
            _jpeg(folder / f"{name}_{k}.jpg", rng, 64, 64)


def write_pets(root: Path, rng: np.random.Generator) -> None:
    images, annotations = root / "oxford-iiit-pet" / "images", root / "oxford-iiit-pet" / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    number = 0
    for split, n in (("trainval", N_TRAIN), ("test", N_TEST)):
        lines = []
        for i in range(n):
            number += 1
            prefix, class_id, species, breed = PETS_BREEDS[i % len(PETS_BREEDS)]
            width, height = PETS_SIZES[number % len(PETS_SIZES)]
            _jpeg(images / f"{prefix}_{number}.jpg", rng, width, height, mode="L" if number == 1 else "RGB")
            lines.append(f"{prefix}_{number} {class_id} {species} {breed}\n")
        (annotations / f"{split}.txt").write_text("".join(lines))


def write_paper_datasets(root: str | Path, seed: int = 0) -> dict[str, dict[str, str]]:
    """Write the paper's four datasets and CIFAR-10-C / CIFAR-100-C under ``root``
    (module docstring). Returns torchvision's CIFAR class name -> file name -> MD5."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    cifar10_md5, *cifar10_test = write_cifar10(root, rng)
    cifar100_md5, *cifar100_test = write_cifar100(root, rng)
    write_cifar_c(root, "cifar10", *cifar10_test, rng)
    write_cifar_c(root, "cifar100", *cifar100_test, rng)
    write_eurosat(root, rng)
    write_pets(root, rng)
    return {"CIFAR10": cifar10_md5, "CIFAR100": cifar100_md5}
