"""Section 4.3, compression and expansion: the invariance-flow matrices of the ImageNet
source's runs of both tasks on each of its datasets, at their analysed checkpoints.

Where the flow sits is read by pretrained layer (rows i of the matrix, drawn top to
bottom): the paper's "lower left part of the matrix" is the deeper pretrained layers'
cells left of the diagonal (its abstract: "invariances from deeper pretrained layers are
compressed towards shallower layers"), its expansion is of "early-layer invariances"
(low-level invariances of earlier pretrained layers now useful in deeper finetuned ones).
"""

from __future__ import annotations

from ..flow_statistics import (
    ABOVE,
    BELOW,
    MIN_FLOW_SHARE,
    POSITIVE_CELL,
    FlowShare,
    IncompleteFlow,
    flow_cells,
    flow_floor,
    flow_share,
)
from ..vocabulary import CLASSIFICATION, RECONSTRUCTION, Run
from .evidence import (
    EARLY_LAYERS,
    LATER_LAYERS,
    NotMeasured,
    Outcome,
    PaperLayers,
    StudyTables,
    all_of,
    decide,
    measure,
)
from .registry import Finding, claim

EARLIER_LAYERS = PaperLayers(0, 6)  # the pretrained layers before the paper's later layers 7-12


def _flow(study: StudyTables, run: Run, triangle: str) -> FlowShare:
    """The run's flow at its analysed checkpoint, complete and defined, on one triangle,
    its cells judged against the identical copy's floor (of the ImageNet source, measured on
    the controls' dataset: the inversion's residual, which the runs on the source's other
    datasets share). A NotMeasured names no run: :func:`.evidence.measure` prefixes the
    run's label."""
    rows = study.run_rows("invariance_flow", run, analysed=True)
    if rows["seed"].nunique() < 2:  # a positive cell's mean must exceed its seed sd
        raise NotMeasured("fewer than two seeds, the seed spread of a cell is undefined")
    try:
        cells = flow_cells(rows, study.depth(run.source, "invariance_flow"))
        floor = flow_floor(study.identical_copy_rows())
    except IncompleteFlow as incomplete:
        raise NotMeasured(str(incomplete)) from None
    return flow_share(cells, triangle, floor)


def _located(share: FlowShare, there: PaperLayers, elsewhere: PaperLayers) -> tuple[Outcome, str]:
    """Whether a larger share of the pretrained layers ``there`` than ``elsewhere`` shows the flow."""
    inside, outside = share.share_in(there.layers(share.depth)), share.share_in(elsewhere.layers(share.depth))
    return decide(inside > outside, inside, outside), (
        f"{inside:.2f} of {there.describe(share.depth)} vs {outside:.2f} of {elsewhere.describe(share.depth)}"
    )


def _per_run(study: StudyTables, evaluate) -> list[Finding]:
    """One finding per run of both tasks on every dataset of the ImageNet source."""
    return [
        measure(run.label, (run,), lambda run=run: evaluate(run))
        for dataset in study.imagenet_datasets()
        for run in (
            Run(study.imagenet_source, dataset, CLASSIFICATION),
            Run(study.imagenet_source, dataset, RECONSTRUCTION),
        )
    ]


@claim(
    "4.3",
    statement="For both tasks, finetuning compresses invariances of the deeper pretrained layers into earlier "
    "layers, visible in the lower left of the Invariance Flow matrix.",
    statistic=f"per run of the ImageNet source (classification and reconstruction): the share of the pretrained "
    f"layers i = 1..D that have a finetuned layer j < i with positive flow ({POSITIVE_CELL}); that share among "
    "the deeper pretrained layers (paper layers 7-12) and among the earlier ones (paper layers 1-6)",
    threshold=f">= {MIN_FLOW_SHARE:.2f} of the pretrained layers (a substantial part of the lower triangle, not a "
    "single cell), and a larger share of the deeper than of the earlier pretrained layers (lower left), both tasks "
    "on every dataset of the ImageNet source",
    paper_value="compression for both tasks, in the lower left (Figs. 4(a), 4(b), 9)",
)
def compression_below_diagonal(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        share = _flow(study, run, BELOW)
        located, where = _located(share, LATER_LAYERS, EARLY_LAYERS)
        return all_of([share.shows_flow, located]), f"{share}; {where}"

    return _per_run(study, evaluate)


@claim(
    "4.3",
    statement="Expansion of early-layer invariances (flow above the diagonal) is observable only when finetuning "
    "for reconstruction.",
    statistic=f"per run of the ImageNet source: the pretrained layers i = 0..D-1 that have a finetuned layer j > i "
    f"with positive flow ({POSITIVE_CELL}): their share, and their share among the earlier pretrained layers "
    "(paper layers 0-6) and the later ones (paper layers 7-12)",
    threshold=f"reconstruction: >= {MIN_FLOW_SHARE:.2f} of the pretrained layers, a larger share of the earlier "
    "than of the later ones; classification (only): no positive cell above the diagonal at all; both tasks on "
    "every dataset of the ImageNet source",
    paper_value="expansion of early-layer invariances for reconstruction only (Figs. 4(a), 4(b), 9)",
)
def expansion_for_reconstruction_only(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        share = _flow(study, run, ABOVE)
        if run.task == CLASSIFICATION:  # only reconstruction: none at all here
            return share.rows_with_flow == 0, str(share)
        located, where = _located(share, EARLIER_LAYERS, LATER_LAYERS)
        return all_of([share.shows_flow, located]), f"{share}; {where}"

    return _per_run(study, evaluate)
