"""Robust accuracy (Section 4.4): accuracy on the clean and the corrupted test samples,
and the mean corrupted accuracy the robustness hypotheses are correlated with.

The corrupted sample (:mod:`.cifar_c`) holds, per severity 1..5, inputs of several
corruptions; a ``ROBUST_ACCURACY`` table has one row per (epoch, corruption, severity)
with the accuracy on that group's ``n_images`` inputs. The accuracy at a severity is the
accuracy on all of its inputs (the group accuracies weighted by their sizes), and the
mean corrupted accuracy is the mean over severities 1..5 of those: with the paper's
sampling (1000 random inputs per severity across the corruptions) that is the mean of the
five per-severity accuracies the paper plots (Fig. 4c).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from .corruptions import SEVERITIES
from .vocabulary import CLEAN, CLEAN_SEVERITY, runs_in, with_context

AccuracyFn = Callable[[np.ndarray, np.ndarray], float]
"""accuracy_fn(images uint8 (N, H, W, 3), labels int (N,)) -> top-1 accuracy in [0, 1]."""


def robust_accuracy(accuracy_fn: AccuracyFn, sample: Iterable) -> pd.DataFrame:
    """Accuracy on every group of a corrupted sample (:class:`.cifar_c.CorruptedSet`s,
    the clean one with corruption 'clean' and severity 0).

    Returns one row per group with columns corruption, severity, accuracy, n_images;
    :func:`.vocabulary.with_context` turns it into a ``ROBUST_ACCURACY`` table.
    """
    rows = []
    for group in sample:
        accuracy = float(accuracy_fn(group.images, group.labels))
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(
                f"accuracy_fn returned {accuracy} for '{group.corruption}' severity {group.severity}; "
                "expected a value in [0, 1]"
            )
        rows.append(
            {
                "corruption": group.corruption,
                "severity": group.severity,
                "accuracy": accuracy,
                "n_images": len(group.labels),
            }
        )
    return pd.DataFrame(rows, columns=["corruption", "severity", "accuracy", "n_images"])


def severity_accuracy(robust: pd.DataFrame) -> pd.DataFrame:
    """Per (epoch, severity): the accuracy on all inputs of that severity (severity 0: the
    clean sample). Columns epoch, severity, accuracy.

    An undefined (NaN) group accuracy is refused, naming its (epoch, corruption, severity):
    pooled, its inputs would count as wrong answers. :func:`robust_accuracy` never writes
    one, so a NaN means a damaged table; the claims read the refusal as *not measured*."""
    undefined = robust["accuracy"].isna()
    if undefined.any():
        cells = robust.loc[undefined, ["epoch", "corruption", "severity"]].values.tolist()
        shown = f"{cells[:5]}" + (f" and {len(cells) - 5} more" if len(cells) > 5 else "")
        raise ValueError(
            f"robust accuracy table has undefined (NaN) accuracies at (epoch, corruption, severity) {shown}"
        )
    duplicated = robust.duplicated(["epoch", "corruption", "severity"], keep=False)
    if duplicated.any():
        raise ValueError(
            "robust accuracy table has several rows for (epoch, corruption, severity) "
            f"{robust.loc[duplicated, ['epoch', 'corruption', 'severity']].drop_duplicates().values.tolist()}"
        )
    bad = sorted(set(robust.loc[robust["corruption"] != CLEAN, "severity"]) - set(SEVERITIES))
    if bad:
        raise ValueError(f"robust accuracy table has corrupted rows with severities {bad}; expected {SEVERITIES}")
    correct = robust.assign(correct=robust["accuracy"] * robust["n_images"])
    totals = correct.groupby(["epoch", "severity"])[["correct", "n_images"]].sum()
    return (totals["correct"] / totals["n_images"]).rename("accuracy").reset_index()


def mean_corrupted_accuracy(robust: pd.DataFrame) -> pd.Series:
    """Per epoch, the mean over severities 1..5 of the severity accuracy (clean excluded)."""
    per_severity = severity_accuracy(robust)
    corrupted = per_severity[per_severity["severity"] != CLEAN_SEVERITY]
    missing = sorted(set(per_severity["epoch"]) - set(corrupted["epoch"]))
    if missing:
        raise ValueError(f"robust accuracy table has no corrupted rows for epochs {missing}")
    incomplete = corrupted.groupby("epoch")["severity"].nunique()
    incomplete = incomplete[incomplete != len(SEVERITIES)]
    if not incomplete.empty:
        raise ValueError(f"robust accuracy table lacks some severities at epochs {incomplete.index.tolist()}")
    return corrupted.groupby("epoch")["accuracy"].mean().rename("mean_corrupted_accuracy")


def mean_corrupted_accuracy_by_run(robust: pd.DataFrame) -> pd.DataFrame:
    """:func:`mean_corrupted_accuracy` of every run of ``robust``: columns source, dataset,
    task, variant, epoch, mean_corrupted_accuracy (the variants figure, Figs. 6, 15)."""
    runs = runs_in(robust)
    if not runs:
        raise ValueError("robust accuracy table is empty: no run to take the mean corrupted accuracy of")
    parts = [with_context(mean_corrupted_accuracy(run.rows(robust)).reset_index(), run) for run in runs]
    return pd.concat(parts, ignore_index=True)
