"""``finetune-invariance compare``: on timm ViTs and on Hugging Face ViTs its tables are what the
library gives when called directly on the same models and images, and a rerun inverts nothing."""

import json
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import save_file

from finetune_invariance import cli, finetuning_metrics, stir, tables
from finetune_invariance.inversion import invert

TIMM_NAME = "vit_tiny_patch16_224"
TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
N = 6
ITERATIONS = 3
SEEDS = ("0", "1")


def perturbed(model, seed, scale=0.05):
    """A copy of the weights moved by Gaussian noise: the stand-in for finetuning."""
    generator = torch.Generator().manual_seed(seed)
    return {k: (v + scale * torch.randn(v.shape, generator=generator)).contiguous() for k, v in model.state_dict().items()}


def tiny_timm(state=None):
    torch.manual_seed(0)
    model = timm.create_model(TIMM_NAME, num_classes=0, **TINY).eval()
    if state is not None:
        model.load_state_dict(state)
    return model


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).integers(0, 256, size=(N, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory, pixels):
    """Images as an .npz, a pretrained timm ViT and two finetuned ones as safetensors."""
    folder = tmp_path_factory.mktemp("cli_inputs")
    np.savez(folder / "images.npz", images=pixels)
    pretrained = tiny_timm()
    save_file({k: v.contiguous() for k, v in pretrained.state_dict().items()}, str(folder / "pretrained.safetensors"))
    for seed, name in ((1, "finetuned"), (2, "other_finetuned")):
        save_file(perturbed(pretrained, seed), str(folder / f"{name}.safetensors"))
    return folder


def images_of(pixels):
    """(n, C, H, W) float32 in [0, 1], contiguous (a channels-last layout would change the float rounding)."""
    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255).contiguous()


def compare_args(pretrained, finetuned, images, out, cache, *extra):
    return [
        "compare", str(pretrained), str(finetuned), "--images", str(images), "--out", str(out), "--cache", str(cache),
        "--seeds", *SEEDS, "--iterations", str(ITERATIONS), "--no-progress", *extra,
    ]


def timm_args(files, out, cache, finetuned="finetuned"):
    model_args = [item for key, value in TINY.items() for item in ("--model-arg", f"{key}={value}")]
    return compare_args(
        files / "pretrained.safetensors", files / f"{finetuned}.safetensors", files / "images.npz", out, cache,
        "--architecture", TIMM_NAME, *model_args,
    )


def read_outputs(out):
    return (
        tables.read_table(out / "pair_similarity.parquet", tables.PAIR_SIMILARITY),
        tables.read_table(out / "layer_metrics.parquet", tables.LAYER_METRICS),
        tables.read_table(out / "invariance_flow.parquet", tables.INVARIANCE_FLOW),
    )


def assert_outputs_equal_the_library_called_directly(out, pretrained, finetuned, images):
    pairs = stir.compare(pretrained, finetuned, images, seeds=(0, 1), iterations=ITERATIONS, progress=False)
    metrics = finetuning_metrics.layer_metrics(pairs, "pretrained", "finetuned")
    flow = finetuning_metrics.invariance_flow(pairs, "pretrained", "finetuned")
    written_pairs, written_metrics, written_flow = read_outputs(out)
    pd.testing.assert_frame_equal(written_pairs, pairs, check_exact=True)
    pd.testing.assert_frame_equal(written_metrics, metrics, check_exact=True)
    pd.testing.assert_frame_equal(written_flow, flow, check_exact=True)
    matrix = pd.read_csv(out / "flow_matrix.csv", index_col=0)
    np.testing.assert_allclose(matrix.to_numpy(), finetuning_metrics.flow_matrix(flow).to_numpy(), rtol=1e-12)
    for figure in ("layer_profiles", "invariance_flow"):
        assert (out / f"{figure}.png").stat().st_size > 0 and (out / f"{figure}.pdf").exists()
    summary = finetuning_metrics.summarize_over_seeds(metrics)
    forgetting_0 = summary.query("metric == 'forgetting' and layer == 0").iloc[0]
    assert f"{forgetting_0['mean']:.3f} ± {forgetting_0['std']:.3f}" in (out / "layer_metrics.md").read_text()


@pytest.fixture
def counted(monkeypatch):
    """The (model, seed) inversions stir.compare runs, by seed."""
    calls = []

    def counting_invert(model, images, **kwargs):
        calls.append(kwargs["seed"])
        return invert(model, images, **kwargs)

    monkeypatch.setattr(stir, "invert", counting_invert)
    return calls


def test_compare_on_two_timm_vits_writes_what_the_library_computes(tmp_path, files, pixels, capsys, counted):
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert cli.main(timm_args(files, out, cache)) == 0
    assert len(counted) == 4
    printed = capsys.readouterr().out
    assert "| layer | learning | forgetting | cka_divergence |" in printed
    assert "inversions: 0 reused, 4 computed" in printed
    finetuned = tiny_timm(perturbed(tiny_timm(), 1))
    assert_outputs_equal_the_library_called_directly(out, tiny_timm(), finetuned, images_of(pixels))
    record = json.loads((out / "comparison.json").read_text())
    assert record["n_images"] == N and record["seeds"] == [0, 1] and record["cache"]["computed"] == 4


