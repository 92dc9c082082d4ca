"""Corrupted test sets: the published CIFAR-10-C / CIFAR-100-C files and generated ones.

Published layout (Hendrycks & Dietterich, 2019; Zenodo records 2535967 and 3555552)::

    <root>/CIFAR-10-C/<corruption>.npy   uint8 (5 * n, 32, 32, 3)
    <root>/CIFAR-10-C/labels.npy         uint8 (5 * n,)

with n = 10000 (the CIFAR test set, in its order) and the rows of severity s at
``(s - 1) * n : s * n``; ``CIFAR-100-C`` is laid out the same way. The reader takes n from
``labels.npy``, so any 5 * n rows in this layout can be read (the tests write small ones).

Both sources meet in one form, :class:`CorruptedSet`: one (corruption, severity) with its
uint8 NHWC images and integer labels. The paper evaluates 1000 randomly drawn inputs per
severity level (Appendix E.1); :func:`sample_per_severity` draws them. It draws ONE set of
test-image indices and uses it for every corruption and severity, and the clean test set
should be sampled with the same ``data.sample_indices`` call: row i of every CIFAR-C severity
block is a corruption of clean test image i, so the comparison across severities and with
clean accuracy is paired, and with a fixed seed the same images are used at every epoch,
so the accuracy's change across epochs is the model's, not the sample's.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets.utils import download_and_extract_archive

from ..atomic import atomic_path
from .corruptions import CORRUPTIONS, SEVERITIES, corrupt
from .data import sample_indices

# The 15 benchmark corruptions (RobustBench's CIFAR-10-C / CIFAR-100-C set) ...
CIFAR_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
# ... and the 4 held-out extras that ship in the same archives.
CIFAR_C_EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL_CIFAR_C_CORRUPTIONS: tuple[str, ...] = CIFAR_C_CORRUPTIONS + CIFAR_C_EXTRA_CORRUPTIONS

PUBLISHED_ROWS_PER_SEVERITY = 10_000
CIFAR_IMAGE_SIDE = 32


@dataclass(frozen=True)
class CifarCArchive:
    """Where one published corrupted set comes from and the folder it extracts to."""

    folder: str
    url: str
    md5: str  # of the .tar, as listed on the Zenodo record


ARCHIVES: dict[str, CifarCArchive] = {
    "cifar10": CifarCArchive(
        "CIFAR-10-C", "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar", "56bf5dcef84df0e2308c6dcbcbbd8499"
    ),
    "cifar100": CifarCArchive(
        "CIFAR-100-C", "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar", "11f0ed0f1191edbf9fa23466ae6021d3"
    ),
}


@dataclass(frozen=True)
class CorruptedSet:
    """One corrupted test set: uint8 images (N, H, W, 3) and their integer labels (N,).

    The uncorrupted test sample uses corruption 'clean' and severity 0.
    """

    corruption: str
    severity: int
    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"corrupted set '{self.corruption}' severity {self.severity}: "
                f"{len(self.images)} images but {len(self.labels)} labels"
            )


def _archive(dataset: str) -> CifarCArchive:
    if dataset not in ARCHIVES:
        raise ValueError(f"dataset must be one of {sorted(ARCHIVES)}, got {dataset!r}")
    return ARCHIVES[dataset]


def cifar_c_dir(root: str | Path, dataset: str) -> Path:
    """The folder holding the published ``.npy`` files of ``dataset`` under ``root``."""
    return Path(root) / _archive(dataset).folder


def _how_to_get(dataset: str) -> str:
    archive = _archive(dataset)
    return (
        f"download it with finetune_invariance.cifar_c.download_cifar_c(root, '{dataset}') "
        f"or extract {archive.url} (md5 {archive.md5}) into the root folder"
    )


def _load_npy(path: Path, dataset: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"expected CIFAR-C file {path} does not exist; {_how_to_get(dataset)}")
    # Memory-mapped: a severity block or a sample is read without loading the 150 MB file.
    return np.load(path, mmap_mode="r")


def _load_labels(directory: Path, dataset: str) -> np.ndarray:
    path = directory / "labels.npy"
    labels = _load_npy(path, dataset)
    if labels.ndim != 1 or len(labels) == 0 or len(labels) % len(SEVERITIES) != 0:
        raise ValueError(
            f"{path} has shape {labels.shape}; expected ({len(SEVERITIES)} * n,) labels, "
            f"n rows per severity (published: ({len(SEVERITIES) * PUBLISHED_ROWS_PER_SEVERITY},)); "
            f"{_how_to_get(dataset)}"
        )
    return labels


def load_corrupted(root: str | Path, dataset: str, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8, n x 32 x 32 x 3, memory-mapped) and int64 labels of one severity.

    Raises FileNotFoundError or ValueError naming the expected file, its expected shape
    and how to obtain the archive when a file is missing or mis-shaped.
    """
    if corruption not in ALL_CIFAR_C_CORRUPTIONS:
        raise ValueError(f"unknown CIFAR-C corruption {corruption!r}; known: {list(ALL_CIFAR_C_CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    directory = cifar_c_dir(root, dataset)
    labels = _load_labels(directory, dataset)
    path = directory / f"{corruption}.npy"
    images = _load_npy(path, dataset)
    expected = (len(labels), CIFAR_IMAGE_SIDE, CIFAR_IMAGE_SIDE, 3)
    if images.shape != expected or images.dtype != np.uint8:
        raise ValueError(
            f"{path} has shape {images.shape} and dtype {images.dtype}; expected uint8 {expected} "
            f"(one row per entry of labels.npy); {_how_to_get(dataset)}"
        )
    n = len(labels) // len(SEVERITIES)
    rows = slice((severity - 1) * n, severity * n)
    return images[rows], np.asarray(labels[rows], dtype=np.int64)


def download_cifar_c(root: str | Path, dataset: str) -> Path:
    """Download and extract the published archive of ``dataset`` under ``root``.

    The archive (about 2.9 GB) is checked against the MD5 listed on its Zenodo record before
    extraction. Nothing is downloaded when every ``.npy`` file is already there. Returns
    the folder holding the files.
    """
    archive = _archive(dataset)
    directory = cifar_c_dir(root, dataset)
    expected = [f"{name}.npy" for name in ALL_CIFAR_C_CORRUPTIONS] + ["labels.npy"]
    if all((directory / name).is_file() for name in expected):
        return directory
    download_and_extract_archive(archive.url, download_root=str(root), md5=archive.md5, remove_finished=True)
    return directory


def published_sets(
    root: str | Path,
    dataset: str,
    corruptions: Sequence[str] = CIFAR_C_CORRUPTIONS,
    severities: Sequence[int] = SEVERITIES,
) -> Iterator[CorruptedSet]:
    """The published sets, one per (corruption, severity), read lazily (memory-mapped)."""
    for corruption in corruptions:
        for severity in severities:
            yield CorruptedSet(corruption, severity, *load_corrupted(root, dataset, corruption, severity))


def _corruption_seed(seed: int, corruption: str, severity: int) -> int:
    """A seed per (corruption, severity), stable across runs and across the registry's order."""
    key = [seed, zlib.crc32(corruption.encode()), severity]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def generated_sets(
    images: np.ndarray,
    labels: np.ndarray,
    corruptions: Sequence[str] = tuple(CORRUPTIONS),
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
) -> Iterator[CorruptedSet]:
    """Corrupted copies of a clean test set made with :mod:`finetune_invariance.corruptions`.

    Generation costs time in proportion to the number of images, so draw the sample first
    (``data.sample_indices``) and pass the sampled clean images here.
    """
    for corruption in corruptions:
        for severity in severities:
            corrupted = corrupt(images, corruption, severity, _corruption_seed(seed, corruption, severity))
            yield CorruptedSet(corruption, severity, corrupted, np.asarray(labels, dtype=np.int64))


def sample_per_severity(sets: Iterable[CorruptedSet], n_images: int, seed: int) -> Iterator[CorruptedSet]:
    """Each set reduced to the same ``n_images`` randomly drawn rows (paper: 1000).

    The rows are ``data.sample_indices(n, n_images, seed)``: the clean test sample drawn
    with the same call is the clean counterpart of every sampled set. All sets must have
    the same number of rows n (they are corruptions of one test set).
    """
    indices: np.ndarray | None = None
    n_available: int | None = None
    for corrupted in sets:
        if indices is None:
            n_available = len(corrupted.images)
            indices = sample_indices(n_available, n_images, seed)
        elif len(corrupted.images) != n_available:
            raise ValueError(
                f"corrupted set '{corrupted.corruption}' severity {corrupted.severity} has "
                f"{len(corrupted.images)} rows, the first set had {n_available}: sets must share one test set"
            )
        yield CorruptedSet(
            corrupted.corruption, corrupted.severity, np.asarray(corrupted.images[indices]), corrupted.labels[indices]
        )


def save_sets(path: str | Path, sets: Iterable[CorruptedSet]) -> Path:
    """Write corrupted sets of equal size to one ``.npz`` file, atomically.

    Keys: ``corruption`` (K,) str, ``severity`` (K,) int64, ``images`` (K, n, H, W, 3) uint8,
    ``labels`` (K, n) int64, one entry per set in the given order.
    """
    sets = list(sets)
    if not sets:
        raise ValueError(f"no corrupted sets to write to {path}")
    shapes = {(s.images.shape, s.labels.shape) for s in sets}
    if len(shapes) != 1:
        raise ValueError(f"corrupted sets written to {path} must share one images/labels shape, got {sorted(shapes)}")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(
            tmp,
            corruption=np.array([s.corruption for s in sets]),
            severity=np.array([s.severity for s in sets], dtype=np.int64),
            images=np.stack([np.asarray(s.images, dtype=np.uint8) for s in sets]),
            labels=np.stack([np.asarray(s.labels, dtype=np.int64) for s in sets]),
        )
    return Path(path)


def load_sets(path: str | Path) -> list[CorruptedSet]:
    """The corrupted sets written by :func:`save_sets`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corrupted sets file {path} does not exist (written by cifar_c.save_sets)")
    with np.load(path) as stored:
        missing = {"corruption", "severity", "images", "labels"} - set(stored.files)
        if missing:
            raise ValueError(f"{path} lacks the keys {sorted(missing)} that cifar_c.save_sets writes")
        return [
            CorruptedSet(str(c), int(s), images, labels)
            for c, s, images, labels in zip(
                stored["corruption"], stored["severity"], stored["images"], stored["labels"]
            )
        ]
