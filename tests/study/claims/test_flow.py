"""Section 4.3's claims on hand-made invariance-flow matrices of the ImageNet source's runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED

from .handmade import IMAGENET_CLS, IMAGENET_REC, L, evaluate


def flow_matrix(below: dict[int, float] | None = None, above: dict[int, float] | None = None, n: int = L) -> np.ndarray:
    """-0.1 |i - j| off the diagonal, with flow ``below[i]`` at (i, i - 1) and ``above[i]`` at (i, i + 1)."""
    i, j = np.meshgrid(range(n), range(n), indexing="ij")
    flow = -0.1 * np.abs(i - j)
    for row, value in (below or {}).items():
        flow[row, row - 1] = value
    for row, value in (above or {}).items():
        flow[row, row + 1] = value
    return flow


def test_compression_in_a_third_of_the_pretrained_layers_holds(flow_tables):
    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})  # 4 of the 12 layers 1..12
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: compressed, IMAGENET_REC: compressed}), "compression_below_diagonal"
    )
    assert verdict == HOLDS
    assert "4/12 pretrained layers (0.33) below the diagonal, largest +0.200±0.010 at (i, j) = (8, 7)" in evidence


def test_compression_in_one_cell_fails(flow_tables):
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: flow_matrix(below={12: 0.2})}), "compression_below_diagonal"
    )
    assert verdict == FAILS and "1/12 pretrained layers (0.08) below the diagonal" in evidence


def test_flow_within_the_minimum_or_the_seed_spread_is_not_compression(flow_tables):
    tiny = flow_matrix(below={i: 0.009 for i in range(1, 13)})  # each seed's flow is 0.009 (sd 0)
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: np.broadcast_to(tiny, (3, L, L))}), "compression_below_diagonal"
    )
    assert verdict == FAILS and "0/12 pretrained layers (0.00) below the diagonal, none" in evidence
    noisy = np.stack([flow_matrix(below={i: v for i in range(1, 13)}) for v in (-0.1, 0.05, 0.2)])  # mean 0.05, sd 0.15
    verdict, _ = evaluate(flow_tables({IMAGENET_CLS: noisy}), "compression_below_diagonal")
    assert verdict == FAILS


def test_expansion_for_reconstruction_only(flow_tables):
    expanded = flow_matrix(above={i: 0.2 for i in range(0, 4)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: expanded, IMAGENET_CLS: flow_matrix()}), "expansion_for_reconstruction_only"
    )
    assert verdict == HOLDS
    assert "reconstruction: 4/12 pretrained layers (0.33) above" in evidence and "classification: 0/12" in evidence


def test_expansion_in_classification_too_fails(flow_tables):
    expanded = flow_matrix(above={i: 0.2 for i in range(0, 4)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: expanded, IMAGENET_CLS: expanded}), "expansion_for_reconstruction_only"
    )
    assert verdict == FAILS and "classification: 4/12 pretrained layers (0.33) above" in evidence


def test_compression_needs_both_tasks(flow_tables):
    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})
    verdict, evidence = evaluate(flow_tables({IMAGENET_CLS: compressed}), "compression_below_diagonal")
    assert verdict == NOT_MEASURED and "holds in 1/2, not measured in 1" in evidence
    assert "imagenet → cifar10, reconstruction" in evidence


def test_compression_of_shallow_pretrained_layers_is_not_in_the_lower_left(flow_tables):
    """Rows 2-5 compressed: a third of the pretrained layers (the looser reading, any cell
    below the diagonal, holds), but none of the deeper layers 7-12."""
    shallow = flow_matrix(below={i: 0.2 for i in range(2, 6)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: shallow, IMAGENET_REC: shallow}), "compression_below_diagonal"
    )
    assert verdict == FAILS
    assert "4/12 pretrained layers (0.33) below" in evidence
    assert "0.00 of paper layers 7-12 = layers 7-12 here vs 0.67 of paper layers 1-6 = layers 1-6 here" in evidence


def test_expansion_in_a_quarter_of_the_classification_rows_is_observable(flow_tables):
    """Classification expands in 3 of 12 rows: under the old reading's 1/3 ('not observable'),
    yet expansion is observed for classification too, so not 'only' for reconstruction."""
    expanded = flow_matrix(above={i: 0.2 for i in range(0, 4)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: expanded, IMAGENET_CLS: flow_matrix(above={i: 0.2 for i in range(0, 3)})}),
        "expansion_for_reconstruction_only",
    )
    assert verdict == FAILS and "classification: 3/12 pretrained layers (0.25) above" in evidence


def test_expansion_of_later_layers_is_not_of_early_layer_invariances(flow_tables):
    late = flow_matrix(above={i: 0.2 for i in range(7, 11)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: late, IMAGENET_CLS: flow_matrix()}), "expansion_for_reconstruction_only"
    )
    assert verdict == FAILS
    assert "0.00 of paper layers 0-6 = layers 0-6 here vs 0.80 of paper layers 7-12 = layers 7-12 here" in evidence


def test_one_seed_leaves_the_flow_unmeasured(make_invariance_flow, make_table1):
    from finetune_invariance.study import tables

    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})
    flows = tables.concat(
        [make_invariance_flow(compressed, run=r, seeds=(0,)) for r in (IMAGENET_CLS, IMAGENET_REC)],
        tables.STUDY_INVARIANCE_FLOW,
    )
    study = {"invariance_flow": flows, "table1_accuracy": make_table1({IMAGENET_CLS: 1, IMAGENET_REC: 1})}
    verdict, evidence = evaluate(study, "compression_below_diagonal")
    assert verdict == NOT_MEASURED and "fewer than two seeds" in evidence


def test_flow_cells_refuse_a_missing_repeated_or_undefined_cell(make_invariance_flow):
    """flow_statistics reads only a complete, defined matrix (as finetuning_metrics.flow_matrix does)."""
    import pytest

    from finetune_invariance.study.flow_statistics import IncompleteFlow, flow_cells

    rows = make_invariance_flow(flow_matrix(n=4))
    assert flow_cells(rows)["mean"].to_numpy().reshape(4, 4) == pytest.approx(flow_matrix(n=4))
    cell = (rows["seed"] == 1) & (rows["pretrained_layer"] == 2) & (rows["finetuned_layer"] == 0)
    with pytest.raises(IncompleteFlow, match=r"lacks 1 cells \(seed, i, j\): \[\(1, 2, 0\)\]"):
        flow_cells(rows[~cell])
    with pytest.raises(IncompleteFlow, match="repeat"):
        flow_cells(pd.concat([rows, rows[cell]]))
    with pytest.raises(IncompleteFlow, match=r"undefined \(NaN\) in 1 cells"):
        flow_cells(rows.assign(flow=rows["flow"].mask(cell)))
    with pytest.raises(IncompleteFlow, match="5x5 flow matrix lacks"):
        flow_cells(rows, depth=4)  # the source's depth is 4: layer 4 is missing for every seed


def test_flow_within_the_identical_copy_floor_is_not_compression(flow_tables):
    """The detector's cells must exceed their row's identical-copy floor: flow of 0.2 (above
    0.01 and the seed sd, the looser reading) in rows whose unchanged model already reaches
    0.25 is the inversion's residual, not moved invariances."""
    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})
    runs = {IMAGENET_CLS: compressed, IMAGENET_REC: compressed}
    assert evaluate(flow_tables(runs, floor=0.19), "compression_below_diagonal")[0] == HOLDS
    verdict, evidence = evaluate(flow_tables(runs, floor=0.25), "compression_below_diagonal")
    assert verdict == FAILS and "0/12 pretrained layers" in evidence


