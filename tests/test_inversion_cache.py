"""The inversion cache: keyed by exactly what determines an inversion, and reused by stir.compare."""

import copy
import dataclasses

import pandas as pd
import pytest
import timm
import torch
from torch import nn

from finetune_invariance import stir
from finetune_invariance.inversion import invert, inversion_steps
from finetune_invariance.inversion_cache import (
    InversionCache,
    InversionKey,
    default_directory,
    images_fingerprint,
    model_fingerprint,
)
from finetune_invariance.layers import HookedLayers, ViTLayers
from finetune_invariance.preprocessing import InputNormalization

from .inversion_counting import count_inversions

DEPTH = 2
N = 4
ITERATIONS = 3


def tiny_vit(seed):
    torch.manual_seed(seed)
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=DEPTH, num_heads=2, num_classes=0
    ).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def key(model, images, seed=0, **changes):
    recipe = {"iterations": ITERATIONS, "step_size": 0.5, "precision": "fp32", **changes}
    return InversionKey(model_fingerprint(model), images_fingerprint(images), seed, **recipe)


# --- what identifies an inversion -------------------------------------------------------------


def test_a_copy_of_the_model_has_its_fingerprint_and_any_changed_weight_or_buffer_another():
    model = tiny_vit(0)
    assert model_fingerprint(copy.deepcopy(model)) == model_fingerprint(model)
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        nudged.blocks[1].mlp.fc2.bias[3] += 1e-6
    assert model_fingerprint(nudged) != model_fingerprint(model)
    other_normalization = ViTLayers(model, InputNormalization((0.5,) * 3, (0.25,) * 3))
    assert model_fingerprint(other_normalization) != model_fingerprint(model)


def test_which_modules_are_the_layers_is_part_of_the_fingerprint():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh(), nn.Linear(5, 3))
    first = HookedLayers(net, ["1", "3"])
    assert model_fingerprint(HookedLayers(copy.deepcopy(net), ["1", "3"])) == model_fingerprint(first)
    assert model_fingerprint(HookedLayers(net, ["2", "3"])) != model_fingerprint(first)


def test_every_field_of_the_key_changes_its_file(images):
    model = tiny_vit(0)
    base = key(model, images)
    others = [
        key(tiny_vit(1), images),
        key(model, images.flip(0)),
        key(model, images, seed=1),
        key(model, images, iterations=ITERATIONS + 1),
        key(model, images, step_size=0.25),
        key(model, images, precision="bf16"),
    ]
    digests = {base.digest(), *(other.digest() for other in others)}
    assert len(digests) == 1 + len(others)
    assert key(copy.deepcopy(model), images.clone()).digest() == base.digest()


def test_the_default_folder_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_directory() == tmp_path / "finetune-invariance" / "inversions"


# --- storing and loading -------------------------------------------------------------------------


def test_stored_inversions_come_back_equal_and_are_counted(tmp_path, images):
    model = tiny_vit(0)
    cache = InversionCache(tmp_path)
    entry = key(model, images)
    assert cache.load(entry, DEPTH + 1) is None
    inverted = invert(model, images, seed=0, iterations=ITERATIONS, progress=False)
    cache.store(entry, inverted)
    loaded = cache.load(entry, DEPTH + 1)
    assert torch.equal(loaded.images, inverted.images) and torch.equal(loaded.targets, images)
    assert (cache.stored, cache.reused) == (1, 1)


def test_a_damaged_or_foreign_entry_is_reported_and_treated_as_missing(tmp_path, images):
    model = tiny_vit(0)
    cache = InversionCache(tmp_path)
    entry = key(model, images)
    cache.path(entry).parent.mkdir(parents=True, exist_ok=True)
    cache.path(entry).write_bytes(b"not safetensors")
    with pytest.warns(UserWarning, match="is not an Inversions file.*inverting again"):
        assert cache.load(entry, DEPTH + 1) is None
    other_seed = invert(model, images, seed=1, iterations=ITERATIONS, progress=False)
    other_seed.save(cache.path(entry))  # a file under a name it does not stand for
    with pytest.warns(UserWarning, match="does not hold the inversions its name stands for"):
        assert cache.load(entry, DEPTH + 1) is None
    assert cache.reused == 0


