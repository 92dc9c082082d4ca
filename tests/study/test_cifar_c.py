"""The CIFAR-C reader on small files in the published layout, written by the tests."""

from __future__ import annotations

import numpy as np
import pytest

from finetune_invariance.study.cifar_c import (
    ALL_CIFAR_C_CORRUPTIONS,
    CIFAR_C_CORRUPTIONS,
    CorruptedSet,
    download_cifar_c,
    generated_sample,
    load_corrupted,
    load_sets,
    published_sample,
    sample_plan,
    save_sets,
)
from finetune_invariance.study.corruptions import corrupt
from finetune_invariance.study.data import sample_indices

ROWS = 10  # per severity; the published files have 10000


def published_image(severity: int, row: int) -> np.ndarray:
    """A 32x32x3 image that encodes where it lies in the file."""
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    image[..., 0], image[..., 1] = severity, row
    return image


def write_layout(root, folder="CIFAR-10-C", corruptions=("gaussian_noise", "contrast"), rows=ROWS):
    directory = root / folder
    directory.mkdir(parents=True)
    labels = np.tile(np.arange(rows) % 7, 5).astype(np.uint8)
    np.save(directory / "labels.npy", labels)
    images = np.stack([published_image(s, r) for s in range(1, 6) for r in range(rows)])
    for name in corruptions:
        np.save(directory / f"{name}.npy", images)
    return directory


def test_the_published_archives_list_19_corruptions_15_of_them_benchmark():
    assert len(CIFAR_C_CORRUPTIONS) == 15 and len(ALL_CIFAR_C_CORRUPTIONS) == 19
    assert len(set(ALL_CIFAR_C_CORRUPTIONS)) == 19


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_each_severity_is_its_block_of_rows(tmp_path, severity):
    write_layout(tmp_path)
    images, labels = load_corrupted(tmp_path, "cifar10", "gaussian_noise", severity)
    assert images.shape == (ROWS, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[:, 0, 0, 0], np.full(ROWS, severity))
    np.testing.assert_array_equal(images[:, 0, 0, 1], np.arange(ROWS))
    np.testing.assert_array_equal(labels, np.arange(ROWS) % 7)
    assert labels.dtype == np.int64
    assert isinstance(images.base, np.memmap) or isinstance(images, np.memmap)


def test_cifar100_reads_its_own_folder(tmp_path):
    write_layout(tmp_path, folder="CIFAR-100-C")
    images, _ = load_corrupted(tmp_path, "cifar100", "contrast", 2)
    assert images[0, 0, 0, 0] == 2
    with pytest.raises(FileNotFoundError, match="CIFAR-10-C"):
        load_corrupted(tmp_path, "cifar10", "contrast", 2)


