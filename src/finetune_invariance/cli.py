"""The ``finetune-invariance`` command line: the metrics of one (pretrained, finetuned) pair.

::

    finetune-invariance compare PRETRAINED FINETUNED --images IMAGES --out DIR

A model is a timm model name, a checkpoint of the study (its header names its
architecture), a weights file of a timm ViT (``--architecture``) or a Hugging Face
``transformers`` ViT folder (:mod:`.model_loading`); the images are a folder of image files
or a ``.npy``/``.npz`` array, fitted to the models' input size (:mod:`.image_loading`).

Before any weights are fetched, the local arguments are checked (the images and how many
there are, the folders written to, the model files, the timm names and tags), and timm
weights that are neither cached nor reachable fail at once. Before the first inversion,
``compare`` prints what the comparison costs: the inversions to do (those in the cache
are reused), an estimate of their time on this device from a short measured probe, and
what they add to the cache (``--dry-run`` stops there). It then runs :func:`.stir.compare`
and :mod:`.finetuning_metrics` with one progress bar over every inversion still to do and
keeps the inversions in the cache (:mod:`.inversion_cache`), so a rerun, or another
finetuned model against the same pretrained one, reuses them. It writes to DIR:

- ``pair_similarity.parquet``, ``layer_metrics.parquet``, ``invariance_flow.parquet``:
  the library's tables (schemas in docs/results.md);
- ``layer_metrics.md``: forgetting, learning and CKA divergence per layer, mean ± sd
  over seeds (also printed);
- ``flow_matrix.csv``: the seed-mean invariance-flow matrix (rows pretrained layers i,
  columns finetuned layers j);
- ``layer_profiles.png``/``.pdf`` and ``invariance_flow.png``/``.pdf`` (:mod:`.plots`);
- ``comparison.json``: what was compared, with which settings, and which inversions were
  reused.

A problem the user can fix (a bad argument or file, weights that cannot be obtained, not
enough memory) ends the command with one line naming it and status 1; ``--help`` imports
no torch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .inversion_cache import default_directory
from .inversion_settings import CPU_MEMORY_BUDGET, DEFAULT_ITERATIONS, DEFAULT_PRECISION, DEFAULT_STEP_SIZE, PRECISIONS

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from .inversion_cache import InversionCache
    from .model_loading import LoadedModel
    from .stir import InversionPlan

#: The paper's number of test images per seed.
DEFAULT_N_IMAGES = 500
DEFAULT_SEEDS = (0, 1)
NAMES = ("pretrained", "finetuned")
#: The cost probe: images and inversion steps timed for each model, per device type.
PROBE_IMAGES = {"cpu": 8, "cuda": 64}
PROBE_STEPS = 3


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
            "forgetting, learning, CKA divergence and the invariance-flow matrix with their figures. What it will "
            "cost (inversion steps, time on this device, cache size) is printed before it starts."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = compare.add_argument
    add(
        "pretrained",
        help="timm model name, checkpoint of the study, timm weights file (.safetensors/.npz/.pth/.bin) "
        "or transformers folder",
    )
    add("finetuned", help="the same kinds as PRETRAINED")
    add("--images", required=True, type=Path, help="folder of image files, or .npy/.npz (uint8, or floats in [0, 1])")
    add("--out", required=True, type=Path, help="folder for the tables and figures")
    add(
        "--n",
        type=int,
        help=f"images used, a fixed random sample (default: {DEFAULT_N_IMAGES}, the paper's, or all if fewer)",
    )
    add("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="STIR seeds")
    add("--iterations", type=int, default=DEFAULT_ITERATIONS, help="inversion steps")
    add("--step-size", type=float, default=DEFAULT_STEP_SIZE, help="inversion step size")
    add("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help="inversion precision (fp32: the published)")
    add("--architecture", help="timm model name a weights file is loaded into (default: PRETRAINED if a timm name)")
    add("--model-arg", action="append", default=[], metavar="KEY=VALUE", help="timm.create_model keyword, repeatable")
    add(
        "--resample",
        action="store_true",
        help="load a weights file trained at another image or patch size by resampling its embeddings",
    )
    add("--mean", type=float, nargs="+", help="input normalisation mean per channel, replacing the models' own")
    add("--std", type=float, nargs="+", help="input normalisation std per channel, with --mean")
    add("--device", default="auto", help="cpu, cuda, cuda:1, ... (auto: cuda if available)")
    add(
        "--memory-budget-gb",
        type=float,
        help=f"inversion memory (default: half the free GPU memory, {CPU_MEMORY_BUDGET / 2**30:g} GiB on a CPU)",
    )
    add("--cache", type=Path, default=default_directory(), help="inversion cache folder")
    add("--no-cache", action="store_true", help="neither reuse nor keep inversions")
    add("--dry-run", action="store_true", help="print what the comparison costs, then stop")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a problem the user can fix ends it with one line and status 1, not a traceback."""
    args = _parser().parse_args(argv)
    try:
        return _compare(args)
    except KeyboardInterrupt:
        kept = "" if args.no_cache else f"; the inversions finished so far are in the cache {args.cache}"
        print(f"finetune-invariance {args.command}: interrupted{kept}", file=sys.stderr)
        return 130
    except Exception as err:
        message = _known_error(err, args)
        if message is None:
            raise
        print(f"finetune-invariance {args.command}: {' '.join(message.split())}", file=sys.stderr)
        return 1


