"""Section 4.2, effects of the pretraining dataset: the classification runs of each
finetune dataset from every source, at their analysed checkpoints."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pandas as pd

from ..vocabulary import CLASSIFICATION, SCRATCH, Run
from .evidence import (
    EARLY_LAYERS,
    LATER_LAYERS,
    StudyTables,
    collect,
    comparison,
    depth_of,
    exceeds_at_every_layer,
    layer_stats,
    seed_stats,
)
from .registry import Finding, claim

_SEED_RULE = "by more than the larger seed sd"
NEEDS_SCRATCH_PAIR = "finetune dataset with classification runs from scratch and from a pretrained source"


def _classification_by_dataset(study: StudyTables) -> Iterator[tuple[str, dict[str, pd.DataFrame]]]:
    """(dataset, {source: analysed-checkpoint classification layer metrics})."""
    df = study.analysed("layer_metrics")
    for dataset, rows in df[df["task"] == CLASSIFICATION].groupby("dataset"):
        yield str(dataset), {str(source): part for source, part in rows.groupby("source")}


def _runs(dataset: str, *sources: str) -> tuple[Run, ...]:
    return tuple(Run(source, dataset, CLASSIFICATION) for source in sources)


def _scratch_pairs(study: StudyTables) -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """(dataset, pretrained source, its rows, scratch rows)."""
    for dataset, by_source in _classification_by_dataset(study):
        if SCRATCH in by_source:
            for source in sorted(set(by_source) - {SCRATCH}):
                yield dataset, source, by_source[source], by_source[SCRATCH]


def _metrics_exceed(
    higher: pd.DataFrame, lower: pd.DataFrame, layers: list[int], names: tuple[str, str], metrics: Iterable[str]
) -> tuple[bool, list[str]]:
    """Whether, for every metric, the per-seed mean over ``layers`` of ``higher`` exceeds that of ``lower``."""
    outcomes = [
        comparison(seed_stats(higher, m, layers), seed_stats(lower, m, layers), (f"{m} {names[0]}", names[1]))
        for m in metrics
    ]
    return all(h for h, _ in outcomes), [t for _, t in outcomes]


@claim(
    "4.2",
    statement="Models finetuned from pretrained sources have substantially lower learning and forgetting in the "
    "early layers (1-6) than the model trained from scratch.",
    statistic="per-seed mean over paper layers 1-6 of learning and of forgetting, per dataset and pretrained source",
    threshold=f"scratch exceeds the pretrained source {_SEED_RULE}, both metrics, every pair",
    paper_value="substantially lower for pretrained sources (Fig. 2)",
)
def pretrained_below_scratch_early(study: StudyTables) -> list[Finding]:
    findings = []
    for dataset, source, pretrained, scratch in _scratch_pairs(study):
        depth = depth_of(pretrained)
        holds, parts = _metrics_exceed(
            scratch, pretrained, EARLY_LAYERS.layers(depth), (SCRATCH, source), ("learning", "forgetting")
        )
        findings.append(
            Finding(
                holds,
                f"finetune {dataset} ({EARLY_LAYERS.describe(depth)}): " + "; ".join(parts),
                _runs(dataset, source, SCRATCH),
            )
        )
    return collect(findings, NEEDS_SCRATCH_PAIR)


@claim(
    "4.2",
    statement="Even in later layers (7-12), learning and forgetting of the ImageNet-pretrained model are lower "
    "than those of CIFAR pretraining or training from scratch.",
    statistic="per-seed mean over paper layers 7-12 of learning and of forgetting, per dataset: ImageNet source vs "
    "every other source (CIFAR-pretrained and scratch)",
    threshold=f"every other source exceeds the ImageNet source {_SEED_RULE}, both metrics",
    paper_value="significantly lower for ImageNet (Fig. 2)",
)
def imagenet_lower_in_later_layers(study: StudyTables) -> list[Finding]:
    findings = []
    for dataset, by_source in _classification_by_dataset(study):
        imagenet = by_source.get(study.imagenet_source)
        if imagenet is None:
            continue
        depth = depth_of(imagenet)
        for other in sorted(set(by_source) - {study.imagenet_source}):
            holds, parts = _metrics_exceed(
                by_source[other],
                imagenet,
                LATER_LAYERS.layers(depth),
                (other, study.imagenet_source),
                ("learning", "forgetting"),
            )
            findings.append(
                Finding(
                    holds,
                    f"finetune {dataset} ({LATER_LAYERS.describe(depth)}): " + "; ".join(parts),
                    _runs(dataset, study.imagenet_source, other),
                )
            )
    return collect(
        findings, f"finetune dataset with classification runs from '{study.imagenet_source}' and another source"
    )


@claim(
    "4.2",
    statement="Training from scratch gives higher learning and forgetting than pretrained models across all layers.",
    statistic="per layer: seed-mean learning and forgetting, scratch − pretrained source, per dataset",
    threshold=f"> 0 {_SEED_RULE}, at every layer, both metrics, every pair",
    paper_value="higher across all layers (Fig. 2)",
)
def scratch_higher_at_every_layer(study: StudyTables) -> list[Finding]:
    findings = []
    for dataset, source, pretrained, scratch in _scratch_pairs(study):
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            metric_holds, text = exceeds_at_every_layer(layer_stats(scratch, metric), layer_stats(pretrained, metric))
            holds &= metric_holds
            parts.append(f"{metric}: {text}")
        findings.append(
            Finding(
                holds,
                f"finetune {dataset}, {SCRATCH} − {source}: " + "; ".join(parts),
                _runs(dataset, source, SCRATCH),
            )
        )
    return collect(findings, NEEDS_SCRATCH_PAIR)


@claim(
    "4.2",
    statement="Contrary to learning and forgetting, CKA divergence is higher with ImageNet pretrained weights than "
    "with the corresponding CIFAR pretrained weights.",
    statistic="per-seed mean over all layers of learning, forgetting and CKA divergence, per dataset: ImageNet "
    "source vs each CIFAR-pretrained source (not scratch)",
    threshold=f"the CIFAR source exceeds ImageNet in learning and in forgetting, and ImageNet exceeds the CIFAR "
    f"source in CKA divergence, each {_SEED_RULE}",
    paper_value="ImageNet: lower learning and forgetting, higher CKA divergence (Figs. 2, 3)",
)
def cka_orders_sources_oppositely(study: StudyTables) -> list[Finding]:
    findings = []
    for dataset, by_source in _classification_by_dataset(study):
        imagenet = by_source.get(study.imagenet_source)
        if imagenet is None:
            continue
        layers = list(range(depth_of(imagenet) + 1))
        for other in sorted(set(by_source) - {study.imagenet_source, SCRATCH}):
            names = (other, study.imagenet_source)
            lower, lower_parts = _metrics_exceed(by_source[other], imagenet, layers, names, ("learning", "forgetting"))
            higher, higher_parts = _metrics_exceed(imagenet, by_source[other], layers, names[::-1], ("cka_divergence",))
            findings.append(
                Finding(
                    lower and higher,
                    f"finetune {dataset} (all layers): " + "; ".join(lower_parts + higher_parts),
                    _runs(dataset, study.imagenet_source, other),
                )
            )
    return collect(
        findings, f"finetune dataset with classification runs from '{study.imagenet_source}' and a pretrained source"
    )
