"""Appendix C.1, correlation between learning and forgetting: Pearson r across layers of
each default-variant run at its analysed checkpoint (``learning_forgetting_correlation``)."""

from __future__ import annotations

import pandas as pd

from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, SCRATCH, Run
from .evidence import ALPHA, NotMeasured, StudyTables, by_run
from .registry import Finding, claim


def _paper_r(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3f}"


@claim(
    "C.1",
    statement="Learning and forgetting are significantly correlated across layers in every setting.",
    statistic="Pearson r across layers of seed-mean learning and seed-mean forgetting at the analysed "
    "checkpoint, every default-variant run",
    threshold=f"r > 0 and p < {ALPHA}, every run",
    paper_value="r = 0.83-0.99",
)
def learning_forgetting_correlated(study: StudyTables) -> list[Finding]:
    return [
        Finding(
            row["r"] > 0 and row["p_value"] < ALPHA,
            f"{run.label}: r = {row['r']:.3f}, p = {row['p_value']:.2g} over {row['n_layers']} layers "
            f"(paper r {_paper_r(row['paper_r'])})",
            (run,),
        )
        for run, rows in by_run(study.table("learning_forgetting_correlation")).items()
        for _, row in rows.iterrows()
    ]


@claim(
    "C.1",
    statement="The correlation between learning and forgetting decreases for the reconstruction tasks and for "
    "the models trained from scratch.",
    statistic="Pearson r across layers of seed-mean learning and forgetting (as above): each reconstruction run "
    "vs the classification run of its source and dataset; each scratch run vs every pretrained source's "
    "classification run of its dataset",
    threshold="the reconstruction r and the scratch r lower in every pair; both kinds of pair needed",
    paper_value="reconstruction 0.86-0.88 vs classification 0.97; scratch 0.83-0.84 vs pretrained 0.97-0.99",
)
def correlation_lower_for_reconstruction_and_scratch(study: StudyTables) -> list[Finding]:
    r = {run: float(rows["r"].iloc[0]) for run, rows in by_run(study.table("learning_forgetting_correlation")).items()}
    kinds: dict[str, list[Finding]] = {RECONSTRUCTION: [], SCRATCH: []}
    for run in r:
        if run.task == RECONSTRUCTION:
            kind, others = RECONSTRUCTION, [Run(run.source, run.dataset, CLASSIFICATION, run.variant)]
        elif run.source == SCRATCH and run.task == CLASSIFICATION:
            kind = SCRATCH
            others = [o for o in r if o.dataset == run.dataset and o.task == CLASSIFICATION and o.source != SCRATCH]
        else:
            continue
        for other in (o for o in others if o in r):
            kinds[kind].append(
                Finding(
                    r[run] < r[other],
                    f"{run.label} r = {r[run]:.3f} vs {other.label} r = {r[other]:.3f}",
                    (run, other),
                )
            )
    findings = kinds[RECONSTRUCTION] + kinds[SCRATCH]
    lacking = [kind for kind, found in kinds.items() if not found]
    if lacking and all(f.holds for f in findings):
        # Half the sentence cannot be checked; a failing half is reported as a failure.
        raise NotMeasured(
            f"no {' and no '.join(f'{kind} run with a run to compare' for kind in lacking)}"
            + (f" (the measured pairs hold in {len(findings)}/{len(findings)})" if findings else "")
        )
    return findings
