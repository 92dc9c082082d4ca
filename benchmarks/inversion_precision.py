"""Inversion in reduced precision: seconds per step, speed ratio and accuracy cost vs fp32.

Side by side in one run, for each precision of ``inversion.invert`` (fp32, bf16, and tf32
on CUDA):

- seconds per inversion step of one model through all its layers (timed as the
  difference between an ``iterations=k`` and an ``iterations=0`` run after a warm-up, so
  setup and the final evaluation cancel; best of ``--repeats``, the precisions taking
  turns), and the speed ratio to fp32;
- FLOPs per step (``torch.utils.flop_counter``: matmuls, convolutions, attention; the
  same count for every precision) and the achieved rate as a fraction of the device's
  peak in that precision: on the CPU a measured large matmul in that dtype, on CUDA the
  datasheet dense peak of known cards (H100, H200) or ``--peak-tflops``;
- the accuracy cost: for a 'pretrained' ViT p and a perturbed copy f (every weight moved
  by 5% of its tensor's std, as in stir_pairwise_vs_shared.py), the full STIR matrices in
  both directions and forgetting(l) = 1 - STIR(f_l | p_l), each precision against fp32
  with the same seed; beside them the seed-to-seed spread of fp32 (largest difference
  between any two of ``--seeds`` seeds). A precision is harmless where its difference is
  well below that spread.

Default: two tiny ViTs (depth 6, 7 layers) on 32 px images on one CPU thread, a few
minutes. Paper scale on a GPU (ViT-B/32, 13 layers, the study's 500 iterations):
    python benchmarks/inversion_precision.py --model vit_base_patch32_224 --image-size 224 \\
        --n 100 --iterations 500 --device cuda
n = 100 keeps the 18 accuracy inversions (3 precisions x 3 seeds x 2 models) to well under
an hour on an H200, going by the 1.59 s per fp32 step of an n = 500 job; ``--n 500`` is a
study job's exact shape and takes about five times as long.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time

import numpy as np
import pandas as pd
import torch
from stir_pairwise_vs_shared import add_model_arguments, build_pair
from torch.utils.flop_counter import FlopCounterMode

from finetune_invariance.finetuning_metrics import layer_metrics
from devices import device_peak, synchronize

from finetune_invariance.inversion import invert
from finetune_invariance.inversion_settings import PRECISIONS
from finetune_invariance.layers import LayeredModel
from finetune_invariance.stir import pair_similarity

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--iterations", type=int, default=25, help="inversion steps of the accuracy runs")
    parser.add_argument("--seeds", type=int, default=3, help="super-noise seeds 0..k-1 (spread and differences)")
    parser.add_argument("--timing-steps", type=int, default=5, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per precision (best is kept)")
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, default=None, help="default: fp32 bf16, and tf32 on CUDA"
    )
    parser.add_argument(
        "--peak-tflops",
        nargs="+",
        default=[],
        metavar="PRECISION=TFLOPS",
        help="device peak per precision on CUDA, e.g. bf16=989.4 tf32=494.7 (default: known H100/H200 peaks)",
    )
    parser.add_argument(
        "--memory-budget-gb", type=float, default=None, help="invert's memory_budget (default: its own)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (the spread compares seeds)")
    if args.precisions is None:
        args.precisions = ["fp32", "bf16", "tf32"] if args.device.startswith("cuda") else ["fp32", "bf16"]
    if "fp32" not in args.precisions:
        args.precisions.insert(0, "fp32")  # the reference
    return args


def seconds_per_step(model: LayeredModel, images: torch.Tensor, args: argparse.Namespace) -> dict[str, float]:
    """Per precision, the best seconds per step over the repeats.

    Every precision is warmed up first; then the repeats run the precisions in turn, so a
    slow spell of a shared machine does not fall on one precision only.
    """

    def run(precision: str, iterations: int) -> float:
        synchronize(images.device)
        start = time.perf_counter()
        invert(
            model,
            images,
            seed=0,
            iterations=iterations,
            precision=precision,
            progress=False,
            memory_budget=memory_budget(args),
        )
        synchronize(images.device)
        return time.perf_counter() - start

    for precision in args.precisions:
        run(precision, 1)
    timings = {precision: [] for precision in args.precisions}
    for _ in range(args.repeats):
        for precision in args.precisions:
            timings[precision].append((run(precision, args.timing_steps) - run(precision, 0)) / args.timing_steps)
    return {precision: min(seconds) for precision, seconds in timings.items()}


def memory_budget(args: argparse.Namespace) -> int | None:
    return None if args.memory_budget_gb is None else int(args.memory_budget_gb * 2**30)


def flops_per_step(model: LayeredModel, images: torch.Tensor) -> int:
    """FLOPs of one inversion step (forward + backward, all layers), as 1 minus 0 iterations."""

    def count(iterations: int) -> int:
        with FlopCounterMode(display=False) as counter:
            invert(model, images, seed=0, iterations=iterations, progress=False)
        return counter.get_total_flops()

    return count(1) - count(0)


def parse_peaks(items: list[str]) -> dict[str, float]:
    peaks = {}
    for item in items:
        precision, _, value = item.partition("=")
        if precision not in PRECISIONS or not value:
            raise SystemExit(f"--peak-tflops {item!r}: expected PRECISION=TFLOPS with PRECISION one of {PRECISIONS}")
        peaks[precision] = float(value)
    return peaks


def accuracy_runs(
    p: LayeredModel, f: LayeredModel, images: torch.Tensor, args: argparse.Namespace
) -> tuple[dict, dict, dict]:
    """Per (precision, seed): both STIR matrices (flattened), forgetting and mean inversion loss per layer."""
    stir, forgetting, loss = {}, {}, {}
    for precision, seed in itertools.product(args.precisions, range(args.seeds)):
        settings = dict(
            seed=seed,
            iterations=args.iterations,
            precision=precision,
            progress=False,
            memory_budget=memory_budget(args),
        )
        inv_p, inv_f = invert(p, images, **settings), invert(f, images, **settings)
        pairs = pair_similarity(p, f, images, inv_p, inv_f, names=("p", "f"))
        stir[precision, seed] = pairs.sort_values(["reference", "reference_layer", "target_layer"])["stir"].to_numpy()
        metrics = layer_metrics(pairs, pretrained="p", finetuned="f")
        forgetting[precision, seed] = (
            metrics[metrics["metric"] == "forgetting"].sort_values("layer")["value"].to_numpy()
        )
        loss[precision, seed] = torch.cat([inv_p.losses, inv_f.losses], dim=1).mean(dim=1).cpu().numpy()
    return stir, forgetting, loss


def largest_difference(values: dict, precision: str, seeds: int) -> np.ndarray:
    """Elementwise max over seeds of |value(precision) - value(fp32)|."""
    return np.max([np.abs(values[precision, s] - values["fp32", s]) for s in range(seeds)], axis=0)


def mean_over_seeds(values: dict, precision: str, seeds: int) -> np.ndarray:
    return np.mean([values[precision, s] for s in range(seeds)], axis=0)


def seed_spread(values: dict, seeds: int) -> np.ndarray:
    """Elementwise max over pairs of seeds of |value(s) - value(s')| in fp32."""
    pairs = itertools.combinations(range(seeds), 2)
    return np.max([np.abs(values["fp32", a] - values["fp32", b]) for a, b in pairs], axis=0)


def markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    given_peaks = parse_peaks(args.peak_tflops)
    p, f = build_pair(args)
    images = torch.rand(args.n, 3, args.image_size, args.image_size, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
    print(f"model {args.model}, {p.num_layers} layers, n={args.n}, {args.image_size} px, device {where}\n")

    step_seconds = seconds_per_step(p, images, args)
    flops = flops_per_step(p, images)
    stir, forgetting, loss = accuracy_runs(p, f, images, args)

    stir_spread = seed_spread(stir, args.seeds).max()
    forgetting_spread = seed_spread(forgetting, args.seeds)
    rows = []
    for precision in args.precisions:
        seconds = step_seconds[precision]
        peak, peak_source = device_peak(device, precision, given_peaks)
        rows.append(
            {
                "precision": precision,
                "s/step": f"{seconds:.4g}",
                "speed vs fp32": f"{step_seconds['fp32'] / seconds:.2f}x",
                "max abs dSTIR": f"{largest_difference(stir, precision, args.seeds).max():.2e}",
                "STIR seed spread": f"{stir_spread:.2e}",
                "max abs dforgetting": f"{largest_difference(forgetting, precision, args.seeds).max():.2e}",
                "forgetting seed spread": f"{forgetting_spread.max():.2e}",
                "mean loss": f"{mean_over_seeds(loss, precision, args.seeds).mean():.4f}",
                "TFLOP/s": f"{flops / seconds / 1e12:.4g}",
                "of peak": f"{flops / seconds / peak:.1%}",
                "peak": f"{peak / 1e12:.4g} TFLOP/s ({peak_source})",
            }
        )
    summary = pd.DataFrame(rows)
    print(f"{flops / 1e9:.4g} GFLOP per step (one model, all layers); accuracy from {args.iterations} iterations")
    print(markdown(summary))
    per_layer = pd.DataFrame({"layer": range(len(forgetting_spread))})
    for precision in args.precisions:
        per_layer[f"loss {precision}"] = [f"{v:.4f}" for v in mean_over_seeds(loss, precision, args.seeds)]
    per_layer["forgetting fp32"] = [f"{v:.4f}" for v in mean_over_seeds(forgetting, "fp32", args.seeds)]
    for precision in args.precisions[1:]:
        per_layer[f"forgetting {precision}"] = [f"{v:.4f}" for v in mean_over_seeds(forgetting, precision, args.seeds)]
        per_layer[f"max abs dforgetting {precision}"] = [
            f"{v:.2e}" for v in largest_difference(forgetting, precision, args.seeds)
        ]
    per_layer["forgetting seed spread"] = [f"{v:.2e}" for v in forgetting_spread]
    print()
    print(markdown(per_layer))
    print(f"\ncommand: python benchmarks/inversion_precision.py {shlex.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
