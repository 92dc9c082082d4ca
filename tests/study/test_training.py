"""Training: the schedule's closed form, the optimizer's weight decay, learning on tiny
data, checkpoints, exact resume after a kill (the same weights, history and bytes), and
evaluation against hand-computed metrics."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from finetune_invariance.study import data, synthetic
from finetune_invariance.study.evaluation import evaluate
from finetune_invariance.study.history import best_epoch
from finetune_invariance.study.models import ModelSpec, build_model, load_checkpoint
from finetune_invariance.study.run_folder import OLD_RESUME_FILE, RESUME_FILE, monitor_table, verified_checkpoint
from finetune_invariance.study.tables import TRAINING_HISTORY, conform, read_table
from finetune_invariance.study.training import MonitorSchedule, TrainConfig, build_optimizer, learning_rate, train

TINY = ModelSpec("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2))
# The configuration of the kill-and-resume test: SGD momentum (optimizer state matters),
# augmentation (per-epoch RNG matters), warm-up crossing an epoch boundary.
RESUME_CONFIG = TrainConfig(epochs=4, batch_size=16, lr=0.05, warmup_steps=3, augment="crop_flip", seed=7)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    synthetic.generate("shapes", root, seed=0, n_train=48, n_test=16)
    return root


def run_resume_config(root: Path, out_dir: Path, exit_after_epoch: int | None = None) -> pd.DataFrame:
    """The training run of the resume test; ``exit_after_epoch`` kills the process (os._exit)
    right after that epoch's files are written, as a scheduler's SIGKILL would."""

    def die(epoch: int) -> None:
        if epoch == exit_after_epoch:
            os._exit(17)

    model = build_model(TINY, "classification", 8, seed=0)
    train_set = data.get_dataset("shapes", "train", root, augment=RESUME_CONFIG.augment)
    test_set = data.get_dataset("shapes", "test", root)
    return train(model, RESUME_CONFIG, train_set, test_set, out_dir, {0, 4}, "resume/test", "cpu", on_epoch_end=die)


# --- schedule ---------------------------------------------------------------------------


def test_learning_rate_warmup_then_cosine_closed_form():
    config = TrainConfig(lr=2.0, warmup_steps=4)
    total = 12
    assert [learning_rate(s, total, config) for s in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert learning_rate(8, total, config) == pytest.approx(1.0)  # halfway through the cosine
    assert learning_rate(11, total, config) == pytest.approx(1.0 * (1 + math.cos(math.pi * 7 / 8)))
    assert learning_rate(12, total, config) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(0, 5, TrainConfig(lr=1.0, warmup_steps=0)) == 1.0


def test_config_defaults_are_the_authors_and_bad_values_fail():
    config = TrainConfig()
    assert (config.epochs, config.batch_size, config.lr, config.warmup_steps, config.grad_clip, config.optimizer) == (
        100,
        256,
        1e-3,
        100,
        1.0,
        "sgd",
    )
    assert (config.augment, config.precision) == ("authors", "fp32")
    assert config.schedule_length == 100 and TrainConfig(epochs=20, schedule_epochs=100).schedule_length == 100
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adam'"):
        TrainConfig(optimizer="lamb")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match=r"schedule_epochs \(10\) must be at least epochs \(20\)"):
        TrainConfig(epochs=20, schedule_epochs=10)
    with pytest.raises(ValueError, match="grad_clip must be > 0, or None for no clipping"):
        TrainConfig(grad_clip=0.0)
    with pytest.raises(ValueError, match=r"augment must be one of \['none', 'crop_flip', 'authors'\], got True"):
        TrainConfig(augment=True)
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'tf32', 'bf16'\]"):
        TrainConfig(precision="fp16")


# --- the optimizer ------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_weight_decay_reaches_every_parameter(optimizer):
    """The authors' optimizer decays all parameters (biases, norms, tokens included): with a
    zero loss gradient the gradient is g = wd * p, so SGD's first step (momentum buffer = g)
    is lr * g and Adam's (bias-corrected moments g and g^2) is lr * g / (|g| + eps)."""
    model = build_model(TINY, "classification", 8, seed=0)
    config = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.01)
    opt = build_optimizer(model, config)
    assert all(group["weight_decay"] == 0.01 for group in opt.param_groups)
    assert {id(p) for group in opt.param_groups for p in group["params"]} == {id(p) for p in model.parameters()}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        g = 0.01 * before[name]
        expected = before[name] - 0.1 * (g if optimizer == "sgd" else g / (g.abs() + 1e-8))
        assert torch.allclose(p.detach(), expected, atol=1e-6), name


