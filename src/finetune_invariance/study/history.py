"""A run's training history (:data:`~finetune_invariance.study.tables.TRAINING_HISTORY`,
one row per finished epoch) and which of its epochs is the best.

Apart from the trainer so that the jobs that only read histories (Table 1, the
robustness correlations) do not import torch.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def best_epoch(history: pd.DataFrame | list[dict[str, Any]]) -> int:
    """The epoch with the best test metric: highest test accuracy for classification, lowest
    test L1 for reconstruction (the authors' ``topk=1`` checkpoint); the earliest on ties.

    ``history`` is a TRAINING_HISTORY table or its rows.
    """
    table = pd.DataFrame(history)
    if table.empty:
        raise ValueError("best_epoch: the training history has no epochs")
    classification = table["test_accuracy"].notna().all()
    score = table["test_accuracy"] if classification else -table["test_l1"]
    return int(table.loc[score.idxmax(), "epoch"])
