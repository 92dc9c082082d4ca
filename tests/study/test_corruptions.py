"""Corruptions against the published CIFAR-10-C constants of make_cifar_c.py.

The constants are written out again here, from the published script, so that a changed
constant in the module fails a test.
"""

from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
from PIL import Image

from finetune_invariance.study.corruptions import CORRUPTIONS, corrupt, defocus_kernel

SEVERITIES = [1, 2, 3, 4, 5]
GAUSSIAN_SIGMA = [0.04, 0.06, 0.08, 0.09, 0.10]
SHOT_PHOTONS = [500, 250, 100, 75, 50]
IMPULSE_AMOUNT = [0.01, 0.02, 0.03, 0.05, 0.07]
SPECKLE_SIGMA = [0.06, 0.10, 0.12, 0.16, 0.20]
BLUR_SIGMA = [0.4, 0.6, 0.7, 0.8, 1.0]
DEFOCUS = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)]
CONTRAST = [0.75, 0.5, 0.4, 0.3, 0.15]
BRIGHTNESS = [0.05, 0.1, 0.15, 0.2, 0.3]
PIXELATE = [0.95, 0.9, 0.85, 0.75, 0.65]
JPEG_QUALITY = [80, 65, 58, 50, 40]


def grey(n: int = 40, side: int = 32, value: int = 128) -> np.ndarray:
    return np.full((n, side, side, 3), value, dtype=np.uint8)


def natural_like(n: int = 6, side: int = 32, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus texture: neither constant nor pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = np.stack([0.5 + 0.3 * np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=-1)
    images = base[None] + 0.08 * rng.standard_normal((n, side, side, 3))
    return (np.clip(images, 0, 1) * 255).astype(np.uint8)


def difference(corrupted: np.ndarray, clean: np.ndarray) -> np.ndarray:
    return corrupted.astype(np.float64) - clean.astype(np.float64)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_keeps_shape_dtype_and_is_deterministic(name):
    images = natural_like(n=3, side=16)
    out = corrupt(images, name, 3, seed=7)
    assert out.shape == images.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt(images, name, 3, seed=7))
    assert not np.array_equal(out, images)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_higher_severity_changes_the_image_more(name):
    images = natural_like()
    change = [np.abs(difference(corrupt(images, name, s, seed=1), images)).mean() for s in SEVERITIES]
    assert all(a < b for a, b in zip(change, change[1:])), change


@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_noise_has_the_published_sigma(severity):
    clean = grey()
    diff = difference(corrupt(clean, "gaussian_noise", severity, seed=0), clean)
    # On mid-grey nothing is clipped at these sigmas (4 sigma < 127/255).
    assert diff.std() == pytest.approx(GAUSSIAN_SIGMA[severity - 1] * 255, rel=0.02)
    # Truncation to uint8 (as in the published files) lowers the mean by half a level.
    assert diff.mean() == pytest.approx(-0.5, abs=0.1)


def test_noise_differs_between_seeds():
    clean = grey(n=2)
    assert not np.array_equal(corrupt(clean, "gaussian_noise", 1, seed=0), corrupt(clean, "gaussian_noise", 1, seed=1))


@pytest.mark.parametrize("severity", SEVERITIES)
def test_shot_noise_has_poisson_variance(severity):
    clean = grey()
    photons, value = SHOT_PHOTONS[severity - 1], 128 / 255
    diff = difference(corrupt(clean, "shot_noise", severity, seed=0), clean)
    # Poisson(v c) / c has variance v / c.
    assert diff.std() == pytest.approx(np.sqrt(value / photons) * 255, rel=0.03)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_impulse_noise_replaces_the_published_fraction_by_salt_and_pepper(severity):
    clean = grey(n=60)
    out = corrupt(clean, "impulse_noise", severity, seed=0)
    changed = out != clean
    assert set(np.unique(out[changed])) <= {0, 255}
    assert changed.mean() == pytest.approx(IMPULSE_AMOUNT[severity - 1], rel=0.06)
    assert (out == 255).sum() / changed.sum() == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_speckle_noise_is_multiplicative_with_the_published_sigma(severity):
    clean = grey()
    diff = difference(corrupt(clean, "speckle_noise", severity, seed=0), clean)
    assert diff.std() == pytest.approx(128 / 255 * SPECKLE_SIGMA[severity - 1] * 255, rel=0.02)


def sampled_gaussian(sigma: float) -> np.ndarray:
    """skimage / scipy Gaussian taps: exp(-x^2 / 2 sigma^2), |x| <= 4 sigma, normalised."""
    radius = int(4 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    taps = np.exp(-(x**2) / (2 * sigma**2))
    return taps / taps.sum()


@pytest.mark.parametrize("side", [32, 64])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_gaussian_blur_of_an_impulse_is_the_published_kernel_scaled_to_the_side(severity, side):
    impulse = np.zeros((1, side, side, 3), dtype=np.uint8)
    centre = side // 2
    impulse[0, centre, centre] = 255
    out = corrupt(impulse, "gaussian_blur", severity, seed=0)[0, :, :, 0].astype(np.float64)
    taps = sampled_gaussian(BLUR_SIGMA[severity - 1] * side / 32)
    r = len(taps) // 2
    expected = np.floor(255 * np.outer(taps, taps) + 1e-9)
    np.testing.assert_allclose(out[centre - r : centre + r + 1, centre - r : centre + r + 1], expected, atol=1)
    assert out.sum() == pytest.approx(out[centre - r : centre + r + 1, centre - r : centre + r + 1].sum())


@pytest.mark.parametrize("severity", SEVERITIES)
def test_defocus_blur_of_an_impulse_is_an_isotropic_disk_of_the_published_radius(severity):
    radius, alias_blur = DEFOCUS[severity - 1]
    kernel = defocus_kernel(radius, alias_blur)
    assert kernel.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(kernel, np.rot90(kernel), atol=1e-15)
    # Disk of the radius plus one pixel of the 3x3 anti-alias.
    yy, xx = np.indices(kernel.shape) - kernel.shape[0] // 2
    outside = np.maximum(np.abs(yy), np.abs(xx)) > np.floor(radius) + 1
    assert np.all(kernel[outside] == 0)

    impulse = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    impulse[0, 16, 16] = 255
    out = corrupt(impulse, "defocus_blur", severity, seed=0)[0, :, :, 0].astype(np.float64)
    np.testing.assert_allclose(out[8:25, 8:25], np.floor(255 * kernel + 1e-9), atol=1)


@pytest.mark.parametrize("severity", [1, 2, 3])
def test_defocus_disk_below_radius_one_is_the_centre_pixel_blurred_by_the_alias_gaussian(severity):
    radius, alias_blur = DEFOCUS[severity - 1]
    taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_blur**2))
    expected = np.outer(taps, taps) / taps.sum() ** 2
    kernel = defocus_kernel(radius, alias_blur)
    centre = kernel.shape[0] // 2
    np.testing.assert_allclose(kernel[centre - 1 : centre + 2, centre - 1 : centre + 2], expected, atol=1e-12)


