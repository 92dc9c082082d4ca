"""The controls' real measurements the mutation tests read, and the script that makes them.

``python tests/study/control_fixture.py`` measures every model control of
:mod:`finetune_invariance.study.control_plan` on the scale model's shipped source
(workflow/resources/glyphs64_source.safetensors) with the embedded config's STIR settings
(24 test images of glyphs10 at the source's input size, 24 iterations, seeds 0 and 1), through the code the
workflow's ``control_stir`` jobs run (:func:`finetune_invariance.study.controls.measure_controls`),
and writes ``fixtures/control_images.npy`` (the images, uint8) and ``fixtures/control_pairs.parquet``
(the ``control_pair_similarity`` rows of both seeds). tests/study/test_control_mutations.py
checks that the code still gives these tables for seed 0; rerun this script when the
source, the controls or the STIR code change (about a minute on one core).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "workflow/resources/glyphs64_source.safetensors"
DATA = Path(__file__).resolve().parent / "fixtures"
IMAGES, PAIRS = DATA / "control_images.npy", DATA / "control_pairs.parquet"
SEEDS = (0, 1)
RECIPE = dict(iterations=24, step_size=0.5, memory_budget=2**30, precision="fp32")  # config.yaml's stir


def stir_images():
    """The 24 glyphs10 test images the fixture was measured on, as float32 NCHW in [0, 1]."""
    import torch

    return torch.from_numpy(np.load(IMAGES)).permute(0, 3, 1, 2).float() / 255


def measure(seed: int, images=None):
    """The ``control_pair_similarity`` rows of every model control for one seed."""
    import torch

    from finetune_invariance.inversion import invert
    from finetune_invariance.study import control_plan, controls, models

    torch.set_num_threads(1)
    source, _ = models.load_checkpoint(SOURCE)
    images = stir_images() if images is None else images
    stored = invert(source, images, seed=seed, iterations=RECIPE["iterations"], progress=False)
    specs = control_plan.control_specs(None, None, len(source.backbone.blocks))
    return controls.measure_controls(specs, source, stored, seed, RECIPE)


def main() -> None:
    import pandas as pd
    import torch

    from finetune_invariance.study import data, models, synthetic, tables

    DATA.mkdir(exist_ok=True)
    test_images = synthetic.make_splits("glyphs10", 0, n_train=10, n_test=24)["test"][0]
    size = models.load_checkpoint(SOURCE)[0].image_size  # the source's input size, as the study resizes
    resized = data.resize_to_model(torch.from_numpy(test_images).permute(0, 3, 1, 2).float(), size)
    np.save(IMAGES, resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    pairs = pd.concat([measure(seed) for seed in SEEDS], ignore_index=True)
    tables.write_table(pairs, PAIRS, tables.CONTROL_PAIR_SIMILARITY)
    print(f"wrote {IMAGES} and {PAIRS} ({len(pairs)} rows)")


if __name__ == "__main__":
    main()
