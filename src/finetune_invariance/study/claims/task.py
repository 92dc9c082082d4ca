"""Section 4.1, effects of the finetuning task: the ImageNet source's classification and
reconstruction runs of each dataset it was finetuned on, at their analysed checkpoints.

The settings of a claim are the ImageNet source's datasets (the study's roster): on each,
the runs of the tasks the sentence names must be measured, or the setting is unmeasured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..statistics import pearson
from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, Run
from .evidence import (
    ALL_LAYERS,
    ALPHA,
    EARLY_LAYERS,
    INITIAL_LAYERS,
    LATER_LAYERS,
    STRONG_R,
    NotMeasured,
    Outcome,
    PaperLayers,
    SeedStats,
    StudyTables,
    all_of,
    at_layer,
    combine,
    decide,
    exceeds_at_every_layer,
    layer_stats,
    measure,
    number,
    per_seed_mean,
    seed_profile,
    seed_stats,
)
from .inference import equivalence_interval, spearman
from .registry import Finding, claim

FLAT_SHARE = 0.25  # "constant while the other steadily changes": it moves at most a quarter as much as the other
MIN_TREND_LAYERS = 3  # a "steady" trend spans at least three consecutive layers (two steps)
ALMOST_ZERO = 0.1  # "almost 0" for a metric on [0, 1]: at most a tenth of its range; "moderate": above it
SIMILAR_MARGIN = 0.5  # "similarly to the later layers": equivalent within ± half the later layers' value
SLIGHTLY_ABOVE = SIMILAR_MARGIN  # "slightly above": above, by at most the margin of "similarly" (half the value)
CLEAR_TREND = STRONG_R  # "decrease" / "increase" across layers: Spearman's rho beyond ±0.7 (as for clean accuracy)
POSITION_TOLERANCE = 1  # a layer position the paper reads off its plot: one paper layer either side
DIP_LAYER = 5  # "decrease up to layer 5 and then start to increase"
RECONSTRUCTION_TREND_START, CLASSIFICATION_TREND_START = 3, 5  # "from layer 3" / "from layer 5 onwards"

_SEED_RULE = "by more than the larger seed sd"
_CI = f"{100 * (1 - 2 * ALPHA):.0f}% CI"
_NEEDS_SEEDS = "fewer than two seeds: the seed spread, and so the seed rule, is undefined"


def _imagenet_runs(study: StudyTables, dataset: str, *tasks: str) -> tuple[Run, ...]:
    return tuple(Run(study.imagenet_source, dataset, task) for task in tasks)


def _per_dataset(study: StudyTables, tasks: tuple[str, ...], evaluate) -> list[Finding]:
    """One finding per dataset of the ImageNet source: ``evaluate(*runs)`` of its runs of
    ``tasks``, unmeasured where one of them lacks rows."""
    findings = []
    for dataset in study.imagenet_datasets():
        runs = _imagenet_runs(study, dataset, *tasks)
        label = runs[0].label if len(runs) == 1 else f"{study.imagenet_source} → {dataset}"
        findings.append(measure(label, runs, lambda runs=runs: evaluate(*runs)))
    return findings


def require_spread(*profiles: pd.DataFrame) -> None:
    """:class:`NotMeasured` if a profile has fewer than two seeds (its seed sd is undefined)."""
    if any(len(profile) < 2 for profile in profiles):
        raise NotMeasured(_NEEDS_SEEDS)


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


#: The four ways one metric can stay constant while the other steadily changes: (flat, moving, direction).
DIVERGENCES = (
    ("learning", "forgetting", +1),  # the paper's first pattern (reconstruction)
    ("forgetting", "learning", -1),  # the paper's second pattern (reconstruction)
    ("learning", "forgetting", -1),
    ("forgetting", "learning", +1),
)
_DIVERGENCE_NAMES = {
    ("learning", "forgetting", +1): "learning constant while forgetting rises",
    ("forgetting", "learning", -1): "forgetting constant while learning falls",
    ("learning", "forgetting", -1): "learning constant while forgetting falls",
    ("forgetting", "learning", +1): "forgetting constant while learning rises",
}


def _metric_stats(study: StudyTables, run: Run) -> dict[str, pd.DataFrame]:
    """The run's :func:`.evidence.layer_stats` of learning and of forgetting (two seeds or more needed)."""
    stats = {}
    for metric in ("learning", "forgetting"):
        profile = study.profile(run, metric)
        require_spread(profile)
        stats[metric] = layer_stats(profile)
    return stats


