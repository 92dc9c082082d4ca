"""Common corruptions in the style of CIFAR-10-C, for datasets without a published set.

Hendrycks & Dietterich (2019, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations") built CIFAR-10-C / CIFAR-100-C with the script
``ImageNet-C/create_c/make_cifar_c.py`` of github.com/hendrycks/robustness. This module
re-implements a subset of its corruptions from that script's published per-severity
constants (quoted in each :class:`Corruption`'s ``parameters``), with NumPy 2, SciPy and
Pillow only; the ``imagecorruptions`` package uses the ImageNet-C constants instead and
does not run on NumPy 2.

Implemented (10 of the 19): the noises ``gaussian_noise``, ``shot_noise``,
``impulse_noise``, ``speckle_noise``; the blurs ``gaussian_blur``, ``defocus_blur``; and
``contrast``, ``brightness``, ``pixelate``, ``jpeg_compression``. Eight of them are among
the 15 benchmark corruptions. Not implemented: glass, motion and zoom blur, snow, frost,
fog, elastic transform, spatter and saturate (they need ImageMagick, the frost photographs
or larger random-field generators).

Conventions shared with the published script:

- Pixel values are taken to [0, 1] as ``x / 255``, corrupted in float64, clipped to
  [0, 1], multiplied by 255 and cast to uint8 by **truncation** (``np.uint8`` of a float
  array), which is how the published ``.npy`` files were written; pixelate and JPEG work on
  the uint8 image directly through Pillow, as the script does.
- Image size: the constants are for 32x32 CIFAR images. Corruptions that act per pixel
  (noises, contrast, brightness) and JPEG need no change for other sizes; pixelate's
  constant is a fraction of the side, so it scales by itself; the blurs' constants are
  lengths in pixels, so they are multiplied by ``side / 32`` (a 64x64 image is blurred
  as much, relative to its content, as a 32x32 one).
- Randomness comes from one ``numpy.random.Generator`` seeded by ``seed`` and drawn for the
  whole batch at once: the output is a deterministic function of (batch, name, severity,
  seed), and an image's noise depends on its position in the batch.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)

# The published constants are tuned for CIFAR's 32x32 images (see the module docstring).
_REFERENCE_SIDE = 32


@dataclass(frozen=True)
class Corruption:
    """One corruption: its published per-severity constants and how to apply one of them.

    ``apply(images, parameter, rng)`` maps a uint8 NHWC batch of square RGB images to a
    uint8 batch of the same shape; ``parameter`` is ``parameters[severity - 1]``.
    """

    name: str
    family: str  # 'noise', 'blur' or 'digital', as grouped by Hendrycks & Dietterich
    parameters: tuple[Any, ...]
    apply: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]
    description: str

    def parameter(self, severity: int) -> Any:
        """The published constant for ``severity`` (1..5)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r} for corruption '{self.name}'")
        return self.parameters[severity - 1]


# --- the float pipeline shared by most corruptions --------------------------------------


