"""STIR matrices and the PAIR_SIMILARITY table against naive CKA of timm's own forward."""

import numpy as np
import pytest
import timm
import torch

from finetune_invariance import tables
from finetune_invariance.inversion import Inversions, invert
from finetune_invariance.preprocessing import InputNormalization
from finetune_invariance import stir
from finetune_invariance.stir import compare, layer_grams, pair_similarity, stir_matrix

DEPTH = 2
N = 6


def tiny_vit(seed, depth=DEPTH):
    torch.manual_seed(seed)
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=depth, num_heads=2, num_classes=0
    ).eval()


def naive_reps(vit, images):
    """All DEPTH + 1 layers from timm's forward: block hooks plus the pre-logits head."""
    normalize = InputNormalization(vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"])
    outputs = []
    handles = [b.register_forward_hook(lambda m, i, o: outputs.append(o.flatten(1).double())) for b in vit.blocks]
    with torch.no_grad():
        pooled = vit.forward_head(vit.forward_features(normalize(images)), pre_logits=True)
    for h in handles:
        h.remove()
    return [o.numpy() for o in outputs] + [pooled.double().numpy()]


def naive_cka(x, y):
    n = len(x)
    h = np.eye(n) - 1.0 / n
    k, l = x @ x.T, y @ y.T
    return np.trace(k @ h @ l @ h) / np.sqrt(np.trace(k @ h @ k @ h) * np.trace(l @ h @ l @ h))


@pytest.fixture(scope="module")
def models():
    return tiny_vit(0), tiny_vit(1)


@pytest.fixture(scope="module")
def images():
    return torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def handmade_inversions(images, per_layer, seed=0):
    """Inversions whose X'_i are given directly (no optimisation)."""
    return Inversions(
        images=torch.stack(per_layer),
        losses=torch.zeros(len(per_layer), len(images)),
        layers=tuple(range(len(per_layer))),
        targets=images,
        seed=seed,
        iterations=0,
        step_size=0.5,
    )


def test_stir_matrix_is_cka_of_target_layers_on_x_and_x_prime(models, images):
    _, target = models
    g = torch.Generator().manual_seed(5)
    per_layer = [images, torch.rand(images.shape, generator=g), images.flip(-1)]
    inversions = handmade_inversions(images, per_layer)
    s = stir_matrix(target, images, inversions)
    assert s.shape == (3, DEPTH + 1)
    np.testing.assert_allclose(s[0], 1.0, atol=1e-12)  # X' = X shares every invariance
    reps_x = naive_reps(target, images)
    for i, x_prime in enumerate(per_layer):
        reps_prime = naive_reps(target, x_prime)
        for j in range(DEPTH + 1):
            assert s[i, j] == pytest.approx(naive_cka(reps_x[j], reps_prime[j]), abs=1e-5)


def test_pair_similarity_rows_and_values(models, images):
    p, f = models
    inv_p = invert(p, images, seed=4, iterations=3, progress=False)
    inv_f = invert(f, images, seed=4, iterations=3, progress=False)
    df = pair_similarity(p, f, images, inv_p, inv_f, names=("p", "f"))
    assert df.equals(tables.conform(df, tables.PAIR_SIMILARITY))
    assert len(df) == 2 * (DEPTH + 1) ** 2
    assert set(df["seed"]) == {4} and set(df["n_images"]) == {N}
    reps_p, reps_f = naive_reps(p, images), naive_reps(f, images)
    for row in df.itertuples():
        reference, target = (p, f) if row.reference == "p" else (f, p)
        inversions = inv_p if row.reference == "p" else inv_f
        target_x = naive_reps(target, images)[row.target_layer]
        target_x_prime = naive_reps(target, inversions.for_layer(row.reference_layer))[row.target_layer]
        assert row.stir == pytest.approx(naive_cka(target_x, target_x_prime), abs=1e-5)
        ref_reps, tgt_reps = (reps_p, reps_f) if row.reference == "p" else (reps_f, reps_p)
        assert row.cka == pytest.approx(naive_cka(ref_reps[row.reference_layer], tgt_reps[row.target_layer]), abs=1e-5)


def test_model_with_itself_has_unit_cka_on_the_diagonal(models, images):
    p, _ = models
    inversions = handmade_inversions(images, [images.flip(-2)] * (DEPTH + 1))
    df = pair_similarity(p, p, images, inversions, inversions, names=("a", "b"))
    diagonal = df[df["reference_layer"] == df["target_layer"]]
    np.testing.assert_allclose(diagonal["cka"], 1.0, atol=1e-12)
    # Same model, same inversions: both directions carry the same STIR values.
    a_to_b = df[df["reference"] == "a"].sort_values(["reference_layer", "target_layer"])["stir"].to_numpy()
    b_to_a = df[df["reference"] == "b"].sort_values(["reference_layer", "target_layer"])["stir"].to_numpy()
    np.testing.assert_array_equal(a_to_b, b_to_a)


def test_compare_runs_every_seed_and_matches_pair_similarity(models, images):
    p, f = models
    df = compare(p, f, images[:4], seeds=(0, 1), iterations=2, progress=False)
    assert df.equals(tables.conform(df, tables.PAIR_SIMILARITY))
    assert sorted(df["seed"].unique()) == [0, 1] and len(df) == 2 * 2 * (DEPTH + 1) ** 2
    inv_p = invert(p, images[:4], seed=1, iterations=2, progress=False)
    inv_f = invert(f, images[:4], seed=1, iterations=2, progress=False)
    expected = pair_similarity(p, f, images[:4], inv_p, inv_f)
    np.testing.assert_allclose(df[df["seed"] == 1]["stir"].to_numpy(), expected["stir"].to_numpy(), atol=1e-6)
    assert not np.allclose(df[df["seed"] == 0]["stir"], df[df["seed"] == 1]["stir"])


def test_layer_grams_of_chosen_layers_equal_those_of_all_layers_and_stop_early(models, images):
    _, f = models
    every = layer_grams(f, images, batch_size=4)
    chosen = layer_grams(f, images, batch_size=4, layers=[2, 0])
    assert torch.equal(chosen[0], every[2]) and torch.equal(chosen[1], every[0])
    ran = []
    handles = [block.register_forward_hook(lambda m, i, o, b=b: ran.append(b)) for b, block in enumerate(f.blocks)]
    try:
        (only_first,) = layer_grams(f, images, batch_size=4, layers=[0])
    finally:
        for handle in handles:
            handle.remove()
    assert ran == [0, 0]  # two batches, each leaving after block 0
    assert torch.equal(only_first, every[0])
    with pytest.raises(ValueError, match=r"layer 3 is out of range: this model has layers 0\.\.2"):
        layer_grams(f, images, layers=[0, 3])


def test_mismatched_inputs_give_clear_errors(models, images):
    p, f = models
    inversions = handmade_inversions(images, [images] * (DEPTH + 1), seed=0)
    other_seed = handmade_inversions(images, [images] * (DEPTH + 1), seed=1)
    with pytest.raises(ValueError, match="made for other images"):
        stir_matrix(f, images[:3], inversions)
    with pytest.raises(ValueError, match="inversions_finetuned were made for other images"):
        pair_similarity(p, f, images, inversions, handmade_inversions(images.flip(-1), [images] * 3))
    with pytest.raises(ValueError, match="cannot tell the STIR seed"):
        pair_similarity(p, f, images, inversions, other_seed)


def test_inversions_through_layers_the_model_lacks_are_rejected(models, images):
    p, f = models
    deeper = handmade_inversions(images, [images] * (DEPTH + 2))
    fine = handmade_inversions(images, [images] * (DEPTH + 1))
    with pytest.raises(ValueError, match=r"inversions_pretrained are through layers \[0, 1, 2, 3\] .* layers 0\.\.2"):
        pair_similarity(p, f, images, deeper, fine)


@pytest.fixture
def no_inversion(monkeypatch):
    """compare must refuse bad input before the (expensive) first inversion."""

    def fail(*args, **kwargs):
        raise AssertionError("compare started inverting before checking its input")

    monkeypatch.setattr(stir, "invert", fail)


def test_models_of_different_depth_are_rejected_naming_both_layer_counts(models, images, no_inversion):
    # Before: a table whose forgetting/learning silently covered only the shared layers.
    p, _ = models
    deeper = tiny_vit(1, depth=DEPTH + 1)
    inversions = handmade_inversions(images, [images] * (DEPTH + 1))
    message = r"'p' has 3 layers but 'f' has 4: forgetting and learning compare layer l of both models"
    with pytest.raises(ValueError, match=message):
        pair_similarity(p, deeper, images, inversions, inversions, names=("p", "f"))
    with pytest.raises(ValueError, match=message):
        compare(p, deeper, images, names=("p", "f"), progress=False)


def test_identical_model_names_are_rejected(models, images, no_inversion):
    # Before: both directions carried reference 'a', target 'a' and could not be told apart.
    p, f = models
    inversions = handmade_inversions(images, [images] * (DEPTH + 1))
    message = r"names must be two different model names, got \('a', 'a'\)"
    with pytest.raises(ValueError, match=message):
        pair_similarity(p, f, images, inversions, inversions, names=("a", "a"))
    with pytest.raises(ValueError, match=message):
        compare(p, f, images, names=("a", "a"), progress=False)


def test_empty_or_repeated_seeds_are_rejected(models, images, no_inversion):
    # Before: no seeds gave pandas' "No objects to concatenate"; (0, 0) faked two replicates with std 0.
    p, f = models
    with pytest.raises(ValueError, match="seeds is empty"):
        compare(p, f, images, seeds=(), progress=False)
    with pytest.raises(ValueError, match=r"seeds \[3, 0, 3\] repeat \[3\]"):
        compare(p, f, images, seeds=(3, 0, 3), progress=False)


def entry_points(models, images):
    """Every stir function that takes images, called on ``bad`` images, else with valid arguments."""
    p, f = models
    inversions = handmade_inversions(images, [images] * (DEPTH + 1))
    return {
        "layer_grams": lambda bad: layer_grams(f, bad),
        "stir_matrix": lambda bad: stir_matrix(f, bad, inversions),
        "pair_similarity": lambda bad: pair_similarity(p, f, bad, inversions, inversions),
        "compare": lambda bad: compare(p, f, bad, progress=False),
    }


@pytest.mark.parametrize("entry", ["layer_grams", "stir_matrix", "pair_similarity", "compare"])
@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_images_are_rejected(models, images, no_inversion, entry, n):
    # Before: torch.cat's "expected a non-empty list of Tensors" for 0 images, and for one
    # image "the representation is identical for every input".
    with pytest.raises(ValueError, match=rf"images holds {n} images; at least 2 are needed"):
        entry_points(models, images)[entry](images[:n])


@pytest.mark.parametrize("entry", ["layer_grams", "stir_matrix", "pair_similarity", "compare"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_images_must_be_float32(models, images, no_inversion, entry, dtype):
    # Before: uint8 pixels were clamped to 0/1 inside the model and gave a plausible number;
    # float64 gave "Input type (double) and bias type (float) should be the same".
    bad = (images * 255).to(dtype) if dtype == torch.uint8 else images.to(dtype)
    with pytest.raises(ValueError, match=rf"images are {dtype}: images must be float32 in \[0, 1\]"):
        entry_points(models, images)[entry](bad)


@pytest.mark.parametrize("entry", ["layer_grams", "stir_matrix", "pair_similarity", "compare"])
def test_images_outside_the_unit_interval_are_rejected(models, images, no_inversion, entry):
    # Before: the model's clamp silently flattened such values (e.g. of images normalised
    # twice) in stir_matrix and layer_grams.
    bad = images.clone()
    bad[0, 0, 0, 0], bad[1, 2, 3, 4], bad[2, 1, 0, 0] = -0.5, 1.5, float("nan")
    message = r"images have 3 values outside \[0, 1\] or NaN \(finite range \[-0.5, 1.5\]\)"
    with pytest.raises(ValueError, match=message):
        entry_points(models, images)[entry](bad)
