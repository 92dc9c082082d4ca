"""Beyond the paper: the spread of forgetting, measured while a run trains, as the
early-stopping indicator for robustness the paper suggests (``checkpoint_picks``)."""

from __future__ import annotations

from ..checkpoint_selection import BEST_CLEAN_ACCURACY, MAX_FORGETTING_SPREAD
from .evidence import StudyTables, by_run
from .registry import BEYOND, Finding, claim


@claim(
    BEYOND,
    statement="The paper suggests the spread of forgetting as an early-stopping indicator for robustness: the "
    "checkpoint with the largest spread, measured during training by the forgetting monitor, is more robust "
    "than the checkpoint of best clean accuracy.",
    statistic="mean corrupted accuracy at the epoch of largest spread (std of forgetting, paper layers 2-12) − "
    "at the epoch of best clean accuracy, per monitored dynamics run (default variant)",
    threshold="> 0 for every run",
    paper_value="not measured by the paper (its suggestion)",
)
def spread_pick_beats_clean_pick(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in by_run(study.table("checkpoint_picks")).items():
        picks = rows.set_index("rule")
        spread, clean = picks.loc[MAX_FORGETTING_SPREAD], picks.loc[BEST_CLEAN_ACCURACY]
        gain = spread["mean_corrupted_accuracy"] - clean["mean_corrupted_accuracy"]
        findings.append(
            Finding(
                gain > 0,
                f"{run.label}: largest spread at epoch {spread['epoch']} "
                f"(corrupted {spread['mean_corrupted_accuracy']:.3f}), best clean accuracy at epoch "
                f"{clean['epoch']} (corrupted {clean['mean_corrupted_accuracy']:.3f}): {gain:+.3f}",
                (run,),
            )
        )
    return findings
