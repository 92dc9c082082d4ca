"""Table 1 (Appendix B): the test accuracy of every finetuned model at its analysed
checkpoint, beside that of its pretrained source and the paper's values."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from . import tables
from .paper import table1_values
from .history import best_epoch
from .vocabulary import BEST, LAST, Run


def analysed_epoch(history: pd.DataFrame, analysed_checkpoint: str) -> int:
    """The epoch of a run's analysed checkpoint: :func:`.history.best_epoch` for 'best',
    the last trained epoch for 'last'."""
    if analysed_checkpoint == BEST:
        return best_epoch(history)
    if analysed_checkpoint == LAST:
        return int(history["epoch"].max())
    raise ValueError(f"analysed_checkpoint must be '{BEST}' or '{LAST}', got {analysed_checkpoint!r}")


def _at_epoch(history: pd.DataFrame, epoch: int) -> pd.Series:
    return history.loc[history["epoch"] == epoch].iloc[0]


def table1(
    histories: Mapping[Run, pd.DataFrame],
    source_histories: Mapping[str, pd.DataFrame],
    analysed_checkpoint: str,
) -> pd.DataFrame:
    """One row per run: the analysed checkpoint's epoch and test accuracy (or L1), the
    source's test accuracy at its own analysed checkpoint (sources pretrained by the
    workflow; NaN for others), and the paper's two values beside the setting it measured.

    ``histories``: TRAINING_HISTORY of each run; ``source_histories``: of each source's
    pretraining run, by source name. Returns ``tables.TABLE1``.
    """
    rows = []
    for run, history in sorted(histories.items()):
        epoch = analysed_epoch(history, analysed_checkpoint)
        analysed = _at_epoch(history, epoch)
        source_history = source_histories.get(run.source)
        source_accuracy = (
            math.nan
            if source_history is None
            else float(_at_epoch(source_history, analysed_epoch(source_history, analysed_checkpoint))["test_accuracy"])
        )
        paper = table1_values(run)
        rows.append(
            {
                **run.context,
                "checkpoint": analysed_checkpoint,
                "epoch": epoch,
                "epochs": int(history["epoch"].max()),
                "test_accuracy": analysed["test_accuracy"],
                "test_l1": analysed["test_l1"],
                "source_accuracy": source_accuracy,
                "paper_accuracy": paper.accuracy,
                "paper_source_accuracy": paper.source_accuracy,
            }
        )
    return tables.concat([pd.DataFrame(rows)] if rows else [], tables.TABLE1)