def test_the_paper_configs_weight_decay_warmup_and_augmentation_reach_the_optimizer(shipped_config):
    """The authors' recipe per source: weight decay 1e-4 from ImageNet, 5e-4 from the CIFAR
    sources and from scratch (their CIFAR sources), 440 warm-up steps for the runs from
    scratch (their CIFAR sources' ``warmup-440``), 100 otherwise; their augmentation, fp32."""
    from finetune_invariance.study.design import StudyDesign
    from finetune_invariance.study.vocabulary import Run

    study = StudyDesign(shipped_config("config/paper.yaml"))
    expected = {
        Run("imagenet", "cifar10", "classification"): (1e-4, 100),
        Run("imagenet", "cifar10", "classification", "no_augment"): (1e-4, 100),
        Run("cifar100", "cifar10", "classification"): (5e-4, 100),
        Run("cifar10", "cifar100", "classification"): (5e-4, 100),
        study.pretraining_run("cifar10"): (5e-4, 440),
        study.pretraining_run("cifar100"): (5e-4, 440),
    }
    model = build_model(TINY, "classification", 8, seed=0)
    for run, (weight_decay, warmup) in expected.items():
        config = TrainConfig(**study.training(run))
        optimizer = build_optimizer(model, config)
        assert [group["weight_decay"] for group in optimizer.param_groups] == [weight_decay], run
        assert sum(p.numel() for group in optimizer.param_groups for p in group["params"]) == sum(
            p.numel() for p in model.parameters()
        )
        assert config.warmup_steps == warmup and config.precision == "fp32", run
        assert config.augment == ("none" if run.variant == "no_augment" else "authors"), run
        assert learning_rate(warmup - 1, 100 * 196, config) == pytest.approx(1e-3 * (warmup - 1) / warmup)
        assert learning_rate(warmup, 100 * 196, config) == 1e-3


# --- learning -----------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["classification", "reconstruction"])
def test_a_few_epochs_lower_the_loss(root, tmp_path, task):
    model = build_model(TINY, task, 8, seed=0)
    train_set = data.get_dataset("shapes", "train", root)
    config = TrainConfig(epochs=5, batch_size=8, optimizer="adam", lr=3e-3, warmup_steps=0)
    history = train(model, config, train_set, data.get_dataset("shapes", "test", root), tmp_path, set(), "t", "cpu")
    conform(history, TRAINING_HISTORY)
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert history["train_loss"].iloc[-1] < 0.9 * history["train_loss"].iloc[0]
    on_disk = read_table(tmp_path / "history.parquet", TRAINING_HISTORY)
    pd.testing.assert_frame_equal(on_disk, history)
    if task == "classification":
        assert history["test_l1"].isna().all() and history["test_accuracy"].between(0, 1).all()
    else:
        assert history["test_accuracy"].isna().all() and (history["test_l1"] == history["test_loss"]).all()
    # lr column: the last update of each epoch (6 updates per epoch of 48 images).
    expected_lr = [learning_rate(6 * e - 1, 30, config) for e in range(1, 6)]
    assert history["learning_rate"].tolist() == pytest.approx(expected_lr)


