"""The STIR inversion recipe against a naive single-layer loop written from docs/method.md."""

import copy
import os

import numpy as np
import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from finetune_invariance.inversion import Inversions, invert, inversion_steps, super_noise
from finetune_invariance.layers import HookedLayers, NonFiniteError
from finetune_invariance.stir import pair_similarity

DEPTH = 2
N = 4


def tiny_vit(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=DEPTH, num_heads=2, num_classes=0
    )


@pytest.fixture(scope="module")
def vit():
    return tiny_vit()


@pytest.fixture(scope="module")
def images():
    return torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def naive_clamp(x):
    """clamp to [0, 1] whose gradient is 1 on [0, 1] (bounds included) and 0 outside."""
    return torch.where((x >= 0) & (x <= 1), x, x.detach().clamp(0, 1))


def naive_representation(vit, x, layer):
    """m_l(x) read from timm's own full forward: block output by hook, or the pre-logits head."""
    mean = torch.tensor(vit.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(vit.pretrained_cfg["std"]).view(1, 3, 1, 1)
    captured = []
    handle = vit.blocks[min(layer, DEPTH - 1)].register_forward_hook(lambda m, i, o: captured.append(o))
    features = vit.forward_features((naive_clamp(x) - mean) / std)
    handle.remove()
    if layer == DEPTH:
        return vit.forward_head(features, pre_logits=True).flatten(1)
    return captured[0].flatten(1)


def naive_loss(vit, x, target, layer):
    target_rep = naive_representation(vit, target, layer).detach()
    return (naive_representation(vit, x, layer) - target_rep).norm() / target_rep.norm()


def naive_step(vit, x, target, layer, step_size, n_images):
    """One step of docs/method.md: x' <- clamp(x' - step_size * g / (||g|| + 1e-10), 0, 1)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(naive_loss(vit, x, target, layer) / n_images, x)  # gradient of the batch mean
    return torch.clamp(x.detach() - step_size * g / (g.norm() + 1e-10), 0, 1)


def naive_inversion(vit, images, seed_images, layer, iterations, step_size):
    """docs/method.md literally, one image at a time: T steps, T + 1 evaluations, strict best."""
    vit.eval()
    best_images, best_losses = [], []
    for target, x in zip(images, seed_images):
        target, x = target[None], x[None]
        best, best_loss = None, float("inf")
        for t in range(iterations + 1):
            with torch.no_grad():
                loss = naive_loss(vit, x, target, layer).item()
            if loss < best_loss:
                best, best_loss = x.clone(), loss
            if t < iterations:
                x = naive_step(vit, x, target, layer, step_size, len(images))
        best_images.append(best.clamp(0, 1)[0])
        best_losses.append(best_loss)
    return torch.stack(best_images), torch.tensor(best_losses)


def naive_losses(vit, x, images, layer):
    with torch.no_grad():
        return torch.stack([naive_loss(vit, x[k : k + 1], images[k : k + 1], layer) for k in range(len(images))])


@pytest.fixture(scope="module")
def all_layers(vit, images):
    return invert(vit, images, seed=3, iterations=8, progress=False)


def test_matches_naive_single_layer_loop(vit, images, all_layers):
    noise = super_noise(images.shape, 3)
    for layer in range(DEPTH + 1):
        expected_images, expected_losses = naive_inversion(vit, images, noise, layer, iterations=8, step_size=0.5)
        torch.testing.assert_close(all_layers.for_layer(layer), expected_images, rtol=0, atol=1e-6)
        torch.testing.assert_close(all_layers.losses[layer], expected_losses, rtol=1e-4, atol=1e-6)


def test_lowers_the_loss_and_stays_in_the_unit_interval(vit, images, all_layers):
    noise = super_noise(images.shape, 3)
    for a, layer in enumerate(all_layers.layers):
        assert (all_layers.losses[a] < naive_losses(vit, noise, images, layer)).all()
    assert all_layers.images.min() >= 0 and all_layers.images.max() <= 1
    assert all_layers.images.shape == (DEPTH + 1, N, 3, 32, 32)
    assert (all_layers.seed, all_layers.iterations, all_layers.step_size) == (3, 8, 0.5)


def test_batched_layers_equal_one_layer_at_a_time(vit, images, all_layers):
    for layer in range(DEPTH + 1):
        alone = invert(vit, images, [layer], seed=3, iterations=8, progress=False)
        torch.testing.assert_close(alone.images[0], all_layers.for_layer(layer), rtol=0, atol=1e-5)
        torch.testing.assert_close(alone.losses[0], all_layers.losses[all_layers.layers.index(layer)])


def test_chunking_does_not_change_results(vit, images, all_layers):
    chunked = invert(vit, images, seed=3, iterations=8, progress=False, memory_budget=400_000)
    torch.testing.assert_close(chunked.images, all_layers.images, rtol=0, atol=1e-5)
    torch.testing.assert_close(chunked.losses, all_layers.losses)


class CountingBar:
    """Stands in for a caller's tqdm bar: records every update."""

    def __init__(self):
        self.updates = []

    def update(self, n):
        self.updates.append(n)


def test_a_given_progress_bar_is_advanced_by_every_image_step_whatever_the_chunking(vit, images):
    expected = inversion_steps(DEPTH + 1, N, 5)
    assert expected == (DEPTH + 1) * N * 5  # one gradient step of one image through one layer
    for budget in (None, 400_000):
        bar = CountingBar()
        invert(vit, images, seed=0, iterations=5, memory_budget=budget, progress=bar)
        assert sum(bar.updates) == expected
    assert len(bar.updates) > 5  # chunked: several updates per iteration, each the size of its chunk


def test_keeps_the_best_iterate_when_later_ones_are_worse(vit, images):
    # Start next to the targets and take huge steps: the steps overshoot, so the raw seed
    # x'_0 is the best iterate and must be what comes back.
    seeds = (images + 0.01 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    start = naive_losses(vit, seeds, images, 1)
    stepped = torch.cat([naive_step(vit, seeds[k : k + 1], images[k : k + 1], 1, 20.0, N) for k in range(N)])
    assert (naive_losses(vit, stepped, images, 1) > start).all()  # the premise of the test
    result = invert(vit, images, [1], seed_images=seeds, iterations=3, step_size=20.0, progress=False)
    torch.testing.assert_close(result.images[0], seeds, rtol=0, atol=0)
    torch.testing.assert_close(result.losses[0], start)


def test_super_noise_seed_is_one_draw_per_image_shared_by_all_layers(vit, images):
    result = invert(vit, images, seed=11, iterations=0, progress=False)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(11))
    for a in range(DEPTH + 1):
        torch.testing.assert_close(result.images[a], noise.clamp(0, 1), rtol=0, atol=0)
    again = invert(vit, images, seed=11, iterations=2, progress=False)
    other = invert(vit, images, seed=12, iterations=2, progress=False)
    assert torch.equal(again.images, invert(vit, images, seed=11, iterations=2, progress=False).images)
    assert not torch.allclose(again.images, other.images)


def test_save_and_load_round_trip(tmp_path, all_layers):
    path = all_layers.save(tmp_path / "sub" / "inv.safetensors")
    assert os.listdir(path.parent) == ["inv.safetensors"]  # no temporary file left behind
    loaded = Inversions.load(path)
    assert loaded.layers == all_layers.layers and loaded.seed == 3
    assert (loaded.iterations, loaded.step_size) == (8, 0.5)
    assert torch.equal(loaded.images, all_layers.images) and torch.equal(loaded.losses, all_layers.losses)
    assert torch.equal(loaded.targets, all_layers.targets)


RECOVERY = "Delete it and rerun the inversion job that writes it"


def _load_error(path):
    with pytest.raises(ValueError) as caught:
        Inversions.load(path)
    message = str(caught.value)
    assert str(path) in message and "expected a safetensors file of format" in message and RECOVERY in message
    return message


def test_load_of_a_damaged_file_names_it_and_says_how_to_recover(tmp_path, all_layers):
    good = all_layers.save(tmp_path / "good.safetensors")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a copy killed half-way
    assert "not a readable safetensors file" in _load_error(truncated)
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    assert "not a readable safetensors file" in _load_error(noise)
    header_only = tmp_path / "header_only.safetensors"
    header_only.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header at all")
    assert "not a readable safetensors file" in _load_error(header_only)


def test_load_of_another_safetensors_file_names_it_and_says_how_to_recover(tmp_path, all_layers):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"images": torch.zeros(1)}, foreign)  # e.g. a checkpoint written to the wrong path
    assert "has no 'finetune_invariance.Inversions/2' entry" in _load_error(foreign)
    good = all_layers.save(tmp_path / "good.safetensors")
    with safe_open(str(good), framework="pt") as f:
        metadata = f.metadata()
    lacking = tmp_path / "lacking.safetensors"
    save_file({"images": all_layers.images, "targets": all_layers.targets}, lacking, metadata)
    assert "lacks the tensors ['losses']" in _load_error(lacking)
    bad = tmp_path / "bad.safetensors"
    save_file({"images": all_layers.images, "losses": torch.zeros(2, N), "targets": all_layers.targets}, bad, metadata)
    assert "inconsistent: losses have shape (2, 4)" in _load_error(bad)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        Inversions.load(tmp_path / "missing.safetensors")


