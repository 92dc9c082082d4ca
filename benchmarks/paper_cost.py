"""GPU-hours of the paper's whole design (config/paper.yaml), from measured per-unit costs.

Reads each GPU job's work the way the launch plan does (``launch_plan.gpu_work``: training
image-steps, evaluated images, inversion image-steps), prints it per rule, and its GPU-hours
with every recorded measurement (``finetune_invariance/study/measured_costs.py``, the one
home of the measured costs, with device and date). On CUDA it also times a few steps of
each kind of work with the paper's model and settings and prints the new measurement, to be
added to that file, and the GPU-hours it gives, ending in ``paper GPU-hours: X``.

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
import datetime
from collections import Counter
from pathlib import Path

import torch
from devices import best_time

from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.launch_plan import gpu_hours, gpu_work, load_config
from finetune_invariance.study.measured_costs import MEASUREMENTS, Measurement

REPO = Path(__file__).resolve().parents[1]


def paper_config() -> dict:
    return load_config([REPO / "config/paper.yaml"], REPO / "workflow/schemas/config.schema.yaml")


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


def print_hours(work: dict, measurement: Measurement) -> None:
    print(f"\n{measurement.device}, {measurement.date} ({measurement.source})\n")
    print("| rule | jobs | GPU-hours | longest job (h) |")
    print("|---|---:|---:|---:|")
    rows = gpu_hours(work, measurement)
    for row in rows:
        hours = "?" if row.hours is None else f"{row.hours:,.1f}"
        longest = "?" if row.longest_job_hours is None else f"{row.longest_job_hours:,.2f}"
        print(f"| {row.rule} | {len(work[row.rule])} | {hours} | {longest} |" + (f" no cost of {row.missing}" if row.missing else ""))
    print(f"paper GPU-hours: {sum(row.hours for row in rows if row.hours is not None):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of training and of inversion")
    args = parser.parse_args()
    config = paper_config()
    work = gpu_work(StudyDesign(config))
    units = sorted({unit for jobs in work.values() for job in jobs for unit in job})
    print("| rule | jobs | " + " | ".join(units) + " |")
    print("|---|---:|" + "---:|" * len(units))
    for rule, jobs in work.items():
        totals = sum(jobs, Counter())
        print(f"| {rule} | {len(jobs)} | " + " | ".join(f"{totals[unit]:,}" for unit in units) + " |")
    for measurement in MEASUREMENTS:  # the recorded costs (finetune_invariance.study.measured_costs)
        if measurement.applies_to(config["model"], config["model"]["image_size"]) is None:
            print_hours(work, measurement)
    device = torch.device(args.device)
    if device.type != "cuda":
        print(f"\nno CUDA device: the recorded costs above only; run with --device cuda on a GPU to measure ({args.device} not timed)")
        return
    costs = measure(config, device, args.steps)
    training_precision = config["finetune"]["precision"]
    stir = config["stir"]
    measured = Measurement(
        device=torch.cuda.get_device_name(device),
        date=datetime.date.today().isoformat(),
        source=f"benchmarks/paper_cost.py --device cuda --steps {args.steps}",
        model=config["model"]["name"],
        overrides=dict(config["model"].get("overrides", {})),
        image_size=config["model"]["image_size"],
        batch_size=config["finetune"]["batch_size"],
        seconds={
            f"training_image_{training_precision}": costs["training_image"],
            "evaluated_image": costs["evaluated_image"],
            f"inversion_image_step_{stir['precision']}": costs["inversion_step"] / stir["n_images"],
        },
    )
    print(f"\nmeasured now (a STIR table from stored inversions: {costs['pair']:.3g} s); "
          "add it to MEASUREMENTS in src/finetune_invariance/study/measured_costs.py:\n")
    print(repr(measured))
    print_hours(work, measured)


if __name__ == "__main__":
    main()