def test_checkpoints_hold_the_start_and_the_end(root, tmp_path):
    model = build_model(TINY, "classification", 8, seed=0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_steps=0)
    train(
        model,
        config,
        data.get_dataset("shapes", "train", root),
        data.get_dataset("shapes", "test", root),
        tmp_path,
        {0, 2},
    )
    assert sorted(p.name for p in tmp_path.glob("epoch_*")) == ["epoch_000.safetensors", "epoch_002.safetensors"]
    first, meta0 = load_checkpoint(tmp_path / "epoch_000.safetensors")
    last, meta2 = load_checkpoint(tmp_path / "epoch_002.safetensors")
    assert all(torch.equal(first.state_dict()[k], v) for k, v in start.items())
    assert all(torch.equal(last.state_dict()[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(last.backbone.pos_embed, first.backbone.pos_embed)
    assert meta0["epoch"] == 0 and meta2["epoch"] == 2 and meta2["train_config"]["lr"] == 0.05
    assert 0 <= meta2["metrics"]["test_accuracy"] <= 1


def test_bad_checkpoint_epochs_and_image_size(root, tmp_path):
    model = build_model(TINY, "classification", 8)
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)
    with pytest.raises(ValueError, match=r"checkpoint_epochs \[3\] are outside 0..2"):
        train(model, TrainConfig(epochs=2), *sets, tmp_path, {3})
    with pytest.raises(ValueError, match="image_size 64 differs from the model's input size"):
        train(model, TrainConfig(epochs=2, image_size=64), *sets, tmp_path, set())


@pytest.mark.parametrize("precision", ["bf16", "tf32"])
def test_a_cuda_precision_is_refused_on_the_cpu_before_anything_is_written(root, tmp_path, precision):
    """On the CPU, bf16 and tf32 would compute in fp32 while the checkpoints' headers and
    the run's identity record the configured precision: refused, naming the key and the fix."""
    model = build_model(TINY, "classification", 8)
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=rf"precision '{precision}' .*CUDA.*this run's device is cpu.*precision: fp32"):
        train(model, TrainConfig(epochs=1, precision=precision), *sets, out, {0, 1}, device="cpu")
    assert not out.exists()


# --- resume -------------------------------------------------------------------------------


def test_killed_run_resumes_to_the_same_weights_and_history(root, tmp_path):
    reference = run_resume_config(root, tmp_path / "reference")

    out = tmp_path / "killed"
    script = (
        "import sys, torch; torch.set_num_threads(1); sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from test_training import run_resume_config;"
        "run_resume_config(Path(sys.argv[2]), Path(sys.argv[3]), exit_after_epoch=2)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent), str(root), str(out)], capture_output=True, text=True
    )
    assert killed.returncode == 17, killed.stderr
    assert len(read_table(out / "history.parquet", TRAINING_HISTORY)) == 2
    (out / f".{RESUME_FILE}.partial.tmp").write_bytes(b"half a file")  # debris of a kill mid-write

    resumed = run_resume_config(root, out)
    pd.testing.assert_frame_equal(resumed, reference)
    final_resumed, _ = load_checkpoint(out / "epoch_004.safetensors")
    final_reference, _ = load_checkpoint(tmp_path / "reference" / "epoch_004.safetensors")
    for key, value in final_reference.state_dict().items():
        assert torch.equal(final_resumed.state_dict()[key], value), key


def test_a_finished_run_returns_its_history_and_a_changed_config_is_refused(root, tmp_path):
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, warmup_steps=0)
    first = train(build_model(TINY, "classification", 8), config, *sets, tmp_path, set(), "r")
    again_model = build_model(TINY, "classification", 8, seed=5)
    again = train(again_model, config, *sets, tmp_path, set(), "r")
    pd.testing.assert_frame_equal(again, first)
    from safetensors.torch import load_file

    assert torch.equal(again_model.backbone.pos_embed, load_file(tmp_path / RESUME_FILE)["model/backbone.pos_embed"])
    with pytest.raises(ValueError, match="belongs to another run or config"):
        train(build_model(TINY, "classification", 8), TrainConfig(epochs=1, batch_size=16, lr=0.1), *sets, tmp_path)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_resumed_run_writes_the_same_bytes_as_an_uninterrupted_one(root, tmp_path, optimizer):
    """Every file, the resume state included: a state written after a resume must not differ
    from the uninterrupted run's in how its values are stored (e.g. pickle's shared objects)."""
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, warmup_steps=2, optimizer=optimizer, augment="crop_flip")
    sets = data.get_dataset("shapes", "train", root, augment="crop_flip"), data.get_dataset("shapes", "test", root)

    def run(out_dir, seed=0, on_epoch_end=None):
        model = build_model(TINY, "classification", 8, seed=seed)
        train(
            model,
            config,
            *sets,
            out_dir,
            {0, 2},
            "p/shapes/classification/default",
            on_epoch_end=on_epoch_end,
            keep_best=True,
        )

    def stop_after_epoch_1(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    run(tmp_path / "uninterrupted")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", on_epoch_end=stop_after_epoch_1)
    run(tmp_path / "resumed", seed=5)  # other starting weights: the resume state replaces them
    files = sorted(path.name for path in (tmp_path / "uninterrupted").iterdir())
    assert files == sorted(path.name for path in (tmp_path / "resumed").iterdir()) and RESUME_FILE in files
    for name in files:
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "uninterrupted" / name).read_bytes(), name


