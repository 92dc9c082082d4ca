"""The ``finetune-invariance`` command line: the metrics of one (pretrained, finetuned) pair.

::

    finetune-invariance compare PRETRAINED FINETUNED --images IMAGES --out DIR

A model is a timm model name, a weights file of a timm ViT (``--architecture``) or a
Hugging Face ``transformers`` ViT folder (:mod:`.model_loading`); the images are a folder
of image files or a ``.npy``/``.npz`` array, fitted to the models' input size
(:mod:`.image_loading`). ``compare`` runs :func:`.stir.compare` and
:mod:`.finetuning_metrics` with one progress bar over every inversion still to do and
keeps the inversions in a cache (:mod:`.inversion_cache`), so a rerun, or another
finetuned model against the same pretrained one, reuses them. It writes to DIR:

- ``pair_similarity.parquet``, ``layer_metrics.parquet``, ``invariance_flow.parquet``:
  the library's tables (schemas in the README);
- ``layer_metrics.md``: forgetting, learning and CKA divergence per layer, mean ± sd
  over seeds (also printed);
- ``flow_matrix.csv``: the seed-mean invariance-flow matrix (rows pretrained layers i,
  columns finetuned layers j);
- ``layer_profiles.png``/``.pdf`` and ``invariance_flow.png``/``.pdf`` (:mod:`.plots`);
- ``comparison.json``: what was compared, with which settings, and which inversions were
  reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from . import finetuning_metrics, stir, tables
from .atomic import atomic_path
from .image_loading import load_images
from .inversion import DEFAULT_ITERATIONS, DEFAULT_STEP_SIZE, PRECISIONS
from .inversion_cache import InversionCache, default_directory
from .model_loading import LoadedModel, WeightsUnavailableError, load_model, parse_model_args

#: The paper's number of test images per seed.
DEFAULT_N_IMAGES = 500
DEFAULT_SEEDS = (0, 1)
NAMES = ("pretrained", "finetuned")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-invariance",
        description="Invariance metrics of finetuning (forgetting, learning, CKA divergence, invariance flow).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare",
        help="compare a finetuned model with its pretrained model",
        description=(
            "Invert both models through every layer for each seed, compute STIR in both directions, and write "
            "forgetting, learning, CKA divergence and the invariance-flow matrix with their figures."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = compare.add_argument
    add("pretrained", help="timm model name, timm weights file (.safetensors/.npz/.pth/.bin) or transformers folder")
    add("finetuned", help="the same kinds as PRETRAINED")
    add("--images", required=True, type=Path, help="folder of image files, or .npy/.npz (uint8, or floats in [0, 1])")
    add("--out", required=True, type=Path, help="folder for the tables and figures")
    add("--n", type=int, default=DEFAULT_N_IMAGES, help="images used, a fixed random sample (the paper: 500)")
    add("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="STIR seeds")
    add("--iterations", type=int, default=DEFAULT_ITERATIONS, help="inversion steps")
    add("--step-size", type=float, default=DEFAULT_STEP_SIZE, help="inversion step size")
    add("--precision", choices=PRECISIONS, default="fp32", help="inversion precision (fp32: the published recipe)")
    add("--architecture", help="timm model name a weights file is loaded into (default: PRETRAINED if a timm name)")
    add("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="timm.create_model keyword, repeatable")
    add("--mean", type=float, nargs="+", help="input normalisation mean per channel, replacing the models' own")
    add("--std", type=float, nargs="+", help="input normalisation std per channel, with --mean")
    add("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    add("--memory-budget-gb", type=float, help="inversion memory (default: half the free GPU memory, 4 GiB on a CPU)")
    add("--cache", type=Path, default=default_directory(), help="inversion cache folder")
    add("--no-cache", action="store_true", help="neither reuse nor keep inversions")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a problem with the inputs ends it with its message and status 1, not a traceback."""
    args = _parser().parse_args(argv)
    try:
        return _compare(args)
    except (ValueError, OSError, WeightsUnavailableError) as err:
        print(f"finetune-invariance {args.command}: {err}", file=sys.stderr)
        return 1


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _load_pair(args: argparse.Namespace) -> tuple[LoadedModel, LoadedModel]:
    model_args = parse_model_args(args.model_arg)
    architecture = args.architecture
    if architecture is None and not Path(args.pretrained).exists():
        architecture = args.pretrained  # a finetuned weights file is most often the pretrained architecture
    settings = dict(architecture=architecture, model_args=model_args, mean=args.mean, std=args.std)
    pretrained, finetuned = (load_model(spec, **settings) for spec in (args.pretrained, args.finetuned))
    if (pretrained.image_size, pretrained.channels) != (finetuned.image_size, finetuned.channels):
        raise ValueError(
            f"the pretrained model takes {pretrained.channels} x {pretrained.image_size} images but the finetuned one "
            f"{finetuned.channels} x {finetuned.image_size}: STIR compares both on the same images "
            "(give --model-arg img_size=... to build them at one size)"
        )
    return pretrained, finetuned


