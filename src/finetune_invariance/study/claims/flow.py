"""Section 4.3, compression and expansion: the invariance-flow matrices of the ImageNet
source's runs at their analysed checkpoints."""

from __future__ import annotations

import pandas as pd

from ..flow_statistics import ABOVE, BELOW, MIN_FLOW_SHARE, POSITIVE_CELL, flow_cells, flow_share
from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, Run
from .evidence import StudyTables, by_run, collect
from .registry import Finding, claim


def _imagenet_flows(study: StudyTables) -> dict[Run, pd.DataFrame]:
    df = study.analysed("invariance_flow")
    return {run: flow_cells(rows) for run, rows in by_run(df[df["source"] == study.imagenet_source]).items()}


@claim(
    "4.3",
    statement="Finetuning compresses pretrained invariances into earlier layers, visible in the lower left of the "
    "Invariance Flow matrix, for classification and reconstruction.",
    statistic=f"share of the pretrained layers i = 1..D that have a finetuned layer j < i with positive flow "
    f"({POSITIVE_CELL}), ImageNet source's runs",
    threshold=f">= {MIN_FLOW_SHARE:.2f} of the pretrained layers (a substantial part of the lower triangle, "
    "not a single cell), every run",
    paper_value="compression for both tasks (Figs. 4(a), 4(b), 9)",
)
def compression_below_diagonal(study: StudyTables) -> list[Finding]:
    findings = []
    for run, cells in _imagenet_flows(study).items():
        share = flow_share(cells, BELOW)
        findings.append(Finding(share.shows_flow, f"{run.label}: {share}", (run,)))
    return collect(findings, f"invariance-flow matrix of the ImageNet source '{study.imagenet_source}'")


@claim(
    "4.3",
    statement="Expansion (flow above the diagonal) is observable only when finetuning for reconstruction.",
    statistic=f"share of the pretrained layers i = 0..D-1 that have a finetuned layer j > i with positive flow "
    f"({POSITIVE_CELL}), ImageNet source's runs",
    threshold=f"reconstruction >= {MIN_FLOW_SHARE:.2f} and classification < {MIN_FLOW_SHARE:.2f}, every dataset",
    paper_value="expansion for reconstruction only (Figs. 4(a), 4(b), 9)",
)
def expansion_for_reconstruction_only(study: StudyTables) -> list[Finding]:
    flows = _imagenet_flows(study)
    findings = []
    for run in flows:
        other = Run(run.source, run.dataset, CLASSIFICATION, run.variant)
        if run.task != RECONSTRUCTION or other not in flows:
            continue
        reconstruction, classification = flow_share(flows[run], ABOVE), flow_share(flows[other], ABOVE)
        findings.append(
            Finding(
                reconstruction.shows_flow and not classification.shows_flow,
                f"{run.source} → {run.dataset}: reconstruction {reconstruction}; classification {classification}",
                (other, run),
            )
        )
    return collect(findings, f"flow matrices of both tasks from the ImageNet source '{study.imagenet_source}'")
