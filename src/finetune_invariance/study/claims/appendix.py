"""Appendix C.1, correlation between learning and forgetting: Pearson r across layers of
each default-variant run at its analysed checkpoint (``learning_forgetting_correlation``).
Every run of the study's roster is a setting: one without its row is unmeasured."""

from __future__ import annotations

import pandas as pd

from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, SCRATCH, Run
from .evidence import ALPHA, Outcome, StudyTables, all_of, collect, decide, measure, number, paper_r
from .inference import correlation_gap
from .registry import Finding, claim
from .source import comparison_datasets

_LOWER = (
    "Fisher's z of the other run's r above this run's by more than one standard error of the difference, "
    "sqrt(1 / (n1 - 3) + 1 / (n2 - 3)) over the two runs' n1 and n2 layers"
)


def _row(study: StudyTables, run: Run) -> pd.Series:
    return study.run_rows("learning_forgetting_correlation", run, analysed=False).iloc[0]


@claim(
    "C.1",
    statement="Learning and forgetting are significantly correlated across layers in every setting.",
    statistic="Pearson r across layers of seed-mean learning and seed-mean forgetting at the analysed "
    "checkpoint, every default-variant run of the study",
    threshold=f"r > 0 and p < {ALPHA}, every run",
    paper_value="r = 0.83-0.99",
)
def learning_forgetting_correlated(study: StudyTables) -> list[Finding]:
    study.all_variants("learning_forgetting_correlation")

    def evaluate(run: Run) -> tuple[Outcome, str]:
        row = _row(study, run)
        holds = all_of([decide(row["r"] > 0, row["r"]), decide(row["p_value"] < ALPHA, row["p_value"])])
        return holds, (
            f"r = {number(row['r'])}, p = {number(row['p_value'], '.2g')} over {row['n_layers']} layers "
            f"({paper_r(row['paper_r'])})"
        )

    return collect([measure(run.label, (run,), lambda run=run: evaluate(run)) for run in sorted(study.roster)], "run")


def _lower(study: StudyTables, run: Run, other: Run) -> tuple[Outcome, str]:
    mine, theirs = _row(study, run), _row(study, other)
    gap, error = correlation_gap(theirs["r"], int(theirs["n_layers"]), mine["r"], int(mine["n_layers"]))
    return decide(gap > error, gap, error), (
        f"{run.label} r = {number(mine['r'])} vs {other.label} r = {number(theirs['r'])} (z gap {number(gap, '+.3f')} vs s.e. {number(error)})"
    )


@claim(
    "C.1",
    statement="The correlation between learning and forgetting decreases for the reconstruction tasks and for "
    "the models trained from scratch.",
    statistic="Pearson r across layers of seed-mean learning and forgetting (as above): each reconstruction run "
    "vs the classification run of its source and dataset; each scratch run vs every pretrained source's "
    "classification run of its dataset",
    threshold=f"lower: {_LOWER}, in every pair; both kinds of pair needed",
    paper_value="reconstruction 0.86-0.88 vs classification 0.97; scratch 0.83-0.84 vs pretrained 0.97-0.99",
)
def correlation_lower_for_reconstruction_and_scratch(study: StudyTables) -> list[Finding]:
    study.all_variants("learning_forgetting_correlation")
    findings = []
    # Reconstruction: on every dataset of the ImageNet source (both tasks needed), and any other source's.
    pairs = [
        (Run(study.imagenet_source, dataset, RECONSTRUCTION), Run(study.imagenet_source, dataset, CLASSIFICATION))
        for dataset in (study.imagenet_datasets() if study.roster_of(source=study.imagenet_source) else [])
    ]
    pairs += [
        (run, Run(run.source, run.dataset, CLASSIFICATION))
        for run in study.roster_of(task=RECONSTRUCTION)
        if run.source != study.imagenet_source
    ]
    if not pairs:
        findings.append(Finding(None, "no reconstruction run: half of the sentence"))
    # Scratch: on every dataset of the sources' comparison (Section 4.2), against each pretrained source.
    datasets = comparison_datasets(study)
    if not datasets:
        findings.append(Finding(None, "no dataset with runs of several sources: half of the sentence"))
    for dataset in datasets:
        scratch = Run(SCRATCH, dataset, CLASSIFICATION)
        others = [o for o in study.roster_of(dataset=dataset, task=CLASSIFICATION) if o.source != SCRATCH]
        if scratch not in study.roster:
            findings.append(Finding(None, f"finetune {dataset}: no run from scratch", tuple(others)))
            continue
        pairs += [(scratch, other) for other in others]
    for run, other in pairs:
        findings.append(measure("", (run, other), lambda run=run, other=other: _lower(study, run, other)))
    return findings