def test_the_same_inversions_give_the_same_bytes_in_every_process(tmp_path, all_layers):
    """safetensors does not keep the order of several header entries across processes."""
    import subprocess
    import sys

    all_layers.save(tmp_path / "here.safetensors")
    script = (
        "import sys; from finetune_invariance.inversion import Inversions; "
        "Inversions.load(sys.argv[1]).save(sys.argv[2])"
    )
    for k in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "here.safetensors"), str(tmp_path / f"{k}.safetensors")], check=True)
        assert (tmp_path / f"{k}.safetensors").read_bytes() == (tmp_path / "here.safetensors").read_bytes()


def test_bad_arguments_give_clear_errors(vit, images):
    with pytest.raises(ValueError, match="exactly one of seed"):
        invert(vit, images, progress=False)
    with pytest.raises(ValueError, match="exactly one of seed"):
        invert(vit, images, seed=0, seed_images=images, progress=False)
    with pytest.raises(ValueError, match=r"images have \d+ values outside \[0, 1\]"):
        invert(vit, images * 2 - 0.5, seed=0, progress=False)
    with pytest.raises(ValueError, match="images holds 0 images"):
        invert(vit, images[:0], seed=0, progress=False)
    with pytest.raises(ValueError, match="images are torch.float64: images must be float32"):
        invert(vit, images.double(), seed=0, progress=False)
    with pytest.raises(ValueError, match="images are torch.uint8: images must be float32"):
        invert(vit, (images * 255).to(torch.uint8), seed=0, progress=False)
    not_a_batch = r"images must be float32 \(n, C, H, W\) in \[0, 1\], got shape \(3, 32, 32\)"
    with pytest.raises(ValueError, match=not_a_batch):
        invert(vit, images[0], seed=0, progress=False)
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'tf32', 'bf16'\], got 'fp16'"):
        invert(vit, images, seed=0, precision="fp16", progress=False)
    with pytest.raises(ValueError, match=r"layer 5 is out of range: this model has layers 0\.\.2"):
        invert(vit, images, [5], seed=0, progress=False)
    with pytest.raises(ValueError, match=r"\(16, 16\) pixels but the model expects \(32, 32\)"):
        invert(vit, torch.rand(2, 3, 16, 16), seed=0, progress=False)
    with pytest.raises(ValueError, match="memory_budget of 1000 bytes is below .* at layer 0"):
        invert(vit, images, seed=0, iterations=1, memory_budget=1000, progress=False)
    with pytest.raises(ValueError, match="duplicates"):
        invert(vit, images, [1, 1], seed=0, progress=False)


