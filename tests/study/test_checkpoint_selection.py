"""The forgetting spread over training and the checkpoint each selection rule picks."""

import statistics

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study.checkpoint_selection import checkpoint_picks, headline_over_training

from .conftest import PAPER_RUN, forgetting_monitor_table, robust_accuracy_table


def profile(spread: float) -> list[float]:
    """Forgetting over layers 0..4 whose std over layers 2..4 (the headline at depth 4) is ``spread``."""
    d = spread * np.sqrt(3 / 2)
    return [0.9, 0.1, 0.5 - d, 0.5, 0.5 + d]


def test_the_spread_is_the_headline_std_over_layers_two_to_depth():
    monitor = forgetting_monitor_table({0.5: profile(0.1), 1.0: profile(0.3), 2.0: profile(0.2)})
    spread = headline_over_training(monitor)
    assert spread.index.tolist() == [0.5, 1.0, 2.0]
    assert spread.tolist() == pytest.approx([0.1, 0.3, 0.2])
    assert spread.loc[1.0] == pytest.approx(statistics.pstdev(profile(0.3)[2:]))


def test_each_rule_picks_its_maximum_among_the_epochs_with_a_checkpoint():
    # The spread peaks at epoch 2 (and higher still mid-epoch 1.5, which has no checkpoint).
    monitor = forgetting_monitor_table(
        {1.0: profile(0.1), 1.5: profile(0.9), 2.0: profile(0.4), 3.0: profile(0.2)}
    )
    robust = robust_accuracy_table(
        {1: [0.5] * 5, 2: [0.7] * 5, 3: [0.6] * 5}, clean=0.8
    )
    robust.loc[(robust.epoch == 3) & (robust.corruption == "clean"), "accuracy"] = 0.95
    picks = checkpoint_picks(monitor, robust).set_index("rule")
    assert picks.loc["max_forgetting_spread", "epoch"] == 2
    assert picks.loc["best_clean_accuracy", "epoch"] == 3
    assert picks.loc["best_corrupted_accuracy", "epoch"] == 2
    assert picks.loc["max_forgetting_spread", "mean_corrupted_accuracy"] == pytest.approx(0.7)
    assert picks.loc["best_clean_accuracy", "mean_corrupted_accuracy"] == pytest.approx(0.6)
    assert picks.loc["max_forgetting_spread", "forgetting_spread"] == pytest.approx(0.4)
    assert (picks[["source", "dataset", "task", "variant"]] == pd.Series(PAPER_RUN.context)).all().all()


def test_ties_pick_the_earliest_epoch_and_a_run_needs_both_tables():
    monitor = forgetting_monitor_table({1.0: profile(0.2), 2.0: profile(0.2)})
    robust = robust_accuracy_table({1: [0.5] * 5, 2: [0.5] * 5})
    assert (checkpoint_picks(monitor, robust)["epoch"] == 1).all()
    with pytest.raises(ValueError, match="exactly one run"):
        checkpoint_picks(monitor.iloc[:0], robust)
