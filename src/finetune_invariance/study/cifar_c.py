"""Corrupted test sets: the published CIFAR-10-C / CIFAR-100-C files and generated ones.

Published layout (Hendrycks & Dietterich, 2019; Zenodo records 2535967 and 3555552)::

    <root>/CIFAR-10-C/<corruption>.npy   uint8 (5 * n, 32, 32, 3)
    <root>/CIFAR-10-C/labels.npy         uint8 (5 * n,)

with n = 10000 (the CIFAR test set, in its order) and the rows of severity s at
``(s - 1) * n : s * n``; ``CIFAR-100-C`` is laid out the same way. The reader takes n from
``labels.npy``, so any 5 * n rows in this layout can be read (the tests write small ones).

Both sources meet in one form, :class:`CorruptedSet`: one (corruption, severity) with its
uint8 NHWC images and integer labels. The paper evaluates "1000 randomly sampled inputs
for each level of corruption" (Appendix E.1); :func:`sample_plan` decides which
(corruption, test image) pairs enter the sample, and :func:`published_sample` /
:func:`generated_sample` read or make them. The plan is the same at every severity: row i
of every CIFAR-C severity block is a corruption of clean test image i, so the severities
are compared on the same images, and with a fixed seed the same images are used at every
epoch, so the accuracy's change across epochs is the model's, not the sample's.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from .corruptions import SEVERITIES, corrupt
from .catalog import sample_indices

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
        f"download it with finetune_invariance.study.cifar_c.download_cifar_c(root, '{dataset}') "
        f"or extract {archive.url} (md5 {archive.md5}) into the root folder"
    )


#: The files of a published corrupted set: the labels and one file per corruption.
PUBLISHED_FILES: tuple[str, ...] = ("labels.npy", *(f"{name}.npy" for name in ALL_CIFAR_C_CORRUPTIONS))


def where_to_place(root: str | Path, dataset: str) -> str:
    """What a machine without internet needs instead of the download: which files, where."""
    archive = _archive(dataset)
    return (
        f"place the published files {', '.join(PUBLISHED_FILES)} in {cifar_c_dir(root, dataset)}/ "
        f"(the archive {archive.url}, md5 {archive.md5}, extracts to that folder when extracted into {root})"
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
    from torchvision.datasets.utils import download_and_extract_archive

    archive = _archive(dataset)
    directory = cifar_c_dir(root, dataset)
    if all((directory / name).is_file() for name in PUBLISHED_FILES):
        return directory
    try:
        download_and_extract_archive(archive.url, download_root=str(root), md5=archive.md5, remove_finished=True)
    except (OSError, RuntimeError) as err:  # no network (URLError), HTTP errors, a failed checksum, a full disk
        raise CifarCUnavailableError(
            f"could not download {archive.url} ({type(err).__name__}: {err}); without internet, "
            f"{where_to_place(root, dataset)}"
        ) from err
    return directory


class CifarCUnavailableError(RuntimeError):
    """A published corrupted set could not be downloaded."""


#: How the corrupted inputs of a severity are drawn (config ``robustness.sampling``).
SAMPLINGS = ("per_severity", "per_corruption")


def sample_plan(
    n_test: int, corruptions: Sequence[str], n_images: int, seed: int, sampling: str = "per_severity"
) -> dict[str, np.ndarray]:
    """Which test images enter the corrupted sample, per corruption (the same at every severity).

    - ``per_severity`` (the paper: "1000 randomly sampled inputs for each level of
      corruption", RobustBench's convention of one sample across the corruptions):
      ``n_images`` distinct (corruption, test image) pairs drawn from all
      ``len(corruptions) * n_test`` of them, so each severity has ``n_images`` inputs;
    - ``per_corruption``: the same ``n_images`` test images for every corruption, so each
      (corruption, severity) has ``n_images`` inputs.

    The draw is :func:`.catalog.sample_indices` with ``seed``; the same (corruption, image)
    pairs serve every severity, so the severities are compared on the same images.
    Returns corruption -> sorted test-image indices (int64).
    """
    if sampling == "per_corruption":
        indices = sample_indices(n_test, n_images, seed)
        return {corruption: indices for corruption in corruptions}
    if sampling != "per_severity":
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    drawn = sample_indices(len(corruptions) * n_test, n_images, seed)
    which, image = np.divmod(drawn, n_test)
    return {corruption: np.sort(image[which == k]) for k, corruption in enumerate(corruptions)}


def published_sample(
    root: str | Path, dataset: str, plan: dict[str, np.ndarray], severities: Sequence[int] = SEVERITIES
) -> Iterator[CorruptedSet]:
    """The planned rows of the published files, one set per (corruption, severity)."""
    for corruption, indices in plan.items():
        for severity in severities:
            images, labels = load_corrupted(root, dataset, corruption, severity)
            yield CorruptedSet(corruption, severity, np.asarray(images[indices]), labels[indices])


def _corruption_seed(seed: int, corruption: str, severity: int) -> int:
    """A seed per (corruption, severity), stable across runs and across the registry's order."""
    key = [seed, zlib.crc32(corruption.encode()), severity]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def generated_sample(
    test_images: np.ndarray,
    test_labels: np.ndarray,
    plan: dict[str, np.ndarray],
    seed: int = 0,
    severities: Sequence[int] = SEVERITIES,
) -> Iterator[CorruptedSet]:
    """The planned test images corrupted with :mod:`.corruptions` (uint8 NHWC test set in).

    Only the planned images are corrupted, each corruption and severity with its own seed
    derived from ``seed``.
    """
    for corruption, indices in plan.items():
        for severity in severities:
            corrupted = corrupt(test_images[indices], corruption, severity, _corruption_seed(seed, corruption, severity))
            yield CorruptedSet(corruption, severity, corrupted, np.asarray(test_labels[indices], dtype=np.int64))


def save_sets(path: str | Path, sets: Iterable[CorruptedSet]) -> Path:
    """Write corrupted sets (of any sizes, same image shape) to one ``.npz`` file, atomically.

    Keys, one entry per image, sets in the given order: ``corruption`` (M,) str,
    ``severity`` (M,) int64, ``images`` (M, H, W, 3) uint8, ``labels`` (M,) int64.
    """
    sets = list(sets)
    if not sets:
        raise ValueError(f"no corrupted sets to write to {path}")
    shapes = {s.images.shape[1:] for s in sets}
    if len(shapes) != 1:
        raise ValueError(f"corrupted sets written to {path} must share one image shape, got {sorted(shapes)}")
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(
            tmp,
            corruption=np.concatenate([np.full(len(s.labels), s.corruption) for s in sets]),
            severity=np.concatenate([np.full(len(s.labels), s.severity, dtype=np.int64) for s in sets]),
            images=np.concatenate([np.asarray(s.images, dtype=np.uint8) for s in sets]),
            labels=np.concatenate([np.asarray(s.labels, dtype=np.int64) for s in sets]),
        )
    return Path(path)


def load_sets(path: str | Path) -> list[CorruptedSet]:
    """The corrupted sets written by :func:`save_sets`, in their order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corrupted sets file {path} does not exist (written by cifar_c.save_sets)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = {"corruption", "severity", "images", "labels"} - set(stored.files)
            if missing:
                raise ValueError(f"{path} lacks the keys {sorted(missing)} that cifar_c.save_sets writes")
            corruption, severity = stored["corruption"], stored["severity"]
            images, labels = stored["images"], stored["labels"]
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"corrupted sets file {path} is damaged ({err}); delete it and rerun the job that writes it"
        ) from err
    keys = list(dict.fromkeys(zip(corruption.tolist(), severity.tolist())))
    return [
        CorruptedSet(str(c), int(s), images[(corruption == c) & (severity == s)], labels[(corruption == c) & (severity == s)])
        for c, s in keys
    ]