def _to_unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float64) / 255.0


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    # Truncation, not rounding: the published files were written with np.uint8(float array).
    return (np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _in_unit_space(
    corrupt_unit: Callable[[np.ndarray, Any, np.random.Generator], np.ndarray],
) -> Callable[[np.ndarray, Any, np.random.Generator], np.ndarray]:
    """Wrap a corruption of [0, 1] float images into one of uint8 images."""

    def apply(images: np.ndarray, parameter: Any, rng: np.random.Generator) -> np.ndarray:
        return _to_uint8(corrupt_unit(_to_unit(images), parameter, rng))

    return apply


def _length_scale(images: np.ndarray) -> float:
    """Factor that carries a length in pixels at 32x32 to this batch's side."""
    return images.shape[1] / _REFERENCE_SIDE


# --- noise ----------------------------------------------------------------------------


def _gaussian_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(scale=sigma, size=x.shape)


def _shot_noise(x: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    # A pixel of value v receives Poisson(v * photons) photons: variance v / photons.
    return rng.poisson(x * photons) / photons


def _impulse_noise(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    # skimage.util.random_noise(mode='s&p'): every value (each channel independently) is
    # replaced with probability `amount`, by 1 (salt) or 0 (pepper) with equal odds.
    replaced = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    out = x.copy()
    out[replaced & salt] = 1.0
    out[replaced & ~salt] = 0.0
    return out


def _speckle_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return x + x * rng.normal(scale=sigma, size=x.shape)


# --- blur -----------------------------------------------------------------------------


def _gaussian_blur(images: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage  # lazy: only the blurs need SciPy

    # skimage.filters.gaussian(multichannel=True): spatial axes only, edge-replicating
    # border ('nearest'), kernel truncated at 4 sigma.
    x = _to_unit(images)
    s = sigma * _length_scale(images)
    return _to_uint8(ndimage.gaussian_filter(x, sigma=(0.0, s, s, 0.0), mode="nearest", truncate=4.0))


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps (OpenCV's getGaussianKernel for sigma > 0)."""
    offsets = np.arange(size) - (size - 1) / 2
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2))
    return taps / taps.sum()


def defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The defocus point-spread function of make_cifar_c.py's ``disk``.

    A disk of the given radius (pixels with x^2 + y^2 <= radius^2 on an integer grid of
    half-width max(8, ceil(radius))), normalised to sum 1, then anti-aliased by a 3x3
    Gaussian of standard deviation ``alias_blur`` (5x5 for radius > 8). The published
    script's grid for radius > 8 is ``arange(-radius, radius + 1)``, which is off the
    integer lattice for a fractional radius; the integer grid here is the intended disk.
    """
    from scipy import ndimage  # lazy: only the blurs need SciPy

    half_width = max(8, math.ceil(radius))
    grid = np.arange(-half_width, half_width + 1)
    x, y = np.meshgrid(grid, grid)
    disk = (x**2 + y**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = _gaussian_taps(3 if radius <= 8 else 5, alias_blur)
    # OpenCV's default border (BORDER_REFLECT_101) is SciPy's 'mirror'.
    return ndimage.correlate(disk, np.outer(taps, taps), mode="mirror")


def _defocus_blur(images: np.ndarray, parameter: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    from scipy import ndimage  # lazy: only the blurs need SciPy

    radius, alias_blur = (p * _length_scale(images) for p in parameter)
    kernel = defocus_kernel(radius, alias_blur)
    # cv2.filter2D per channel: correlation with a mirrored (BORDER_REFLECT_101) border.
    blurred = ndimage.correlate(_to_unit(images), kernel[None, :, :, None], mode="mirror")
    return _to_uint8(blurred)


# --- digital --------------------------------------------------------------------------


def _contrast(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    # Deviations from each image's per-channel mean are scaled by `factor`.
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * factor + means


def _brightness(x: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """Add ``shift`` to the HSV value channel (clipped to 1), keeping hue and saturation.

    In HSV, V = max(r, g, b) and (r, g, b) = V * f(H, S), so with H and S fixed the colour
    scales linearly with V: rgb' = rgb * V' / V. A black pixel (V = 0) has S = 0 and H = 0
    (skimage's convention), so it becomes the grey (V', V', V').
    """
    value = x.max(axis=-1, keepdims=True)
    new_value = np.clip(value + shift, 0.0, 1.0)
    ratio = np.divide(new_value, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * ratio, new_value)


def _pixelate(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    # Box-downsample to int(side * fraction) and box-upsample back, as Pillow does it.
    side = images.shape[1]
    small = int(side * fraction)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        reduced = Image.fromarray(image).resize((small, small), Image.Resampling.BOX)
        out[i] = np.asarray(reduced.resize((side, side), Image.Resampling.BOX))
    return out


def _jpeg_compression(images: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption(
            name="gaussian_noise",
            family="noise",
            parameters=(0.04, 0.06, 0.08, 0.09, 0.10),
            apply=_in_unit_space(_gaussian_noise),
            description="additive N(0, sigma^2) noise per value; parameter: sigma in [0, 1] pixel units",
        ),
        Corruption(
            name="shot_noise",
            family="noise",
            parameters=(500, 250, 100, 75, 50),
            apply=_in_unit_space(_shot_noise),
            description="Poisson(x * c) / c per value; parameter: c, photons at full intensity",
        ),
        Corruption(
            name="impulse_noise",
            family="noise",
            parameters=(0.01, 0.02, 0.03, 0.05, 0.07),
            apply=_in_unit_space(_impulse_noise),
            description="salt-and-pepper; parameter: fraction of values replaced by 0 or 1",
        ),
        Corruption(
            name="speckle_noise",
            family="noise",
            parameters=(0.06, 0.10, 0.12, 0.16, 0.20),
            apply=_in_unit_space(_speckle_noise),
            description="multiplicative x + x * N(0, sigma^2); parameter: sigma",
        ),
        Corruption(
            name="gaussian_blur",
            family="blur",
            parameters=(0.4, 0.6, 0.7, 0.8, 1.0),
            apply=_gaussian_blur,
            description="Gaussian filter over the image plane; parameter: sigma in pixels at 32x32",
        ),
        Corruption(
            name="defocus_blur",
            family="blur",
            parameters=((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
            apply=_defocus_blur,
            description="anti-aliased disk filter; parameter: (disk radius, anti-alias sigma) in pixels at 32x32",
        ),
        Corruption(
            name="contrast",
            family="digital",
            parameters=(0.75, 0.5, 0.4, 0.3, 0.15),
            apply=_in_unit_space(_contrast),
            description="(x - mean) * c + mean with per-image, per-channel means; parameter: c",
        ),
        Corruption(
            name="brightness",
            family="digital",
            parameters=(0.05, 0.1, 0.15, 0.2, 0.3),
            apply=_in_unit_space(_brightness),
            description="HSV value channel + c, clipped to 1; parameter: c",
        ),
        Corruption(
            name="pixelate",
            family="digital",
            parameters=(0.95, 0.9, 0.85, 0.75, 0.65),
            apply=_pixelate,
            description="box resize to int(side * c) and back; parameter: c, fraction of the side",
        ),
        Corruption(
            name="jpeg_compression",
            family="digital",
            parameters=(80, 65, 58, 50, 40),
            apply=_jpeg_compression,
            description="Pillow JPEG round trip; parameter: JPEG quality",
        ),
    )
}


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise TypeError(
            f"images must be a uint8 numpy array (N, H, W, 3), got {type(images).__name__} "
            f"of dtype {getattr(images, 'dtype', None)}"
        )
    if images.ndim != 4 or images.shape[3] != 3 or images.shape[1] != images.shape[2] or images.shape[1] == 0:
        raise ValueError(f"images must be square RGB images of shape (N, H, H, 3), got shape {images.shape}")


def corrupt(images: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Corrupt a uint8 NHWC batch with corruption ``name`` at ``severity`` (1..5).

    Returns a new uint8 array of the same shape; deterministic given ``seed`` (see the
    module docstring for the conventions).
    """
    if name not in CORRUPTIONS:
        raise KeyError(f"unknown corruption '{name}'; known corruptions: {sorted(CORRUPTIONS)}")
    corruption = CORRUPTIONS[name]
    parameter = corruption.parameter(severity)
    _check_images(images)
    return corruption.apply(np.ascontiguousarray(images), parameter, np.random.default_rng(seed))
