"""Table 1 (Appendix B): the test accuracy of every finetuned model at its analysed
checkpoint, beside that of its pretrained source and the paper's values."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from . import tables
from .paper import table1_values
from .history import best_epoch
from .vocabulary import BEST, CLASSIFICATION, LAST, Run


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


def source_accuracy(metadata: Mapping[str, Any]) -> tuple[float, str | None]:
    """The test accuracy a source checkpoint recorded on its own dataset and that dataset:
    (NaN, None) for a source no run of this study trained (scratch, timm, url)."""
    metrics, run = metadata.get("metrics"), metadata.get("run")
    if not metrics or run is None:
        return math.nan, None
    return float(metrics["test_accuracy"]), Run.parse(run).dataset


def table1(
    histories: Mapping[Run, pd.DataFrame],
    source_metadata: Mapping[str, Mapping[str, Any]],
    targets: Mapping[str, float],
    analysed_checkpoint: str,
) -> pd.DataFrame:
    """One row per run: the analysed checkpoint's epoch and test accuracy (or L1), the
    source's test accuracy on its own dataset (recorded in the source checkpoint by the run
    that trained it: a 'pretrain:' source, or a shipped checkpoint of this study; NaN for
    others), the targets of both datasets, and the paper's two values beside the setting it
    measured.

    ``histories``: TRAINING_HISTORY of each run; ``source_metadata``: the metadata of each
    source's checkpoint (:func:`.checkpoints.read_metadata`), by source name; ``targets``:
    config ``datasets.<name>.target_accuracy`` by dataset. Returns ``tables.TABLE1``.
    """
    rows = []
    for run, history in sorted(histories.items()):
        epoch = analysed_epoch(history, analysed_checkpoint)
        analysed = _at_epoch(history, epoch)
        accuracy_of_source, source_dataset = source_accuracy(source_metadata.get(run.source, {}))
        paper = table1_values(run)
        rows.append(
            {
                **run.context,
                "checkpoint": analysed_checkpoint,
                "epoch": epoch,
                "epochs": int(history["epoch"].max()),
                "test_accuracy": analysed["test_accuracy"],
                "test_l1": analysed["test_l1"],
                "target_accuracy": targets.get(run.dataset, math.nan) if run.task == CLASSIFICATION else math.nan,
                "source_accuracy": accuracy_of_source,
                "source_target_accuracy": targets.get(source_dataset, math.nan),
                "paper_accuracy": paper.accuracy,
                "paper_source_accuracy": paper.source_accuracy,
            }
        )
    return tables.concat([pd.DataFrame(rows)] if rows else [], tables.TABLE1)
