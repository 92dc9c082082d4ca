"""Datasets through get_dataset (generated and torchvision formats written by the tests),
augmentations (the authors' against their torchvision pipeline), resizing and the seeded
image draw."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from finetune_invariance.study import catalog, data, synthetic


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    synthetic.generate("shapes", root, seed=0, n_train=24, n_test=8)
    return root


def test_generated_dataset_items_are_the_npz_pixels(shapes_root):
    dataset = data.get_dataset("shapes", "test", shapes_root)
    with np.load(shapes_root / "shapes" / "test.npz") as f:
        images, labels = f["images"], f["labels"]
    assert len(dataset) == 8
    for i in range(len(dataset)):
        image, label = dataset[i]
        assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
        assert torch.equal(image, torch.from_numpy(images[i]).permute(2, 0, 1).float() / 255)
        assert isinstance(label, int) and label == labels[i]


def test_missing_generated_dataset_names_file_and_command(tmp_path):
    with pytest.raises(
        data.DatasetNotFoundError, match=r"digits/train\.npz.*python -m finetune_invariance\.study\.synthetic --name digits"
    ):
        data.get_dataset("digits", "train", tmp_path)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("eurosat", "eurosat/2750"),
        ("oxford_pets", "oxford-iiit-pet/annotations/trainval.txt"),
    ],
)
def test_missing_real_dataset_says_where_and_how(tmp_path, name, expected):
    with pytest.raises(data.DatasetNotFoundError, match=rf"{expected}.*download: true.*https://"):
        data.get_dataset(name, "train", tmp_path)


def test_unknown_dataset_and_split(shapes_root):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*cifar10"):
        data.get_dataset("imagenet", "train", shapes_root)
    with pytest.raises(ValueError, match="split must be one of"):
        data.get_dataset("shapes", "val", shapes_root)


def test_registry_describes_the_papers_datasets():
    assert {n: catalog.DATASETS[n].num_classes for n in ("cifar10", "cifar100", "eurosat", "oxford_pets")} == {
        "cifar10": 10,
        "cifar100": 100,
        "eurosat": 10,
        "oxford_pets": 37,
    }
    assert catalog.DATASETS["digits"].num_classes == 10 and catalog.DATASETS["shapes"].image_size == 32


# --- torchvision formats, written by the tests ------------------------------------------


def _write_cifar10(root, rng):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, size=(2, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=2).tolist()
        batches[name] = (pixels, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": pixels, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return batches


def test_cifar10_train_and_test_come_from_their_batches(tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    # The real loader checks the files' MD5 against the official archive; these are fakes.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    batches = _write_cifar10(tmp_path, np.random.default_rng(0))
    train = data.get_dataset("cifar10", "train", tmp_path)
    test = data.get_dataset("cifar10", "test", tmp_path)
    assert len(train) == 10 and len(test) == 2
    pixels, labels = batches["test_batch"]
    image, label = test[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert torch.allclose(image, torch.from_numpy(pixels[1].reshape(3, 32, 32)).float() / 255, atol=1e-7)
    assert label == labels[1]


def _write_eurosat(root, per_class):
    for c in range(10):
        folder = root / "eurosat" / "2750" / f"Class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((64, 64, 3), 20 * c + i, dtype=np.uint8)).save(folder / f"{i}.png")


def test_eurosat_fixed_stratified_80_20_split(tmp_path):
    _write_eurosat(tmp_path, per_class=5)
    train = data.get_dataset("eurosat", "train", tmp_path)
    test = data.get_dataset("eurosat", "test", tmp_path)
    assert len(train) == 40 and len(test) == 10
    assert set(train.indices).isdisjoint(test.indices) and len(set(train.indices) | set(test.indices)) == 50
    assert sorted(label for _, label in (test[i] for i in range(len(test)))) == list(range(10))  # 1 per class
    image, label = test[0]
    assert image.shape == (3, 64, 64)
    # Image i of class c was filled with 20c + i: pixels identify the file, and its label.
    assert int(round(image[0, 0, 0].item() * 255)) // 20 == label
    assert list(data.get_dataset("eurosat", "test", tmp_path).indices) == list(test.indices)  # fixed


def _write_pets(tmp_path):
    """Three Pets images of other sizes and aspect ratios (one patterned), with the official
    annotation files; returns the image folder."""
    base = tmp_path / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    lines = {"trainval": ["Abyssinian_1 1 1 1", "beagle_2 2 2 1"], "test": ["beagle_3 2 2 1"]}
    sizes = {"Abyssinian_1": (120, 90), "beagle_2": (300, 500), "beagle_3": (64, 64)}
    for stem, (w, h) in sizes.items():
        Image.fromarray(np.full((h, w, 3), 128, dtype=np.uint8)).save(base / "images" / f"{stem}.jpg")
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return base / "images"


def test_oxford_pets_resized_to_224_with_official_labels(tmp_path):
    _write_pets(tmp_path)
    train = data.get_dataset("oxford_pets", "train", tmp_path)
    test = data.get_dataset("oxford_pets", "test", tmp_path)
    assert len(train) == 2 and len(test) == 1
    for dataset in (train, test):
        for image, _ in (dataset[i] for i in range(len(dataset))):
            assert image.shape == (3, 224, 224)
            assert image.mean().item() == pytest.approx(128 / 255, abs=0.02)
    assert [train[0][1], train[1][1], test[0][1]] == [0, 1, 1]  # 1-based class ids -> 0-based


def test_oxford_pets_are_loaded_as_the_authors_test_transform_keeping_the_aspect_ratio(tmp_path):
    import torchvision.transforms as T

    images = _write_pets(tmp_path)
    stripes = np.zeros((500, 300, 3), dtype=np.uint8)  # rows of 0 and 250 every 50 pixels
    stripes[(np.arange(500) // 50) % 2 == 1] = 250
    Image.fromarray(stripes).save(images / "beagle_2.jpg", quality=100)
    authors_test = T.Compose([T.Resize(224), T.CenterCrop(224), T.ToTensor()])  # their TEST_TRANSFORMS_DEFAULT(224)
    expected = authors_test(Image.open(images / "beagle_2.jpg").convert("RGB"))
    assert torch.equal(data.get_dataset("oxford_pets", "train", tmp_path)[1][0], expected)
    # Aspect ratio kept: 500 x 300 -> 373 x 224, whose centre rows hold 224 / (50 * 224 / 300) = 6 stripes.
    column = expected[0, :, 112]
    assert int((column[1:] - column[:-1]).abs().gt(0.5).sum()) in (5, 6)


# --- augmentation -------------------------------------------------------------------------


def authors_transfer_pipeline(size):
    """The authors' training transform, as their deep-learning-base writes it
    (TRAIN_TRANSFORMS_TRANSFER_DEFAULT), with torchvision's classic API on PIL images."""
    import torchvision.transforms as T

    return T.Compose(
        [T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ColorJitter(0.25, 0.25, 0.25), T.RandomRotation(2), T.ToTensor()]
    )


