"""Beyond the paper: the spread of forgetting as an early-stopping indicator for robustness.

The paper ends by suggesting that practitioners could use "higher values of the standard
deviation of forgetting as an early stopping indicator for robustness". The forgetting
monitor (:class:`finetune_invariance.monitor.ForgettingMonitor`) measures forgetting while
a run trains, from the pretrained model's stored inversions; this module turns its table
into the headline statistic over training (:func:`headline_over_training`) and compares the
checkpoint that statistic would pick with the best clean and the best corrupted accuracy
(:func:`checkpoint_picks`).
"""

from __future__ import annotations

import pandas as pd

from . import tables
from .hypotheses import headline_hypothesis
from .robust_accuracy import mean_corrupted_accuracy, severity_accuracy
from .vocabulary import CLEAN_SEVERITY, runs_in

MAX_FORGETTING_SPREAD = "max_forgetting_spread"
BEST_CLEAN_ACCURACY = "best_clean_accuracy"
BEST_CORRUPTED_ACCURACY = "best_corrupted_accuracy"
SELECTION_RULES = (MAX_FORGETTING_SPREAD, BEST_CLEAN_ACCURACY, BEST_CORRUPTED_ACCURACY)


def headline_over_training(monitor: pd.DataFrame) -> pd.Series:
    """The headline statistic at every measurement of one run: the std (ddof=0) of the
    seed-mean forgetting across the paper's layers 2-12 (scaled to the model's depth,
    :func:`.hypotheses.headline_hypothesis`), indexed by ``training_epochs``: evaluated by
    the same hypothesis the correlations of Section 4.4 use (the library's
    :func:`finetune_invariance.monitor.forgetting_spread` gives it for one measurement)."""
    if len(runs_in(monitor)) != 1:
        raise ValueError(f"the monitor table must hold exactly one run, found {runs_in(monitor)}")
    profile = monitor.groupby(["training_epochs", "layer"])["forgetting"].mean().unstack("layer")
    headline = headline_hypothesis(len(profile.columns))
    return headline.evaluate({"forgetting": profile}).rename("forgetting_spread")


def epoch_end_forgetting(monitor: pd.DataFrame) -> pd.DataFrame:
    """The monitor's measurements at the end of epochs 1..E as ``STUDY_LAYER_METRICS``
    rows of metric 'forgetting' (the offline value of each epoch's checkpoint): how the
    dynamics variants measured by the monitor alone (config ``variant_metrics``) enter the
    study's layer metrics. Pretrained and finetuned are named as in the STIR jobs."""
    ends = monitor[(monitor["training_epochs"] >= 1) & (monitor["training_epochs"] % 1 == 0)]
    rows = ends.assign(
        epoch=ends["training_epochs"].astype("int64"),
        pretrained="pretrained",
        finetuned="finetuned",
        metric="forgetting",
        value=ends["forgetting"],
    )
    return tables.conform(rows[list(tables.STUDY_LAYER_METRICS.columns)], tables.STUDY_LAYER_METRICS)


def checkpoint_picks(monitor: pd.DataFrame, robust: pd.DataFrame) -> pd.DataFrame:
    """For each run, the epoch each rule of :data:`SELECTION_RULES` picks among the
    epochs 1..E with a checkpoint (an epoch's end), and that epoch's spread, clean and
    mean corrupted accuracy. ``monitor``: ``FORGETTING_MONITOR``; ``robust``:
    ``ROBUST_ACCURACY`` of the same runs. Returns ``tables.CHECKPOINT_PICKS``."""
    rows = []
    for run in runs_in(robust):
        spread = headline_over_training(run.rows(monitor))
        per_severity = severity_accuracy(run.rows(robust))
        by_epoch = pd.DataFrame(
            {
                "forgetting_spread": spread,
                "clean_accuracy": per_severity[per_severity["severity"] == CLEAN_SEVERITY].set_index("epoch")[
                    "accuracy"
                ],
                "mean_corrupted_accuracy": mean_corrupted_accuracy(run.rows(robust)),
            }
        )
        by_epoch = by_epoch.loc[[e for e in by_epoch.index if e >= 1 and float(e).is_integer()]].dropna()
        if by_epoch.empty:
            raise ValueError(f"run {run}: no epoch has both a monitor measurement and a robust accuracy")
        criteria = {
            MAX_FORGETTING_SPREAD: "forgetting_spread",
            BEST_CLEAN_ACCURACY: "clean_accuracy",
            BEST_CORRUPTED_ACCURACY: "mean_corrupted_accuracy",
        }
        for rule, column in criteria.items():
            epoch = by_epoch[column].idxmax()  # the first maximum: the earliest epoch on ties
            rows.append({**run.context, "rule": rule, "epoch": int(epoch), **by_epoch.loc[epoch].to_dict()})
    return tables.concat([pd.DataFrame(rows)] if rows else [], tables.CHECKPOINT_PICKS)
