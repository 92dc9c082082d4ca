"""The claim beyond the paper on hand-made checkpoint picks and robust accuracy."""

from __future__ import annotations

import pandas as pd
import pytest

from finetune_invariance.study import tables
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED

from .handmade import IMAGENET_CLS, evaluate

EPOCHS = range(1, 10)


def picks_tables(make_robust_accuracy, spread_pick: float, clean_pick: float, rules=None):
    """The spread picks epoch 3, the clean accuracy epoch 9; every corrupted input's accuracy
    at those epochs as given (0.5 elsewhere), 2 corruptions x 5 severities x 50 inputs."""
    accuracy = {e: [0.5] * 5 for e in EPOCHS} | {3: [spread_pick] * 5, 9: [clean_pick] * 5}
    rows = [
        {
            **IMAGENET_CLS.context,
            "rule": rule,
            "epoch": epoch,
            "forgetting_spread": 0.2,
            "clean_accuracy": 0.9,
            "mean_corrupted_accuracy": accuracy[epoch][0],
        }
        for rule, epoch in (("max_forgetting_spread", 3), ("best_clean_accuracy", 9), ("best_corrupted_accuracy", 3))
        if rules is None or rule in rules
    ]
    return {
        "checkpoint_picks": tables.conform(pd.DataFrame(rows), tables.CHECKPOINT_PICKS),
        "robust_accuracy": make_robust_accuracy(accuracy, run=IMAGENET_CLS),
    }


def test_the_spread_pick_is_more_robust_in_a_paired_test(make_robust_accuracy):
    verdict, evidence = evaluate(picks_tables(make_robust_accuracy, 0.62, 0.50), "spread_pick_beats_clean_pick")
    assert verdict == HOLDS
    assert "largest spread at epoch 3 (corrupted 0.620), best clean accuracy at epoch 9 (corrupted 0.500)" in evidence
    assert "+0.120 of 500 inputs, McNemar p <= 0.0024" in evidence


@pytest.mark.parametrize(
    "spread_pick, clean_pick, shown",
    [
        (0.62, 0.58, "+0.040 of 500 inputs, McNemar p <= 0.1"),  # higher (the old reading holds), within the noise
        (0.58, 0.58, "+0.000 of 500 inputs, not higher: McNemar's one-sided p >= 0.5"),  # a tie does not beat
        (0.54, 0.58, "-0.040"),
    ],
)
def test_a_spread_pick_not_significantly_more_robust_fails(make_robust_accuracy, spread_pick, clean_pick, shown):
    verdict, evidence = evaluate(
        picks_tables(make_robust_accuracy, spread_pick, clean_pick), "spread_pick_beats_clean_pick"
    )
    assert verdict == FAILS and shown in evidence


def test_missing_picks_or_accuracies_are_unmeasured(make_robust_accuracy):
    assert evaluate({}, "spread_pick_beats_clean_pick")[0] == NOT_MEASURED
    no_rule = picks_tables(make_robust_accuracy, 0.62, 0.5, rules={"max_forgetting_spread"})
    verdict, evidence = evaluate(no_rule, "spread_pick_beats_clean_pick")
    assert verdict == NOT_MEASURED and "no checkpoint pick by ['best_clean_accuracy']" in evidence
    no_accuracy = {"checkpoint_picks": picks_tables(make_robust_accuracy, 0.62, 0.5)["checkpoint_picks"]}
    verdict, evidence = evaluate(no_accuracy, "spread_pick_beats_clean_pick")
    assert verdict == NOT_MEASURED and "no 'robust_accuracy' table" in evidence
