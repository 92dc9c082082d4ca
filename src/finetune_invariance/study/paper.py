"""The paper's reported numbers, for tables that put this run's values beside them.

Keys use the source and dataset names of ``config/paper.yaml`` (imagenet, cifar10,
cifar100, scratch; cifar10, cifar100, eurosat, oxford_pets); rows of other configs get NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from . import tables

#: Table 1 (Appendix B): final test accuracy of classification finetuning, by (source, dataset).
TABLE1_ACCURACY: dict[tuple[str, str], float] = {
    ("imagenet", "cifar10"): 0.97,
    ("imagenet", "cifar100"): 0.86,
    ("cifar100", "cifar10"): 0.99,
    ("scratch", "cifar10"): 0.98,
    ("cifar10", "cifar100"): 0.91,
    ("scratch", "cifar100"): 0.92,
    ("imagenet", "eurosat"): 0.97,
    ("imagenet", "oxford_pets"): 0.80,
}


def table1(histories: dict[tuple[str, str, str, str], pd.DataFrame]) -> pd.DataFrame:
    """Final-epoch test accuracy (or L1) per run, with the paper's Table 1 value beside it.

    ``histories`` maps (source, dataset, task, variant) to a TRAINING_HISTORY table.
    Returns :data:`tables.TABLE1`.
    """
    rows = []
    for (source, dataset, task, variant), history in sorted(histories.items()):
        last = history.loc[history["epoch"].idxmax()]
        paper = TABLE1_ACCURACY.get((source, dataset), float("nan")) if task == "classification" else float("nan")
        rows.append(
            {
                "source": source,
                "dataset": dataset,
                "task": task,
                "variant": variant,
                "epochs": int(last["epoch"]),
                "test_accuracy": last["test_accuracy"],
                "test_l1": last["test_l1"],
                "paper_accuracy": paper,
            }
        )
    return tables.concat([pd.DataFrame(rows)], tables.TABLE1)


@dataclass(frozen=True)
class PaperCorrelation:
    """A correlation the paper reports, keyed by the corrupted test set's clean dataset."""

    claim: str
    combination: str
    aggregate: str
    r: Mapping[str, float]
    p_value: Mapping[str, float]


PAPER_CORRELATIONS: tuple[PaperCorrelation, ...] = (
    PaperCorrelation(
        "std of forgetting across layers vs mean corrupted accuracy (Sec. 4.4; passes Bonferroni)",
        "forgetting",
        "std",
        {"cifar10": 0.78, "cifar100": 0.877},
        {"cifar10": 3.52e-18, "cifar100": 2.51e-16},
    ),
    PaperCorrelation(
        "best CKA-divergence aggregate: std over layers 1-8 (Sec. 4.4)",
        "cka_divergence",
        "std",
        {"cifar10": 0.69, "cifar100": 0.63},
        {},
    ),
)
PAPER_HEADLINE = PAPER_CORRELATIONS[0]