def test_a_resume_state_of_the_old_format_is_refused_with_what_to_delete(root, tmp_path):
    (tmp_path / OLD_RESUME_FILE).write_bytes(b"a pickle")
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)
    with pytest.raises(RuntimeError, match=f"older version of the study.*delete {tmp_path}"):
        train(build_model(TINY, "classification", 8), TrainConfig(epochs=1, batch_size=16), *sets, tmp_path)


# --- early stop within a schedule, the best checkpoint, damaged work files --------------


def sgd_run(root, out_dir, config, checkpoint_epochs=frozenset(), keep_best=False):
    model = build_model(TINY, "classification", 8, seed=0)
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)
    history = train(model, config, *sets, out_dir, set(checkpoint_epochs), "r", keep_best=keep_best)
    return model, history


def test_a_run_stopped_early_follows_the_long_runs_schedule_step_by_step(root, tmp_path):
    """A variant of the paper's Fig. 6: the first 2 epochs of a 4-epoch run."""
    long = TrainConfig(epochs=4, batch_size=16, lr=0.05, warmup_steps=2)
    short = TrainConfig(epochs=2, schedule_epochs=4, batch_size=16, lr=0.05, warmup_steps=2)
    _, long_history = sgd_run(root, tmp_path / "long", long, {2})
    short_model, short_history = sgd_run(root, tmp_path / "short", short)
    # 48 images / 16 = 3 steps per epoch: the short run's updates 0..5 are the long run's.
    steps = range(6)
    assert [learning_rate(s, 12, long) for s in steps] == [learning_rate(s, 12, short) for s in steps]
    assert short_history["learning_rate"].tolist() == long_history["learning_rate"].tolist()[:2]
    # A 2-epoch schedule would have decayed to 0.0073 at that step.
    assert short_history["learning_rate"].iloc[-1] == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi * 3 / 10)))
    long_epoch_2, _ = load_checkpoint(tmp_path / "long" / "epoch_002.safetensors")
    for key, value in long_epoch_2.state_dict().items():
        assert torch.equal(short_model.state_dict()[key], value), key


def test_best_epoch_is_the_highest_accuracy_or_the_lowest_l1_earliest_on_ties():
    classification = pd.DataFrame({"epoch": [1, 2, 3, 4], "test_accuracy": [0.5, 0.7, 0.7, 0.6], "test_l1": np.nan})
    assert best_epoch(classification) == 2
    reconstruction = pd.DataFrame({"epoch": [1, 2, 3], "test_accuracy": np.nan, "test_l1": [0.3, 0.1, 0.2]})
    assert best_epoch(reconstruction) == 2


def test_the_best_checkpoint_holds_the_best_epochs_weights(root, tmp_path):
    config = TrainConfig(epochs=4, batch_size=16, lr=0.05, warmup_steps=0)
    _, history = sgd_run(root, tmp_path, config, {1, 2, 3, 4}, keep_best=True)
    best = best_epoch(history)
    assert history.set_index("epoch").loc[best, "test_accuracy"] == history["test_accuracy"].max()
    kept, metadata = load_checkpoint(verified_checkpoint(tmp_path, "best"))
    same_epoch, _ = load_checkpoint(tmp_path / f"epoch_{best:03d}.safetensors")
    assert metadata["epoch"] == best
    for key, value in same_epoch.state_dict().items():
        assert torch.equal(kept.state_dict()[key], value), key