def test_nan_weights_and_nan_losses_are_reported(images):
    broken = tiny_vit()
    with torch.no_grad():
        broken.blocks[0].attn.qkv.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"layer 0: .*blocks\.0\.attn\.qkv\.weight"):
        invert(broken, images, seed=0, iterations=1, progress=False)

    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x)

    # Finite on the targets, -inf on the clamped noise (pixels clamped to exactly 0).
    log_model = HookedLayers(nn.Sequential(Log()), ["0"])
    with pytest.raises(NonFiniteError, match="layer 0: non-finite loss at iteration 0"):
        invert(log_model, 0.25 + images / 2, seed=0, iterations=2, progress=False)

    relu_model = HookedLayers(nn.Sequential(nn.ReLU()), ["0"])
    with pytest.raises(ValueError, match="layer 0: the representation of image 0 is zero"):
        invert(relu_model, torch.zeros(2, 3, 4, 4), seed=0, iterations=1, progress=False)


def test_runs_in_eval_mode_and_restores_the_training_mode(images):
    torch.manual_seed(0)
    dropout_vit = timm.create_model(
        "vit_tiny_patch16_224",
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=DEPTH,
        num_heads=2,
        num_classes=0,
        drop_rate=0.5,
        proj_drop_rate=0.5,
    ).train()
    first = invert(dropout_vit, images, [1], seed=0, iterations=3, progress=False)
    second = invert(dropout_vit, images, [1], seed=0, iterations=3, progress=False)
    assert torch.equal(first.images, second.images)  # no dropout noise: eval mode
    assert dropout_vit.training and all(p.requires_grad for p in dropout_vit.parameters())


