"""Section 4.1, effects of the finetuning task: the ImageNet source's classification and
reconstruction runs of each finetune dataset, at their analysed checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, Run
from .evidence import (
    ALPHA,
    EARLY_LAYERS,
    INITIAL_LAYERS,
    LATER_LAYERS,
    NotMeasured,
    PaperLayers,
    SeedStats,
    StudyTables,
    at_layer,
    collect,
    depth_of,
    exceeds_at_every_layer,
    layer_stats,
    per_seed_mean,
    seed_stats,
)
from .inference import equivalence_interval
from .registry import Finding, claim

FLAT_SHARE = 0.25  # "constant while the other steadily changes": it moves at most a quarter as much as the other
MIN_TREND_LAYERS = 3  # a "steady" trend spans at least three consecutive layers (two steps)
ALMOST_ZERO = 0.1  # "almost 0" for a metric on [0, 1]: at most a tenth of its range
SIMILAR_MARGIN = 0.5  # "similarly to the later layers": equivalent within ± half the later layers' value
POSITION_TOLERANCE = 1  # a layer position the paper reads off its plot: one paper layer either side
DIP_LAYER = 5  # "decrease up to layer 5 and then start to increase"
RECONSTRUCTION_TREND_START, CLASSIFICATION_TREND_START = 3, 5  # "from layer 3" / "from layer 5 onwards"

_SEED_RULE = "by more than the larger seed sd"
_CI = f"{100 * (1 - 2 * ALPHA):.0f}% CI"


def _classification_runs(study: StudyTables) -> dict[Run, pd.DataFrame]:
    runs = study.imagenet_runs("layer_metrics", CLASSIFICATION)
    if not runs:
        raise NotMeasured(f"no classification run of the ImageNet source '{study.imagenet_source}'")
    return runs


def _both_tasks(study: StudyTables) -> list[tuple[Run, pd.DataFrame, Run, pd.DataFrame]]:
    """(classification run, its rows, reconstruction run, its rows) per finetune dataset."""
    classification = study.imagenet_runs("layer_metrics", CLASSIFICATION)
    reconstruction = study.imagenet_runs("layer_metrics", RECONSTRUCTION)
    pairs = []
    for run, rows in classification.items():
        other = Run(run.source, run.dataset, RECONSTRUCTION, run.variant)
        if other in reconstruction:
            pairs.append((run, rows, other, reconstruction[other]))
    return collect(
        pairs,
        f"finetune dataset with classification and reconstruction runs of the ImageNet source "
        f"'{study.imagenet_source}'",
    )


# --- "Learning and forgetting capture different phenomena" -------------------------------


def _steady_window(flat: pd.DataFrame, moving: pd.DataFrame, direction: int) -> tuple[list[int], float, float] | None:
    """The widest window of MIN_TREND_LAYERS or more consecutive layers (:func:`layer_stats`
    tables) where ``moving``'s seed mean steps in ``direction`` (+1 up, -1 down) at every
    layer, by a total beyond the seed sd at the window's ends, while ``flat``'s seed mean
    ranges over at most FLAT_SHARE of that total: (layers, total change, flat range)."""
    layers = list(moving.index)
    best = None
    for i in range(len(layers)):
        for j in range(i + MIN_TREND_LAYERS - 1, len(layers)):
            window = layers[i : j + 1]
            path = moving.loc[window, "mean"] * direction
            if not (path.diff().dropna() > 0).all():
                break  # no longer window from this layer is steady either
            change = float(path.iloc[-1] - path.iloc[0])
            spread = max(moving.loc[window[0], "sd"], moving.loc[window[-1], "sd"])
            flat_range = float(flat.loc[window, "mean"].max() - flat.loc[window, "mean"].min())
            if change > spread and flat_range <= FLAT_SHARE * change and (best is None or len(window) > len(best[0])):
                best = (window, change * direction, flat_range)
    return best


def _pattern_text(found: tuple[list[int], float, float] | None, flat: str, moving: str) -> str:
    if found is None:
        return "none"
    window, change, flat_range = found
    return f"layers {window[0]}-{window[-1]} ({moving} {change:+.3f}, {flat} range {flat_range:.3f})"


@claim(
    "4.1",
    statement="Learning and forgetting capture different phenomena: finetuning for reconstruction, there are "
    "layers where learning is constant while forgetting steadily increases, and layers where forgetting is "
    "constant while learning steadily decreases.",
    statistic="seed-mean learning and forgetting per layer of the ImageNet source's reconstruction runs; windows "
    f"of {MIN_TREND_LAYERS} or more consecutive layers where one metric changes at every step in one direction, "
    "by a total beyond the larger seed sd at the window's ends, while the other ranges over at most "
    f"{FLAT_SHARE} of that total",
    threshold="a window with learning constant and forgetting rising, and a window with forgetting constant and "
    "learning falling, every dataset",
    paper_value="one layer range of each kind (their layer numbers are lost in the paper's text)",
)
def reconstruction_learning_and_forgetting_diverge(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in study.imagenet_runs("layer_metrics", RECONSTRUCTION).items():
        learning, forgetting = layer_stats(rows, "learning"), layer_stats(rows, "forgetting")
        rising = _steady_window(learning, forgetting, +1)
        falling = _steady_window(forgetting, learning, -1)
        findings.append(
            Finding(
                rising is not None and falling is not None,
                f"{run.label}: learning constant while forgetting rises: "
                f"{_pattern_text(rising, 'learning', 'forgetting')}; forgetting constant while learning falls: "
                f"{_pattern_text(falling, 'forgetting', 'learning')}",
                (run,),
            )
        )
    return collect(findings, f"reconstruction run of the ImageNet source '{study.imagenet_source}'")


# --- "Representational similarity does not imply shared invariance" --------------------------


@claim(
    "4.1",
    statement="Finetuned for classification, learning and forgetting are moderate at the initial layers, "
    "decrease up to layer 5 and then increase, reaching values slightly above those of the initial layers.",
    statistic="per metric (learning, forgetting) of the ImageNet source's classification runs: the layer of "
    "the lowest seed mean, the per-seed mean over paper layers 0-1, the highest seed mean of paper layers 7-12",
    threshold=f"the lowest layer within paper layers {DIP_LAYER - POSITION_TOLERANCE}-{DIP_LAYER + POSITION_TOLERANCE}, "
    f"the initial layers above it {_SEED_RULE}, the highest later layer above the initial layers, both metrics, "
    "every dataset",
    paper_value="lowest at layer 5; later layers slightly above the initial ones",
)
def classification_profile_dips_then_rises(study: StudyTables) -> list[Finding]:
    findings = []
    around = PaperLayers.around(DIP_LAYER, POSITION_TOLERANCE)
    for run, rows in _classification_runs(study).items():
        depth = depth_of(rows)
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            stats = layer_stats(rows, metric)
            lowest = int(stats["mean"].idxmin())
            initial = seed_stats(rows, metric, INITIAL_LAYERS.layers(depth))
            later = stats.loc[LATER_LAYERS.layers(depth), "mean"]
            peak = int(later.idxmax())
            holds &= (
                lowest in around.layers(depth)
                and initial.exceeds(at_layer(stats, lowest))
                and later[peak] > initial.mean
            )
            parts.append(
                f"{metric}: lowest {at_layer(stats, lowest)} at layer {lowest}, initial layers {initial}, "
                f"highest later layer {at_layer(stats, peak)} at layer {peak}"
            )
        described = "; ".join(r.describe(depth) for r in (around, INITIAL_LAYERS, LATER_LAYERS))
        findings.append(Finding(holds, f"{run.label} ({described}): " + "; ".join(parts), (run,)))
    return findings


@claim(
    "4.1",
    statement="In the early layers CKA divergence is almost 0 while learning and forgetting are moderate: "
    "representational similarity does not imply shared invariance.",
    statistic="per-seed mean over paper layers 1-6 of learning, forgetting and CKA divergence, ImageNet source's "
    "classification runs",
    threshold=f"CKA divergence <= {ALMOST_ZERO} (almost 0); learning and forgetting each > {ALMOST_ZERO} and above "
    f"CKA divergence {_SEED_RULE}, every dataset",
    paper_value="CKA divergence almost 0 in the early layers, learning and forgetting moderate (Fig. 1)",
)
def cka_misses_early_invariance_change(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in _classification_runs(study).items():
        depth = depth_of(rows)
        layers = EARLY_LAYERS.layers(depth)
        cka = seed_stats(rows, "cka_divergence", layers)
        holds, parts = cka.mean <= ALMOST_ZERO, [f"CKA divergence {cka}"]
        for metric in ("learning", "forgetting"):
            stats = seed_stats(rows, metric, layers)
            holds &= stats.mean > ALMOST_ZERO and stats.exceeds(cka)
            parts.append(f"{metric} {stats}")
        findings.append(Finding(holds, f"{run.label} ({EARLY_LAYERS.describe(depth)}): " + ", ".join(parts), (run,)))
    return findings


# --- "Earlier layers do change" ----------------------------------------------------------------


@claim(
    "4.1",
    statement="The initial layers (0,1) also learn and forget invariances similarly to the later layers "
    "(classification).",
    statistic="per seed, the mean of learning (and of forgetting) over paper layers 0-1 minus that over paper "
    f"layers 7-12, ImageNet source's classification runs; the {_CI} (Student t) of the mean difference",
    threshold=f"equivalence (TOST at {ALPHA}): the interval inside ± {SIMILAR_MARGIN} × the later layers' mean, "
    "both metrics, every dataset; undefined with fewer than two seeds",
    paper_value="moderate values at layers 0-1, later layers slightly above them (Fig. 1)",
)
def initial_layers_change_like_later(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in _classification_runs(study).items():
        depth = depth_of(rows)
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            initial = per_seed_mean(rows, metric, INITIAL_LAYERS.layers(depth))
            later = per_seed_mean(rows, metric, LATER_LAYERS.layers(depth))
            difference = initial - later
            margin = SIMILAR_MARGIN * abs(later.mean())
            low, high = equivalence_interval(difference.to_numpy(), ALPHA)
            holds &= -margin < low and high < margin
            parts.append(
                f"{metric} initial {SeedStats.of(initial)} vs later {SeedStats.of(later)}: difference "
                f"{difference.mean():+.3f}, {_CI} [{low:+.3f}, {high:+.3f}] vs ±{margin:.3f}"
            )
        findings.append(
            Finding(
                holds,
                f"{run.label} ({INITIAL_LAYERS.describe(depth)}; {LATER_LAYERS.describe(depth)}): " + "; ".join(parts),
                (run,),
            )
        )
    return findings


# --- "Transferring to a new task can require learning new invariances" -------------------------


@claim(
    "4.1",
    statement="For the reconstruction task, the learning metric is higher in every layer than for classification.",
    statistic="per layer: seed-mean learning, ImageNet source's reconstruction run − its classification run, "
    "per dataset",
    threshold=f"> 0 {_SEED_RULE}, at every layer, for every dataset",
    paper_value="higher in every layer (Fig. 1)",
)
def reconstruction_learns_more(study: StudyTables) -> list[Finding]:
    findings = []
    for classification_run, classification, reconstruction_run, reconstruction in _both_tasks(study):
        holds, text = exceeds_at_every_layer(
            layer_stats(reconstruction, "learning"), layer_stats(classification, "learning")
        )
        findings.append(
            Finding(
                holds,
                f"{classification_run.source} → {classification_run.dataset}: reconstruction − classification "
                f"learning, {text}",
                (classification_run, reconstruction_run),
            )
        )
    return findings


# --- "Transferring to a lower-level task can require forgetting in earlier layers" -------------


def trend_start(stats: pd.DataFrame) -> int:
    """Where the rising trend of a per-layer profile (:func:`.evidence.layer_stats`) starts:
    the last layer whose seed mean is within the seed spread of the lowest seed mean. Every
    later layer is above the minimum by more than the spread; the last layer means the
    profile has no rising trend."""
    lowest = stats["mean"].idxmin()
    at_minimum = stats["mean"] - stats.loc[lowest, "mean"] <= np.maximum(stats["sd"], stats.loc[lowest, "sd"])
    return int(stats.index[at_minimum].max())


@claim(
    "4.1",
    statement="Reconstruction starts the increasing trend of forgetting from layer 3, classification from layer "
    "5: forgetting grows at earlier layers for the lower-level task.",
    statistic="trend start of seed-mean forgetting across layers: the last layer within the seed sd of the lowest "
    "one (every later layer is above that minimum by more than the seed sd), ImageNet source's runs of both tasks",
    threshold=f"reconstruction's start within paper layers {RECONSTRUCTION_TREND_START - POSITION_TOLERANCE}-"
    f"{RECONSTRUCTION_TREND_START + POSITION_TOLERANCE}, classification's within paper layers "
    f"{CLASSIFICATION_TREND_START - POSITION_TOLERANCE}-{CLASSIFICATION_TREND_START + POSITION_TOLERANCE}, "
    "reconstruction's before classification's, every dataset",
    paper_value="reconstruction from layer 3, classification from layer 5 (Fig. 1)",
)
def reconstruction_forgetting_rises_earlier(study: StudyTables) -> list[Finding]:
    findings = []
    expected = {
        RECONSTRUCTION: PaperLayers.around(RECONSTRUCTION_TREND_START, POSITION_TOLERANCE),
        CLASSIFICATION: PaperLayers.around(CLASSIFICATION_TREND_START, POSITION_TOLERANCE),
    }
    for classification_run, classification, reconstruction_run, reconstruction in _both_tasks(study):
        depth = depth_of(classification)
        rows = {RECONSTRUCTION: reconstruction, CLASSIFICATION: classification}
        starts = {task: trend_start(layer_stats(rows[task], "forgetting")) for task in rows}
        holds = starts[RECONSTRUCTION] < starts[CLASSIFICATION] and all(
            starts[task] in expected[task].layers(depth) for task in rows
        )
        findings.append(
            Finding(
                holds,
                f"{classification_run.source} → {classification_run.dataset}: forgetting rises from "
                + " and ".join(f"layer {starts[task]} ({task}; {expected[task].describe(depth)})" for task in rows)
                + f" of 0-{depth}",
                (classification_run, reconstruction_run),
            )
        )
    return findings
