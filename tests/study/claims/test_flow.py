"""Section 4.3's claims on hand-made invariance-flow matrices of the ImageNet source's runs."""

from __future__ import annotations

import numpy as np

from finetune_invariance.study.claims import FAILS, HOLDS

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
    assert "reconstruction 4/12 pretrained layers (0.33) above" in evidence and "classification 0/12" in evidence


def test_expansion_in_classification_too_fails(flow_tables):
    expanded = flow_matrix(above={i: 0.2 for i in range(0, 4)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: expanded, IMAGENET_CLS: expanded}), "expansion_for_reconstruction_only"
    )
    assert verdict == FAILS and "classification 4/12 pretrained layers (0.33) above" in evidence
