"""The paper's reported numbers, for tables that put this run's values beside them.

Keys use the source and dataset names of ``config/paper.yaml`` (imagenet, cifar10,
cifar100, scratch; cifar10, cifar100, eurosat, oxford_pets); rows of other configs get NaN.
"""

from __future__ import annotations

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
