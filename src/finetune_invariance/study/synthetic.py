"""The embedded study's generated datasets: seeded, numpy-only, RGB, drawn on a 32x32 canvas.

The paper pretrains on ImageNet / CIFAR and finetunes on CIFAR, Pets and EuroSAT, none of
which can be downloaded on an offline machine. The embedded scale model replaces them with
datasets generated here, in the same relationships:

- ``glyphs64``, ``glyphs10``, ``glyphs30``: one procedural "glyph world" (strokes drawn
  over textured backgrounds) with three disjoint sets of classes. ``glyphs64`` has the most
  classes, the most images and the most variation (the role of ImageNet); ``glyphs10`` and
  ``glyphs30`` are two smaller datasets of one domain with 10 and 30 classes (the roles of
  CIFAR10 and CIFAR100). What a pretrained model learns on one transfers to the others
  through what they share (strokes, their junctions, backgrounds to ignore), as ImageNet's
  features do to CIFAR's, while no class is shared. The CIFAR roles are stored at a native
  size below the model's input (:data:`CIFAR_ROLE_SIZE`): drawn on the 32x32 canvas, then
  area-downsampled, as CIFAR's photos were, so that the loader's bilinear upsampling to the
  model's input brings them back blurred, as CIFAR's 32x32 images are to 224
  (docs/scale-model.md, "the low-level shift").
- ``shapes``, ``textures``, ``digits``: filled geometric shapes, procedural textures and
  scikit-learn's bundled handwritten digits (the small configs of the tests use them).

Each is written by :func:`generate` as ``<root>/<name>/{train,test}.npz`` holding
``images`` (uint8, N x S x S x 3 at the generator's native size S), ``labels`` (int64, N)
and ``class_names`` (str, K),
which :mod:`finetune_invariance.study.data` reads through the same interface as the real
datasets. Generators are registered where they are defined (:func:`register`). Command
line::

    python -m finetune_invariance.study.synthetic --name glyphs10 --root data --seed 0
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

IMAGE_SIZE = 32  # the canvas every generator draws on, and the native size of all but the CIFAR roles

#: The native size of the CIFAR-role glyph sets: upsampled 32 / 6 = 5.3x to the model's
#: 32x32 input (the paper's CIFAR: 7x, EuroSAT: 3.5x). The smallest size at which finetuning
#: the ImageNet-role source on the CIFAR10 role reaches its accuracy target with the final
#: recipe (0.86 at 6 px, 0.79 at 5; docs/scale-model.md, "the low-level shift").
CIFAR_ROLE_SIZE = 6
#: Training images of each CIFAR role: the training budget (docs/scale-model.md, "the budget").
CIFAR_ROLE_TRAIN = 1600

# Per-pixel Gaussian noise (std, in [0, 1] units) added to every generated image, so no
# class is identifiable from exact colour values alone.
PIXEL_NOISE = 0.04

Images = np.ndarray  # float64, N x H x W x 3, values in [0, 1] before quantisation


@dataclass(frozen=True)
class Generator:
    """A dataset generator: ``draw(rng, n)`` -> (float images N x S x S x 3 in [0, 1], labels),
    S = ``image_size``, the dataset's native size."""

    class_names: tuple[str, ...]
    draw: Callable[[np.random.Generator, int], tuple[Images, np.ndarray]]
    default_n_train: int
    default_n_test: int
    image_size: int = IMAGE_SIZE


#: Every generated dataset by name, filled by :func:`register` where each is defined.
GENERATORS: dict[str, Generator] = {}


def register(name: str, generator: Generator) -> Generator:
    """Add a generated dataset to :data:`GENERATORS` under ``name`` (once)."""
    if name in GENERATORS:
        raise ValueError(f"generated dataset '{name}' is registered twice")
    GENERATORS[name] = generator
    return generator


# --- helpers --------------------------------------------------------------------------