def test_a_rerun_and_a_second_finetuned_model_reuse_the_cached_inversions(tmp_path, files, capsys, counted):
    cache = tmp_path / "cache"
    assert cli.main(timm_args(files, tmp_path / "first", cache)) == 0
    counted.clear()
    assert cli.main(timm_args(files, tmp_path / "rerun", cache)) == 0
    assert counted == []  # the second run does no inversion step
    assert "inversions: 4 reused, 0 computed" in capsys.readouterr().out
    for first, rerun in zip(read_outputs(tmp_path / "first"), read_outputs(tmp_path / "rerun")):
        pd.testing.assert_frame_equal(first, rerun, check_exact=True)
    assert cli.main(timm_args(files, tmp_path / "other", cache, finetuned="other_finetuned")) == 0
    assert counted == [0, 1]  # only the new finetuned model; the pretrained one's come from the cache
    assert "inversions: 2 reused, 2 computed" in capsys.readouterr().out


def test_the_architecture_of_a_weights_file_defaults_to_a_timm_pretrained_name(tmp_path, files, monkeypatch):
    """PRETRAINED as a timm name (its hub download replaced by the local file's weights)."""
    created = []
    real_create, hub_weights = timm.create_model, tiny_timm().state_dict()

    def create_model(name, pretrained=False, **kwargs):
        model = real_create(name, pretrained=False, **kwargs)
        if pretrained:
            model.load_state_dict(hub_weights)
        created.append((name, pretrained))
        return model

    monkeypatch.setattr(timm, "create_model", create_model)
    model_args = [item for key, value in TINY.items() for item in ("--model-arg", f"{key}={value}")]
    args = compare_args(
        TIMM_NAME, files / "finetuned.safetensors", files / "images.npz", tmp_path / "out", tmp_path / "c", *model_args
    )
    assert cli.main(args) == 0
    assert created == [(TIMM_NAME, True), (TIMM_NAME, False)]


def test_compare_on_hugging_face_vits_built_from_a_config(tmp_path, files, pixels, counted):
    transformers = pytest.importorskip("transformers")
    from finetune_invariance.model_loading import HuggingFaceViT

    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    pretrained = transformers.ViTModel(config, add_pooling_layer=False).eval()
    finetuned = transformers.ViTModel(config, add_pooling_layer=False).eval()
    finetuned.load_state_dict(perturbed(pretrained, 1))
    pretrained.save_pretrained(tmp_path / "hf_pretrained")
    finetuned.save_pretrained(tmp_path / "hf_finetuned")
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = compare_args(tmp_path / "hf_pretrained", tmp_path / "hf_finetuned", files / "images.npz", out, cache)
    assert cli.main(args) == 0
    assert len(counted) == 4
    assert_outputs_equal_the_library_called_directly(
        out, HuggingFaceViT(pretrained), HuggingFaceViT(finetuned), images_of(pixels)
    )
    assert sorted(read_outputs(out)[1]["layer"].unique()) == [0, 1, 2]  # 2 blocks + the class token
    counted.clear()
    assert cli.main([*args[:6], str(tmp_path / "rerun"), *args[7:]]) == 0
    assert counted == []  # the rerun inverted nothing


def test_images_are_resized_to_the_models_input(tmp_path, files, pixels):
    big = np.repeat(np.repeat(pixels, 2, axis=1), 2, axis=2)  # 64 x 64
    np.save(tmp_path / "big.npy", big)
    args = timm_args(files, tmp_path / "out", tmp_path / "cache")
    args[args.index("--images") + 1] = str(tmp_path / "big.npy")
    assert cli.main(args) == 0
    assert read_outputs(tmp_path / "out")[0]["n_images"].eq(N).all()


def test_a_bad_input_ends_with_its_message_not_a_traceback(tmp_path, files, capsys):
    args = timm_args(files, tmp_path / "out", tmp_path / "cache")
    args[1] = "vit_tiny_patch16_22"
    assert cli.main(args) == 1
    assert "compare: 'vit_tiny_patch16_22' is neither a folder, a weights file" in capsys.readouterr().err
    unknown_architecture = timm_args(files, tmp_path / "out", tmp_path / "cache")
    unknown_architecture[unknown_architecture.index("--architecture") + 1] = "vit_tiny_patch16_22"
    assert cli.main(unknown_architecture) == 1
    assert "unknown timm model 'vit_tiny_patch16_22'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_console_script_is_the_cli_and_answers_help(capsys):
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "finetune-invariance"]
    assert script.load() is cli.main
    with pytest.raises(SystemExit) as exit:
        cli.main(["compare", "--help"])
    assert exit.value.code == 0 and "--images" in capsys.readouterr().out