def test_a_damaged_work_checkpoint_is_named_with_what_to_delete(root, tmp_path):
    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, warmup_steps=0)
    sgd_run(root, tmp_path, config, {1})
    assert verified_checkpoint(tmp_path, 1) == tmp_path / "epoch_001.safetensors"
    with pytest.raises(FileNotFoundError, match="has not recorded a checkpoint 'best'"):
        verified_checkpoint(tmp_path, "best")
    damaged = tmp_path / "epoch_001.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(RuntimeError, match=f"{damaged}.*damaged on disk.*delete {tmp_path}"):
        verified_checkpoint(tmp_path, 1)
    # Resuming from a folder whose files do not match the resume state fails the same way.
    with pytest.raises(RuntimeError, match="damaged on disk"):
        sgd_run(root, tmp_path, config, {1})


def test_a_published_copy_is_independent_of_the_work_file(root, tmp_path):
    from finetune_invariance.study.runtime import publish

    config = TrainConfig(epochs=1, batch_size=16, lr=0.05, warmup_steps=0)
    sgd_run(root, tmp_path / "work", config, {1})
    published = publish(verified_checkpoint(tmp_path / "work", 1), tmp_path / "out" / "epoch_001.safetensors")
    published.write_bytes(b"damaged")  # damage the published copy only
    assert verified_checkpoint(tmp_path / "work", 1).read_bytes() != b"damaged"


def test_schema_defaults_are_the_dataclass_defaults(repo_root):
    import dataclasses

    import yaml

    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    training = schema["$defs"]["training"]["properties"]
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, entry in training.items():
        assert defaults[key] == entry["default"], key
    study_only = {"image_size", "deterministic"}  # set by the workflow from the model, or not configurable
    assert set(defaults) - set(training) == study_only


# --- evaluation ---------------------------------------------------------------------------


class ConstantLogits(nn.Module):
    def forward(self, images):
        return torch.tensor([2.0, 0.0, 0.0]).expand(len(images), 3)


def test_evaluate_classification_against_hand_computation():
    labels = torch.tensor([0, 1, 0, 2, 0])
    dataset = TensorDataset(torch.rand(5, 3, 8, 8), labels)
    result = evaluate(ConstantLogits(), dataset, "classification", 8, "cpu", batch_size=2)
    log_z = math.log(math.exp(2) + 2)
    expected_loss = np.mean([log_z - (2.0 if y == 0 else 0.0) for y in labels.tolist()])
    assert result["accuracy"] == pytest.approx(3 / 5) and result["loss"] == pytest.approx(expected_loss)
    assert math.isnan(result["l1"]) and result["n"] == 5


class Black(nn.Module):
    def forward(self, images):
        return torch.zeros_like(images)


def test_evaluate_reconstruction_resizes_and_restores_train_mode():
    images = torch.rand(4, 3, 8, 8)
    model = Black().train()
    result = evaluate(model, TensorDataset(images, torch.zeros(4, dtype=torch.long)), "reconstruction", 16, "cpu", 3)
    # Predicting black, the L1 is the mean pixel value of the images at the model's size.
    assert result["l1"] == pytest.approx(data.resize_to_model(images, 16).mean().item(), rel=1e-6)
    assert result["loss"] == result["l1"] and math.isnan(result["accuracy"])
    assert model.training


def test_two_identical_runs_write_the_same_bytes(root, tmp_path):
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_steps=1)
    for folder in ("a", "b"):
        sgd_run(root, tmp_path / folder, config, {1, 2}, keep_best=True)
    files = sorted(path.name for path in (tmp_path / "a").iterdir())
    assert files == sorted(path.name for path in (tmp_path / "b").iterdir())
    assert {"history.parquet", "epoch_001.safetensors", "epoch_002.safetensors", "best.safetensors"} <= set(files)
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


# --- the forgetting monitor inside the trainer (beyond the paper) --------------------------