def _balanced_labels(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """n labels, every class count within 1 of n / num_classes, in random order."""
    return rng.permutation(np.arange(n) % num_classes).astype(np.int64)


def _pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    """(y, x) pixel-centre coordinates, each shape 1 x 32 x 32, for broadcasting against N x 1 x 1."""
    coords = np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5
    y, x = np.meshgrid(coords, coords, indexing="ij")
    return y[None], x[None]


def _two_colours(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A background and a foreground colour per image (each N x 3), every channel at least
    0.25 apart (circularly), so the pattern is always visible."""
    background = rng.uniform(0.0, 1.0, size=(n, 3))
    foreground = (background + rng.uniform(0.25, 0.75, size=(n, 3))) % 1.0
    return background, foreground


def _paint(pattern: np.ndarray, background: np.ndarray, foreground: np.ndarray) -> Images:
    """Blend two colours by a pattern in [0, 1] (N x H x W): 1 -> foreground, 0 -> background."""
    p = pattern[..., None]
    return p * foreground[:, None, None, :] + (1.0 - p) * background[:, None, None, :]


def _add_noise(rng: np.random.Generator, images: Images) -> Images:
    return np.clip(images + rng.normal(0.0, PIXEL_NOISE, size=images.shape), 0.0, 1.0)


def _to_uint8(images: Images) -> np.ndarray:
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


# --- shapes ---------------------------------------------------------------------------

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring", "horizontal_bar", "vertical_bar", "diamond")


def _shape_mask(shape: str, dy: np.ndarray, dx: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean mask of a shape of radius r centred at offset 0 (dy, dx: offsets of each pixel)."""
    dist = np.hypot(dx, dy)
    if shape == "circle":
        return dist <= r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r
    if shape == "triangle":  # apex up, base down; width grows linearly from apex to base
        return (dy >= -r) & (dy <= 0.8 * r) & (np.abs(dx) <= 0.6 * (dy + r))
    if shape == "cross":
        arm = r / 3.0
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    if shape == "ring":
        return (dist <= r) & (dist >= 0.55 * r)
    if shape == "horizontal_bar":
        return (np.abs(dy) <= 0.25 * r) & (np.abs(dx) <= r)
    if shape == "vertical_bar":
        return (np.abs(dx) <= 0.25 * r) & (np.abs(dy) <= r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    raise ValueError(f"unknown shape '{shape}'; expected one of {SHAPE_CLASSES}")


def draw_shapes(rng: np.random.Generator, n: int) -> tuple[Images, np.ndarray]:
    """Filled geometric shapes, 8 balanced classes (:data:`SHAPE_CLASSES`), 32x32 RGB.

    Each image: a uniform random background colour with a random linear brightness
    gradient (+-0.15), one shape of radius 5-11 px at a random position that keeps it
    inside the image, a random foreground colour at least 0.25 from the background in every
    channel, and Gaussian pixel noise (std :data:`PIXEL_NOISE`).
    """
    labels = _balanced_labels(rng, n, len(SHAPE_CLASSES))
    r = rng.uniform(5.0, 11.0, size=(n, 1, 1))
    cy = rng.uniform(r, IMAGE_SIZE - r)
    cx = rng.uniform(r, IMAGE_SIZE - r)
    y, x = _pixel_grid()
    dy, dx = y - cy, x - cx
    pattern = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE))
    for k, shape in enumerate(SHAPE_CLASSES):
        idx = labels == k
        pattern[idx] = _shape_mask(shape, dy[idx], dx[idx], r[idx])
    background, foreground = _two_colours(rng, n)
    images = _paint(pattern, background, foreground)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=(n, 1, 1))
    gradient = 0.15 * ((x - 16.0) * np.cos(angle) + (y - 16.0) * np.sin(angle)) / 16.0
    return _add_noise(rng, images + gradient[..., None]), labels


register("shapes", Generator(SHAPE_CLASSES, draw_shapes, default_n_train=4000, default_n_test=1000))


# --- textures -------------------------------------------------------------------------

TEXTURE_CLASSES = (
    "grating_0",
    "grating_45",
    "grating_90",
    "grating_135",
    "checkerboard",
    "dots",
    "blobs",
    "rings",
)


