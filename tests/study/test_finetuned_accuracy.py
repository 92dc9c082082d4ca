"""Table 1: each run at its analysed checkpoint, its source's recorded accuracy and the targets."""

import math

import pandas as pd
import pytest

from finetune_invariance.study import tables
from finetune_invariance.study.finetuned_accuracy import source_accuracy, table1
from finetune_invariance.study.vocabulary import Run


def _history(run: Run, scores: list[float]) -> pd.DataFrame:
    """A run's history: test accuracy per epoch, or test L1 for reconstruction."""
    reconstruction = run.task == "reconstruction"
    rows = [
        dict(
            run=run.path,
            epoch=e,
            train_loss=1.0,
            test_loss=1.0,
            test_accuracy=math.nan if reconstruction else score,
            test_l1=score if reconstruction else math.nan,
            learning_rate=0.1,
        )
        for e, score in enumerate(scores, start=1)
    ]
    return tables.conform(pd.DataFrame(rows), tables.TRAINING_HISTORY)


FROM_SHIPPED = Run("big", "small", "classification")
FROM_SCRATCH = Run("scratch", "small", "classification")
RECONSTRUCTION = Run("big", "small", "reconstruction")
# What the source checkpoints record: a shipped checkpoint of this study's run scratch -> big
# (its best epoch's metrics), and the random initialisation (no run trained it).
SOURCES = {
    "big": {"epoch": 29, "run": "scratch/big/classification/pretraining", "metrics": {"test_accuracy": 0.82}},
    "scratch": {"source": "scratch", "epoch": 0},
}


def _table(targets):
    histories = {
        FROM_SHIPPED: _history(FROM_SHIPPED, [0.5, 0.9, 0.8]),
        FROM_SCRATCH: _history(FROM_SCRATCH, [0.2, 0.3, 0.4]),
        RECONSTRUCTION: _history(RECONSTRUCTION, [0.3, 0.1, 0.2]),
    }
    return table1(histories, SOURCES, targets, "best").set_index(["source", "task"])


def test_each_run_has_its_best_epoch_its_sources_recorded_accuracy_and_the_targets():
    table = _table({"small": 0.85, "big": 0.8})
    shipped, scratch = table.loc[("big", "classification")], table.loc[("scratch", "classification")]
    assert (shipped["epoch"], shipped["test_accuracy"]) == (2, 0.9)
    assert (shipped["source_accuracy"], shipped["source_target_accuracy"]) == (0.82, 0.8)
    assert shipped["target_accuracy"] == 0.85 and scratch["target_accuracy"] == 0.85
    assert math.isnan(scratch["source_accuracy"]) and math.isnan(scratch["source_target_accuracy"])
    reconstruction = table.loc[("big", "reconstruction")]  # an L1, no accuracy target
    assert reconstruction["epoch"] == 2 and math.isnan(reconstruction["target_accuracy"])


def test_without_targets_the_target_columns_are_undefined():
    table = _table({})
    assert table["target_accuracy"].isna().all() and table["source_target_accuracy"].isna().all()


def test_a_source_accuracy_is_the_recorded_one_of_the_run_that_trained_it():
    assert source_accuracy(SOURCES["big"]) == (0.82, "big")
    assert source_accuracy(SOURCES["scratch"])[1] is None
    with pytest.raises(ValueError, match="a run is named"):
        source_accuracy({"run": "not-a-run", "metrics": {"test_accuracy": 0.5}})
