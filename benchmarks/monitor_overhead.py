"""What the forgetting monitor costs next to training: seconds per measurement vs per epoch.

Both are timed in one run, on the same device and model:

- training: the study's ``training.train_step`` (resize on the device, forward, loss,
  backward, clipping, optimizer update) of the study's classification model on random
  batches already on the device, so the input pipeline is not timed;
- measurement: ``monitor.ForgettingMonitor.measure`` of the same model: forward passes on
  the n images X and, per layer l, on X'_{p,l} stopping after layer l, for every seed,
  then the float64 Gram matrices. The stored inversions are random images in [0, 1] kept
  on the device: the cost depends on how many there are, not on what they show.

Settings (``--settings``, one row each), fixed here (not read from a config):
  small  a small CPU setting: vit_tiny at 32 px, patch 8, width 48, depth 4, 3 heads;
         n = 48 images, 2 seeds; an epoch of 1437 random training images, batch 32, Adam.
  paper  vit_base_patch32_224 at 224 px (32 px CIFAR images upsampled on the device),
         n = 500, 3 seeds; 50000 training images, batch 256, SGD, bf16 autocast on CUDA.

Default: the small setting on one CPU thread, a few seconds. The paper setting on a GPU,
everything measured at full size (a full epoch of training is timed):
    python benchmarks/monitor_overhead.py --settings paper --device cuda
On the CPU the paper setting is extrapolated (about 6 minutes on one thread), and the
output says from what: training from a few steps of a smaller batch (seconds per image x
training images), the measurement from fewer images per seed (forward passes scale
linearly in n; the Gram matrices, n^2 work, are timed separately at full n on random
features of each layer's size).
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
from dataclasses import dataclass

import torch
from devices import timed

from finetune_invariance.cka import normalized_centered_gram
from finetune_invariance.inversion import Inversions
from finetune_invariance.layers import as_layers
from finetune_invariance.monitor import ForgettingMonitor
from finetune_invariance.study.models import ModelSpec, build_model
from finetune_invariance.study.training import TrainConfig, build_optimizer, train_step, training_environment


@dataclass(frozen=True)
class Setting:
    spec: ModelSpec
    native_size: int  # training images' size before the on-device resize
    n_images: int
    seeds: int
    train_images: int
    batch: int
    optimizer: str
    # Scaled-down sizes for a CPU run of a setting too large to time in full (None: full size).
    cpu_measure_images: int | None = None
    cpu_train_batch: int | None = None
    cpu_train_steps: int | None = None


SETTINGS = {
    "small": Setting(
        ModelSpec("vit_tiny_patch16_224", dict(img_size=32, patch_size=8, embed_dim=48, depth=4, num_heads=3)),
        native_size=32, n_images=48, seeds=2, train_images=1437, batch=32, optimizer="adam",
    ),
    "paper": Setting(
        ModelSpec("vit_base_patch32_224"),
        native_size=32, n_images=500, seeds=3, train_images=50000, batch=256, optimizer="sgd",
        cpu_measure_images=20, cpu_train_batch=32, cpu_train_steps=3,
    ),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["small"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument(
        "--measure-images", type=int, default=None,
        help="images per seed to time the measurement with (default: n; on the CPU the setting's scaled-down size)",
    )
    parser.add_argument(
        "--train-batch", type=int, default=None,
        help="batch to time training with (default: the setting's; on the CPU its scaled-down size)",
    )
    parser.add_argument(
        "--train-steps", type=int, default=None,
        help="timed training steps (default: one epoch; on the CPU the setting's scaled-down count)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed measurements (the median is reported)")
    return parser.parse_args()


def random_inversions(layers: int, n: int, size: int, seed: int, device: torch.device) -> Inversions:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(layers + 1, n, 3, size, size, generator=generator)
    return Inversions(
        images=images[1:].to(device),
        losses=torch.zeros(layers, n),
        layers=tuple(range(layers)),
        targets=images[0].to(device),
        seed=seed,
        iterations=0,
        step_size=0.5,
    )


def epoch_seconds(model, setting: Setting, batch: int, steps: int, device: torch.device) -> tuple[float, str]:
    """Seconds per training epoch and how they were obtained."""
    config = TrainConfig(batch_size=setting.batch, optimizer=setting.optimizer, precision="bf16")  # CUDA only
    optimizer = build_optimizer(model, config)
    images = torch.rand(batch, 3, setting.native_size, setting.native_size, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        train_step(model, model, optimizer, images, labels, config.lr, config, model.image_size)

    model.train()
    with training_environment(device, deterministic=False, precision=config.precision):
        for _ in range(2):  # allocator, autotuning
            step()
        seconds = timed(lambda: [step() for _ in range(steps)], device)
    per_image = seconds / (steps * batch)
    steps_per_epoch = math.ceil(setting.train_images / setting.batch)
    if batch == setting.batch and steps >= steps_per_epoch:
        how = f"timed: {steps} steps of batch {batch}"
    else:
        how = f"extrapolated: {steps} steps of batch {batch} -> {steps_per_epoch} steps of batch {setting.batch}"
    return per_image * setting.train_images, how


def gram_seconds(n: int, feature_sizes: list[int], grams_per_layer: int, device: torch.device) -> float:
    """Time of the Gram matrices of one measurement: ``grams_per_layer`` per layer, n inputs."""
    total = 0.0
    for size in sorted(set(feature_sizes)):
        features = torch.randn(n, size, device=device)
        normalized_centered_gram(features)  # warm-up
        total += timed(lambda: normalized_centered_gram(features), device) * feature_sizes.count(size)
    return total * grams_per_layer


def measurement_seconds(model, setting: Setting, m: int, repeats: int, device: torch.device) -> tuple[float, str]:
    """Seconds per ``measure`` at the setting's n and seeds, and how they were obtained."""
    layered = as_layers(model)
    size = model.image_size[0]
    inversions = [random_inversions(layered.num_layers, m, size, seed, device) for seed in range(setting.seeds)]
    monitor = ForgettingMonitor(model, inversions, device=device)
    monitor.measure(model)  # warm-up
    seconds = statistics.median(timed(lambda: monitor.measure(model), device) for _ in range(repeats))
    if m == setting.n_images:
        return seconds, f"timed: {repeats} measurements, median"
    with torch.no_grad():
        feature_sizes = [rep.shape[1] for rep in layered.representations(inversions[0].targets[:2])]
    grams = 2 * setting.seeds  # per layer and seed: f_l(X) and f_l(X'_l)
    forward = seconds - gram_seconds(m, feature_sizes, grams, device)
    full_grams = gram_seconds(setting.n_images, feature_sizes, grams, device)
    return forward * setting.n_images / m + full_grams, (
        f"extrapolated: forward passes timed at n = {m} and scaled to {setting.n_images}, "
        f"plus the Gram matrices timed at n = {setting.n_images} ({full_grams:.3g} s)"
    )