class _PublishedInterfaceViT(nn.Module):
    """The tiny ViT behind the model interface of the published STIR code (robustness style):
    ``model(normalised, with_latent=..., layer_num=l, ...)`` -> (output, layer l's representation),
    the representation read from timm's own forward by a hook."""

    def __init__(self, vit):
        super().__init__()
        self.vit = vit

    def forward(self, x, with_latent=False, fake_relu=False, no_relu=False, return_possible_layers=False, layer_num=None):
        captured = []
        handle = self.vit.blocks[min(layer_num, DEPTH - 1)].register_forward_hook(lambda m, i, o: captured.append(o))
        features = self.vit.forward_features(x)
        handle.remove()
        rep = self.vit.forward_head(features, pre_logits=True) if layer_num == DEPTH else captured[0].flatten(1)
        return rep, rep


class _TorchWithCpuLossLog:
    """torch, except that ``tensor(...).to(...)`` stays on the CPU: the published attacker
    moves its log of losses to 'cuda:0' unconditionally, which fails without a GPU."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def tensor(*args, **kwargs):
        log = torch.tensor(*args, **kwargs)
        log.to = lambda *_, **__: log
        return log


@pytest.mark.parametrize("layer", range(DEPTH + 1))
def test_matches_the_published_stir_implementation(vit, images, layer, monkeypatch):
    """Same model, images and seed images: the published code (PyPI stir-invariance, the
    robustness library's attacker with the STIR settings) gives the same inverted images.

    The published normaliser clamps with the running PyTorch's ``clamp``; the one passed
    here has the gradient at the bounds of the PyTorch versions the paper used, which is
    what this library reproduces (docs/method.md)."""
    from stir.attack import attacker
    from stir.attack.attacker import AttackerModel
    from stir.attack.losses import LPNormLossSingleModel
    from stir.helper import DummyArgs

    from finetune_invariance.preprocessing import InputNormalization

    monkeypatch.setattr(attacker, "ch", _TorchWithCpuLossLog())
    normalization = InputNormalization(vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"])
    published = AttackerModel(_PublishedInterfaceViT(vit), normalization).eval()
    seed_images = super_noise(images.shape, seed=5)
    iterations = 12
    with torch.no_grad():
        (_, target_reps), _ = published(images, layer_num=layer, with_latent=False)
    (_, theirs), _ = published(
        inp=seed_images,
        target=target_reps,
        make_adv=True,
        with_image=True,
        custom_loss=LPNormLossSingleModel(DummyArgs(("lpnorm_type", 2.0, float))),
        constraint="unconstrained",
        eps=1000,
        step_size=0.5,
        iterations=iterations,
        targeted=True,
        do_tqdm=False,
        should_normalize=True,
        use_best=True,
        layer_num=layer,
    )
    ours = invert(vit, images, [layer], seed_images=seed_images, iterations=iterations, progress=False)
    torch.testing.assert_close(ours.images[0], theirs.detach().clamp(0, 1), atol=1e-5, rtol=0)


def test_fp32_is_the_default_and_tf32_is_fp32_on_the_cpu(vit, images, all_layers):
    # all_layers (the default) is the recipe checked against the naive loop above.
    for precision in ("fp32", "tf32"):
        result = invert(vit, images, seed=3, iterations=8, precision=precision, progress=False)
        assert torch.equal(result.images, all_layers.images) and torch.equal(result.losses, all_layers.losses)
        assert result.precision == precision
    assert all_layers.precision == "fp32"


class _NumericsProbe(nn.Module):
    """Identity that records, at every forward, the TF32 flags and whether CPU autocast is on."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(
            (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
                torch.is_autocast_enabled("cpu"),
            )
        )
        return x


