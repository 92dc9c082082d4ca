"""Section 4.3, compression and expansion: the invariance-flow matrices of the ImageNet
source's runs at their analysed checkpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, Run
from .evidence import StudyTables, by_run, collect
from .registry import Finding, claim

MIN_FLOW = 0.01  # smallest invariance flow counted as positive: 1% of STIR's [0, 1] range
MIN_FLOW_SHARE = 1 / 3  # "substantial": this share of the pretrained layers shows the flow

_POSITIVE = f"seed mean > max({MIN_FLOW}, seed sd)"


def _flow_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (i, j): seed mean and seed sd (ddof=1; 0 for one seed) of the flow."""
    cells = rows.groupby(["pretrained_layer", "finetuned_layer"])["flow"]
    return pd.DataFrame({"mean": cells.mean(), "sd": cells.std(ddof=1).fillna(0.0)})


def _flow_share(cells: pd.DataFrame, triangle: str) -> tuple[float, str]:
    """Share of the pretrained layers i with a finetuned layer j on the triangle's side
    ('below': j < i, compression; 'above': j > i, expansion) whose seed-mean flow exceeds
    both MIN_FLOW and its seed sd; and a description with the largest such cell."""
    i = cells.index.get_level_values("pretrained_layer")
    j = cells.index.get_level_values("finetuned_layer")
    depth = int(i.max())
    part = cells[(j < i) if triangle == "below" else (j > i)]
    positive = part[part["mean"] > np.maximum(part["sd"], MIN_FLOW)]
    rows_with_flow = positive.index.get_level_values("pretrained_layer").nunique()
    share = rows_with_flow / depth  # depth of the depth + 1 pretrained layers have cells on each side
    if positive.empty:
        largest = "none"
    else:
        top = positive["mean"].idxmax()
        largest = (
            f"largest {positive.loc[top, 'mean']:+.3f}±{positive.loc[top, 'sd']:.3f} at (i, j) = {tuple(map(int, top))}"
        )
    return share, f"{rows_with_flow}/{depth} pretrained layers ({share:.2f}) {triangle} the diagonal, {largest}"


def _imagenet_flows(study: StudyTables) -> dict[Run, pd.DataFrame]:
    df = study.analysed("invariance_flow")
    return {run: _flow_cells(rows) for run, rows in by_run(df[df["source"] == study.imagenet_source]).items()}


@claim(
    "4.3",
    statement="Finetuning compresses pretrained invariances into earlier layers, visible in the lower left of the "
    "Invariance Flow matrix, for classification and reconstruction.",
    statistic=f"share of the pretrained layers i = 1..D that have a finetuned layer j < i with positive flow "
    f"({_POSITIVE}), ImageNet source's runs",
    threshold=f">= {MIN_FLOW_SHARE:.2f} of the pretrained layers (a substantial part of the lower triangle, "
    "not a single cell), every run",
    paper_value="compression for both tasks (Figs. 4(a), 4(b), 9)",
)
def compression_below_diagonal(study: StudyTables) -> list[Finding]:
    findings = []
    for run, cells in _imagenet_flows(study).items():
        share, text = _flow_share(cells, "below")
        findings.append(Finding(share >= MIN_FLOW_SHARE, f"{run.label}: {text}", (run,)))
    return collect(findings, f"invariance-flow matrix of the ImageNet source '{study.imagenet_source}'")


@claim(
    "4.3",
    statement="Expansion (flow above the diagonal) is observable only when finetuning for reconstruction.",
    statistic=f"share of the pretrained layers i = 0..D-1 that have a finetuned layer j > i with positive flow "
    f"({_POSITIVE}), ImageNet source's runs",
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
        reconstruction, reconstruction_text = _flow_share(flows[run], "above")
        classification, classification_text = _flow_share(flows[other], "above")
        findings.append(
            Finding(
                reconstruction >= MIN_FLOW_SHARE > classification,
                f"{run.source} → {run.dataset}: reconstruction {reconstruction_text}; "
                f"classification {classification_text}",
                (other, run),
            )
        )
    return collect(findings, f"flow matrices of both tasks from the ImageNet source '{study.imagenet_source}'")