def test_the_authors_augmentation_is_their_torchvision_pipeline_on_the_decoded_image(shapes_root, tmp_path, monkeypatch):
    import torchvision.datasets.cifar

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: True)
    cifar = _write_cifar10(tmp_path, np.random.default_rng(1))
    pets = _write_pets(tmp_path)
    with np.load(shapes_root / "shapes" / "train.npz") as f:
        shapes = f["images"]
    originals = {
        "shapes": lambda i: Image.fromarray(shapes[i]),
        "cifar10": lambda i: Image.fromarray(cifar["data_batch_1"][0][i].reshape(3, 32, 32).transpose(1, 2, 0)),
        "oxford_pets": lambda i: Image.open(pets / ("Abyssinian_1.jpg", "beagle_2.jpg")[i]).convert("RGB"),
    }
    for name, original in originals.items():
        root = shapes_root if name == "shapes" else tmp_path
        plain = data.get_dataset(name, "train", root)
        augmented = data.get_dataset(name, "train", root, augment="authors", image_size=64)
        for i in range(2):
            for seed in (0, 1):
                torch.manual_seed(seed)
                image, label = augmented[i]
                torch.manual_seed(seed)
                assert torch.equal(image, authors_transfer_pipeline(64)(original(i))), (name, i, seed)
                assert image.shape == (3, 64, 64) and label == plain[i][1]
    torch.manual_seed(0)
    first = augmented[0][0]
    assert not torch.equal(first, augmented[0][0])  # a fresh draw each time


