"""Images from files: uint8 and float arrays in both layouts, image folders, sampling, fitting to a size."""

import numpy as np
import pytest
import torch
from PIL import Image

from finetune_invariance.image_loading import load_images, sample_indices


@pytest.fixture
def pixels():
    """Six 16 x 16 RGB uint8 images, (n, H, W, C)."""
    return np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)


def expected(pixels):
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255


def test_uint8_arrays_in_either_layout_and_npz_give_the_pixels_over_255(tmp_path, pixels):
    np.save(tmp_path / "nhwc.npy", pixels)
    np.save(tmp_path / "nchw.npy", pixels.transpose(0, 3, 1, 2))
    np.savez(tmp_path / "named.npz", labels=np.arange(6), images=pixels)
    np.savez(tmp_path / "single.npz", pixels)
    for name in ("nhwc.npy", "nchw.npy", "named.npz", "single.npz"):
        loaded = load_images(tmp_path / name, (16, 16))
        assert loaded.dtype == torch.float32
        torch.testing.assert_close(loaded, expected(pixels), rtol=0, atol=0, msg=name)


def test_floats_in_the_unit_interval_are_kept_and_others_refused(tmp_path, pixels):
    floats = pixels.astype(np.float64) / 255
    np.save(tmp_path / "floats.npy", floats)
    torch.testing.assert_close(load_images(tmp_path / "floats.npy", (16, 16)), expected(pixels), rtol=0, atol=1e-7)
    np.save(tmp_path / "bytes_as_floats.npy", pixels.astype(np.float32))
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*as uint8"):
        load_images(tmp_path / "bytes_as_floats.npy", (16, 16))
    np.save(tmp_path / "ints.npy", pixels.astype(np.int32))
    with pytest.raises(ValueError, match="int32: images must be uint8"):
        load_images(tmp_path / "ints.npy", (16, 16))


def test_a_folder_of_png_files_gives_the_same_images_in_sorted_order(tmp_path, pixels):
    for k, image in enumerate(pixels):
        folder = tmp_path / f"class_{k % 2}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / f"{k}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = load_images(tmp_path, (16, 16))
    order = [0, 2, 4, 1, 3, 5]  # class_0/0, 2, 4, then class_1/1, 3, 5
    torch.testing.assert_close(loaded, expected(pixels[order]), rtol=0, atol=0)


def test_grey_images_become_three_channels(tmp_path, pixels):
    grey = pixels[..., 0]
    np.save(tmp_path / "grey.npy", grey)
    loaded = load_images(tmp_path / "grey.npy", (16, 16))
    assert loaded.shape == (6, 3, 16, 16)
    for channel in range(3):
        torch.testing.assert_close(loaded[:, channel], torch.from_numpy(grey).float() / 255, rtol=0, atol=0)
    assert load_images(tmp_path / "grey.npy", (16, 16), channels=1).shape == (6, 1, 16, 16)


def test_a_wider_image_is_centre_cropped_and_a_constant_image_stays_constant(tmp_path, pixels):
    wide = np.concatenate([pixels[:1], pixels[1:2], pixels[2:3]], axis=2)  # 16 x 48: three images side by side
    np.save(tmp_path / "wide.npy", wide)
    torch.testing.assert_close(load_images(tmp_path / "wide.npy", (16, 16))[0], expected(pixels[1:2])[0])
    constant = np.full((1, 20, 30, 3), 77, dtype=np.uint8)
    np.save(tmp_path / "constant.npy", constant)
    resized = load_images(tmp_path / "constant.npy", (32, 32))
    assert resized.shape == (1, 3, 32, 32)
    torch.testing.assert_close(resized, torch.full_like(resized, 77 / 255), rtol=0, atol=1e-6)


def test_a_sample_of_n_is_fixed_sorted_and_distinct(tmp_path, pixels):
    assert sample_indices(6, None) == sample_indices(6, 6) == sample_indices(6, 10) == list(range(6))
    chosen = sample_indices(100, 10)
    assert chosen == sorted(set(chosen)) and len(chosen) == 10 and chosen == sample_indices(100, 10)
    assert chosen != sample_indices(100, 10, sample_seed=1)
    np.save(tmp_path / "all.npy", pixels)
    subset = load_images(tmp_path / "all.npy", (16, 16), n=3)
    torch.testing.assert_close(subset, expected(pixels[sample_indices(6, 3)]), rtol=0, atol=0)


def test_what_cannot_be_read_is_named(tmp_path, pixels):
    with pytest.raises(FileNotFoundError, match="gone.npy do not exist"):
        load_images(tmp_path / "gone.npy", (16, 16))
    np.savez(tmp_path / "two.npz", a=pixels, b=pixels)
    with pytest.raises(ValueError, match=r"holds arrays \['a', 'b'\]: name the images array 'images'"):
        load_images(tmp_path / "two.npz", (16, 16))
    np.save(tmp_path / "flat.npy", pixels.reshape(6, -1))
    with pytest.raises(ValueError, match=r"shape \(6, 768\): expected images"):
        load_images(tmp_path / "flat.npy", (16, 16))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        load_images(tmp_path / "empty", (16, 16))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png cannot be read"):
        load_images(tmp_path, (16, 16))
