"""Section 4.2, effects of the pretraining dataset: the classification runs of each
finetune dataset from every source, at their analysed checkpoints.

The paper's comparison (Figs. 2, 3) puts three initialisations side by side on each
finetune dataset: the ImageNet source, a source pretrained on the other CIFAR dataset
(any source other than the ImageNet source and scratch here), and training from scratch.
A dataset is in the comparison when the study's roster has classification runs of two or
more sources on it; on each, the sources a sentence names must all be measured, or the
setting is unmeasured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial

import pandas as pd

from ..vocabulary import CLASSIFICATION, SCRATCH, Run
from .evidence import (
    ALL_LAYERS,
    ALPHA,
    EARLY_LAYERS,
    LATER_LAYERS,
    Outcome,
    PaperLayers,
    SeedStats,
    StudyTables,
    all_of,
    collect,
    combine,
    comparison,
    decide,
    exceeds_at_every_layer,
    measure,
    number,
    per_seed_mean,
)
from .inference import welch_p
from .registry import Finding, claim

SUBSTANTIAL_SHARE = 0.25  # "substantially lower": a quarter or more below the higher value, and significant

_SEED_RULE = "by more than the larger seed sd"
_WELCH = f"Welch's one-sided t-test across seeds at {ALPHA}"
_METRICS = ("learning", "forgetting")


def comparison_datasets(study: StudyTables) -> list[str]:
    """The finetune datasets with classification runs of two or more sources in the roster."""
    sources: dict[str, set[str]] = {}
    for run in study.roster_of(task=CLASSIFICATION):
        sources.setdefault(run.dataset, set()).add(run.source)
    return sorted(dataset for dataset, named in sources.items() if len(named) >= 2)


def _sources(study: StudyTables, dataset: str) -> dict[str, list[str]]:
    """The sources of a dataset's comparison by role: 'imagenet', 'other' (pretrained), 'scratch'."""
    present = sorted({run.source for run in study.roster_of(dataset=dataset, task=CLASSIFICATION)})
    return {
        "imagenet": [s for s in present if s == study.imagenet_source],
        "other": [s for s in present if s not in (study.imagenet_source, SCRATCH)],
        "scratch": [s for s in present if s == SCRATCH],
    }


_ROLE_NAMES = {
    "imagenet": "the ImageNet source",
    "other": "a source pretrained on another dataset (the paper's CIFAR10/100 pretraining)",
    "scratch": "training from scratch",
}


def _per_pair(
    study: StudyTables,
    roles: Iterable[str],
    pairs: Callable[[str, dict[str, list[str]]], Iterable[tuple[str, tuple[Run, ...], str]]],
    judge: Callable[[str, str, str], tuple[Outcome, str]],
    metrics: Sequence[str] = _METRICS,
) -> list[Finding]:
    """Per comparison dataset: one finding per pair of sources ``pairs(dataset, sources by
    role)`` yields as (label, runs, judged source), :func:`.evidence.combine` of
    ``judge(dataset, judged source, metric)`` over ``metrics``; and an unmeasured one per
    role the sentence names without a run there (a missing source never hides another
    pair's failure)."""
    findings = []
    for dataset in comparison_datasets(study):
        sources = _sources(study, dataset)
        for role in roles:
            if not sources[role]:
                findings.append(Finding(None, f"finetune {dataset}: no run of {_ROLE_NAMES[role]}"))
        for label, runs, judged in pairs(dataset, sources):
            evaluate = partial(combine, [partial(judge, dataset, judged, metric) for metric in metrics])
            findings.append(measure(f"finetune {dataset}, {label}", runs, evaluate))
    return collect(findings, "finetune dataset with classification runs of two or more sources")


def _role_pairs(sources: dict[str, list[str]], fixed: str, against: Sequence[str]) -> list[str]:
    """The sources of the roles ``against`` (in that order) that a dataset's comparison
    pairs with the source of the role ``fixed``; none where ``fixed`` has no run there."""
    return [source for role in against for source in sources[role]] if sources[fixed] else []


def _runs(dataset: str, *sources: str) -> tuple[Run, ...]:
    return tuple(Run(source, dataset, CLASSIFICATION) for source in sources)


def _per_seed(study: StudyTables, source: str, dataset: str, metric: str, layers: PaperLayers) -> SeedStats:
    run = Run(source, dataset, CLASSIFICATION)
    return SeedStats.of(per_seed_mean(study.profile(run, metric), layers.layers(study.depth(source))))


def _significantly_lower(higher: SeedStats, lower: SeedStats) -> tuple[Outcome, float]:
    p = welch_p(higher.values, lower.values)
    return decide(p < ALPHA, p), p


def _lower_share(share: float) -> str:
    """'12% lower' (or '3% higher' where the share is negative; 'undefined' where it is NaN)."""
    if pd.isna(share):
        return "share undefined: scratch's mean is not positive"
    return f"{share:.0%} lower" if share >= 0 else f"{-share:.0%} higher"


