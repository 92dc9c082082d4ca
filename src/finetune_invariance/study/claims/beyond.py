"""Beyond the paper: the spread of forgetting, measured while a run trains, as the
early-stopping indicator for robustness the paper suggests (``checkpoint_picks``)."""

from __future__ import annotations

from ..checkpoint_selection import BEST_CLEAN_ACCURACY, MAX_FORGETTING_SPREAD
from ..corruptions import SEVERITIES
from ..vocabulary import DEFAULT_VARIANT, runs_in
from .dynamics import correct_counts, paired_counts, robust_rows
from .evidence import ALPHA, NotMeasured, Outcome, StudyTables, collect, decide, measure
from .inference import mcnemar_p_bound, mcnemar_text
from .registry import BEYOND, Finding, claim


@claim(
    BEYOND,
    statement="The paper suggests the spread of forgetting as an early-stopping indicator for robustness: the "
    "checkpoint with the largest spread, measured during training by the forgetting monitor, is more robust "
    "than the checkpoint of best clean accuracy.",
    statistic="corrupted accuracy over every corrupted input (severities 1-5, the same inputs at both epochs) at "
    "the epoch of largest spread (std of forgetting, paper layers 2-12) vs at the epoch of best clean accuracy, "
    "per monitored dynamics run (default variant): McNemar's exact one-sided test, its p bounded from the two "
    "accuracies (per-input outcomes are not recorded)",
    threshold=f"McNemar p bound < {ALPHA} (more robust: a paired difference gets a paired test), every run",
    paper_value="not measured by the paper (its suggestion)",
)
def spread_pick_beats_clean_pick(study: StudyTables) -> list[Finding]:
    monitored = set()
    for stem in ("forgetting_monitor", "checkpoint_picks"):
        if study.has(stem):
            df = study.all_variants(stem)
            monitored.update(runs_in(df[df["variant"] == DEFAULT_VARIANT]))

    def evaluate(run) -> tuple[Outcome, str]:
        picks = study.run_rows("checkpoint_picks", run).set_index("rule")
        lacking = [rule for rule in (MAX_FORGETTING_SPREAD, BEST_CLEAN_ACCURACY) if rule not in picks.index]
        if lacking:
            raise NotMeasured(f"no checkpoint pick by {lacking}")
        spread, clean = int(picks.loc[MAX_FORGETTING_SPREAD, "epoch"]), int(picks.loc[BEST_CLEAN_ACCURACY, "epoch"])
        counts = correct_counts(robust_rows(study, run))
        ((at_spread, at_clean, n),) = paired_counts(counts, spread, clean, [SEVERITIES], run.label)
        p = mcnemar_p_bound(at_spread, at_clean, n)
        return decide(p < ALPHA, p), (
            f"largest spread at epoch {spread} (corrupted {at_spread / n:.3f}), best clean accuracy at epoch "
            f"{clean} (corrupted {at_clean / n:.3f}): {(at_spread - at_clean) / n:+.3f} of {n} inputs, "
            f"{mcnemar_text(at_spread, at_clean, n, p)}"
        )

    findings = [measure(run.label, (run,), lambda run=run: evaluate(run)) for run in sorted(monitored)]
    return collect(findings, "monitored dynamics run (forgetting_monitor, checkpoint_picks)")