# --- stir.compare with a cache ---------------------------------------------------------------------


class RecordingBar:
    """Stands in for tqdm in stir.compare: the total it was given and the updates it got."""

    created: list["RecordingBar"] = []

    def __init__(self, total, **kwargs):
        self.total, self.done = total, 0
        RecordingBar.created.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.done += n

    def set_postfix_str(self, text):
        pass


@pytest.fixture
def counted(monkeypatch):
    """The seeds of stir.compare's inversions, with a recording bar."""
    monkeypatch.setattr(stir, "tqdm", RecordingBar)
    RecordingBar.created = []
    return count_inversions(monkeypatch)


def test_a_rerun_reuses_every_inversion_and_gives_the_same_table(tmp_path, images, counted):
    p, f = tiny_vit(0), tiny_vit(1)
    cache = InversionCache(tmp_path)
    settings = dict(seeds=(0, 1), iterations=ITERATIONS, cache=cache)
    first = stir.compare(p, f, images, **settings)
    assert len(counted) == 4 and cache.stored == 4
    bar = RecordingBar.created[-1]
    assert bar.total == bar.done == 4 * inversion_steps(DEPTH + 1, N, ITERATIONS)  # one bar for the whole comparison
    second = stir.compare(p, f, images, **settings)
    assert len(counted) == 4 and cache.reused == 4  # no inversion the second time
    assert RecordingBar.created[-1].total == RecordingBar.created[-1].done == 0
    pd.testing.assert_frame_equal(second, first)
    without_cache = stir.compare(p, f, images, seeds=(0, 1), iterations=ITERATIONS)
    pd.testing.assert_frame_equal(without_cache, first)


def test_a_second_finetuned_model_reuses_the_pretrained_inversions(tmp_path, images, counted):
    p, f, g = tiny_vit(0), tiny_vit(1), tiny_vit(2)
    cache = InversionCache(tmp_path)
    stir.compare(p, f, images, seeds=(0, 1), iterations=ITERATIONS, cache=cache)
    counted.clear()
    stir.compare(p, g, images, seeds=(0, 1), iterations=ITERATIONS, cache=cache)
    assert counted == [0, 1]  # only the new finetuned model, once per seed
    assert cache.reused == 2
    assert RecordingBar.created[-1].total == 2 * inversion_steps(DEPTH + 1, N, ITERATIONS)


def test_other_images_or_iterations_are_inverted_again(tmp_path, images, counted):
    p, f = tiny_vit(0), tiny_vit(1)
    cache = InversionCache(tmp_path)
    stir.compare(p, f, images, seeds=(0,), iterations=ITERATIONS, cache=cache)
    stir.compare(p, f, images[:3], seeds=(0,), iterations=ITERATIONS, cache=cache)
    stir.compare(p, f, images, seeds=(0,), iterations=ITERATIONS + 1, cache=cache)
    assert len(counted) == 6 and cache.reused == 0


def test_an_unusable_entry_is_inverted_again_and_its_steps_join_the_bar(tmp_path, images, counted):
    p, f = tiny_vit(0), tiny_vit(1)
    cache = InversionCache(tmp_path)
    stir.compare(p, f, images, seeds=(0,), iterations=ITERATIONS, cache=cache)
    entry = dataclasses.replace(key(ViTLayers(p), images), seed=0)
    cache.path(entry).write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="inverting again"):
        stir.compare(p, f, images, seeds=(0,), iterations=ITERATIONS, cache=cache)
    assert len(counted) == 3
    bar = RecordingBar.created[-1]
    assert bar.total == bar.done == inversion_steps(DEPTH + 1, N, ITERATIONS)