def _grating(angle: np.ndarray, period: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Sinusoidal grating in [0, 1]; stripes run along ``angle`` (radians), period in pixels."""
    y, x = _pixel_grid()
    across = -x * np.sin(angle) + y * np.cos(angle)
    return 0.5 + 0.5 * np.sin(2.0 * np.pi * across / period + phase)


def _texture_pattern(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """n patterns (n x 32 x 32, values in [0, 1]) of one texture class; see :func:`draw_textures`."""
    y, x = _pixel_grid()
    shape = (n, 1, 1)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=shape)
    if name.startswith("grating_"):
        degrees = float(name.split("_")[1]) + rng.uniform(-10.0, 10.0, size=shape)
        return _grating(np.deg2rad(degrees), rng.uniform(4.0, 10.0, size=shape), phase)
    if name == "checkerboard":
        cell = rng.uniform(3.0, 8.0, size=shape)
        oy, ox = rng.uniform(0.0, 16.0, size=(2, *shape))
        return ((np.floor((y + oy) / cell) + np.floor((x + ox) / cell)) % 2).astype(np.float64)
    if name == "dots":  # discs on a square lattice
        spacing = rng.uniform(5.0, 9.0, size=shape)
        radius = spacing * rng.uniform(0.2, 0.35, size=shape)
        oy, ox = rng.uniform(0.0, 9.0, size=(2, *shape))
        fy = (y + oy) % spacing - spacing / 2
        fx = (x + ox) % spacing - spacing / 2
        return (np.hypot(fy, fx) <= radius).astype(np.float64)
    if name == "blobs":  # sum of 6 low-frequency waves of random orientation, squashed
        waves = []
        for _ in range(6):
            angle = rng.uniform(0.0, np.pi, size=shape)
            period = rng.uniform(12.0, 24.0, size=shape)
            waves.append(_grating(angle, period, rng.uniform(0.0, 2.0 * np.pi, size=shape)))
        field = sum(waves) - 3.0  # six waves of mean 0.5: centred on 0
        return 1.0 / (1.0 + np.exp(-3.0 * field))
    if name == "rings":  # concentric sinusoidal rings around a random centre
        cy, cx = rng.uniform(8.0, 24.0, size=(2, *shape))
        period = rng.uniform(4.0, 9.0, size=shape)
        return 0.5 + 0.5 * np.sin(2.0 * np.pi * np.hypot(y - cy, x - cx) / period + phase)
    raise ValueError(f"unknown texture '{name}'; expected one of {TEXTURE_CLASSES}")


def draw_textures(rng: np.random.Generator, n: int) -> tuple[Images, np.ndarray]:
    """Procedural textures, 8 balanced classes (:data:`TEXTURE_CLASSES`), 32x32 RGB.

    - ``grating_<a>``: sinusoidal grating with stripes at a +- 10 degrees, period 4-10 px;
    - ``checkerboard``: square cells of 3-8 px, random offset;
    - ``dots``: discs on a square lattice of spacing 5-9 px;
    - ``blobs``: a squashed sum of 6 low-frequency (period 12-24 px) waves of random
      orientation, i.e. smooth random blobs;
    - ``rings``: concentric sinusoidal rings (period 4-9 px) around a random centre.
    Random phase everywhere; the pattern blends two random colours at least 0.25 apart per
    channel; Gaussian pixel noise (std :data:`PIXEL_NOISE`).
    """
    labels = _balanced_labels(rng, n, len(TEXTURE_CLASSES))
    pattern = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE))
    for k, name in enumerate(TEXTURE_CLASSES):
        idx = np.flatnonzero(labels == k)
        pattern[idx] = _texture_pattern(name, rng, idx.size)
    background, foreground = _two_colours(rng, n)
    return _add_noise(rng, _paint(pattern, background, foreground)), labels


register("textures", Generator(TEXTURE_CLASSES, draw_textures, default_n_train=4000, default_n_test=1000))


# --- digits ---------------------------------------------------------------------------

DIGIT_CLASSES = tuple(str(d) for d in range(10))


def _area_downsampling_matrix(size_in: int, size_out: int) -> np.ndarray:
    """size_out x size_in matrix of 1-D area averaging: output pixel i is the mean of the
    input over [i, i + 1) * size_in / size_out, each input pixel weighted by its overlap
    (Pillow's BOX filter for a reduction)."""
    if not 0 < size_out <= size_in:
        raise ValueError(f"area downsampling goes from a larger to a smaller size, got {size_in} -> {size_out}")
    edges = np.arange(size_out + 1) * size_in / size_out
    pixels = np.arange(size_in)
    overlap = np.clip(np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels), 0.0, None)
    return overlap * size_out / size_in


def area_downsample(images: Images, size: int) -> Images:
    """A batch N x H x H x C area-averaged to N x size x size x C (itself when H == size)."""
    if images.shape[1] == size:
        return images
    matrix = _area_downsampling_matrix(images.shape[1], size)
    return np.einsum("ij,njkc,lk->nilc", matrix, images, matrix)


def _linear_upsampling_matrix(size_in: int, size_out: int) -> np.ndarray:
    """size_out x size_in matrix of 1-D linear interpolation with half-pixel centres
    (the align_corners=False convention), edges clamped."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0.0, size_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = centres - lo
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), lo] += 1.0 - frac
    matrix[np.arange(size_out), hi] += frac
    return matrix


def draw_digits(rng: np.random.Generator, n: int) -> tuple[Images, np.ndarray]:
    """scikit-learn's bundled handwritten digits (UCI optdigits test set), 10 classes.

    The 1797 8x8 grey images (values 0..16) are bilinearly upsampled to 32x32, scaled to
    [0, 1] and copied to 3 channels (white digit on black); no noise is added. ``n`` of them
    are drawn without replacement in random order, so train and test never overlap.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    digits = load_digits()
    if n > len(digits.target):
        raise ValueError(f"digits has {len(digits.target)} images; n_train + n_test = {n} is too many")
    order = rng.permutation(len(digits.target))[:n]
    small = digits.images[order] / 16.0
    up = _linear_upsampling_matrix(8, IMAGE_SIZE)
    grey = np.einsum("ij,njk,lk->nil", up, small, up)
    return np.repeat(grey[..., None], 3, axis=-1), digits.target[order].astype(np.int64)


register("digits", Generator(DIGIT_CLASSES, draw_digits, default_n_train=1437, default_n_test=360))


# --- the glyph world ------------------------------------------------------------------

GLYPH_CHUNK = 256  # images rendered at once (memory: chunk x 1024 pixels x strokes)
MAX_TEMPLATE_SEGMENTS = 12  # 4 strokes, an arc being 3 segments


def _glyph_template(rng: np.random.Generator) -> np.ndarray:
    """One class's strokes in the unit box [-1, 1]^2: 2-4 strokes, each a straight segment
    (length > 0.6) or, with probability 0.3, an arc of radius 0.35-0.8 sweeping 0.6-1.6 pi
    drawn as 3 segments; returns segments (m x 2 endpoints x (x, y))."""
    segments = []
    for _ in range(rng.integers(2, 5)):
        if rng.random() < 0.3:
            centre, radius = rng.uniform(-0.4, 0.4, 2), rng.uniform(0.35, 0.8)
            start, sweep = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(0.6, 1.6) * np.pi
            angles = start + sweep * np.linspace(0.0, 1.0, 4)
            points = centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            segments += [(points[i], points[i + 1]) for i in range(3)]
        else:
            a = rng.uniform(-0.9, 0.9, 2)
            b = rng.uniform(-0.9, 0.9, 2)
            while np.linalg.norm(b - a) <= 0.6:
                b = rng.uniform(-0.9, 0.9, 2)
            segments.append((a, b))
    return np.asarray(segments, dtype=np.float64)


def _distance_to_segments(points: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Distance (B x P) from each pixel centre (P x 2) to the nearest of each image's
    segments (B x M x 2 x 2); NaN segments are absent."""
    px, py = (points[None, :, None, k].astype(np.float32) for k in (0, 1))  # 1 x P x 1
    ax, ay, bx, by = (segments[:, None, :, end, k].astype(np.float32) for end in (0, 1) for k in (0, 1))  # B x 1 x M
    dx, dy = bx - ax, by - ay
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
    squared = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2  # B x P x M
    return np.sqrt(np.min(np.where(np.isnan(squared), np.inf, squared), axis=-1)).astype(np.float64)


def _stroke_mask(distance: np.ndarray, half_width: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of strokes of ``half_width`` px (B x 1) at ``distance``."""
    return np.clip(half_width - distance + 0.5, 0.0, 1.0).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)


@dataclass(frozen=True)
class GlyphWorld:
    """Glyphs: a class is a fixed set of 2-4 strokes (:func:`_glyph_template`), drawn from
    the seed (``pool``, class index), so different pools give different classes.

    Each image draws one glyph of a balanced random class and renders it on the 32x32
    canvas with, scaled by ``variation``: endpoint jitter (sd 0.06 of the unit box), a rotation of up to 0.5 rad,
    a scale of 9-13 px per unit, a shift of the centre, strokes of half-width 1.0-2.2 px,
    a background texture (flat, a sinusoidal grating or smooth blobs) of contrast up to
    0.2 and up to 2 distractor strokes; the canvas is area-downsampled to ``native_size``
    (:func:`area_downsample`) and Gaussian pixel noise of sd 0.03 is added at that size. Colours: a
    random dark background and a foreground brighter by 0.4-0.6 (each channel +-0.15):
    the glyph is always the brighter part (with random polarity it is invisible to a
    linear patch embedding, which would spend most of a small model's training on
    finding it).
    """

    pool: int
    num_classes: int
    variation: float
    native_size: int = IMAGE_SIZE

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(f"glyph_{self.pool}_{k:02d}" for k in range(self.num_classes))

    def templates(self) -> list[np.ndarray]:
        return [_glyph_template(np.random.default_rng((self.pool, k))) for k in range(self.num_classes)]

    def draw(self, rng: np.random.Generator, n: int) -> tuple[Images, np.ndarray]:
        labels = _balanced_labels(rng, n, self.num_classes)
        padded = np.full((self.num_classes, MAX_TEMPLATE_SEGMENTS, 2, 2), np.nan)
        for k, template in enumerate(self.templates()):
            padded[k, : len(template)] = template
        images = np.concatenate(
            [self._render(rng, padded[labels[i : i + GLYPH_CHUNK]]) for i in range(0, n, GLYPH_CHUNK)]
        )
        return images, labels

    def _render(self, rng: np.random.Generator, templates: np.ndarray) -> Images:
        b, v = len(templates), self.variation
        y, x = _pixel_grid()
        points = np.stack([x.ravel(), y.ravel()], axis=1)
        strokes = templates + rng.normal(0.0, 0.06 * v, templates.shape)
        angle = rng.uniform(-0.5, 0.5, b) * v
        rotation = np.stack([np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)], axis=1).reshape(b, 2, 2)
        scale = rng.uniform(9.0, 13.0, (b, 1, 1, 1))
        centre = IMAGE_SIZE / 2 + rng.uniform(-2.0, 2.0, (b, 1, 1, 2)) * (1.0 + v)
        strokes = np.einsum("bij,bmkj->bmki", rotation, strokes) * scale + centre
        glyph = _stroke_mask(_distance_to_segments(points, strokes), rng.uniform(1.0, 2.2, (b, 1)))

        background = rng.uniform(0.0, 0.45, (b, 3)) * rng.uniform(0.3, 1.0, (b, 1))
        foreground = np.clip(background + rng.uniform(0.4, 0.6, (b, 1)) + rng.uniform(-0.15, 0.15, (b, 3)), 0.0, 1.0)
        images = _paint(glyph, background, foreground) + self._background_texture(rng, b)[..., None]

        clutter = rng.integers(0, 1 + round(2 * v), b)
        starts = rng.uniform(0.0, IMAGE_SIZE, (b, 2, 2))
        distractors = np.stack([starts, starts + rng.normal(0.0, 4.0, (b, 2, 2))], axis=2)  # B x 2 x 2 x 2
        distractors[np.arange(2)[None] >= clutter[:, None]] = np.nan
        coverage = 0.6 * _stroke_mask(_distance_to_segments(points, distractors), np.full((b, 1), 0.3))
        colour = rng.uniform(0.0, 1.0, (b, 3))
        images = area_downsample(
            images * (1.0 - coverage[..., None]) + coverage[..., None] * colour[:, None, None, :], self.native_size
        )
        return np.clip(images + rng.normal(0.0, 0.03, images.shape), 0.0, 1.0)

    def _background_texture(self, rng: np.random.Generator, b: int) -> np.ndarray:
        """B x 32 x 32 zero-mean texture: flat, a grating of period 3-10 px, or blobs (4
        waves of period 10-24 px), with contrast 0.05-0.2 scaled by the variation."""
        shape = (b, 1, 1)
        grating = np.sin(
            2.0 * np.pi * _grating_coordinate(rng.uniform(0.0, np.pi, shape)) / rng.uniform(3.0, 10.0, shape)
            + rng.uniform(0.0, 2.0 * np.pi, shape)
        )
        blobs = (
            sum(
                np.sin(
                    2.0 * np.pi * _grating_coordinate(rng.uniform(0.0, np.pi, shape)) / rng.uniform(10.0, 24.0, shape)
                    + rng.uniform(0.0, 2.0 * np.pi, shape)
                )
                for _ in range(4)
            )
            / 2.0
        )
        kind = rng.integers(0, 3, shape)
        texture = np.where(kind == 0, 0.0, np.where(kind == 1, grating, blobs))
        return rng.uniform(0.05, 0.2, shape) * self.variation * texture