def _known_error(err: Exception, args: argparse.Namespace) -> str | None:
    """The message of an error the user can fix, or None for anything else (a bug keeps its traceback)."""
    model_loading = sys.modules.get(f"{__package__}.model_loading")  # not imported: none of its errors
    weights_errors = (model_loading.WeightsUnavailableError,) if model_loading else ()
    if type(err).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch here
        return (
            f"the device ran out of memory ({str(err).splitlines()[0]}); give a smaller --memory-budget-gb "
            f"(now {args.memory_budget_gb or 'half the free GPU memory'}) or fewer images (--n)"
        )
    if isinstance(err, (ValueError, OSError, *weights_errors)):
        return str(err)
    return None


# --- before anything is loaded ------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _check_writable(path: Path, what: str) -> None:
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, not a folder")
    existing = _nearest_existing(path)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path} cannot be written ({existing} is not writable)")


def _check_model_path(spec: str, what: str) -> None:
    """A ``spec`` that is a path (it exists, or names a folder) must exist and be readable."""
    path = Path(spec)
    if path.exists() and not os.access(path, os.R_OK):
        raise PermissionError(f"{what} {path} cannot be read")
    if not path.exists() and os.sep in spec:
        raise FileNotFoundError(f"{what} {path} does not exist")


def _check_model_argument(spec: str, what: str) -> None:
    """A weights file must exist; anything else is a timm name, which timm must know (with
    its pretrained tag), all without a download (after :func:`_check_model_path`)."""
    from .model_loading import WEIGHTS_SUFFIXES, check_pretrained_tag, check_timm_name

    path = Path(spec)
    if path.exists():
        return
    if path.suffix in WEIGHTS_SUFFIXES:
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        check_timm_name(spec)
    except ValueError as err:
        raise ValueError(f"{what} '{spec}' is neither a folder, a weights file nor a timm model name: {err}") from None
    check_pretrained_tag(spec)


def _n_images(args: argparse.Namespace) -> int:
    """The images a comparison uses: ``--n`` of those available (refused when more are asked for)."""
    from .image_loading import count_images

    if args.images.exists() and not os.access(args.images, os.R_OK):
        raise PermissionError(f"images {args.images} cannot be read")
    available = count_images(args.images)
    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    if args.n is not None and args.n > available:
        raise ValueError(
            f"--n {args.n} asks for more images than {args.images} holds ({available}): give --n {available} or "
            "fewer, or more images"
        )
    if args.n is None and available < DEFAULT_N_IMAGES:
        print(f"using all {available} images of {args.images} (the default --n is {DEFAULT_N_IMAGES}, the paper's)")
    return min(available, args.n or DEFAULT_N_IMAGES)


