"""Appendix C.1: learning vs forgetting across layers, with the paper's value beside its setting."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finetune_invariance.study import tables
from finetune_invariance.study.layer_statistics import learning_forgetting_correlation
from finetune_invariance.study.vocabulary import Run

from .conftest import PAPER_RUN, layer_metrics_table


def test_r_across_layers_of_seed_means_per_run_and_epoch():
    rng = np.random.default_rng(1)
    forgetting = rng.uniform(size=(3, 6))  # (seed, layer) at one epoch
    learning = 2 * forgetting.mean(axis=0) + 0.1 + rng.normal(scale=0.3, size=(3, 6))
    scratch = Run("scratch", "cifar10", "classification")
    df = pd.concat(
        [
            layer_metrics_table({"forgetting": forgetting[:, None, :], "learning": learning[:, None, :]}, epochs=[7]),
            layer_metrics_table({"forgetting": forgetting[:, None, :], "learning": -learning[:, None, :]}, run=scratch),
        ]
    )
    result = learning_forgetting_correlation(df).set_index("source")
    tables.conform(result.reset_index(), tables.LEARNING_FORGETTING_CORRELATION)
    expected = stats.pearsonr(learning.mean(axis=0), forgetting.mean(axis=0))
    assert result.loc["imagenet", "r"] == pytest.approx(expected.statistic)
    assert result.loc["imagenet", "p_value"] == pytest.approx(expected.pvalue)
    assert result.loc["scratch", "r"] == pytest.approx(-expected.statistic)
    assert result.loc["imagenet", "epoch"] == 7 and (result.n_layers == 6).all()
    assert result.loc["imagenet", "paper_r"] == 0.97 and result.loc["scratch", "paper_r"] == 0.83


def test_no_paper_value_beside_a_variant_or_another_setting():
    profile = {"forgetting": np.arange(5.0), "learning": np.arange(5.0) ** 2}
    df = pd.concat(
        [
            layer_metrics_table(profile, run=Run("imagenet", "cifar10", "classification", "adam")),
            layer_metrics_table(profile, run=Run("textures", "digits", "classification")),
        ]
    )
    assert learning_forgetting_correlation(df).paper_r.isna().all()


def test_both_metrics_are_needed():
    with pytest.raises(ValueError, match="learning and forgetting must both be present"):
        learning_forgetting_correlation(layer_metrics_table({"forgetting": np.zeros(4)}, run=PAPER_RUN))