@claim(
    "4.2",
    statement="Models finetuned from pretrained sources (ImageNet and CIFAR pretraining) have substantially lower "
    "learning and forgetting in the early layers (1-6) than the model trained from scratch.",
    statistic="per seed, the mean over paper layers 1-6 (mapped onto each model's depth) of learning and of "
    "forgetting, per dataset: scratch vs each pretrained source",
    threshold=f"substantially lower: the pretrained source's seed mean at least {SUBSTANTIAL_SHARE:.0%} below "
    f"scratch's, and significantly ({_WELCH}), both metrics, every pair; the ImageNet source, another pretrained "
    "source and scratch all needed on every dataset of the comparison",
    paper_value="substantially lower for pretrained sources (Fig. 2)",
)
def pretrained_below_scratch_early(study: StudyTables) -> list[Finding]:
    def substantially_lower(dataset: str, source: str, metric: str) -> tuple[Outcome, str]:
        scratch = _per_seed(study, SCRATCH, dataset, metric, EARLY_LAYERS)
        pretrained = _per_seed(study, source, dataset, metric, EARLY_LAYERS)
        significant, p = _significantly_lower(scratch, pretrained)
        share = (scratch.mean - pretrained.mean) / scratch.mean if scratch.mean > 0 else float("nan")
        return all_of([significant, decide(share >= SUBSTANTIAL_SHARE, share)]), (
            f"{metric} {SCRATCH} {scratch} vs {source} {pretrained} ({_lower_share(share)}, Welch p = {number(p, '.2g')})"
        )

    def pairs(dataset: str, sources: dict[str, list[str]]):
        for source in _role_pairs(sources, "scratch", ("imagenet", "other")):
            yield f"{SCRATCH} vs {source} (paper layers 1-6)", _runs(dataset, source, SCRATCH), source

    return _per_pair(study, ("imagenet", "other", "scratch"), pairs, substantially_lower)


@claim(
    "4.2",
    statement="Even in later layers (7-12), learning and forgetting of the ImageNet-pretrained model are "
    "significantly lower than those of CIFAR pretraining or training from scratch.",
    statistic="per seed, the mean over paper layers 7-12 (mapped onto each model's depth) of learning and of "
    "forgetting, per dataset: the ImageNet source vs every other source (pretrained on another dataset, and scratch)",
    threshold=f"every other source above the ImageNet source significantly ({_WELCH}), both metrics; another "
    "pretrained source and scratch both needed on every dataset of the comparison",
    paper_value="significantly lower for ImageNet (Fig. 2)",
)
def imagenet_lower_in_later_layers(study: StudyTables) -> list[Finding]:
    imagenet = study.imagenet_source

    def significantly_higher(dataset: str, other: str, metric: str) -> tuple[Outcome, str]:
        lower = _per_seed(study, imagenet, dataset, metric, LATER_LAYERS)
        higher = _per_seed(study, other, dataset, metric, LATER_LAYERS)
        significant, p = _significantly_lower(higher, lower)
        return significant, f"{metric} {other} {higher} vs {imagenet} {lower} (Welch p = {number(p, '.2g')})"

    def pairs(dataset: str, sources: dict[str, list[str]]):
        for other in _role_pairs(sources, "imagenet", ("other", "scratch")):
            yield f"{other} vs {imagenet} (paper layers 7-12)", _runs(dataset, imagenet, other), other

    return _per_pair(study, ("imagenet", "other", "scratch"), pairs, significantly_higher)


@claim(
    "4.2",
    statement="Training from scratch gives higher learning and forgetting than pretrained models across all layers.",
    statistic="per layer (per paper layer 0-12 where the models' depths differ): seed-mean learning and forgetting, "
    "scratch − each pretrained source, per dataset",
    threshold=f"> 0 {_SEED_RULE}, at every layer (every layer present), both metrics, every pair; the ImageNet "
    "source, another pretrained source and scratch all needed",
    paper_value="higher across all layers (Fig. 2)",
)
def scratch_higher_at_every_layer(study: StudyTables) -> list[Finding]:
    def higher(dataset: str, source: str, metric: str) -> tuple[Outcome, str]:
        holds, text = exceeds_at_every_layer(
            study.profile(Run(SCRATCH, dataset, CLASSIFICATION), metric),
            study.profile(Run(source, dataset, CLASSIFICATION), metric),
        )
        return holds, f"{metric}: {text}"

    def pairs(dataset: str, sources: dict[str, list[str]]):
        for source in _role_pairs(sources, "scratch", ("imagenet", "other")):
            yield f"{SCRATCH} − {source}", _runs(dataset, source, SCRATCH), source

    return _per_pair(study, ("imagenet", "other", "scratch"), pairs, higher)


@claim(
    "4.2",
    statement="Contrary to learning and forgetting, CKA divergence is higher with ImageNet pretrained weights than "
    "with the corresponding CIFAR pretrained weights.",
    statistic="per seed, the mean over all layers (paper layers 0-12) of learning, forgetting and CKA divergence, "
    "per dataset: the ImageNet source vs each source pretrained on another dataset (not scratch)",
    threshold=f"the other source above ImageNet in learning and in forgetting, and ImageNet above it in CKA "
    f"divergence, each {_SEED_RULE}; the ImageNet source and another pretrained source needed",
    paper_value="ImageNet: lower learning and forgetting, higher CKA divergence (Figs. 2, 3)",
)
def cka_orders_sources_oppositely(study: StudyTables) -> list[Finding]:
    imagenet = study.imagenet_source

    def ordered(dataset: str, other: str, metric: str) -> tuple[Outcome, str]:
        mine = _per_seed(study, imagenet, dataset, metric, ALL_LAYERS)
        theirs = _per_seed(study, other, dataset, metric, ALL_LAYERS)
        if metric == "cka_divergence":
            return comparison(mine, theirs, (f"{metric} {imagenet}", other))
        return comparison(theirs, mine, (f"{metric} {other}", imagenet))

    def pairs(dataset: str, sources: dict[str, list[str]]):
        for other in _role_pairs(sources, "imagenet", ("other",)):
            yield f"{imagenet} vs {other} (all layers)", _runs(dataset, imagenet, other), other

    return _per_pair(study, ("imagenet", "other"), pairs, ordered, (*_METRICS, "cka_divergence"))