def _check_local_arguments(args: argparse.Namespace) -> int:
    """Everything that needs neither weights nor the network; returns the number of images used."""
    if len(set(args.seeds)) != len(args.seeds):
        raise ValueError(f"--seeds {args.seeds} repeats a seed, which would pose as an independent replicate")
    if args.iterations < 0 or args.step_size <= 0:
        raise ValueError(f"--iterations must be >= 0 and --step-size > 0, got {args.iterations} and {args.step_size}")
    n = _n_images(args)
    _check_writable(args.out, "--out")
    if not args.no_cache:
        _check_writable(args.cache, "--cache")
    models = ((args.pretrained, "PRETRAINED"), (args.finetuned, "FINETUNED"))
    for spec, what in models:  # paths first: a mistyped one is named before timm is imported
        _check_model_path(spec, what)
    for spec, what in models:
        _check_model_argument(spec, what)
    if args.architecture is not None:
        from .model_loading import check_pretrained_tag, check_timm_name

        check_timm_name(args.architecture)
        if "." in args.architecture:  # its tag's mean and std apply
            check_pretrained_tag(args.architecture)
    return n


# --- models ---------------------------------------------------------------------------------


def _load_pair(args: argparse.Namespace) -> tuple[LoadedModel, LoadedModel]:
    from .model_loading import checkpoint_model, load_model, parse_model_args

    model_args = parse_model_args(args.model_arg)
    default_architecture = None if Path(args.pretrained).exists() else args.pretrained  # most often the same

    def load(spec: str) -> LoadedModel:
        # A checkpoint of the study names its architecture; only an explicit --architecture must agree with it.
        architecture = args.architecture or (None if checkpoint_model(spec) else default_architecture)
        return load_model(
            spec, architecture=architecture, model_args=model_args, mean=args.mean, std=args.std, resample=args.resample
        )

    pretrained, finetuned = load(args.pretrained), load(args.finetuned)
    if (pretrained.image_size, pretrained.channels) != (finetuned.image_size, finetuned.channels):
        raise ValueError(
            f"the pretrained model takes {pretrained.channels} x {pretrained.image_size} images but the finetuned one "
            f"{finetuned.channels} x {finetuned.image_size}: STIR compares both on the same images "
            "(give --model-arg img_size=... to build them at one size)"
        )
    return pretrained, finetuned


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA device (give --device cpu)")
    return device


# --- what it costs --------------------------------------------------------------------------


