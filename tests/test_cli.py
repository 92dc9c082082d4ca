"""``finetune-invariance compare``: on timm ViTs and on Hugging Face ViTs its tables are what the
library gives when called directly on the same models and images, and a rerun inverts nothing."""

import json
import re
import subprocess
import sys
import time
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from safetensors.torch import save_file

from finetune_invariance import cli, finetuning_metrics, inversion_settings, model_loading, stir, tables

from .inversion_counting import count_inversions

TIMM_NAME = "vit_tiny_patch16_224"
TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
N = 6
ITERATIONS = 3
SEEDS = ("0", "1")


def perturbed(model, seed, scale=0.05):
    """A copy of the weights moved by Gaussian noise: the stand-in for finetuning."""
    generator = torch.Generator().manual_seed(seed)
    return {
        k: (v + scale * torch.randn(v.shape, generator=generator)).contiguous() for k, v in model.state_dict().items()
    }


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
        "compare",
        str(pretrained),
        str(finetuned),
        "--images",
        str(images),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--seeds",
        *SEEDS,
        "--iterations",
        str(ITERATIONS),
        "--no-progress",
        *extra,
    ]


def timm_args(files, out, cache, finetuned="finetuned"):
    model_args = [item for key, value in TINY.items() for item in ("--model-arg", f"{key}={value}")]
    return compare_args(
        files / "pretrained.safetensors",
        files / f"{finetuned}.safetensors",
        files / "images.npz",
        out,
        cache,
        "--architecture",
        TIMM_NAME,
        *model_args,
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
    return count_inversions(monkeypatch)


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
    monkeypatch.setattr(model_loading, "check_pretrained_available", lambda name, fix=None: None)

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
    assert "compare: PRETRAINED 'vit_tiny_patch16_22' is neither a folder, a weights file" in capsys.readouterr().err
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


# --- issue 28: the study's checkpoints, shapes, costs, local checks, offline, one-line errors ----


def one_line_error(capsys) -> str:
    """What the command printed to stderr, which must be one line and no traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def study_checkpoint(path, state=None, spec=None):
    """A checkpoint written by the study's own code (a tiny model, or ``spec``), with ``state`` if given."""
    from finetune_invariance.study.checkpoints import save_checkpoint
    from finetune_invariance.study.models import ModelSpec, build_model

    spec = spec or ModelSpec("vit_tiny_patch16_224", TINY)
    model = build_model(spec, "classification", 5, seed=0)
    if state is not None:
        model.load_state_dict(state)
    return save_checkpoint(path, model, {"epoch": 3, "run": "a/b/classification/default"})


def test_help_imports_no_torch():
    """``--help`` shows the inversion's defaults without any of the heavy imports (torch's
    alone takes seconds): the settings' torch-free home is all it reads."""
    heavy = ("torch", "timm", "numpy", "pandas", "safetensors", "matplotlib")
    code = (
        "import sys\nfrom finetune_invariance import cli\n"
        "try:\n    cli.main(['compare', '--help'])\nexcept SystemExit:\n    pass\n"
        f"print('imported:', *[m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().endswith("imported:") and "--dry-run" in result.stdout
    help_text = " ".join(result.stdout.split())
    assert f"inversion steps (default: {inversion_settings.DEFAULT_ITERATIONS})" in help_text
    assert "{fp32,tf32,bf16}" in help_text


def test_a_mistyped_path_is_named_without_importing_torch(tmp_path):
    """The local arguments' check comes first and needs no torch (a typo costs no 5 s import)."""
    code = (
        "import sys\nfrom finetune_invariance import cli\n"
        f"status = cli.main(['compare', 'a.safetensors', 'b', '--images', '{tmp_path / 'missing'}', '--out', 'o'])\n"
        "print(status, 'torch imported' if 'torch' in sys.modules else 'no torch')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "no", "torch"] and "missing do not exist" in result.stderr


@pytest.fixture(scope="module")
def study_pair(tmp_path_factory):
    """Two checkpoints of the study's own format: a tiny model and its perturbed copy."""
    folder = tmp_path_factory.mktemp("study_checkpoints")
    pretrained = study_checkpoint(folder / "epoch_000.safetensors")
    from finetune_invariance.study.models import load_checkpoint

    model, _ = load_checkpoint(pretrained)
    finetuned = study_checkpoint(folder / "epoch_003.safetensors", perturbed(model, 1))
    return pretrained, finetuned


def test_compare_reads_the_studys_checkpoints_as_the_study_does(tmp_path, files, study_pair, pixels, capsys):
    """No --architecture nor --model-arg: the header names the model. Its layers are the
    study's own view of the same checkpoint (same structure and tensors, so the same cache
    keys), and the tables are the library's on those models."""
    from finetune_invariance.inversion_cache import model_fingerprint
    from finetune_invariance.model_loading import load_model
    from finetune_invariance.study.models import load_checkpoint

    for path in study_pair:
        assert model_fingerprint(load_model(path).layered) == model_fingerprint(load_checkpoint(path)[0].layered())
    out = tmp_path / "out"
    assert cli.main(compare_args(*study_pair, files / "images.npz", out, tmp_path / "cache")) == 0
    printed = capsys.readouterr().out
    assert printed.index("what this comparison costs") < printed.index("| layer |")
    study = [load_checkpoint(path)[0].layered() for path in study_pair]
    assert_outputs_equal_the_library_called_directly(out, *study, images_of(pixels))


def test_an_architecture_or_model_argument_against_the_checkpoints_header_is_refused(
    tmp_path, files, study_pair, capsys
):
    args = compare_args(*study_pair, files / "images.npz", tmp_path / "out", tmp_path / "cache")
    assert cli.main([*args, "--model-arg", "depth=3"]) == 1
    assert "names its model in its header" in one_line_error(capsys) and not (tmp_path / "out").exists()
    assert cli.main([*args, "--architecture", "vit_small_patch16_224"]) == 1
    assert "holds a 'vit_tiny_patch16_224' (its header), not the --architecture" in one_line_error(capsys)
    assert cli.main([*args, "--model-arg", "depth=2", "--dry-run"]) == 0  # agreeing with the header


def test_compare_runs_on_the_shipped_source_and_a_perturbed_copy_printing_its_cost_first(
    tmp_path, files, repo_root, capsys
):
    """The acceptance case: two checkpoints of the embedded study (its shipped source and a
    copy moved by noise, written by the study's code), the cost printed before the results."""
    from finetune_invariance.study.checkpoints import save_checkpoint
    from finetune_invariance.study.models import load_checkpoint

    shipped = repo_root / "workflow/resources/glyphs64_source.safetensors"
    model, metadata = load_checkpoint(shipped)
    model.load_state_dict(perturbed(model, 3, scale=0.01))
    copy = save_checkpoint(tmp_path / "finetuned.safetensors", model, metadata)
    out = tmp_path / "out"
    assert cli.main(compare_args(shipped, copy, files / "images.npz", out, tmp_path / "cache", "--n", "4")) == 0
    printed = capsys.readouterr().out
    depth = len(model.backbone.blocks)
    steps = 2 * 2 * (depth + 1) * 4 * ITERATIONS  # models x seeds x layers x images x steps
    assert f"4 of 4 (model, seed) to compute, 0 from the cache; each {depth + 1} layers x 4 images" in printed
    assert f"{steps:,} image-steps in all" in printed and "time on cpu: about" in printed
    assert printed.index("what this comparison costs") < printed.index("| layer |")
    assert sorted(read_outputs(out)[1]["layer"].unique()) == list(range(depth + 1))


def test_the_stated_cache_size_is_what_the_run_adds(tmp_path, files, capsys):
    cache = tmp_path / "cache"
    assert cli.main(timm_args(files, tmp_path / "out", cache)) == 0
    number, unit = re.search(r"adds 4 entries, ([\d.]+) (KB|MB)", capsys.readouterr().out).groups()
    stated = float(number) * {"KB": 1e3, "MB": 1e6}[unit]
    entries = sorted(cache.iterdir())
    assert len(entries) == 4
    written = sum(path.stat().st_size for path in entries)
    # The stated size allows each entry's header in full (and is rounded to 3 significant digits).
    from finetune_invariance.inversion_cache import ENTRY_HEADER_BYTES

    assert written * 0.995 <= stated <= (written + 4 * ENTRY_HEADER_BYTES) * 1.005
    assert cli.main(timm_args(files, tmp_path / "again", cache)) == 0
    printed = capsys.readouterr().out
    assert "0 of 4 (model, seed) to compute, 4 from the cache" in printed and "time on" not in printed


def test_the_cost_estimate_times_the_inversions_on_this_device(tmp_path, files, capsys, monkeypatch):
    """The estimate is steps x measured seconds per step: a probe that takes a known time
    per image-step gives exactly that estimate."""
    monkeypatch.setattr(cli, "_seconds_per_image_step", lambda layered, images, args: 0.5)
    assert cli.main([*timm_args(files, tmp_path / "out", tmp_path / "cache"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    steps = 2 * 2 * 3 * N * ITERATIONS  # 2 models x 2 seeds x 3 layers (depth 2 + 1) x images x steps
    assert f"{steps:,} image-steps" in printed and f"about {cli._readable_seconds(steps * 0.5)} for" in printed
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()  # a dry run keeps nothing


def test_weights_of_another_image_and_patch_size_are_refused_unless_resampling_is_asked_for(tmp_path, files, capsys):
    """32-px patch-8 weights into vit_tiny_patch16_224 as timm builds it (224 px, patch 16):
    timm would resample them without a word."""
    args = compare_args(
        files / "pretrained.safetensors",
        files / "finetuned.safetensors",
        files / "images.npz",
        tmp_path / "out",
        tmp_path / "cache",
        "--architecture",
        TIMM_NAME,
        "--model-arg",
        "embed_dim=32",
        "--model-arg",
        "depth=2",
        "--model-arg",
        "num_heads=2",
        "--dry-run",
    )
    assert cli.main(args) == 1
    err = one_line_error(capsys)
    assert "pretrained.safetensors was trained at another image or patch size" in err
    assert "--model-arg img_size=32 --model-arg patch_size=8" in err and "--resample" in err
    assert cli.main([*args, "--resample"]) == 0
    assert "each 3 layers x 6 images" in capsys.readouterr().out


def test_more_images_than_there_are_is_refused_and_the_default_says_it_uses_all(tmp_path, files, capsys):
    args = timm_args(files, tmp_path / "out", tmp_path / "cache")
    assert cli.main([*args, "--n", "500"]) == 1
    assert f"--n 500 asks for more images than {files / 'images.npz'} holds ({N})" in one_line_error(capsys)
    assert cli.main([*args, "--dry-run"]) == 0
    assert f"using all {N} images of {files / 'images.npz'} (the default --n is 500" in capsys.readouterr().out


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """An empty Hugging Face cache, no host answering, and any hub download a test failure."""
    import socket

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unreachable(address, timeout=None):
        raise OSError("Name or service not known")

    def download(*args, **kwargs):
        raise AssertionError("weights were fetched")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw: download() if pretrained else None)
    return huggingface_hub.constants


def test_local_arguments_are_checked_before_any_weights_are_fetched(tmp_path, files, no_hub, capsys):
    hub = [TIMM_NAME, TIMM_NAME + ".augreg_in21k", "--images"]
    for images, out, message in (
        (tmp_path / "missing", tmp_path / "out", "images {} do not exist"),
        (files / "images.npz", files / "images.npz", "--out {} is a file, not a folder"),
    ):
        argv = ["compare", *hub, str(images), "--out", str(out), "--cache", str(tmp_path / "c")]
        assert cli.main(argv) == 1
        assert message.format(images if "images" in message else out) in one_line_error(capsys)
    argv = ["compare", TIMM_NAME, str(tmp_path / "missing.safetensors"), "--images", str(files / "images.npz"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    assert cli.main(argv) == 1
    assert f"FINETUNED {tmp_path / 'missing.safetensors'} does not exist" in one_line_error(capsys)


@pytest.mark.parametrize("offline", [False, True])
def test_weights_neither_cached_nor_reachable_fail_at_once_saying_how_to_get_them(
    tmp_path, files, no_hub, capsys, offline
):
    no_hub.HF_HUB_OFFLINE = offline
    argv = ["compare", TIMM_NAME, TIMM_NAME, "--images", str(files / "images.npz"), "--out", str(tmp_path / "out")]
    start = time.perf_counter()
    assert cli.main(argv) == 1
    assert time.perf_counter() - start < 20  # no hub retries (52 s before)
    err = one_line_error(capsys)
    assert f"timm pretrained weights '{TIMM_NAME}' are not in the Hugging Face cache ({tmp_path / 'hf'})" in err
    assert ("HF_HUB_OFFLINE=1 is set" if offline else "huggingface.co cannot be reached") in err
    assert f"timm.create_model('{TIMM_NAME}', pretrained=True)" in err


def test_an_unknown_pretrained_tag_is_one_line_with_the_tags_there_are(tmp_path, files, no_hub, capsys):
    """Before: a 13-frame traceback from timm's RuntimeError."""
    argv = ["compare", f"{TIMM_NAME}.bogus", TIMM_NAME, "--images", str(files / "images.npz"), "--out", str(tmp_path)]
    assert cli.main(argv) == 1
    assert f"timm has no pretrained weights '{TIMM_NAME}.bogus'; tags for {TIMM_NAME}: [" in one_line_error(capsys)


def test_running_out_of_memory_is_one_line_naming_the_budget(tmp_path, files, capsys, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(stir, "compare", out_of_memory)
    assert cli.main([*timm_args(files, tmp_path / "out", tmp_path / "cache"), "--memory-budget-gb", "8"]) == 1
    assert (
        "ran out of memory (CUDA out of memory. Tried to allocate 2.00 GiB); give a smaller --memory-budget-gb (now 8.0)"
        in one_line_error(capsys)
    )


def test_a_bug_keeps_its_traceback(tmp_path, files, monkeypatch):
    monkeypatch.setattr(stir, "compare", lambda *args, **kwargs: {}["a bug"])
    with pytest.raises(KeyError):
        cli.main(timm_args(files, tmp_path / "out", tmp_path / "cache"))
