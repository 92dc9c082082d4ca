"""How the linearly mapped control's learning depends on the inversion budget.

The ``linearly_mapped`` control (docs/controls.md) reads layers k..12 of the controls'
source through a fixed invertible, non-orthogonal linear map: the same invariances, so
learning must stay at the identical copy's floor. This script measures, for one STIR seed
of a finished run, the rise of the mapped side's learning over the identical copy's at
every layer, at each inversion budget given, with the study's own inversion and STIR code:

    python benchmarks/control_inversion_budget.py results --iterations 24 48 96

``results`` is a finished run's folder (it reads ``sources/<controls source>.safetensors``
and that source's stored inversions of ``--dataset``, seed ``--seed``, for their images).
Prints the floor and the rise per layer for each budget.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a finished run's results folder")
    parser.add_argument("--source", default="glyphs64", help="the controls' source (config controls.source)")
    parser.add_argument("--dataset", default="glyphs10", help="the dataset of its stored inversions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, nargs="+", default=[24, 48, 96])
    args = parser.parse_args(argv)

    import torch

    from finetune_invariance import finetuning_metrics, inversion, stir
    from finetune_invariance.study import control_plan, models

    torch.set_num_threads(1)
    source, _ = models.load_checkpoint(args.results / "sources" / f"{args.source}.safetensors", map_location="cpu")
    stored = inversion.Inversions.load(
        args.results / "inversions" / args.dataset / f"seed{args.seed}" / f"{args.source}.safetensors"
    )
    images = stored.targets
    depth = len(source.backbone.blocks)
    spec = {s.kind: s for s in control_plan.control_specs(None, None, depth)}[control_plan.LINEARLY_MAPPED]
    mapped = spec.build(source, images, seed=args.seed).finetuned

    def learning(pair) -> "torch.Tensor":
        metrics = finetuning_metrics.layer_metrics(pair, "pretrained", "finetuned")
        return metrics[metrics["metric"] == "learning"].set_index("layer")["value"]

    for iterations in args.iterations:
        settings = dict(seed=args.seed, iterations=iterations, progress=False)
        inverted_source = inversion.invert(source, images, **settings)
        inverted_mapped = inversion.invert(mapped, images, **settings)
        names = ("pretrained", "finetuned")
        floor = learning(stir.pair_similarity(source, source, images, inverted_source, inverted_source, names=names))
        rise = (
            learning(stir.pair_similarity(source, mapped, images, inverted_source, inverted_mapped, names=names))
            - floor
        )
        print(f"{iterations:4d} iterations  floor: {' '.join(f'{v:.3f}' for v in floor)}")
        print(f"{iterations:4d} iterations  rise:  {' '.join(f'{v:+.3f}' for v in rise)}", flush=True)


if __name__ == "__main__":
    main()