def _seconds_per_image_step(layered: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> float:
    """One image through one layer for one step, timed on a few images: an inversion of
    1 + :data:`PROBE_STEPS` steps less one of 1 step (which leaves out what does not grow
    with the steps: the targets, the last evaluation), after an untimed one that pays for
    allocations and kernel choices."""
    import torch

    from .inversion import invert, inversion_steps

    probe = images[: PROBE_IMAGES.get(images.device.type, PROBE_IMAGES["cuda"])]
    budget = _memory_budget(args)

    def run(iterations: int) -> float:
        start = time.perf_counter()
        invert(layered, probe, seed=0, iterations=iterations, step_size=args.step_size, precision=args.precision,
               memory_budget=budget, progress=False)  # fmt: skip
        if probe.device.type == "cuda":
            torch.cuda.synchronize(probe.device)
        return time.perf_counter() - start

    run(1)
    one, more = run(1), run(1 + PROBE_STEPS)
    seconds = more - one if more > one else more / (1 + PROBE_STEPS)  # a busy machine can invert the two
    return seconds / inversion_steps(layered.num_layers, len(probe), PROBE_STEPS)


def _memory_budget(args: argparse.Namespace) -> int | None:
    """--memory-budget-gb in bytes (None: the inversion's default)."""
    return None if args.memory_budget_gb is None else int(args.memory_budget_gb * 2**30)


def _readable_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _readable_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.3g} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _cost(
    models: dict[str, torch.nn.Module],
    images: torch.Tensor,
    args: argparse.Namespace,
    cache: InversionCache | None,
    plan: InversionPlan,
) -> str:
    """What the comparison costs, as printed before it starts (``plan``: :func:`.stir.inversion_plan`'s)."""
    from .inversion_cache import entry_bytes

    todo, steps = plan.todo, plan.steps
    total = len(models) * len(args.seeds)
    layers = " and ".join(sorted({str(model.num_layers) for model in models.values()}))
    lines = [
        "what this comparison costs:",
        f"  inversions: {len(todo)} of {total} (model, seed) to compute, {total - len(todo)} from the cache; "
        f"each {layers} layers x {len(images)} images x {args.iterations} steps, "
        f"{sum(steps[name] for name, _ in todo):,} image-steps in all",
    ]
    if todo and args.iterations > 0:
        # Models of one structure (most often the two of a pair) are probed once.
        structures = {repr(models[name]): name for name, _ in todo}
        measured = {
            structure: _seconds_per_image_step(models[name], images, args) for structure, name in structures.items()
        }
        per_step = {name: measured[repr(model)] for name, model in models.items() if repr(model) in measured}
        seconds = sum(steps[name] * per_step[name] for name, _ in todo)
        probe = min(len(images), PROBE_IMAGES.get(images.device.type, PROBE_IMAGES["cuda"]))
        lines.append(
            f"  time on {images.device}: about {_readable_seconds(seconds)} for the inversions "
            f"({', '.join(f'{1e3 * s:.3g} ms' for s in measured.values())} per image-step, measured on {probe} "
            f"images x {PROBE_STEPS} steps; larger batches are often faster per image on a GPU), STIR and CKA add "
            "little"
        )
    if cache is None:
        lines.append("  cache: none (--no-cache): nothing is reused or kept")
    else:
        added = sum(entry_bytes(models[name].num_layers, images.shape) for name, _ in todo)
        lines.append(
            f"  cache: {cache.directory.absolute()} (--cache to move it, --no-cache to keep nothing); this adds "
            f"{len(todo)} entries, {_readable_bytes(added)}: delete the folder when done"
        )
    return "\n".join(lines)


# --- the comparison ----------------------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    from .inversion_cache import InversionCache

    n = _check_local_arguments(args)
    device = _device(args.device)
    pretrained, finetuned = _load_pair(args)

    from . import finetuning_metrics, stir
    from .image_loading import load_images

    images = load_images(args.images, pretrained.image_size, pretrained.channels, n=n).to(device)
    models = {NAMES[0]: pretrained.layered.to(device), NAMES[1]: finetuned.layered.to(device)}
    cache = None if args.no_cache else InversionCache(args.cache)
    recipe = dict(iterations=args.iterations, step_size=args.step_size, precision=args.precision)
    plan = stir.inversion_plan(models, images, args.seeds, cache=cache, **recipe)
    print(_cost(models, images, args, cache, plan), flush=True)
    if args.dry_run:
        return 0
    pairs = stir.compare(
        *models.values(),
        images,
        args.seeds,
        names=NAMES,
        memory_budget=_memory_budget(args),
        cache=cache,
        progress=not args.no_progress,
        **recipe,
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
    from . import plots, tables  # matplotlib only once there is something to draw

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
    from . import finetuning_metrics, plots, tables
    from .atomic import atomic_path

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
        "cache": (
            None
            if cache is None
            else {"folder": str(cache.directory), "reused": cache.reused, "computed": cache.stored}
        ),
    }
    with atomic_path(out / "comparison.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