def test_augment_names_the_choices_and_the_old_spelling(shapes_root):
    with pytest.raises(ValueError, match=r"augment must be one of \['none', 'crop_flip', 'authors'\].*true is now 'crop_flip'"):
        data.get_dataset("shapes", "train", shapes_root, augment=True)
    with pytest.raises(ValueError, match="give image_size"):
        data.get_dataset("shapes", "train", shapes_root, augment="authors")



def test_augmentation_is_a_padded_shift_and_optional_flip(shapes_root):
    plain = data.get_dataset("shapes", "train", shapes_root)
    augmented = data.get_dataset("shapes", "train", shapes_root, augment="crop_flip")
    torch.manual_seed(0)
    for i in range(6):
        original, label = plain[i]
        image, aug_label = augmented[i]
        assert aug_label == label and image.shape == original.shape
        padded = torch.nn.functional.pad(original, (4, 4, 4, 4))
        candidates = [
            view
            for oy in range(9)
            for ox in range(9)
            for view in (padded[:, oy : oy + 32, ox : ox + 32], padded[:, oy : oy + 32, ox : ox + 32].flip(-1))
        ]
        assert any(torch.equal(image, c) for c in candidates), f"item {i} is not a padded crop (or its flip)"


# --- batch helpers ----------------------------------------------------------------------


def test_resize_is_noop_at_the_right_size():
    images = torch.rand(2, 3, 32, 32)
    assert data.resize_to_model(images, 32) is images
    assert data.resize_to_model(images, (32, 32)) is images


def test_resize_upsampling_is_exact_on_a_linear_ramp():
    # Bilinear interpolation reproduces a linear function except where the border clamps.
    ramp = torch.arange(8, dtype=torch.float32).view(1, 1, 1, 8).expand(2, 3, 8, 8)
    out = data.resize_to_model(ramp, 16)
    assert out.shape == (2, 3, 16, 16)
    j = torch.arange(1, 15, dtype=torch.float32)
    assert torch.allclose(out[0, 0, 5, 1:15], (j + 0.5) / 2 - 0.5)


def test_resize_downsampling_keeps_constants_and_averages():
    images = torch.zeros(1, 3, 8, 8)
    images[..., ::2] = 1.0  # alternating columns average to 0.5 with antialiasing
    out = data.resize_to_model(images, 4)
    assert out.shape == (1, 3, 4, 4)
    assert torch.allclose(out[..., 1:3, 1:3], torch.full((1, 3, 2, 2), 0.5), atol=1e-6)
    assert torch.allclose(data.resize_to_model(torch.full((1, 3, 8, 8), 0.3), 5), torch.full((1, 3, 5, 5), 0.3))


def test_sample_indices_seeded_distinct_sorted():
    a = data.sample_indices(100, 20, seed=1)
    assert np.array_equal(a, data.sample_indices(100, 20, seed=1))
    assert not np.array_equal(a, data.sample_indices(100, 20, seed=2))
    assert a.dtype == np.int64 and len(set(a.tolist())) == 20 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() < 100
    assert np.array_equal(data.sample_indices(5, 5, seed=0), np.arange(5))
    with pytest.raises(ValueError, match="n must be in 1..5"):
        data.sample_indices(5, 6, seed=0)


def test_a_damaged_generated_dataset_is_named_with_the_fix(tmp_path):
    synthetic.generate("digits", tmp_path, seed=0, n_train=20, n_test=10)
    path = tmp_path / "digits" / "train.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{path} is damaged.*delete it and rerun"):
        data.get_dataset("digits", "train", tmp_path)