def test_defocus_disk_of_radius_one_and_a_half_is_a_uniform_3x3_square():
    # x^2 + y^2 <= 2.25 holds exactly on the 3x3 square; alias sigma 0.1 leaves it as is.
    kernel = defocus_kernel(1.5, 0.1)
    centre = kernel.shape[0] // 2
    np.testing.assert_allclose(
        kernel[centre - 1 : centre + 2, centre - 1 : centre + 2], np.full((3, 3), 1 / 9), atol=1e-9
    )


@pytest.mark.parametrize("severity", SEVERITIES)
def test_contrast_scales_deviations_from_the_channel_mean(severity):
    clean = natural_like(n=4)
    factor = CONTRAST[severity - 1]
    x = clean / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    expected = np.floor(np.clip((x - means) * factor + means, 0, 1) * 255)
    out = corrupt(clean, "contrast", severity, seed=0).astype(np.float64)
    assert np.abs(out - expected).max() <= 1
    centred_out = out - out.mean(axis=(1, 2), keepdims=True)
    centred_in = clean - clean.mean(axis=(1, 2), keepdims=True)
    assert centred_out.std() / centred_in.std() == pytest.approx(factor, rel=0.02)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_brightness_shifts_the_hsv_value(severity):
    clean = natural_like(n=1, side=12)
    clean[0, 0, 0] = 0  # a black pixel: hue and saturation 0, becomes grey
    clean[0, 0, 1] = 255  # a white pixel: value already 1
    shift = BRIGHTNESS[severity - 1]
    out = corrupt(clean, "brightness", severity, seed=0)
    for pixel_in, pixel_out in zip(clean.reshape(-1, 3) / 255.0, out.reshape(-1, 3)):
        h, s, v = colorsys.rgb_to_hsv(*pixel_in)
        expected = np.floor(np.clip(colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0)), 0, 1) * 255)
        assert np.abs(pixel_out - expected).max() <= 1


@pytest.mark.parametrize("side", [32, 48])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_reduces_to_the_published_fraction_of_the_side(severity, side):
    # Box upsampling of an s-pixel image is nearest-neighbour, so a random image keeps
    # exactly s distinct rows and columns after the round trip.
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, size=(1, side, side, 3), dtype=np.uint8)
    out = corrupt(clean, "pixelate", severity, seed=0)[0]
    small = int(side * PIXELATE[severity - 1])
    assert len(np.unique(out, axis=0)) == small
    assert np.unique(out, axis=1).shape[1] == small
    assert out.mean() == pytest.approx(clean.mean(), abs=2)


@pytest.mark.parametrize("severity", SEVERITIES)
def test_jpeg_is_a_pillow_round_trip_at_the_published_quality(severity):
    clean = natural_like(n=2)
    out = corrupt(clean, "jpeg_compression", severity, seed=0)
    for image_in, image_out in zip(clean, out):
        buffer = io.BytesIO()
        Image.fromarray(image_in).save(buffer, format="JPEG", quality=JPEG_QUALITY[severity - 1])
        np.testing.assert_array_equal(image_out, np.asarray(Image.open(io.BytesIO(buffer.getvalue()))))


def test_unknown_name_lists_the_known_corruptions():
    with pytest.raises(KeyError, match="unknown corruption 'fog'.*gaussian_noise"):
        corrupt(grey(n=1), "fog", 1, seed=0)


@pytest.mark.parametrize("severity", [0, 6, 2.5])
def test_severity_outside_one_to_five_is_rejected(severity):
    with pytest.raises(ValueError, match="severity must be one of"):
        corrupt(grey(n=1), "contrast", severity, seed=0)


@pytest.mark.parametrize(
    "images, error",
    [
        (np.zeros((1, 8, 8, 3), dtype=np.float32), TypeError),
        (np.zeros((1, 8, 6, 3), dtype=np.uint8), ValueError),
        (np.zeros((8, 8, 3), dtype=np.uint8), ValueError),
    ],
)
def test_non_uint8_or_non_square_batches_are_rejected(images, error):
    with pytest.raises(error, match="images must be"):
        corrupt(images, "contrast", 1, seed=0)
