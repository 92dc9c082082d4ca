"""The forgetting monitor: the offline path's forgetting exactly, the paper's aggregates,
a training loop left as it was, and clear errors."""

import copy
import re
from pathlib import Path
import math

import numpy as np
import pandas as pd
import pytest
import torch

from finetune_invariance import finetuning_metrics, stir, tables
from finetune_invariance.inversion import invert
from finetune_invariance.monitor import ForgettingMonitor, forgetting_mean, forgetting_profile, forgetting_spread
from finetune_invariance.study.hypotheses import AGGREGATES

from .test_stir import DEPTH, handmade_inversions, naive_cka, naive_reps, tiny_vit

N = 6
LAYERS = DEPTH + 1

def readme_snippet() -> str:
    """The README's training-loop example of the monitor (test_the_readme_training_loop_snippet_runs)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Forgetting during training", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def random_images(seed, n=N):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def perturbed(model, scale=0.05, seed=7):
    """A copy of ``model`` with every weight moved by Gaussian noise (the README's stand-in for finetuning)."""
    copy_ = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in copy_.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return copy_


@pytest.fixture(scope="module")
def pretrained():
    return tiny_vit(0)


@pytest.mark.parametrize("shared_images", [False, True], ids=["images per seed", "same images"])
def test_forgetting_equals_the_offline_path_bit_for_bit(pretrained, shared_images):
    finetuned = perturbed(pretrained)
    batch = 4  # two batches of the 6 images, in both paths
    offline, inversions = [], []
    for seed in (3, 5):
        images = random_images(0 if shared_images else seed)
        inv_p = invert(pretrained, images, seed=seed, iterations=3, progress=False)
        inv_f = invert(finetuned, images, seed=seed, iterations=3, progress=False)
        pairs = stir.pair_similarity(pretrained, finetuned, images, inv_p, inv_f, batch_size=batch)
        metrics = finetuning_metrics.layer_metrics(pairs, "pretrained", "finetuned")
        offline.append(metrics[metrics["metric"] == "forgetting"])
        inversions.append(inv_p)
    expected = tables.conform(pd.concat(offline), tables.LAYER_METRICS)

    measured = ForgettingMonitor(pretrained, inversions, batch_size=batch).measure(finetuned)

    pd.testing.assert_frame_equal(measured, expected, check_exact=True)
    assert (measured["value"] > 0).all()  # the perturbed copy lost some of p's invariances


def test_forgetting_is_one_minus_cka_of_timm_layers_on_x_and_x_prime(pretrained):
    # Independent of the library's forward and CKA: timm's own forward, numpy CKA.
    finetuned = perturbed(pretrained)
    images, g = random_images(1), torch.Generator().manual_seed(2)
    per_layer = [torch.rand(images.shape, generator=g) for _ in range(LAYERS)]
    measured = ForgettingMonitor(pretrained, handmade_inversions(images, per_layer, seed=4)).measure(finetuned)
    reps_x = naive_reps(finetuned, images)
    for row in measured.itertuples():
        reps_prime = naive_reps(finetuned, per_layer[row.layer])
        assert row.value == pytest.approx(1 - naive_cka(reps_x[row.layer], reps_prime[row.layer]), abs=1e-5)
    assert list(measured["layer"]) == list(range(LAYERS)) and set(measured["seed"]) == {4}


def test_perfect_inversions_forget_nothing_until_the_model_changes(pretrained):
    # X' = X: STIR(f_l | p_l) = CKA(f_l(X), f_l(X)) = 1 for any f.
    images = random_images(1)
    monitor = ForgettingMonitor(pretrained, handmade_inversions(images, [images] * LAYERS))
    np.testing.assert_allclose(monitor.measure(perturbed(pretrained))["value"], 0.0, atol=1e-12)


def forgetting_table(values_by_seed):
    """LAYER_METRICS forgetting rows from {seed: [value of layer 0, 1, ...]}, plus a learning row to ignore."""
    rows = [
        {"seed": seed, "layer": layer, "metric": "forgetting", "value": value}
        for seed, values in values_by_seed.items()
        for layer, value in enumerate(values)
    ]
    rows.append({"seed": 0, "layer": 0, "metric": "learning", "value": 9.0})
    return tables.conform(pd.DataFrame(rows).assign(pretrained="p", finetuned="f"), tables.LAYER_METRICS)


def test_spread_and_mean_are_of_the_seed_mean_profile():
    table = forgetting_table({0: [0.5, 0.1, 0.2, 0.6], 1: [0.5, 0.3, 0.4, 0.2]})
    # Seed means 0.5, 0.2, 0.3, 0.4: over layers 1-3 the mean is 0.3 and the population std sqrt(2/300).
    assert forgetting_mean(table, layers=[1, 2, 3]) == pytest.approx(0.3, abs=1e-15)
    assert forgetting_spread(table, layers=range(1, 4)) == pytest.approx(math.sqrt(2 / 300), abs=1e-15)
    # Not the mean of each seed's spread (0.2054 and 0.0816 -> 0.1435).
    assert forgetting_spread(table, layers=[1, 2, 3]) != pytest.approx(0.1435, abs=1e-3)
    assert list(forgetting_profile(table)) == pytest.approx([0.5, 0.2, 0.3, 0.4], abs=1e-15)


def test_spread_and_mean_match_naive_numpy_and_the_study_aggregates_exactly():
    values = np.random.default_rng(0).uniform(size=(3, 13))
    table = forgetting_table(dict(enumerate(values)))
    profile = values.mean(axis=0)
    layers = list(range(2, 13))
    assert forgetting_spread(table, layers) == pytest.approx(np.std(profile[layers]), rel=1e-12)
    assert forgetting_mean(table, layers) == pytest.approx(np.mean(profile[layers]), rel=1e-12)
    # The study's hypotheses: (epoch x layer) seed means, aggregated across the selected columns.
    per_epoch = table[table["metric"] == "forgetting"].groupby("layer")["value"].mean().to_frame().T
    assert forgetting_spread(table, reversed(layers)) == AGGREGATES["std"](per_epoch[layers]).iloc[0]
    assert forgetting_mean(table, layers) == AGGREGATES["mean"](per_epoch[layers]).iloc[0]


def test_measuring_restores_modes_and_requires_grad_and_leaves_no_gradients(pretrained):
    model = perturbed(pretrained).train()
    model.blocks[0].eval()
    model.cls_token.requires_grad_(False)
    modes = {name: module.training for name, module in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    images = random_images(1)
    ForgettingMonitor(pretrained, handmade_inversions(images, [images.flip(-1)] * LAYERS)).measure(model)
    assert {name: module.training for name, module in model.named_modules()} == modes
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


def train(model, steps, monitor=None):
    """A plain PyTorch loop: SGD on random data, measuring before the first step and every 2 steps."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(11)
    measured = {}
    for step in range(steps):
        if monitor is not None and step % 2 == 0:
            measured[step] = monitor.measure(model)
        x, y = torch.rand(8, 3, 32, 32, generator=generator), torch.randint(0, 10, (8,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return measured


def test_inside_a_training_loop():
    torch.manual_seed(0)
    model = tiny_vit(0)
    model.reset_classifier(10)
    model.train()
    images = random_images(1)
    inversions = [invert(model, images, seed=seed, iterations=5, progress=False) for seed in (0, 1)]
    measured = train(model, 6, ForgettingMonitor(model, inversions, batch_size=4))

    assert sorted(measured) == [0, 2, 4] and model.training
    assert all(np.isfinite(table["value"]).all() for table in measured.values())
    # Before the first step f = p: 1 - STIR(p_l | p_l) = 1 - CKA(p_l(X), p_l(X'_l)), which is
    # not 0 since 5 iterations leave the inversions far from converged.
    before = measured[0]
    reps_x = naive_reps(tiny_vit(0), images)
    for row in before.itertuples():
        reps_prime = naive_reps(tiny_vit(0), inversions[row.seed].for_layer(row.layer))
        assert row.value == pytest.approx(1 - naive_cka(reps_x[row.layer], reps_prime[row.layer]), abs=1e-5)
    assert (before["value"] > 1e-3).any()
    assert not np.allclose(measured[4]["value"], before["value"], atol=1e-6)  # training moved it

    # Measuring does not change the training: the same loop without the monitor gives the same weights.
    torch.manual_seed(0)
    unmonitored = tiny_vit(0)
    unmonitored.reset_classifier(10)
    unmonitored.train()
    train(unmonitored, 6)
    for (name, a), b in zip(model.state_dict().items(), unmonitored.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_readme_training_loop_snippet_runs(capsys):
    assert len(readme_snippet().splitlines()) <= 15
    exec(compile(readme_snippet(), "README snippet", "exec"), {})
    lines = capsys.readouterr().out.split("\n")[:-1]
    assert [int(line.split()[0]) for line in lines] == [0, 2, 4]
    spreads = [float(line.split()[1]) for line in lines]
    assert all(math.isfinite(s) and s > 0 for s in spreads)


# --- clear errors ----------------------------------------------------------------------


def test_mismatched_inversions_are_refused_naming_the_bad_one(pretrained):
    images, small = random_images(1), random_images(1)[:, :, :16, :16]

    def made(per_layer_images=images, layers=LAYERS, seed=0, targets=None):
        targets = per_layer_images if targets is None else targets
        return handmade_inversions(targets, [per_layer_images] * layers, seed=seed)

    cases = [
        ([], "inversions is empty"),
        ([made(), made()], r"seeds \[0, 0\] repeat \[0\]"),
        (
            [made(), made(layers=2, seed=1)],
            r"inversions\[1\] are through layers \[0, 1\] but inversions\[0\] through \[0, 1, 2\]",
        ),
        ([made(layers=LAYERS + 1)], r"inversions\[0\] are through layers \[0, 1, 2, 3\] but the model has layers 0\.\.2"),
        (
            [made(), made(small, seed=1)],
            r"inversions\[1\]\.targets are \(3, 16, 16\) images but inversions\[0\]\.targets are \(3, 32, 32\)",
        ),
        ([made(images[:1])], r"inversions\[0\]\.targets holds 1 images; at least 2 are needed"),
        ([made(images * 2, targets=images)], r"inversions\[0\]\.images have \d+ values outside \[0, 1\]"),
        ([made(seed=None)], r"inversions\[0\] started from seed images and carry no seed: pass seeds="),
    ]
    for inversions, message in cases:
        with pytest.raises(ValueError, match=message):
            ForgettingMonitor(pretrained, inversions)


def test_seeds_must_fit_the_inversions(pretrained):
    images = random_images(1)
    from_seed_images = handmade_inversions(images, [images] * LAYERS, seed=None)
    measured = ForgettingMonitor(pretrained, [from_seed_images], seeds=[7]).measure(pretrained)
    assert list(measured["seed"].unique()) == [7]
    with pytest.raises(ValueError, match=r"seeds has 2 entries for 1 inversions"):
        ForgettingMonitor(pretrained, [from_seed_images], seeds=[7, 8])
    with pytest.raises(ValueError, match=r"seeds\[0\] is 5 but inversions\[0\] started from super-noise seed 0"):
        ForgettingMonitor(pretrained, handmade_inversions(images, [images] * LAYERS, seed=0), seeds=[5])


def test_a_model_of_another_depth_or_equal_names_are_refused(pretrained):
    images = random_images(1)
    monitor = ForgettingMonitor(pretrained, handmade_inversions(images, [images] * LAYERS))
    with pytest.raises(ValueError, match=r"the model has 4 layers but the pretrained model has 3"):
        monitor.measure(tiny_vit(0, depth=DEPTH + 1))
    with pytest.raises(ValueError, match=r"names must be two different model names, got \('a', 'a'\)"):
        monitor.measure(pretrained, names=("a", "a"))


def test_aggregates_refuse_tables_they_cannot_summarise():
    table = forgetting_table({0: [0.1, 0.2, 0.3], 1: [0.2, 0.3, 0.4]})
    with pytest.raises(ValueError, match=r"layers \[5\] have no forgetting in the table, which has layers \[0, 1, 2\]"):
        forgetting_spread(table, layers=[1, 5])
    with pytest.raises(ValueError, match="layers is empty"):
        forgetting_mean(table, layers=[])
    with pytest.raises(ValueError, match=r"layers \[1, 1\] contain duplicates"):
        forgetting_mean(table, layers=[1, 1])
    with pytest.raises(ValueError, match=r"2 forgetting rows share a \(seed, layer\), e.g. seed 0, layer 0"):
        forgetting_spread(pd.concat([table, table.iloc[:1]]), layers=[0, 1])
    with pytest.raises(ValueError, match=r"seed 1 has no forgetting at layers \[2\], which other seeds have"):
        forgetting_spread(table.drop(index=table.index[5]), layers=[0, 1])
    with pytest.raises(ValueError, match=r"the table has no 'forgetting' rows; metrics: \['learning'\]"):
        forgetting_mean(table[table["metric"] == "learning"], layers=[0])
    with pytest.raises(ValueError, match=r"column 'metric' is not in the table"):
        forgetting_mean(table.drop(columns="metric"), layers=[0])