@pytest.fixture(scope="module")
def monitored(root, tmp_path_factory):
    """A run trained with the monitor (every 2 steps), the same run without, and the
    pretrained model's inversions the monitor used."""
    from finetune_invariance.inversion import invert
    from finetune_invariance.monitor import ForgettingMonitor

    out = tmp_path_factory.mktemp("monitored")
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_steps=1)
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)
    pretrained = build_model(TINY, "classification", 8, seed=0)
    images = data.sample_images(sets[1], 8, seed=0, image_size=32)
    inversions = [invert(pretrained, images, seed=seed, iterations=3, progress=False) for seed in (0, 1)]
    run_name = "p/shapes/classification/default"
    histories = {}
    for name, monitor in (("with", ForgettingMonitor(pretrained, inversions)), ("without", None)):
        model = build_model(TINY, "classification", 8, seed=0)
        histories[name] = train(
            model,
            config,
            *sets,
            out / name,
            {2},
            run_name,
            monitor=monitor,
            monitor_schedule=MonitorSchedule(every_steps=2),
        )
    return out, histories, pretrained, images, inversions


def test_the_monitor_does_not_change_training(monitored):
    out, histories, *_ = monitored
    pd.testing.assert_frame_equal(histories["with"], histories["without"])
    assert (out / "with" / "epoch_002.safetensors").read_bytes() == (
        out / "without" / "epoch_002.safetensors"
    ).read_bytes()
    assert monitor_table(out / "without").empty


def test_the_monitor_measures_on_its_schedule(monitored):
    out, *_ = monitored
    table = monitor_table(out / "with")
    # 48 images / 16 = 3 steps per epoch: before training, every 2 steps, every epoch's end.
    assert sorted(table["step"].unique()) == [0, 2, 3, 4, 6]
    assert sorted(table["training_epochs"].unique()) == pytest.approx([0, 2 / 3, 1, 4 / 3, 2])
    assert set(table["seed"]) == {0, 1} and set(table["layer"]) == {0, 1, 2}
    assert table[["source", "dataset", "task", "variant"]].drop_duplicates().values.tolist() == [
        ["p", "shapes", "classification", "default"]
    ]


def test_the_monitor_at_an_epochs_end_is_the_offline_forgetting_exactly(monitored):
    from finetune_invariance import finetuning_metrics, stir
    from finetune_invariance.inversion import invert

    out, _, pretrained, images, inversions = monitored
    finetuned, _ = load_checkpoint(out / "with" / "epoch_002.safetensors")
    online = monitor_table(out / "with")
    online = online[online["step"] == 6].set_index(["seed", "layer"])["forgetting"]
    for inversions_p in inversions:
        inversions_f = invert(finetuned, images, seed=inversions_p.seed, iterations=3, progress=False)
        pairs = stir.pair_similarity(pretrained, finetuned, images, inversions_p, inversions_f)
        offline = finetuning_metrics.layer_metrics(pairs, "pretrained", "finetuned")
        offline = offline[offline["metric"] == "forgetting"]
        for row in offline.itertuples():
            assert online.loc[(row.seed, row.layer)] == row.value  # bit for bit


def test_a_resumed_monitored_run_keeps_its_measurements(root, monitored, tmp_path):
    from finetune_invariance.monitor import ForgettingMonitor

    out, _, pretrained, _, inversions = monitored
    config = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_steps=1)
    sets = data.get_dataset("shapes", "train", root), data.get_dataset("shapes", "test", root)

    def stop_after_first_epoch(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    arguments = dict(monitor=ForgettingMonitor(pretrained, inversions), monitor_schedule=MonitorSchedule(every_steps=2))
    with pytest.raises(KeyboardInterrupt):
        train(
            build_model(TINY, "classification", 8, seed=0),
            config,
            *sets,
            tmp_path,
            {2},
            "p/shapes/classification/default",
            on_epoch_end=stop_after_first_epoch,
            **arguments,
        )
    train(
        build_model(TINY, "classification", 8, seed=5),
        config,
        *sets,
        tmp_path,
        {2},
        "p/shapes/classification/default",
        **arguments,
    )
    pd.testing.assert_frame_equal(monitor_table(tmp_path), monitor_table(out / "with"))
