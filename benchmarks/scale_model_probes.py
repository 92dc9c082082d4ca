"""The calibration probes of the scale model (docs/scale-model.md): small finetuning runs
that measure the properties its choices were fixed by, never a claim.

Each probe trains one run with the study's own trainer, data and models, on a glyph set
drawn like config.yaml's (``GlyphWorld``, seed 0, 2000 training and 500 test images) at a
given native size and class count, and prints one JSON line: the test accuracy of every
epoch, the best epoch, the CPU seconds and, for ``finetune``, the accuracy on 1000
corrupted inputs per severity at the best epoch (the 8 generated corruptions at the
native size, as the workflow's robustness sample). Runs go to ``--out`` (default
/tmp/scale_probes). The probes of the calibration, on one CPU thread:

    # legibility: the ImageNet-role source finetuned on the CIFAR10 role at each native size
    python benchmarks/scale_model_probes.py finetune --native 16 12 10 8 7 6 5 --batch 32 --lr-factor 10
    # the learning-rate factor (the best epoch's position), at the chosen native size
    python benchmarks/scale_model_probes.py finetune --native 7 --batch 64 --lr-factor 3 10 30
    # the runs from scratch (the CIFAR sources), 40 epochs
    python benchmarks/scale_model_probes.py scratch --native 7 8 16 32 --batch 64 --epochs 40
    # the CIFAR100 role's class count
    python benchmarks/scale_model_probes.py finetune --native 7 --batch 64 --lr-factor 10 --classes 100 40 30 20 --pool 2

Each finetuning probe takes about 60-85 CPU seconds, each 40-epoch scratch probe 130-150.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from finetune_invariance.study import checkpoints, corruptions, data, history, models, synthetic, training

REPO = Path(__file__).resolve().parents[1]
SOURCE = f"checkpoint:{REPO / 'workflow/resources/glyphs64_source.safetensors'}"
MODEL = dict(
    name="vit_tiny_patch16_224",
    overrides={"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 12, "num_heads": 2},
)
INPUT = 32
N_TRAIN, N_TEST = 2000, 500
PAPER_STEPS = 100 * math.ceil(50_000 / 256)  # the paper config's schedule: 19,600 steps
CORRUPTIONS = [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "contrast",
    "brightness",
    "pixelate",
    "jpeg_compression",
]
# A registered name whose loader reads <root>/<name>/{train,test}.npz of any size and class count.
NAME = "glyphs10"


def glyph_set(out: Path, pool: int, classes: int, native: int) -> Path:
    """The glyph set of ``classes`` classes of ``pool`` at ``native`` px, drawn as config.yaml's are."""
    root = out / "data" / f"pool{pool}_c{classes}_n{native}"
    if not synthetic.split_path(root, NAME, "test").exists():
        world = synthetic.GlyphWorld(pool=pool, num_classes=classes, variation=0.6, native_size=native)
        images, labels = world.draw(np.random.default_rng(0), N_TRAIN + N_TEST)
        images = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
        for split, part in (("train", slice(0, N_TRAIN)), ("test", slice(N_TRAIN, None))):
            path = synthetic.split_path(root, NAME, split)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, images=images[part], labels=labels[part], class_names=np.array(world.class_names))
    return root


def train(out: Path, tag: str, root: Path, classes: int, weights: str, config: training.TrainConfig):
    model = models.build_model(models.ModelSpec(**MODEL, weights=weights), "classification", classes, seed=0)
    start = time.process_time()
    table = training.train(
        model,
        config,
        data.get_dataset(NAME, "train", root=root, augment=config.augment, image_size=INPUT),
        data.get_dataset(NAME, "test", root=root),
        out / "runs" / tag,
        keep_best=True,
        run_name=tag,
    )
    return table, time.process_time() - start


def robust_accuracy(out: Path, tag: str, root: Path, classes: int, n: int = 1000, seed: int = 0) -> dict[int, float]:
    """Accuracy of the run's best checkpoint on the clean test set (0) and on ``n`` corrupted
    inputs per severity, drawn across the corruptions as the workflow's sample is."""
    model = models.build_model(models.ModelSpec(**MODEL), "classification", classes, seed=0)
    model.load_state_dict(checkpoints.read_checkpoint(out / "runs" / tag / "best.safetensors")[1])
    model.eval()
    images, labels = data.uint8_images(data.get_dataset(NAME, "test", root=root))

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        with torch.no_grad():
            batch = data.resize_to_model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, INPUT)
            return float((model(batch).argmax(1).numpy() == y).mean())

    rng = np.random.default_rng(seed)
    result = {0: accuracy(images, labels)}
    for severity in corruptions.SEVERITIES:
        rows, which = rng.integers(0, len(labels), n), rng.integers(0, len(CORRUPTIONS), n)
        corrupted = np.empty((n, *images.shape[1:]), np.uint8)
        for k, name in enumerate(CORRUPTIONS):
            if (which == k).any():
                corrupted[which == k] = corruptions.corrupt(images[rows[which == k]], name, severity, seed + severity)
        result[severity] = accuracy(corrupted, labels[rows])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "kind", choices=["finetune", "scratch"], help="from the ImageNet-role source, or from scratch (Adam)"
    )
    parser.add_argument("--native", type=int, nargs="+", default=[7])
    parser.add_argument("--classes", type=int, nargs="+", default=[10])
    parser.add_argument("--pool", type=int, default=1, help="glyph pool: 1 the CIFAR10 role's, 2 the CIFAR100 role's")
    parser.add_argument(
        "--lr-factor", type=float, nargs="+", default=[10.0], help="x the paper's lr (SGD 1e-3, Adam 1e-4)"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=None, help="default: 20 (finetune), 40 (scratch)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/scale_probes"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs = args.epochs or (20 if args.kind == "finetune" else 40)
    steps = math.ceil(N_TRAIN / args.batch) * epochs
    for native in args.native:
        for classes in args.classes:
            root = glyph_set(args.out, args.pool, classes, native)
            for factor in args.lr_factor:
                tag = f"{args.kind}_p{args.pool}_c{classes}_n{native}_b{args.batch}_e{epochs}_s{factor:g}"
                if args.kind == "finetune":
                    warmup, weights, decay = round(100 / PAPER_STEPS * steps), SOURCE, 1e-4
                    config = training.TrainConfig(
                        epochs=epochs,
                        batch_size=args.batch,
                        lr=1e-3 * factor,
                        weight_decay=decay,
                        warmup_steps=warmup,
                        augment="authors",
                        image_size=INPUT,
                    )
                else:
                    warmup, weights = round(440 / PAPER_STEPS * steps), "scratch"
                    config = training.TrainConfig(
                        epochs=epochs,
                        batch_size=args.batch,
                        optimizer="adam",
                        lr=1e-4 * factor,
                        weight_decay=5e-4,
                        warmup_steps=warmup,
                        augment="authors",
                        image_size=INPUT,
                    )
                table, cpu = train(args.out, tag, root, classes, weights, config)
                line = {
                    "probe": tag,
                    "accuracy": table["test_accuracy"].round(3).tolist(),
                    "best_epoch": history.best_epoch(table),
                    "epochs": epochs,
                    "cpu_s": round(cpu),
                }
                if args.kind == "finetune":
                    line["robust_accuracy_at_best"] = {
                        k: round(v, 3) for k, v in robust_accuracy(args.out, tag, root, classes).items()
                    }
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