def test_the_floor_is_read_per_pretrained_layer(flow_tables):
    """A high floor in rows 8-9 only removes their cells: 2 of 12 rows left, under a third."""
    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})
    floor = np.full(L, 0.005)
    floor[[8, 9]] = 0.3
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: compressed, IMAGENET_REC: compressed}, floor=floor), "compression_below_diagonal"
    )
    assert verdict == FAILS and "2/12 pretrained layers" in evidence


def test_without_the_identical_copy_the_flow_claims_are_unmeasured(flow_tables):
    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})
    for claim in ("compression_below_diagonal", "expansion_for_reconstruction_only"):
        verdict, evidence = evaluate(
            flow_tables({IMAGENET_CLS: compressed, IMAGENET_REC: compressed}, floor=None), claim
        )
        assert verdict == NOT_MEASURED and "identical-copy" in evidence


def test_cell_thresholds_are_the_largest_of_min_flow_seed_sd_and_row_floor():
    from finetune_invariance.study.flow_statistics import MIN_FLOW, cell_thresholds, flow_floor

    identical = pd.DataFrame(
        {
            "seed": [0, 1, 0, 1, 0, 1],
            "layer": [0, 0, 1, 1, 0, 1],
            "metric": ["forgetting"] * 4 + ["learning"] * 2,
            "value": [0.02, 0.04, 0.001, 0.003, 0.9, 0.9],
        }
    )
    floor = flow_floor(identical)
    assert floor.to_dict() == pytest.approx({0: 0.03, 1: 0.002})  # forgetting only, seed means
    cells = pd.DataFrame(
        {"mean": [0.1, 0.1, 0.1], "sd": [0.0, 0.05, 0.0]},
        index=pd.MultiIndex.from_tuples([(0, 1), (1, 0), (1, 1)], names=["pretrained_layer", "finetuned_layer"]),
    )
    assert cell_thresholds(cells, floor).tolist() == pytest.approx([0.03, 0.05, MIN_FLOW])
