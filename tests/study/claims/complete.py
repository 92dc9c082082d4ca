"""A complete hand-made study in the paper's design, on which every registered claim holds:
the backbone of the tests that remove a setting, a layer, a seed or a value and check that
no claim naming it still holds.

Two finetune datasets (cifar10, cifar100); the ImageNet source finetuned for both tasks on
both; on each dataset a source pretrained on the other CIFAR dataset and scratch; a
20-epoch dynamics run of ImageNet -> cifar10 classification with robust accuracy, the
hypothesis family, its early windows, the forgetting monitor's picks; four 10-epoch
hyperparameter variants of it (three SGD, one Adam) measured by forgetting alone; the
controls' identical copy. 13 layers (the paper's depth), seeds around each profile with
noise of sd 0.01 whose mean over the seeds is exactly the profile.

The analysis tables (hypotheses, named hypotheses, early epochs, learning-forgetting
correlation) are computed by the study's own functions from the hand-made metrics, as the
workflow computes them.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from finetune_invariance.study import tables
from finetune_invariance.study.hypotheses import (
    correlate_hypotheses,
    early_epoch_correlation,
    headline_hypothesis,
    named_hypotheses,
    seed_mean_tables,
)
from finetune_invariance.study.layer_statistics import learning_forgetting_correlation
from finetune_invariance.study.paper import HEADLINE
from finetune_invariance.study.vocabulary import Run, analysed_rows

from ..conftest import invariance_flow_table, layer_metrics_table, robust_accuracy_table, table1_table

L = 13
IMAGENET, SCRATCH = "imagenet", "scratch"
DATASETS = ("cifar10", "cifar100")
OTHER_SOURCE = {"cifar10": "cifar100", "cifar100": "cifar10"}  # pretrained on the other CIFAR dataset
EPOCHS = 20  # the dynamics run's epochs; every static run is analysed at this epoch
VARIANT_EPOCHS = 10
OPTIMIZERS = {"default": "sgd", "lr_high": "sgd", "lr_low": "sgd", "augmented": "sgd", "adam": "adam"}
IDENTICAL_COPY = (IMAGENET, "cifar10")
DYNAMICS = Run(IMAGENET, "cifar10", "classification")
SHIPPED_SEEDS = (0, 1, 2)  # issue 26's embedded config: three STIR seeds

# --- seed-mean profiles over layers 0..12 ---------------------------------------------------

IMAGENET_CLS = {
    # moderate at layers 0-1, falling to layer 5, rising to slightly above layers 0-1 at 12
    "learning": [0.30, 0.28, 0.24, 0.20, 0.16, 0.12, 0.16, 0.22, 0.26, 0.30, 0.34, 0.37, 0.40],
    "forgetting": [0.27, 0.25, 0.22, 0.18, 0.14, 0.11, 0.15, 0.20, 0.24, 0.27, 0.31, 0.33, 0.36],
    # almost 0 in layers 1-6, higher later (above the CIFAR source's over all layers)
    "cka_divergence": [0.02, 0.02, 0.03, 0.03, 0.04, 0.05, 0.06, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45],
}
IMAGENET_REC = {
    # layers 3-6: learning constant while forgetting rises; layers 9-12: forgetting constant while learning falls
    "learning": [0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.55, 0.65, 0.80, 0.74, 0.68, 0.62],
    "forgetting": [0.10, 0.10, 0.10, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.70, 0.70, 0.70],
    "cka_divergence": list(np.linspace(0.05, 0.5, L)),
}
_CIFAR_LEARNING = np.array([0.44, 0.44, 0.45, 0.45, 0.46, 0.46, 0.47, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60])
CIFAR_CLS = {"learning": _CIFAR_LEARNING, "forgetting": 0.9 * _CIFAR_LEARNING, "cka_divergence": np.full(L, 0.05)}
_A = np.array([0.0, 0.8, -0.6, 0.4, -1.0, 0.2, 1.0, -0.4, 0.6, -0.8, 0.1, -0.2, 0.3])
_B = np.array([0.3, 0.5, -0.9, 0.1, -0.6, 0.7, 0.6, -0.8, 0.2, -0.3, 0.4, 0.2, -0.5])
SCRATCH_CLS = {"learning": 0.75 + 0.05 * _A, "forgetting": 0.70 + 0.05 * _B, "cka_divergence": np.full(L, 0.6)}
FLOOR = 0.03  # the identical copy's learning, forgetting (and CKA divergence 0)

# --- dynamics ---------------------------------------------------------------------------------

#: Later layers (7-12) of learning and forgetting scaled by this factor at epochs 1..20: a peak at epoch 3.
PEAK_FACTOR = np.array([1.2, 1.4, 1.5, 1.45, 1.35, 1.25, 1.15, 1.08, 1.03] + [1.0] * 11)
#: CKA divergence's later layers: a peak at epoch 5.
CKA_FACTOR = np.array([1.1, 1.2, 1.3, 1.4, 1.5, 1.4, 1.3, 1.2, 1.1] + [1.0] * 11)
VARIANT_FACTORS = {
    "lr_high": np.array([1.3, 1.6, 1.5, 1.35, 1.2, 1.1, 1.05, 1.02, 1.0, 1.0]),
    "lr_low": np.array([1.1, 1.2, 1.3, 1.4, 1.35, 1.25, 1.15, 1.1, 1.05, 1.0]),
    "augmented": np.array([1.25, 1.45, 1.4, 1.3, 1.2, 1.15, 1.1, 1.05, 1.0, 1.0]),
    "adam": np.array([1.1, 1.5, 1.2, 1.4, 1.05, 1.3, 1.0, 1.25, 1.15, 1.1]),
}
SEVERITY_OFFSETS = (0.2, 0.1, 0.0, -0.1, -0.2)
N_IMAGES = 200  # per corruption and severity; two corruptions


def seeds_around(means: np.ndarray, seeds, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
    """(seed, ...) values whose mean over the seeds is exactly ``means`` (noise of sd ``scale``)."""
    means = np.asarray(means, dtype=np.float64)
    if len(seeds) == 1:
        return means[None]
    noise = rng.normal(scale=scale, size=(len(seeds), *means.shape))
    return means[None] + noise - noise.mean(axis=0)


def dynamic_profiles(profiles: dict, factor: np.ndarray, cka_factor: np.ndarray | None) -> dict[str, np.ndarray]:
    """(epoch, layer) profiles: the static profile with its later layers scaled per epoch."""
    out = {}
    for metric, profile in profiles.items():
        scale = cka_factor if metric == "cka_divergence" else factor
        if scale is None:
            continue
        values = np.tile(np.asarray(profile, dtype=np.float64), (len(scale), 1))
        values[:, 7:] *= scale[:, None]
        out[metric] = values
    return out


def _layer_metrics(run: Run, profiles: dict[str, np.ndarray], epochs, seeds, rng) -> pd.DataFrame:
    values = {}
    for metric, means in profiles.items():
        means = np.atleast_2d(means)
        values[metric] = seeds_around(means, seeds, rng)
    return layer_metrics_table(values, run=run, epochs=epochs, seeds=seeds)


def _flow(below: bool, above: bool) -> np.ndarray:
    i, j = np.meshgrid(range(L), range(L), indexing="ij")
    flow = -0.1 * np.abs(i - j)
    if below:
        for row in range(7, 13):  # the deeper pretrained layers' invariances one layer earlier
            flow[row, row - 1] = 0.05
    if above:
        for row in range(0, 5):  # early-layer invariances one layer deeper
            flow[row, row + 1] = 0.05
    return flow


def _flow_table(run: Run, matrix: np.ndarray, seeds, rng) -> pd.DataFrame:
    values = seeds_around(matrix, seeds, rng)
    values[:, np.arange(L), np.arange(L)] = 0.0  # flow(i, i) = 0 by definition
    return invariance_flow_table(values, run=run, epoch=EPOCHS, seeds=seeds)


def _robust(run: Run, accuracy: np.ndarray, clean: np.ndarray) -> pd.DataFrame:
    """Every corruption at severity s has accuracy[e] + SEVERITY_OFFSETS[s] at epoch e."""
    per_epoch = {e + 1: [a + d for d in SEVERITY_OFFSETS] for e, a in enumerate(accuracy)}
    return robust_accuracy_table(per_epoch, run=run, clean={e + 1: c for e, c in enumerate(clean)}, n_images=N_IMAGES)


def _following(headline: pd.Series, rng: np.random.Generator, noisy_from: int) -> np.ndarray:
    """A mean corrupted accuracy affine in the headline (0.35..0.55), with noise of 0.01
    from epoch ``noisy_from`` on; rounded to whole inputs."""
    scaled = 0.35 + 0.2 * (headline - headline.min()) / (headline.max() - headline.min())
    noise = np.where(headline.index >= noisy_from, rng.normal(scale=0.01, size=len(headline)), 0.0)
    return np.round((scaled.to_numpy() + noise) * N_IMAGES) / N_IMAGES


def _unrelated(headline: pd.Series) -> np.ndarray:
    """A mean corrupted accuracy with r = 0 with the headline: a wave made orthogonal to it."""
    h = headline.to_numpy() - headline.mean()
    wave = np.sin(np.arange(len(h)) * 1.3)
    wave = wave - wave.mean()
    wave -= (wave @ h) / (h @ h) * h
    return 0.45 + 0.05 * wave / np.abs(wave).max()


def _headline(metrics: pd.DataFrame) -> pd.Series:
    forgetting = seed_mean_tables(metrics[metrics["metric"] == "forgetting"])["forgetting"]
    return headline_hypothesis(L).evaluate({"forgetting": forgetting})


@cache
def _complete(seeds: tuple[int, ...]) -> tuple[tuple[str, pd.DataFrame], ...]:
    rng = np.random.default_rng(25)
    metrics, flows, robust, table1 = [], [], [], {}
    for dataset in DATASETS:
        runs = {
            Run(IMAGENET, dataset, "classification"): IMAGENET_CLS,
            Run(IMAGENET, dataset, "reconstruction"): IMAGENET_REC,
            Run(OTHER_SOURCE[dataset], dataset, "classification"): CIFAR_CLS,
            Run(SCRATCH, dataset, "classification"): SCRATCH_CLS,
        }
        for run, profiles in runs.items():
            table1[run] = EPOCHS
            if run == DYNAMICS:
                continue
            metrics.append(_layer_metrics(run, profiles, (EPOCHS,), seeds, rng))
        for task in ("classification", "reconstruction"):
            run = Run(IMAGENET, dataset, task)
            flows.append(_flow_table(run, _flow(below=True, above=task == "reconstruction"), seeds, rng))

    # The dynamics run: every epoch 1..20, the analysed one (20) equal to the static profile.
    dynamics = _layer_metrics(
        DYNAMICS, dynamic_profiles(IMAGENET_CLS, PEAK_FACTOR, CKA_FACTOR), range(1, EPOCHS + 1), seeds, rng
    )
    metrics.append(dynamics)
    headline = _headline(dynamics)
    clean = 0.5 + 0.4 * (1 - np.exp(-np.arange(1, EPOCHS + 1) / 5))
    robust.append(_robust(DYNAMICS, _following(headline, rng, noisy_from=11), clean))

    # The variants: forgetting alone (the monitor), 10 epochs.
    for variant, factor in VARIANT_FACTORS.items():
        run = Run(IMAGENET, "cifar10", "classification", variant)
        table1[run] = VARIANT_EPOCHS
        profiles = dynamic_profiles({"forgetting": IMAGENET_CLS["forgetting"]}, factor, None)
        variant_metrics = _layer_metrics(run, profiles, range(1, VARIANT_EPOCHS + 1), seeds, rng)
        metrics.append(variant_metrics)
        variant_headline = _headline(variant_metrics)
        accuracy = _unrelated(variant_headline) if variant == "adam" else _following(variant_headline, rng, 99)
        robust.append(_robust(run, accuracy, np.linspace(0.6, 0.9, VARIANT_EPOCHS)))

    layer_metrics = tables.concat(metrics, tables.STUDY_LAYER_METRICS)
    robust_accuracy = tables.concat(robust, tables.ROBUST_ACCURACY)
    table1_accuracy = table1_table(table1)
    table1_accuracy["epochs"] = [table1[Run.from_row(row)] for _, row in table1_accuracy.iterrows()]

    family, early = [], []
    for run in sorted(table1):
        if run != DYNAMICS and run.variant == "default":
            continue
        run_metrics, run_robust = run.rows(layer_metrics), run.rows(robust_accuracy)
        only = None if run == DYNAMICS else [HEADLINE]
        correlated = correlate_hypotheses(run_metrics, run_robust, only=only)
        family.append(correlated)
        followed = named_hypotheses(correlated)["hypothesis"].unique()
        early.append(early_epoch_correlation(run_metrics, run_robust, followed))
    hypotheses = tables.concat(family, tables.HYPOTHESES)

    picks = pd.DataFrame(
        [
            {
                **DYNAMICS.context,
                "rule": rule,
                "epoch": epoch,
                "forgetting_spread": float(headline[epoch]),
                "clean_accuracy": float(clean[epoch - 1]),
                "mean_corrupted_accuracy": np.nan,
            }
            for rule, epoch in (
                ("max_forgetting_spread", 3),
                ("best_clean_accuracy", EPOCHS),
                ("best_corrupted_accuracy", 3),
            )
        ]
    )
    monitor = pd.DataFrame(
        [
            {
                **DYNAMICS.context,
                "step": step,
                "training_epochs": step / 10,
                "seed": seed,
                "layer": layer,
                "forgetting": IMAGENET_CLS["forgetting"][layer],
            }
            for step in (0, 5, 10, 20, 30)
            for seed in seeds
            for layer in range(L)
        ]
    )
    floor = _layer_metrics(
        DYNAMICS,
        {m: np.full(L, FLOOR if m != "cka_divergence" else 0.0) for m in ("learning", "forgetting", "cka_divergence")},
        (0,),
        seeds,
        rng,
    )
    control = floor.drop(columns=list(tables.STUDY_CONTEXT)).assign(control="identical_copy")

    analysed = analysed_rows(layer_metrics, table1_accuracy)
    study = {
        "layer_metrics": layer_metrics,
        "invariance_flow": tables.concat(flows, tables.STUDY_INVARIANCE_FLOW),
        "robust_accuracy": robust_accuracy,
        "hypotheses": hypotheses,
        "named_hypotheses": named_hypotheses(hypotheses),
        "early_epoch_correlation": tables.concat(early, tables.EARLY_EPOCH_CORRELATION),
        "learning_forgetting_correlation": learning_forgetting_correlation(analysed),
        "table1_accuracy": tables.conform(table1_accuracy, tables.TABLE1),
        "forgetting_monitor": tables.conform(monitor, tables.FORGETTING_MONITOR),
        "checkpoint_picks": tables.conform(picks, tables.CHECKPOINT_PICKS),
        "control_layer_metrics": tables.conform(control, tables.CONTROL_LAYER_METRICS),
    }
    return tuple(study.items())


def complete_study(seeds: tuple[int, ...] = SHIPPED_SEEDS) -> dict[str, pd.DataFrame]:
    """The complete study's tables (copies: a test may change them)."""
    return {stem: df.copy() for stem, df in _complete(tuple(seeds))}


#: What evaluate_claims needs beside the tables.
SETTINGS = {"imagenet_source": IMAGENET, "variant_optimizers": OPTIMIZERS, "identical_copy": IDENTICAL_COPY}