def _windows(stats: dict[str, pd.DataFrame], kinds) -> dict[tuple[str, str, int], tuple | None]:
    """Per kind of divergence: its widest :func:`_steady_window` in :func:`_metric_stats` ``stats``, or None."""
    return {kind: _steady_window(stats[kind[0]], stats[kind[1]], kind[2]) for kind in kinds}


def _divergence_text(kind: tuple[str, str, int], window: tuple[list[int], float, float] | None) -> str:
    return f"{_DIVERGENCE_NAMES[kind]}: {_pattern_text(window, kind[0], kind[1])}"


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
    "learning falling, on every dataset of the ImageNet source",
    paper_value="one layer range of each kind (their layer numbers are lost in the paper's text)",
)
def reconstruction_learning_and_forgetting_diverge(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        found = _windows(_metric_stats(study, run), DIVERGENCES[:2])
        return all(w is not None for w in found.values()), "; ".join(
            _divergence_text(kind, window) for kind, window in found.items()
        )

    return _per_dataset(study, (RECONSTRUCTION,), evaluate)


@claim(
    "4.1",
    statement="In contrast, when the finetuning task matches the pretraining task (classification), learning and "
    "forgetting do not diverge: they move together across layers.",
    statistic="seed-mean learning and forgetting per layer of the ImageNet source's classification runs: the "
    "windows of the reconstruction claim in all four directions (one metric constant while the other steadily "
    "rises or falls), and Pearson r across layers of the two seed-mean profiles",
    threshold=f"no such window, and r >= {STRONG_R} (they move together), on every dataset of the ImageNet source",
    paper_value="the metrics behave differently only when the tasks differ (Section 4.1, Fig. 1; C.1: r = 0.97)",
)
def classification_learning_and_forgetting_agree(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        stats = _metric_stats(study, run)
        found = _windows(stats, DIVERGENCES)
        r, _ = pearson(stats["learning"]["mean"].to_numpy(), stats["forgetting"]["mean"].to_numpy())
        windows = [_divergence_text(kind, w) for kind, w in found.items() if w]
        holds = all_of([not windows, decide(r >= STRONG_R, r)])
        return holds, f"r across layers = {number(r)}; " + ("; ".join(windows) if windows else "no diverging window")

    return _per_dataset(study, (CLASSIFICATION,), evaluate)


# --- "Representational similarity does not imply shared invariance" --------------------------


def _trend(means: pd.Series) -> float:
    """Spearman's rho between layer and seed mean (NaN with fewer than 3 layers)."""
    return spearman(means.index, means.to_numpy()) if len(means) >= 3 else float("nan")


def _both_metrics(study: StudyTables, judge, *ranges: PaperLayers):
    """A run's evaluation by ``judge(run, metric)`` of learning and of forgetting, the
    evidence prefixed by the paper layer ranges it reads (mapped onto the run's depth)."""

    def evaluate(run: Run) -> tuple[Outcome, str]:
        depth = study.depth(run.source)
        holds, text = combine(lambda m=m: judge(run, m) for m in ("learning", "forgetting"))
        return holds, f"({'; '.join(layers.describe(depth) for layers in ranges)}) {text}"

    return evaluate


@claim(
    "4.1",
    statement="Finetuned for classification, learning and forgetting are moderate at the initial layers, "
    "decrease up to layer 5 and then increase, reaching values slightly above those of the initial layers.",
    statistic="per metric (learning, forgetting) of the ImageNet source's classification runs: the layer of the "
    "lowest seed mean; Spearman's rho between layer and seed mean from layer 0 to it and from it to the last "
    "layer; the per-seed means over paper layers 0-1 (initial) and at paper layer 12 (where the rise ends)",
    threshold=f"the lowest layer within paper layers {DIP_LAYER - POSITION_TOLERANCE}-"
    f"{DIP_LAYER + POSITION_TOLERANCE}; initial > {ALMOST_ZERO} (moderate) and above the lowest {_SEED_RULE}; "
    f"rho <= -{CLEAR_TREND} down to it and >= {CLEAR_TREND} after it; layer 12 above the initial layers "
    f"{_SEED_RULE} but by at most {SLIGHTLY_ABOVE} × their value (slightly), both metrics, every dataset",
    paper_value="lowest at layer 5; later layers slightly above the initial ones",
)
def classification_profile_dips_then_rises(study: StudyTables) -> list[Finding]:
    around = PaperLayers.around(DIP_LAYER, POSITION_TOLERANCE)

    def dips(run: Run, metric: str) -> tuple[Outcome, str]:
        depth = study.depth(run.source)
        profile = study.profile(run, metric)
        means = profile.mean(axis=0)
        lowest = int(means.idxmin())
        initial = seed_stats(profile, INITIAL_LAYERS.layers(depth))
        final = at_layer(profile, depth)
        falling, rising = _trend(means.loc[:lowest]), _trend(means.loc[lowest:])
        excess = final.mean - initial.mean
        holds = all_of(
            [
                lowest in around.layers(depth),
                decide(initial.mean > ALMOST_ZERO, initial.mean),
                initial.exceeds(at_layer(profile, lowest)),
                decide(falling <= -CLEAR_TREND, falling),
                decide(rising >= CLEAR_TREND, rising),
                final.exceeds(initial),
                decide(excess <= SLIGHTLY_ABOVE * initial.mean, excess),
            ]
        )
        return holds, (
            f"{metric}: lowest {at_layer(profile, lowest)} at layer {lowest}, initial layers {initial}, "
            f"rho {falling:+.2f} down to it and {rising:+.2f} after it, last layer {final} "
            f"({excess:+.3f} above the initial layers)"
        )

    return _per_dataset(study, (CLASSIFICATION,), _both_metrics(study, dips, around, INITIAL_LAYERS))


@claim(
    "4.1",
    statement="In the early layers CKA divergence is almost 0 while learning and forgetting are moderate: "
    "representational similarity does not imply shared invariance.",
    statistic="seed-mean CKA divergence at each of paper layers 1-6, and the per-seed means over those layers of "
    "learning, forgetting and CKA divergence, ImageNet source's classification runs",
    threshold=f"CKA divergence <= {ALMOST_ZERO} (almost 0) at every one of the layers; learning and forgetting "
    f"each > {ALMOST_ZERO} (moderate) and above CKA divergence {_SEED_RULE}, every dataset",
    paper_value="CKA divergence almost 0 in the early layers, learning and forgetting moderate (Fig. 1)",
)
def cka_misses_early_invariance_change(study: StudyTables) -> list[Finding]:
    def cka(run: Run) -> tuple[SeedStats, float]:
        profile = study.profile(run, "cka_divergence")
        layers = EARLY_LAYERS.layers(study.depth(run.source))
        return seed_stats(profile, layers), float(profile[layers].mean(axis=0).max())

    def almost_zero(run: Run) -> tuple[Outcome, str]:
        stats, highest = cka(run)
        return decide(highest <= ALMOST_ZERO, highest), f"CKA divergence {stats} (highest layer {highest:.3f})"

    def moderate(run: Run, metric: str) -> tuple[Outcome, str]:
        stats = seed_stats(study.profile(run, metric), EARLY_LAYERS.layers(study.depth(run.source)))
        return all_of([decide(stats.mean > ALMOST_ZERO, stats.mean), stats.exceeds(cka(run)[0])]), f"{metric} {stats}"

    def evaluate(run: Run) -> tuple[Outcome, str]:
        holds, text = combine(
            [lambda: almost_zero(run), lambda: moderate(run, "learning"), lambda: moderate(run, "forgetting")]
        )
        return holds, f"({EARLY_LAYERS.describe(study.depth(run.source))}) {text}"

    return _per_dataset(study, (CLASSIFICATION,), evaluate)


# --- "Earlier layers do change" ----------------------------------------------------------------


@claim(
    "4.1",
    statement="The initial layers (0,1) also learn and forget invariances similarly to the later layers "
    "(classification).",
    statistic="per seed, the mean of learning (and of forgetting) over paper layers 0-1 minus that over paper "
    f"layers 7-12, ImageNet source's classification runs; the {_CI} (Student t) of the mean difference",
    threshold=f"equivalence (TOST at {ALPHA}): the interval inside ± {SIMILAR_MARGIN} × the later layers' mean, "
    "both metrics, every dataset; not measured with fewer than two seeds (the interval is undefined)",
    paper_value="moderate values at layers 0-1, later layers slightly above them (Fig. 1)",
)
def initial_layers_change_like_later(study: StudyTables) -> list[Finding]:
    def similar(run: Run, metric: str) -> tuple[Outcome, str]:
        depth = study.depth(run.source)
        profile = study.profile(run, metric)
        initial = per_seed_mean(profile, INITIAL_LAYERS.layers(depth))
        later = per_seed_mean(profile, LATER_LAYERS.layers(depth))
        difference = initial - later
        margin = SIMILAR_MARGIN * abs(later.mean())
        low, high = equivalence_interval(difference.to_numpy(), ALPHA)
        return decide(-margin < low and high < margin, low, high), (
            f"{metric} initial {SeedStats.of(initial)} vs later {SeedStats.of(later)}: difference "
            f"{difference.mean():+.3f}, {_CI} [{number(low, '+.3f')}, {number(high, '+.3f')}] vs ±{margin:.3f}"
        )

    return _per_dataset(study, (CLASSIFICATION,), _both_metrics(study, similar, INITIAL_LAYERS, LATER_LAYERS))


# --- "Transferring to a new task can require learning new invariances" -------------------------


def _floor(study: StudyTables) -> pd.DataFrame:
    """(seed x layer) learning of the controls' identical copy: the value an unchanged layer gets."""
    return seed_profile(study.identical_copy_rows(), "learning", study.depth(study.identical_copy[0]))


@claim(
    "4.1",
    statement="New invariances are learned by both finetuned models, for classification and for reconstruction.",
    statistic="per seed, the mean over all layers (paper layers 0-12) of learning of the ImageNet source's runs of "
    "each task on the dataset of the controls' identical copy, and that of the identical copy (f = p: the floor "
    "an unchanged model gets, since STIR's inversion leaves a residual)",
    threshold=f"each task's learning above the floor {_SEED_RULE}; both tasks needed",
    paper_value="learning above 0 at every layer for both tasks (Fig. 1)",
)
def new_invariances_learned_by_both_tasks(study: StudyTables) -> list[Finding]:
    floor_profile = _floor(study)
    _, dataset = study.identical_copy
    findings = []
    for run in _imagenet_runs(study, dataset, CLASSIFICATION, RECONSTRUCTION):

        def evaluate(run: Run = run) -> tuple[Outcome, str]:
            profile = study.profile(run, "learning")
            layers = ALL_LAYERS.layers(study.depth(run.source))
            learned, floor = seed_stats(profile, layers), seed_stats(floor_profile, layers)
            return learned.exceeds(floor), f"learning {learned} vs identical-copy floor {floor} (all layers)"

        findings.append(measure(run.label, (run,), evaluate))
    return findings


@claim(
    "4.1",
    statement="For the reconstruction task, the learning metric is higher in every layer than for classification.",
    statistic="per layer: seed-mean learning, ImageNet source's reconstruction run − its classification run, "
    "per dataset",
    threshold=f"> 0 {_SEED_RULE}, at every layer (every layer of both runs present), for every dataset",
    paper_value="higher in every layer (Fig. 1)",
)
def reconstruction_learns_more(study: StudyTables) -> list[Finding]:
    def evaluate(classification: Run, reconstruction: Run) -> tuple[Outcome, str]:
        higher, lower = study.profile(reconstruction, "learning"), study.profile(classification, "learning")
        holds, text = exceeds_at_every_layer(higher, lower)
        return holds, f"reconstruction − classification learning, {text}"

    return _per_dataset(study, (CLASSIFICATION, RECONSTRUCTION), evaluate)


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
    "reconstruction's before classification's (at the same relative depth), every dataset",
    paper_value="reconstruction from layer 3, classification from layer 5 (Fig. 1)",
)
def reconstruction_forgetting_rises_earlier(study: StudyTables) -> list[Finding]:
    expected = {
        RECONSTRUCTION: PaperLayers.around(RECONSTRUCTION_TREND_START, POSITION_TOLERANCE),
        CLASSIFICATION: PaperLayers.around(CLASSIFICATION_TREND_START, POSITION_TOLERANCE),
    }

    def evaluate(classification: Run, reconstruction: Run) -> tuple[Outcome, str]:
        runs = {RECONSTRUCTION: reconstruction, CLASSIFICATION: classification}
        depth = study.depth(classification.source)
        profiles = {task: study.profile(run, "forgetting") for task, run in runs.items()}
        require_spread(*profiles.values())
        starts = {task: trend_start(layer_stats(profile)) for task, profile in profiles.items()}
        holds = starts[RECONSTRUCTION] < starts[CLASSIFICATION] and all(
            starts[task] in expected[task].layers(depth) for task in runs
        )
        return (
            holds,
            "forgetting rises from "
            + " and ".join(f"layer {starts[task]} ({task}; {expected[task].describe(depth)})" for task in runs)
            + f" of 0-{depth}",
        )

    return _per_dataset(study, (CLASSIFICATION, RECONSTRUCTION), evaluate)