def _compare(args: argparse.Namespace) -> int:
    device = _device(args.device)
    pretrained, finetuned = _load_pair(args)
    images = load_images(args.images, pretrained.image_size, pretrained.channels, n=args.n)
    cache = None if args.no_cache else InversionCache(args.cache)
    pairs = stir.compare(
        pretrained.layered.to(device),
        finetuned.layered.to(device),
        images.to(device),
        args.seeds,
        names=NAMES,
        iterations=args.iterations,
        step_size=args.step_size,
        precision=args.precision,
        memory_budget=None if args.memory_budget_gb is None else int(args.memory_budget_gb * 2**30),
        cache=cache,
        progress=not args.no_progress,
    )
    metrics = finetuning_metrics.layer_metrics(pairs, *NAMES)
    flow = finetuning_metrics.invariance_flow(pairs, *NAMES)
    summary = finetuning_metrics.summarize_over_seeds(metrics)
    _write_outputs(args, pretrained, finetuned, len(images), pairs, metrics, flow, summary, cache)
    print(_summary_markdown(summary), end="")
    if cache is not None:
        print(f"inversions: {cache.reused} reused, {cache.stored} computed (cache {cache.directory})")
    print(f"written to {args.out}")
    return 0


def _summary_markdown(summary: pd.DataFrame) -> str:
    """Layers as rows, 'mean ± sd' of each metric as columns (in the figures' order)."""
    from . import plots  # matplotlib only once there is something to draw, not for --help or a bad argument

    cells = summary.assign(cell=[f"{m:.3f} ± {s:.3f}" for m, s in zip(summary["mean"], summary["std"])])
    table = cells.pivot(index="layer", columns="metric", values="cell")
    table = table[[m for m in plots.METRIC_LABELS if m in table.columns]].reset_index()
    return tables.markdown_table(table)


def _write_outputs(
    args: argparse.Namespace,
    pretrained: LoadedModel,
    finetuned: LoadedModel,
    n_images: int,
    pairs: pd.DataFrame,
    metrics: pd.DataFrame,
    flow: pd.DataFrame,
    summary: pd.DataFrame,
    cache: InversionCache | None,
) -> None:
    from . import plots

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    tables.write_table(pairs, out / "pair_similarity.parquet", tables.PAIR_SIMILARITY)
    tables.write_table(metrics, out / "layer_metrics.parquet", tables.LAYER_METRICS)
    tables.write_table(flow, out / "invariance_flow.parquet", tables.INVARIANCE_FLOW)
    with atomic_path(out / "layer_metrics.md") as tmp:
        tmp.write_text(_summary_markdown(summary))
    matrix = finetuning_metrics.flow_matrix(flow)
    with atomic_path(out / "flow_matrix.csv") as tmp:
        matrix.to_csv(tmp)
    pair = f"{pretrained.description} → {finetuned.description}"
    plots.plot_layer_profiles(summary, out / "layer_profiles.png", pair)
    plots.plot_flow_matrix(
        matrix, len(args.seeds), out / "invariance_flow.png", f"{pretrained.description}\n→ {finetuned.description}"
    )
    record = {
        "pretrained": pretrained.description,
        "finetuned": finetuned.description,
        "images": str(args.images),
        "n_images": n_images,
        "image_size": list(pretrained.image_size),
        "seeds": list(args.seeds),
        "iterations": args.iterations,
        "step_size": args.step_size,
        "precision": args.precision,
        "cache": None if cache is None else {"folder": str(cache.directory), "reused": cache.reused,
                                              "computed": cache.stored},
    }
    with atomic_path(out / "comparison.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