def _grating_coordinate(angle: np.ndarray) -> np.ndarray:
    """Position along direction ``angle`` (B x 1 x 1) of every pixel centre: B x 32 x 32."""
    y, x = _pixel_grid()
    return x * np.cos(angle) + y * np.sin(angle)


def _register_glyphs(name: str, world: GlyphWorld, n_train: int, n_test: int) -> None:
    register(name, Generator(world.class_names, world.draw, n_train, n_test, world.native_size))


# The ImageNet role: most classes, most images, most variation.
_register_glyphs("glyphs64", GlyphWorld(pool=0, num_classes=64, variation=0.7), n_train=16000, n_test=1000)
# The roles of CIFAR10 and CIFAR100: one domain, 10 and 30 classes, fewer images, stored
# at the CIFAR roles' native size. The CIFAR100 role has the most classes (and so the
# fewest images per class) at which finetuning the ImageNet-role source on it reaches its
# target (0.61 with 30, 0.49 with 40 at 6 px; docs/scale-model.md).
_register_glyphs(
    "glyphs10",
    GlyphWorld(pool=1, num_classes=10, variation=0.6, native_size=CIFAR_ROLE_SIZE),
    n_train=CIFAR_ROLE_TRAIN,
    n_test=500,
)
_register_glyphs(
    "glyphs30",
    GlyphWorld(pool=2, num_classes=30, variation=0.6, native_size=CIFAR_ROLE_SIZE),
    n_train=CIFAR_ROLE_TRAIN,
    n_test=500,
)


