"""The claim beyond the paper on hand-made checkpoint picks."""

from __future__ import annotations

import pandas as pd

from finetune_invariance.study import tables
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED

from .handmade import IMAGENET_CLS, evaluate


def picks_table(spread_pick_corrupted: float, clean_pick_corrupted: float):
    rows = [
        {
            **IMAGENET_CLS.context,
            "rule": rule,
            "epoch": epoch,
            "forgetting_spread": 0.2,
            "clean_accuracy": 0.9,
            "mean_corrupted_accuracy": acc,
        }
        for rule, epoch, acc in (
            ("max_forgetting_spread", 3, spread_pick_corrupted),
            ("best_clean_accuracy", 9, clean_pick_corrupted),
            ("best_corrupted_accuracy", 3, max(spread_pick_corrupted, clean_pick_corrupted)),
        )
    ]
    return {"checkpoint_picks": tables.conform(pd.DataFrame(rows), tables.CHECKPOINT_PICKS)}


def test_the_spread_pick_beats_the_clean_pick_only_with_higher_corrupted_accuracy():
    verdict, evidence = evaluate(picks_table(0.62, 0.58), "spread_pick_beats_clean_pick")
    assert verdict == HOLDS and "epoch 3 (corrupted 0.620)" in evidence and "+0.040" in evidence
    assert evaluate(picks_table(0.58, 0.58), "spread_pick_beats_clean_pick")[0] == FAILS  # a tie does not beat
    assert evaluate(picks_table(0.55, 0.58), "spread_pick_beats_clean_pick")[0] == FAILS
    assert evaluate({}, "spread_pick_beats_clean_pick")[0] == NOT_MEASURED
