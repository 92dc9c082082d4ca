"""Generated datasets of the mini study: determinism, format, balance, geometry."""

import numpy as np
import pytest

from finetune_invariance.study import catalog, synthetic

SMALL = {"n_train": 48, "n_test": 16}
CIFAR100_ROLE = "glyphs30"  # config.yaml's CIFAR100 role


@pytest.mark.parametrize("name", sorted(synthetic.GENERATORS))
def test_same_seed_same_bytes_other_seed_other_images(name):
    a = synthetic.make_splits(name, seed=3, **SMALL)
    b = synthetic.make_splits(name, seed=3, **SMALL)
    c = synthetic.make_splits(name, seed=4, **SMALL)
    for split in ("train", "test"):
        assert np.array_equal(a[split][0], b[split][0]) and np.array_equal(a[split][1], b[split][1])
    assert not np.array_equal(a["train"][0], c["train"][0])


@pytest.mark.parametrize("name", sorted(synthetic.GENERATORS))
def test_shapes_dtypes_label_ranges(name):
    num_classes = len(synthetic.GENERATORS[name].class_names)
    side = synthetic.GENERATORS[name].image_size
    splits = synthetic.make_splits(name, seed=0, **SMALL)
    for split, n in (("train", SMALL["n_train"]), ("test", SMALL["n_test"])):
        images, labels = splits[split]
        assert images.shape == (n, side, side, 3) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert labels.min() >= 0 and labels.max() < num_classes
        assert images.std() > 10  # not blank: patterns and colours vary


@pytest.mark.parametrize("name", ["shapes", "textures"])
def test_drawn_classes_exactly_balanced_and_splits_balanced_ish(name):
    num_classes = len(synthetic.GENERATORS[name].class_names)
    splits = synthetic.make_splits(name, seed=1, n_train=400, n_test=80)
    all_labels = np.concatenate([splits["train"][1], splits["test"][1]])
    counts = np.bincount(all_labels, minlength=num_classes)
    assert counts.max() - counts.min() <= 1
    train_counts = np.bincount(splits["train"][1], minlength=num_classes)
    assert train_counts.min() >= 0.6 * 400 / num_classes


def test_digits_are_sklearns_digits_with_their_labels():
    from sklearn.datasets import load_digits

    digits = load_digits()
    splits = synthetic.make_splits("digits", seed=0, n_train=1500, n_test=297)
    labels = np.concatenate([splits["train"][1], splits["test"][1]])
    images = np.concatenate([splits["train"][0], splits["test"][0]])
    assert np.array_equal(np.bincount(labels), np.bincount(digits.target))  # each image used once
    assert np.array_equal(images[..., 0], images[..., 2])  # grey copied to RGB
    # Each 4x4 block of the upsampled image averages close to its 8x8 source pixel, so the
    # nearest sklearn image (in block means) is the source and carries the same label.
    block_means = images[:30, :, :, 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4)) / 255 * 16
    distances = ((block_means[:, None] - digits.images[None]) ** 2).sum(axis=(2, 3))
    assert np.array_equal(digits.target[distances.argmin(axis=1)], labels[:30])


def test_digits_too_many_requested():
    with pytest.raises(ValueError, match="digits has 1797 images"):
        synthetic.make_splits("digits", seed=0, n_train=1797, n_test=1)


