"""Your own images (config ``kind: folder``): the layout read, the native size, labels by
sorted class name, and every problem of a folder named before or when it is read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from finetune_invariance.study import data
from finetune_invariance.study.catalog import FolderDatasetError, folder_facts, folder_index


def write_png(path: Path, pixels: np.ndarray) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def random_pixels(seed: int, height: int = 16, width: int = 16, channels: int | None = 3) -> np.ndarray:
    shape = (height, width) if channels is None else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_folder(root: Path, train: dict[str, int], test: dict[str, int], side: int = 16) -> dict[Path, np.ndarray]:
    """``root/<split>/<class>/<k>.png`` of random pixels; returns every file's pixels."""
    written = {}
    seed = 0
    for split, counts in (("train", train), ("test", test)):
        for name, count in counts.items():
            for k in range(count):
                path = root / split / name / f"{k}.png"
                written[path] = write_png(path, random_pixels(seed, side, side))
                seed += 1
    return written


def test_classes_are_sorted_by_name_and_images_read_unchanged_at_their_native_size(tmp_path):
    written = write_folder(tmp_path, {"zebra": 2, "apple": 3, "mango": 1}, {"mango": 2, "apple": 1})
    (tmp_path / "train" / ".DS_Store").write_text("hidden files are not images")
    facts = folder_facts("mine", tmp_path, 16)
    assert (facts.num_classes, facts.train_size, facts.test_size, facts.image_size) == (3, 6, 3, 16)
    train = data.get_dataset("mine", "train", tmp_path, folder_size=16)
    labels = [label for _, label in train]
    assert labels == [0, 0, 0, 1, 2, 2]  # apple, mango, zebra
    image, label = train[3]
    assert image.dtype == torch.float32 and image.shape == (3, 16, 16)
    expected = torch.from_numpy(written[tmp_path / "train/mango/0.png"]).permute(2, 0, 1).float() / 255
    assert torch.equal(image, expected)
    test = data.get_dataset("mine", "test", tmp_path, folder_size=16)
    assert [label for _, label in test] == [0, 1, 1]  # test labels are the train classes' numbers


def test_mixed_sizes_and_modes_become_rgb_at_the_native_size_shorter_side_then_centre_crop(tmp_path):
    wide = write_png(tmp_path / "train/a/wide.png", random_pixels(1, height=16, width=40))
    grey = write_png(tmp_path / "train/a/grey.png", random_pixels(2, channels=None))
    big = write_png(tmp_path / "train/b/big.png", random_pixels(3, height=32, width=32))
    write_png(tmp_path / "test/a/x.png", random_pixels(4))
    train = data.get_dataset("mine", "train", tmp_path, folder_size=16)
    images = {Path(path).name: train[i][0] for i, (path, _) in enumerate(train.items)}
    # shorter side already 16: the centre 16 columns of 40 (12..27), unchanged
    assert torch.equal(images["wide.png"], torch.from_numpy(wide[:, 12:28]).permute(2, 0, 1).float() / 255)
    # a grey image is read as RGB: three equal channels
    assert torch.equal(images["grey.png"], torch.from_numpy(grey).float().div(255).expand(3, 16, 16))
    # a larger square image is resized (PIL bilinear, as Pets' native loading)
    resized = np.array(Image.fromarray(big).resize((16, 16), Image.BILINEAR))
    assert torch.equal(images["big.png"], torch.from_numpy(resized).permute(2, 0, 1).float() / 255)


def test_the_loader_resizes_to_each_models_input_as_for_every_kind(tmp_path):
    write_folder(tmp_path, {"a": 2, "b": 2}, {"a": 1, "b": 1})
    test = data.get_dataset("mine", "test", tmp_path, folder_size=16)
    batch = torch.stack([test[i][0] for i in range(2)])
    for model_size in (16, 24, 32):
        assert data.sample_images(test, 2, 0, model_size).shape == (2, 3, model_size, model_size)
    assert torch.equal(data.resize_to_model(batch, 16), batch)
    augmented = data.get_dataset("mine", "train", tmp_path, folder_size=16, augment="authors", image_size=32)
    assert augmented[0][0].shape == (3, 32, 32)  # the authors' augmentation crops to the model's size
    assert data.get_dataset("mine", "train", tmp_path, folder_size=16, augment="crop_flip")[0][0].shape == (3, 16, 16)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: root.rename(root.parent / "gone"), r"dataset folder \S+ does not exist"),
        (
            lambda root: _remove(root / "test"),
            r"dataset folder \S+ has no 'test' folder: expected \S+/test/<class>/<image>",
        ),
        (lambda root: (root / "train/empty").mkdir(), r"class folder \S+/train/empty holds no images"),
        (
            lambda root: write_png(root / "test/kiwi/0.png", random_pixels(9)),
            r"\S+/test has classes \['kiwi'\] that \S+/train",
        ),
        (lambda root: write_png(root / "train/0.png", random_pixels(9)), r"\S+/train/0.png is directly in \S+/train"),
    ],
)
def test_a_badly_laid_out_folder_is_named(tmp_path, damage, message):
    root = tmp_path / "mine"
    write_folder(root, {"a": 2, "b": 1}, {"a": 1})
    damage(root)
    with pytest.raises(FolderDatasetError, match=message):
        folder_index(root)


def _remove(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    folder.rmdir()


def test_an_unreadable_image_is_named_when_read(tmp_path):
    write_folder(tmp_path, {"a": 2}, {"a": 1})
    broken = tmp_path / "train/a/1.png"
    broken.write_bytes(b"not a png")
    train = data.get_dataset("mine", "train", tmp_path, folder_size=16)
    train[0]  # the other images read
    with pytest.raises(ValueError, match=rf"image {broken} cannot be read \(UnidentifiedImageError"):
        train[1]


def test_a_missing_folder_is_a_dataset_not_found_error(tmp_path):
    with pytest.raises(
        data.DatasetNotFoundError, match=r"dataset 'mine' \(train\) not found: its folder \S+ does not exist"
    ):
        data.get_dataset("mine", "train", tmp_path / "nowhere", folder_size=16)


def test_corrupted_test_images_of_a_folder_keep_its_native_size(tmp_path):
    from finetune_invariance.study import cifar_c

    write_folder(tmp_path, {"a": 3, "b": 3}, {"a": 3, "b": 3})
    images, labels = data.uint8_images(data.get_dataset("mine", "test", tmp_path, folder_size=16))
    plan = cifar_c.sample_plan(len(labels), ["gaussian_noise", "contrast"], 4, 0, "per_severity")
    sets = list(cifar_c.generated_sample(images, labels, plan, seed=0))
    assert {s.images.shape[1:] for s in sets} == {(16, 16, 3)} and len(sets) == 2 * 5
    assert not np.array_equal(sets[0].images, images[plan["gaussian_noise"]])