def test_missing_file_names_the_file_and_how_to_get_it(tmp_path):
    write_layout(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10-C/fog\.npy.*download_cifar_c.*zenodo\.org/record/2535967"):
        load_corrupted(tmp_path, "cifar10", "fog", 1)


def test_missing_labels_names_labels_npy(tmp_path):
    (tmp_path / "CIFAR-100-C").mkdir()
    with pytest.raises(FileNotFoundError, match=r"CIFAR-100-C/labels\.npy.*zenodo\.org/record/3555552"):
        load_corrupted(tmp_path, "cifar100", "contrast", 1)


def test_misshaped_images_name_the_expected_shape(tmp_path):
    directory = write_layout(tmp_path)
    np.save(directory / "contrast.npy", np.zeros((5 * ROWS, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"contrast\.npy has shape \(50, 32, 32\).*expected uint8 \(50, 32, 32, 3\)"):
        load_corrupted(tmp_path, "cifar10", "contrast", 1)


def test_images_and_labels_of_different_lengths_are_rejected(tmp_path):
    directory = write_layout(tmp_path)
    np.save(directory / "labels.npy", np.zeros(5 * (ROWS + 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected uint8 \(55, 32, 32, 3\)"):
        load_corrupted(tmp_path, "cifar10", "contrast", 1)


def test_labels_not_split_in_five_severities_are_rejected(tmp_path):
    directory = write_layout(tmp_path)
    np.save(directory / "labels.npy", np.zeros(52, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"labels\.npy has shape \(52,\).*published: \(50000,\)"):
        load_corrupted(tmp_path, "cifar10", "contrast", 1)


@pytest.mark.parametrize(
    "dataset, corruption, severity, match",
    [
        ("cifar10", "contrast", 0, "severity must be one of"),
        ("cifar10", "blur", 1, "unknown CIFAR-C corruption 'blur'"),
        ("imagenet", "contrast", 1, "dataset must be one of"),
    ],
)
def test_bad_arguments_are_named(tmp_path, dataset, corruption, severity, match):
    write_layout(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_corrupted(tmp_path, dataset, corruption, severity)


def test_published_sample_reads_the_planned_rows_of_every_severity(tmp_path):
    write_layout(tmp_path)
    plan = {"gaussian_noise": np.array([0, 3]), "contrast": np.array([5])}
    sets = list(published_sample(tmp_path, "cifar10", plan))
    assert [(s.corruption, s.severity) for s in sets] == [
        (c, s) for c in ("gaussian_noise", "contrast") for s in range(1, 6)
    ]
    assert all(s.images[0, 0, 0, 0] == s.severity for s in sets)
    for s in sets:
        np.testing.assert_array_equal(s.images[:, 0, 0, 1], plan[s.corruption])
        np.testing.assert_array_equal(s.labels, plan[s.corruption] % 7)


def test_download_is_skipped_when_all_files_are_present(tmp_path, monkeypatch):
    write_layout(tmp_path, corruptions=ALL_CIFAR_C_CORRUPTIONS, rows=1)

    def no_download(*args, **kwargs):
        raise AssertionError("download_cifar_c downloaded although every file was present")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", no_download)
    assert download_cifar_c(tmp_path, "cifar10") == tmp_path / "CIFAR-10-C"


@pytest.mark.parametrize(
    "dataset, url, md5",
    [
        ("cifar10", "https://zenodo.org/record/2535967/files/CIFAR-10-C.tar", "56bf5dcef84df0e2308c6dcbcbbd8499"),
        ("cifar100", "https://zenodo.org/record/3555552/files/CIFAR-100-C.tar", "11f0ed0f1191edbf9fa23466ae6021d3"),
    ],
)
def test_download_fetches_the_zenodo_archive_with_its_published_md5(tmp_path, monkeypatch, dataset, url, md5):
    calls = []
    monkeypatch.setattr(
        "torchvision.datasets.utils.download_and_extract_archive",
        lambda *args, **kwargs: calls.append((args, kwargs)),
    )
    download_cifar_c(tmp_path, dataset)
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert args[0] == url and kwargs["md5"] == md5 and kwargs["download_root"] == str(tmp_path)


@pytest.mark.parametrize("error", [OSError("<urlopen error [Errno -3] Temporary failure in name resolution>"), RuntimeError("File not found or corrupted.")])
def test_a_failed_download_names_the_files_to_place_and_where(tmp_path, monkeypatch, error):
    """Offline (urllib's URLError is an OSError) or a failed checksum (torchvision's RuntimeError)."""

    def offline(*args, **kwargs):
        raise error

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(RuntimeError) as failed:
        download_cifar_c(tmp_path, "cifar100")
    message = str(failed.value)
    assert "could not download https://zenodo.org/record/3555552/files/CIFAR-100-C.tar" in message
    assert f"in {tmp_path / 'CIFAR-100-C'}/" in message
    for name in ("labels.npy", *(f"{c}.npy" for c in ALL_CIFAR_C_CORRUPTIONS)):
        assert name in message


def test_per_severity_plan_draws_n_distinct_inputs_across_the_corruptions():
    """The paper: 1000 random inputs per severity level, across the corruptions."""
    corruptions = ["gaussian_noise", "contrast", "fog"]
    plan = sample_plan(10, corruptions, n_images=12, seed=0)
    assert list(plan) == corruptions and sum(len(rows) for rows in plan.values()) == 12
    pairs = {(c, int(i)) for c, rows in plan.items() for i in rows}
    assert len(pairs) == 12 and all(0 <= i < 10 for _, i in pairs)
    drawn = sample_indices(30, 12, seed=0)  # the pool of (corruption, image) pairs, corruption-major
    assert pairs == {(corruptions[k // 10], k % 10) for k in drawn}
    assert len({len(rows) for rows in plan.values()}) > 1  # not stratified: a random split


def test_per_corruption_plan_uses_the_same_images_for_every_corruption():
    plan = sample_plan(10, ["gaussian_noise", "contrast"], n_images=4, seed=3, sampling="per_corruption")
    np.testing.assert_array_equal(plan["gaussian_noise"], sample_indices(10, 4, seed=3))
    np.testing.assert_array_equal(plan["contrast"], plan["gaussian_noise"])
    with pytest.raises(ValueError, match="sampling must be one of"):
        sample_plan(10, ["contrast"], 4, 0, sampling="stratified")


def test_corrupted_set_needs_one_label_per_image():
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        CorruptedSet("contrast", 1, np.zeros((3, 2, 2, 3), np.uint8), np.zeros(2))


def test_generated_sample_corrupts_the_planned_images_each_with_its_own_seed():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    labels = np.arange(6)
    plan = {"gaussian_noise": np.array([0, 1, 2, 3]), "contrast": np.array([1, 4])}
    sets = list(generated_sample(images, labels, plan, seed=5))
    assert [(s.corruption, s.severity) for s in sets] == [
        (c, s) for c in ("gaussian_noise", "contrast") for s in range(1, 6)
    ]
    contrast = {s.severity: s for s in sets if s.corruption == "contrast"}
    np.testing.assert_array_equal(contrast[3].images, corrupt(images[[1, 4]], "contrast", 3, seed=0))  # deterministic op
    np.testing.assert_array_equal(contrast[3].labels, [1, 4])
    noise = [s.images for s in sets if s.corruption == "gaussian_noise"]
    again = [s.images for s in generated_sample(images, labels, {"gaussian_noise": plan["gaussian_noise"]}, seed=5)]
    for a, b in zip(noise, again):
        np.testing.assert_array_equal(a, b)
    # One seed for every severity would draw the same standard normals, only rescaled.
    d4, d5 = (n.astype(float) - images[:4] for n in noise[3:5])
    assert abs(np.corrcoef(d4.ravel(), d5.ravel())[0, 1]) < 0.3


def test_sets_round_trip_through_one_npz(tmp_path):
    rng = np.random.default_rng(0)
    sets = [
        CorruptedSet(name, severity, rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8), np.array([4, 0, 9]))
        for name in ("contrast", "pixelate")
        for severity in (1, 5)
    ]
    loaded = load_sets(save_sets(tmp_path / "sub" / "sets.npz", sets))
    assert [(s.corruption, s.severity) for s in loaded] == [(s.corruption, s.severity) for s in sets]
    for a, b in zip(sets, loaded):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert b.images.dtype == np.uint8 and b.labels.dtype == np.int64
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["sets.npz"]  # no temporary file left


def test_sets_of_different_sizes_round_trip_and_image_shapes_must_agree(tmp_path):
    sets = [
        CorruptedSet("contrast", 1, np.full((3, 8, 8, 3), 1, np.uint8), np.zeros(3)),
        CorruptedSet("contrast", 2, np.full((2, 8, 8, 3), 2, np.uint8), np.ones(2)),
    ]
    loaded = load_sets(save_sets(tmp_path / "sets.npz", sets))
    assert [len(s.labels) for s in loaded] == [3, 2] and loaded[1].images.max() == 2 and loaded[1].labels.tolist() == [1, 1]
    sets.append(CorruptedSet("contrast", 3, np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2)))
    with pytest.raises(ValueError, match="must share one image shape"):
        save_sets(tmp_path / "other.npz", sets)
    assert not (tmp_path / "other.npz").exists()


def test_a_damaged_sets_file_is_named_with_the_fix(tmp_path):
    path = save_sets(tmp_path / "sets.npz", [CorruptedSet("contrast", 1, np.zeros((3, 8, 8, 3), np.uint8), np.zeros(3))])
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=f"{path} is damaged.*delete it and rerun the job that writes it"):
        load_sets(path)


def test_load_sets_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.npz does not exist"):
        load_sets(tmp_path / "missing.npz")
