"""The paper's reported numbers and named analyses, for tables and claims that put this
run's values beside them.

Keys use the source and dataset names of ``config/paper.yaml`` (sources imagenet,
cifar10, cifar100, scratch; datasets cifar10, cifar100, eurosat, oxford_pets). A paper
value is shown only beside the run it was measured on: the same source, dataset and task,
with the default hyperparameters (never beside a variant).

The paper numbers layers 0..12 for its ViT-B/32 (depth 12, docs/method.md). For a model of
another depth D, a layer number l of the paper maps to ``round(l * D / 12)``
(:func:`scaled_layer`), and a selection of the k first (last) of the selectable layers
1..12 to the ``round(k * D / 12)`` first (last) of 1..D (:func:`scaled_count`), so the
miniature study asks the same questions of its smaller models, and sources of different
depths are compared layer by layer at the same relative depth (:func:`paper_position`
places a model's layer on the paper's axis, as the layer-profile figures draw it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .vocabulary import CLASSIFICATION, DEFAULT_VARIANT, RECONSTRUCTION, SCRATCH, Run

#: The depth of the paper's model (ViT-B/32): its layers are 0..12.
PAPER_DEPTH = 12


def scaled_layer(layer: int, depth: int) -> int:
    """The layer of a depth-``depth`` model that plays the role of the paper's ``layer``."""
    return round(layer * depth / PAPER_DEPTH)


def paper_position(layer, depth: int):
    """Where a depth-``depth`` model's ``layer`` sits on the paper's layer axis 0..12: its
    relative depth times 12 (the inverse of :func:`scaled_layer`, unrounded; works on
    numbers and on arrays or Series of layers)."""
    return layer * PAPER_DEPTH / depth


def scaled_count(k: int, depth: int) -> int:
    """How many of the selectable layers 1..depth play the role of the paper's k of 1..12
    (at least 1, at most depth - 1, as in the hypothesis family)."""
    return min(max(round(k * depth / PAPER_DEPTH), 1), max(depth - 1, 1))


@dataclass(frozen=True)
class PaperAccuracy:
    """Table 1: test accuracy of the finetuned model and of its pretrained source."""

    accuracy: float
    source_accuracy: float  # NaN where the paper gives none (training from scratch)


#: Table 1 (Appendix B), by (source, dataset), classification with the default hyperparameters.
TABLE1: dict[tuple[str, str], PaperAccuracy] = {
    ("imagenet", "cifar10"): PaperAccuracy(0.97, 0.51),
    ("imagenet", "cifar100"): PaperAccuracy(0.86, 0.51),
    ("cifar100", "cifar10"): PaperAccuracy(0.99, 0.92),
    ("scratch", "cifar10"): PaperAccuracy(0.98, float("nan")),
    ("cifar10", "cifar100"): PaperAccuracy(0.91, 0.98),
    ("scratch", "cifar100"): PaperAccuracy(0.92, float("nan")),
    ("imagenet", "eurosat"): PaperAccuracy(0.97, 0.51),
    ("imagenet", "oxford_pets"): PaperAccuracy(0.80, 0.51),
}

#: Appendix C.1: Pearson r across layers between learning and forgetting, by run.
LEARNING_FORGETTING_R: dict[tuple[str, str, str], float] = {
    ("imagenet", "cifar100", CLASSIFICATION): 0.97,
    ("imagenet", "cifar10", CLASSIFICATION): 0.97,
    ("imagenet", "cifar100", RECONSTRUCTION): 0.88,
    ("imagenet", "cifar10", RECONSTRUCTION): 0.86,
    ("cifar100", "cifar10", CLASSIFICATION): 0.98,
    ("cifar10", "cifar100", CLASSIFICATION): 0.99,
    (SCRATCH, "cifar10", CLASSIFICATION): 0.83,
    (SCRATCH, "cifar100", CLASSIFICATION): 0.84,
}


@dataclass(frozen=True)
class NamedHypothesis:
    """A robustness hypothesis the paper names (Section 4.4, Appendix E.1), described at
    the paper's depth: the aggregate across the ``k`` first or last of the selectable
    layers 1..12 of a per-layer combination of the metrics, with the paper's r (and p)
    by the corrupted test set's clean dataset (ImageNet source, classification)."""

    role: str
    description: str
    family: str
    combination: str
    aggregate: str
    side: str
    k: int
    r: Mapping[str, float]
    p_value: Mapping[str, float]


#: The headline: std of forgetting across layers 2-12 vs mean corrupted accuracy
#: (Section 4.4, Fig. 6; "passes the Bonferroni correction").
HEADLINE = NamedHypothesis(
    "headline",
    "std of forgetting across layers 2-12",
    "stir",
    "forgetting",
    "std",
    "last",
    11,
    {"cifar10": 0.78, "cifar100": 0.877},
    {"cifar10": 3.52e-18, "cifar100": 2.51e-16},
)

#: The best CKA-divergence aggregate the paper reports: std across layers 1-8.
CKA_HYPOTHESIS = NamedHypothesis(
    "cka",
    "std of CKA divergence across layers 1-8",
    "cka",
    "cka_divergence",
    "std",
    "first",
    8,
    {"cifar10": 0.69, "cifar100": 0.63},
    {},
)

NAMED_HYPOTHESES: tuple[NamedHypothesis, ...] = (HEADLINE, CKA_HYPOTHESIS)

#: The source of the paper's dynamics runs (ImageNet -> CIFAR10 / CIFAR100 classification).
DYNAMICS_SOURCE = "imagenet"


def is_paper_setting(run: Run) -> bool:
    """Whether the paper reports numbers for exactly this run: default hyperparameters."""
    return run.variant == DEFAULT_VARIANT


def table1_values(run: Run) -> PaperAccuracy:
    """The paper's Table 1 entry for ``run`` (NaNs where it has none)."""
    missing = PaperAccuracy(float("nan"), float("nan"))
    if not is_paper_setting(run) or run.task != CLASSIFICATION:
        return missing
    return TABLE1.get((run.source, run.dataset), missing)


def learning_forgetting_r(run: Run) -> float:
    """The paper's Appendix C.1 r for ``run``, NaN where it has none."""
    if not is_paper_setting(run):
        return float("nan")
    return LEARNING_FORGETTING_R.get((run.source, run.dataset, run.task), float("nan"))


def named_hypothesis_values(named: NamedHypothesis, run: Run) -> tuple[float, float]:
    """The paper's (r, p) of a named hypothesis for ``run``; NaNs where it reports none."""
    if not is_paper_setting(run) or run.source != DYNAMICS_SOURCE or run.task != CLASSIFICATION:
        return float("nan"), float("nan")
    return named.r.get(run.dataset, float("nan")), named.p_value.get(run.dataset, float("nan"))
