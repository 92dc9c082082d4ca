"""GPU-hours of the paper's whole design (config/paper.yaml), from measured per-job costs.

Reads the design the workflow expands (jobs per GPU rule, and each job's work: training
epochs and images, inversion iterations, evaluated images), times a few steps of each kind
of work on the current device with the paper's model and settings, extrapolates every job
and prints a table (rule, jobs, seconds per job, GPU-hours) with a last line
``paper GPU-hours: X``. On a machine without CUDA it says so and prints the design part
only (jobs and work per rule), which needs no timing.

    python benchmarks/paper_cost.py                       # the design; timings on CUDA only
    python benchmarks/paper_cost.py --device cuda         # a few minutes on one H100/H200

What is timed (ViT-B/32 at 224 px, random weights and images: the cost does not depend
on their values):
- training: ``training.train_step`` at batch 256 on CIFAR-sized images upsampled on the
  device, in the config's training precision; evaluation: a bf16 forward at batch 256;
- inversion: ``inversion.invert`` of all 13 layers for n = 500 images in the config's
  precision (s/step from two runs of different lengths, so set-up is not counted);
- the rest of a STIR job: ``stir.pair_similarity`` of two models with stored inversions.
The input pipeline is not timed (data kept on the device), so training is a lower bound.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from devices import best_time
from snakemake.utils import validate

from finetune_invariance.study.catalog import dataset_facts
from finetune_invariance.study.design import StudyDesign

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RuleWork:
    """One GPU rule of the design: its jobs and the work they do in total."""

    rule: str
    jobs: int
    training_images: int = 0  # image-steps of training (epochs x training-set size)
    evaluated_images: int = 0  # forward passes of evaluation (test sets, corrupted samples)
    inversion_steps: int = 0  # inversion iterations (each of all layers x n images)
    pairs: int = 0  # STIR tables from stored inversions


def design_work(config: dict) -> list[RuleWork]:
    """The paper's GPU work per rule, read from the design the workflow expands."""
    study = StudyDesign(config)
    stir, robustness = config["stir"], config["robustness"]
    runs = study.training_runs()
    training = sum(study.epochs(run) * dataset_facts(run.dataset).train_size for run in runs)
    testing = sum(study.epochs(run) * dataset_facts(run.dataset).test_size for run in runs)
    corrupted_per_epoch = robustness["n_images"] * (5 if robustness["sampling"] == "per_severity" else 5 * len(robustness["corruptions"]))
    robust_epochs = sum(study.epochs(run) for run in study.dynamics_runs())
    pair_jobs, inversions = len(study.pair_jobs()), len(study.pretrained_inversions())
    return [
        RuleWork("finetune", len(runs), training_images=training, evaluated_images=testing),
        RuleWork("invert_pretrained", inversions, inversion_steps=inversions * stir["iterations"]),
        RuleWork("stir", pair_jobs, inversion_steps=pair_jobs * stir["iterations"], pairs=pair_jobs),
        RuleWork("robust_accuracy", len(study.dynamics_runs()), evaluated_images=robust_epochs * (corrupted_per_epoch + robustness["n_images"])),
    ]


def paper_config() -> dict:
    config = yaml.safe_load((REPO / "config/paper.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    return config


def measure(config: dict, device: torch.device, steps: int) -> dict[str, float]:
    """Seconds per training image, per evaluated image, per inversion step and per pair."""
    from finetune_invariance.inversion import invert
    from finetune_invariance.stir import pair_similarity
    from finetune_invariance.study.models import ModelSpec, build_model
    from finetune_invariance.study.training import TrainConfig, build_optimizer, train_step, training_environment

    spec = ModelSpec(config["model"]["name"])
    size = config["model"]["image_size"]
    batch = config["finetune"]["batch_size"]
    train_config = TrainConfig(**{**config["finetune"], "image_size": size})
    model = build_model(spec, "classification", 100).to(device)
    optimizer = build_optimizer(model, train_config)
    images = torch.rand(batch, 3, 32, 32, device=device)
    labels = torch.randint(0, 100, (batch,), device=device)
    costs = {}
    with training_environment(device, deterministic=False, precision=train_config.precision):
        costs["training_image"] = best_time(
            lambda: [train_step(model, model, optimizer, images, labels, 1e-3, train_config, (size, size)) for _ in range(steps)], device
        ) / (steps * batch)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model.eval()
            resized = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear")
            costs["evaluated_image"] = best_time(lambda: model(resized), device) / batch

    stir = config["stir"]
    targets = torch.rand(stir["n_images"], 3, size, size, device=device)
    settings = dict(seed=0, progress=False, precision=stir["precision"], memory_budget=int(stir["memory_budget_gb"] * 2**30))
    short = best_time(lambda: invert(model, targets, iterations=1, **settings), device, repeats=1)
    long = best_time(lambda: invert(model, targets, iterations=1 + steps, **settings), device, repeats=1)
    costs["inversion_step"] = (long - short) / steps
    inversions = invert(model, targets, iterations=1, **settings)
    other = build_model(spec, "classification", 100, seed=1).to(device)
    costs["pair"] = best_time(lambda: pair_similarity(model, other, targets, inversions, inversions, seed=0), device, repeats=1)
    return costs


def seconds(work: RuleWork, costs: dict[str, float]) -> float:
    return (
        work.training_images * costs["training_image"]
        + work.evaluated_images * costs["evaluated_image"]
        + work.inversion_steps * costs["inversion_step"]
        + work.pairs * costs["pair"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of training and of inversion")
    args = parser.parse_args()
    config = paper_config()
    work = design_work(config)
    print("| rule | jobs | training image-steps | evaluated images | inversion steps | STIR tables |")
    print("|---|---:|---:|---:|---:|---:|")
    for rule in work:
        print(f"| {rule.rule} | {rule.jobs} | {rule.training_images:,} | {rule.evaluated_images:,} | {rule.inversion_steps:,} | {rule.pairs} |")
    device = torch.device(args.device)
    if device.type != "cuda":
        print(f"\nno CUDA device: the design above only; run with --device cuda on a GPU for its GPU-hours ({args.device} not timed)")
        return
    costs = measure(config, device, args.steps)
    print(f"\nmeasured on {torch.cuda.get_device_name(device)} (precision {config['stir']['precision']}): "
          + ", ".join(f"{name} {value:.3g} s" for name, value in costs.items()))
    print("\n| rule | jobs | seconds per job | GPU-hours |")
    print("|---|---:|---:|---:|")
    total = 0.0
    for rule in work:
        rule_seconds = seconds(rule, costs)
        total += rule_seconds
        print(f"| {rule.rule} | {rule.jobs} | {rule_seconds / rule.jobs:,.0f} | {rule_seconds / 3600:,.1f} |")
    print(f"paper GPU-hours: {total / 3600:.1f}")


if __name__ == "__main__":
    main()