@pytest.fixture
def caller_tf32_flags():
    """The caller's TF32 flags set to a combination torch never defaults to, and put back after."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, False
    yield (False, False)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize(
    "precision, during",
    [("fp32", (False, False, False)), ("tf32", (True, True, False)), ("bf16", (False, False, True))],
)
def test_precision_sets_tf32_or_autocast_for_every_forward_and_restores_the_flags(
    images, caller_tf32_flags, precision, during
):
    probe = _NumericsProbe()
    invert(HookedLayers(nn.Sequential(probe), ["0"]), images, seed=0, iterations=2, precision=precision, progress=False)
    assert len(probe.seen) >= 4 and set(probe.seen) == {during}  # targets, memory estimate, every iterate
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == caller_tf32_flags
    assert not torch.is_autocast_enabled("cpu")


def test_tf32_flags_are_restored_when_the_inversion_fails(images, caller_tf32_flags):
    class Log(nn.Module):
        def forward(self, x):
            return torch.log(x)

    with pytest.raises(NonFiniteError):
        invert(HookedLayers(nn.Sequential(Log()), ["0"]), 0.25 + images / 2, seed=0, precision="tf32", progress=False)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == caller_tf32_flags


def test_bf16_targets_are_computed_in_bf16(vit, images):
    """An iterate equal to its target has loss 0 only if both went through the same bf16 forward."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_reps = [naive_representation(vit, images, layer) for layer in range(DEPTH + 1)]
    with torch.no_grad():
        fp32_reps = [naive_representation(vit, images, layer) for layer in range(DEPTH + 1)]
    for bf16_rep, fp32_rep in zip(bf16_reps, fp32_reps):  # the premise: mixing precisions costs > 1e-3
        assert ((bf16_rep.float() - fp32_rep).norm(dim=1) / fp32_rep.norm(dim=1)).min() > 1e-3
    at_target = invert(vit, images, seed_images=images, iterations=0, precision="bf16", progress=False)
    assert at_target.losses.dtype == torch.float32 and at_target.losses.max() < 1e-4


def test_bf16_stays_within_tolerance_of_fp32(vit, tmp_path):
    """bf16 vs fp32 from the same seed, two tiny ViTs (f a perturbed copy of p), 8 images, 8 steps.

    Tolerances, for losses (0.07 to 1.3 here) far above bf16's rounding of the
    representations (about 0.3%): the mean inversion loss of every layer within 1%
    relative, and every STIR value of both full matrices (pair_similarity) within 0.01
    absolute and within a tenth of the seed-to-seed spread (fp32 seeds 0 and 1). Measured
    when written: 0.2% and 1.4e-3 against a spread of 0.25. (Lower losses cost bf16 more:
    benchmarks/inversion_precision.py.)
    """
    p, f = vit, copy.deepcopy(vit)
    with torch.no_grad():
        for parameter in f.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(7)))
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def run(seed, precision):
        inv_p, inv_f = (
            invert(m, images, seed=seed, iterations=8, precision=precision, progress=False) for m in (p, f)
        )
        stir = pair_similarity(p, f, images, inv_p, inv_f)
        return inv_p, inv_f, stir.sort_values(["reference", "reference_layer", "target_layer"])["stir"].to_numpy()

    fp32_p, fp32_f, fp32_stir = run(0, "fp32")
    bf16_p, bf16_f, bf16_stir = run(0, "bf16")
    _, _, other_seed_stir = run(1, "fp32")
    assert bf16_p.precision == "bf16" and not torch.equal(bf16_p.images, fp32_p.images)  # autocast took effect
    for fp32, bf16 in ((fp32_p, bf16_p), (fp32_f, bf16_f)):
        torch.testing.assert_close(bf16.losses.mean(dim=1), fp32.losses.mean(dim=1), rtol=0.01, atol=0)
    difference = np.abs(bf16_stir - fp32_stir).max()
    assert difference < 0.01 and difference < np.abs(other_seed_stir - fp32_stir).max() / 10
    assert Inversions.load(bf16_p.save(tmp_path / "bf16.safetensors")).precision == "bf16"