def test_linear_upsampling_matrix_closed_form():
    # 2 -> 4 pixels, half-pixel centres: output centres at input coords -0.25, 0.25, 0.75, 1.25
    expected = np.array([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    assert np.allclose(synthetic._linear_upsampling_matrix(2, 4), expected)


@pytest.mark.parametrize(
    "shape, area_over_r2",
    [
        ("circle", np.pi),
        ("square", 1.6**2),
        ("diamond", 2.0),
        ("ring", np.pi * (1 - 0.55**2)),
        ("horizontal_bar", 2.0 * 0.5),
        ("cross", 2 * (2 * 2 / 3) - (2 / 3) ** 2),
        ("triangle", 0.5 * 1.8 * (0.6 * 1.8 * 2)),
    ],
)
def test_shape_areas_match_geometry(shape, area_over_r2):
    r = 1.0
    coords = np.linspace(-1.5, 1.5, 1201)
    dy, dx = np.meshgrid(coords, coords, indexing="ij")
    cell = (coords[1] - coords[0]) ** 2
    area = synthetic._shape_mask(shape, dy, dx, np.array(r)).sum() * cell
    assert area == pytest.approx(area_over_r2 * r**2, rel=0.01)


def test_cifar_roles_are_stored_below_the_model_input_and_the_imagenet_role_at_it():
    # config.yaml's model takes 32x32 images; the CIFAR roles are upsampled to it by the
    # loader (as CIFAR's 32 px to 224), the ImageNet role is drawn at the input size.
    assert catalog.dataset_facts("glyphs64").image_size == 32
    for name in ("glyphs10", CIFAR100_ROLE):
        assert synthetic.GENERATORS[name].image_size == synthetic.CIFAR_ROLE_SIZE < 32
        assert catalog.dataset_facts(name).image_size == synthetic.CIFAR_ROLE_SIZE


def test_area_downsampling_matrix_closed_forms():
    # 4 -> 2: block means; 3 -> 2: output pixels cover [0, 1.5) and [1.5, 3).
    assert np.allclose(synthetic._area_downsampling_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    assert np.allclose(synthetic._area_downsampling_matrix(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    m = synthetic._area_downsampling_matrix(32, 11)
    assert np.allclose(m.sum(axis=1), 1.0) and np.allclose(m.sum(axis=0), 11 / 32)  # means; every pixel counted once
    with pytest.raises(ValueError, match="larger to a smaller"):
        synthetic._area_downsampling_matrix(8, 16)


def test_native_glyphs_are_the_area_averaged_canvas():
    """A glyph world stored at 8 px draws the same glyphs as at 32 px (the same draws come
    before the pixel noise), averaged over 4 x 4 blocks; the two differ by the noise alone
    (sd 0.03 at 8 px, 0.03 / 4 averaged at 32 px) and the clipping."""
    big = synthetic.GlyphWorld(pool=5, num_classes=4, variation=0.6)
    small = synthetic.GlyphWorld(pool=5, num_classes=4, variation=0.6, native_size=8)
    a, labels_a = big.draw(np.random.default_rng(1), 64)
    b, labels_b = small.draw(np.random.default_rng(1), 64)
    assert b.shape == (64, 8, 8, 3) and np.array_equal(labels_a, labels_b)
    blocks = a.reshape(64, 8, 4, 8, 4, 3).mean(axis=(2, 4))
    assert np.isclose(np.std(blocks - b), np.hypot(0.03, 0.03 / 4), rtol=0.2)
    assert np.abs(blocks - b).max() < 0.2


def test_generate_writes_loadable_npz_and_cli(tmp_path):
    paths = synthetic.generate("textures", tmp_path, seed=2, **SMALL)
    expected = synthetic.make_splits("textures", seed=2, **SMALL)
    for split, path in paths.items():
        assert path == tmp_path / "textures" / f"{split}.npz"
        with np.load(path, allow_pickle=False) as f:
            assert np.array_equal(f["images"], expected[split][0])
            assert np.array_equal(f["labels"], expected[split][1])
            assert tuple(f["class_names"]) == synthetic.TEXTURE_CLASSES
    assert sorted(p.name for p in (tmp_path / "textures").iterdir()) == ["test.npz", "train.npz"]  # no temp files

    synthetic.main(["--name", "shapes", "--root", str(tmp_path), "--seed", "0", "--n-train", "8", "--n-test", "4"])
    with np.load(tmp_path / "shapes" / "test.npz") as f:
        assert f["images"].shape == (4, 32, 32, 3)


def test_unknown_generator_and_bad_sizes():
    with pytest.raises(ValueError, match="unknown generated dataset 'nope'"):
        synthetic.make_splits("nope", seed=0)
    with pytest.raises(ValueError, match="must be positive"):
        synthetic.make_splits("shapes", seed=0, n_train=0, n_test=4)


def test_glyphs64_is_the_data_the_shipped_source_was_trained_on(repo_root, tmp_path):
    """The CIFAR roles' native size leaves the ImageNet role's draw unchanged: the shipped
    source, evaluated on glyphs64's regenerated test split, gives the test accuracy and loss
    its header recorded when it was trained (a changed draw would not)."""
    from finetune_invariance.study import data, evaluation, models

    synthetic.generate("glyphs64", tmp_path, seed=0)
    model, metadata = models.load_checkpoint(repo_root / "workflow/resources/glyphs64_source.safetensors")
    result = evaluation.evaluate(
        model, data.get_dataset("glyphs64", "test", root=tmp_path), "classification", 32, "cpu", 250
    )
    assert result["accuracy"] == metadata["metrics"]["test_accuracy"]
    assert result["loss"] == pytest.approx(metadata["metrics"]["test_loss"], rel=1e-4)
