"""Hand-made tables for the claims' tests, and a one-line way to read a claim's verdict.

Most tables describe a 13-layer model (the paper's depth, so paper layer l is layer l)
with three seeds whose values are a profile plus -0.01, 0 and +0.01: every seed sd is
exactly 0.01, and a difference counts only if it exceeds that.
"""

from __future__ import annotations

import numpy as np

from finetune_invariance.study import claims
from finetune_invariance.study.vocabulary import Run

L = 13  # layers 0..12
SPREAD = 0.01
OFFSETS = np.array([-SPREAD, 0.0, SPREAD])
IMAGENET, CIFAR, SCRATCH = "imagenet", "cifar100", "scratch"
C10 = "cifar10"


def run(source: str, task: str = "classification", dataset: str = C10, variant: str = "default") -> Run:
    return Run(source, dataset, task, variant)


IMAGENET_CLS, IMAGENET_REC = run(IMAGENET), run(IMAGENET, "reconstruction")
#: The (source, dataset) of the controls' identical copy, read where the tables hold one.
IDENTICAL_COPY = (IMAGENET, C10)


def seeded(profile, offsets=OFFSETS) -> np.ndarray:
    """(seed, epoch, layer) values: the profile (layers, or epoch x layer) plus each seed's offset."""
    array = np.asarray(profile, dtype=np.float64)
    array = array[None, :] if array.ndim == 1 else array
    return array[None] + np.asarray(offsets)[:, None, None]


def flat(value: float, n: int = L) -> np.ndarray:
    return np.full(n, value)


def with_layers(profile: np.ndarray, changes: dict[int, float]) -> np.ndarray:
    out = np.array(profile, dtype=np.float64)
    for layer, value in changes.items():
        out[layer] = value
    return out


def profiles(learning, forgetting, cka=None) -> dict[str, np.ndarray]:
    return {
        "learning": np.asarray(learning, dtype=float),
        "forgetting": np.asarray(forgetting, dtype=float),
        "cka_divergence": np.asarray(flat(0.02, len(learning)) if cka is None else cka, dtype=float),
    }


def evaluate(study_tables, claim: str, imagenet_source: str = IMAGENET, variant_optimizers=None) -> tuple[str, str]:
    """The verdict and evidence of one claim on these tables."""
    row = verdict_row(study_tables, claim, imagenet_source, variant_optimizers)
    return row["verdict"], row["evidence"]


def verdict_row(study_tables, claim: str, imagenet_source: str = IMAGENET, variant_optimizers=None):
    identical_copy = IDENTICAL_COPY if "control_layer_metrics" in study_tables else None
    df = claims.evaluate_claims(study_tables, imagenet_source, variant_optimizers, identical_copy=identical_copy)
    return df.set_index("claim").loc[claim]