# --- files ----------------------------------------------------------------------------


def split_path(root: str | os.PathLike, name: str, split: str) -> Path:
    """Where :func:`generate` writes (and :mod:`finetune_invariance.data` reads) a split."""
    return Path(root) / name / f"{split}.npz"


def _write_npz_atomically(path: Path, **arrays: np.ndarray) -> None:
    """Write arrays to ``path`` via a temporary file, so a killed job leaves no partial .npz."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)


def make_splits(
    name: str, seed: int, n_train: int | None = None, n_test: int | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (uint8 images N x S x S x 3, int64 labels), 'test': ...} of one generator
    (S its native size).

    One draw of n_train + n_test images from ``numpy.random.default_rng(seed)``; the first
    n_train are the train split. Same arguments, same bytes.
    """
    if name not in GENERATORS:
        raise ValueError(f"unknown generated dataset '{name}'; expected one of {sorted(GENERATORS)}")
    gen = GENERATORS[name]
    n_train = gen.default_n_train if n_train is None else n_train
    n_test = gen.default_n_test if n_test is None else n_test
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    images, labels = gen.draw(np.random.default_rng(seed), n_train + n_test)
    images = _to_uint8(images)
    return {
        "train": (images[:n_train], labels[:n_train]),
        "test": (images[n_train:], labels[n_train:]),
    }


def generate(
    name: str, root: str | os.PathLike, seed: int = 0, n_train: int | None = None, n_test: int | None = None
) -> dict[str, Path]:
    """Generate dataset ``name`` and write ``<root>/<name>/{train,test}.npz`` (each atomically).

    Sizes default to the generator's (shapes, textures: 4000 / 1000; digits: 1437 / 360).
    Returns the written paths by split.
    """
    splits = make_splits(name, seed, n_train, n_test)
    class_names = np.array(GENERATORS[name].class_names)
    paths = {}
    for split, (images, labels) in splits.items():
        paths[split] = split_path(root, name, split)
        _write_npz_atomically(paths[split], images=images, labels=labels, class_names=class_names)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a generated dataset of the mini study.")
    parser.add_argument("--name", required=True, choices=sorted(GENERATORS))
    parser.add_argument("--root", required=True, help="datasets root; writes <root>/<name>/{train,test}.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=None, help="default: the generator's")
    parser.add_argument("--n-test", type=int, default=None, help="default: the generator's")
    args = parser.parse_args(argv)
    for split, path in generate(args.name, args.root, args.seed, args.n_train, args.n_test).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