def chosen(given: int | None, cpu_size: int | None, full_size: int, device: torch.device) -> int:
    """The command line's value, else on the CPU the setting's scaled-down size, else the full size."""
    if given is not None:
        return given
    return cpu_size if device.type == "cpu" and cpu_size is not None else full_size


def run_setting(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    setting = SETTINGS[name]
    m = chosen(args.measure_images, setting.cpu_measure_images, setting.n_images, device)
    batch = chosen(args.train_batch, setting.cpu_train_batch, setting.batch, device)
    steps = chosen(args.train_steps, setting.cpu_train_steps, math.ceil(setting.train_images / batch), device)
    model = build_model(setting.spec, "classification", num_classes=10).to(device)
    measure, measure_how = measurement_seconds(model, setting, min(m, setting.n_images), args.repeats, device)
    epoch, epoch_how = epoch_seconds(model, setting, batch, steps, device)
    spec = setting.spec
    return {
        "setting": name,
        "model": f"{spec.name} {spec.overrides}" if spec.overrides else spec.name,
        "monitor": f"n = {setting.n_images}, {setting.seeds} seeds, {as_layers(model).num_layers} layers",
        "training": f"{setting.train_images} images, batch {setting.batch}, {setting.optimizer}",
        "s / measurement": measure,
        "s / epoch": epoch,
        "ratio": measure / epoch,
        "notes": [f"measurement {measure_how}", f"epoch {epoch_how}"],
    }


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [run_setting(name, args, device) for name in args.settings]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"command: python {shlex.join(['benchmarks/monitor_overhead.py', *sys.argv[1:]])}")
    print(f"device: {where}")
    print()
    print("| setting | model | monitor | training | s / measurement | s / epoch | measurement / epoch |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['setting']} | {row['model']} | {row['monitor']} | {row['training']} "
            f"| {row['s / measurement']:.3g} | {row['s / epoch']:.3g} | {row['ratio']:.2%} |"
        )
    print()
    for row in rows:
        for note in row["notes"]:
            print(f"- {row['setting']}: {note}")


if __name__ == "__main__":
    main()
