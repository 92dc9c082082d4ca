"""How strong the planted robustness relation is, against how far the planted series reaches.

The ``planted_robustness`` control (docs/controls.md) places 20 models between the
robustness run's source (t = 0) and its last checkpoint (t = 1), t evenly spaced over
[0, t_max] in a shuffled order (``controls.PLANTED_T_MAX``), and asks the paper's test of
the headline hypothesis to find the relation between the forgetting spread and the mean
corrupted accuracy. This script measures the planted Pearson r for each ``--t-max`` on a
finished run's own source, checkpoint, stored inversions and corrupted sample, with the
code the ``control_robustness`` job runs:

    python benchmarks/planted_effect_size.py results --t-max 0.2 0.4 0.6 0.8 1.0

Prints r and the Bonferroni p of the headline per t_max (the paper's effect: r = 0.78 and
0.88). The defaults are the embedded study's robustness run.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a finished run's results folder")
    parser.add_argument("--run", default="glyphs64/glyphs10/classification/default", help="the robustness run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="the STIR seeds of its inversions")
    parser.add_argument("--image-size", type=int, default=32, help="the source's input size (config model.image_size)")
    parser.add_argument("--t-max", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0])
    args = parser.parse_args(argv)

    import torch

    from finetune_invariance import inversion
    from finetune_invariance.study import cifar_c, controls, models
    from finetune_invariance.study.claims.evidence import number
    from finetune_invariance.study.hypotheses import correlate_hypotheses
    from finetune_invariance.study.paper import HEADLINE
    from finetune_invariance.study.vocabulary import Run

    torch.set_num_threads(1)
    run = Run.parse(args.run)
    checkpoints = sorted((args.results / "finetune" / run.path / "checkpoints").glob("epoch_*.safetensors"))
    if not checkpoints:
        raise SystemExit(f"{args.results / 'finetune' / run.path}: no epoch checkpoints (is it a dynamics run?)")
    start, _ = models.load_checkpoint(args.results / "sources" / f"{run.source}.safetensors", map_location="cpu")
    end, _ = models.load_checkpoint(checkpoints[-1], map_location="cpu")
    inversions = [
        inversion.Inversions.load(
            args.results / "inversions" / run.dataset / f"seed{seed}" / f"{run.source}.safetensors"
        )
        for seed in args.seeds
    ]
    sample = cifar_c.load_sets(args.results / "data" / "corrupted" / f"{run.dataset}.npz")
    print(f"{run.label}: source -> {checkpoints[-1].name}, {controls.PLANTED_EPOCHS} models per series")
    for t_max in args.t_max:
        metrics, robust, _ = controls.measure_planted_series(
            start, end, inversions, sample, controls.planted_run(run), args.image_size, "cpu", t_max=t_max
        )
        headline = correlate_hypotheses(metrics, robust, only=[HEADLINE]).iloc[0]
        print(
            f"t_max {t_max:.2f}: r = {number(headline['r'])}, Bonferroni p = {number(headline['p_bonferroni'], '.2g')}"
        )


if __name__ == "__main__":
    main()
