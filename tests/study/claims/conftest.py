"""Fixtures that build the claims' hand-made tables from profiles and flow matrices."""

from __future__ import annotations

import numpy as np
import pytest

from finetune_invariance.study import tables
from finetune_invariance.study.vocabulary import Run

from .handmade import IMAGENET_CLS, L, seeded


@pytest.fixture
def static_tables(make_layer_metrics, make_table1):
    """Per-layer tables of runs analysed at epoch 1: run -> {metric: layer profile, or a
    (seed, epoch, layer) array}."""

    def build(profiles: dict[Run, dict[str, np.ndarray]]) -> dict[str, object]:
        metrics = tables.concat(
            [
                make_layer_metrics({m: v if np.ndim(v) == 3 else seeded(v) for m, v in ms.items()}, run=r)
                for r, ms in profiles.items()
            ],
            tables.STUDY_LAYER_METRICS,
        )
        return {"layer_metrics": metrics, "table1_accuracy": make_table1({r: 1 for r in profiles})}

    return build


@pytest.fixture
def flow_tables(make_invariance_flow, make_table1, make_layer_metrics):
    """Invariance-flow tables of runs analysed at epoch 1: run -> (L, L) matrix (seeded) or
    (seed, L, L); with the controls' identical copy, whose forgetting (seed mean ``floor``,
    per layer a number or an array) is the flow detector's floor; ``floor=None`` leaves it out."""

    def build(flows: dict[Run, np.ndarray], floor=0.005) -> dict[str, object]:
        built = {
            "invariance_flow": tables.concat(
                [make_invariance_flow(seeded(f) if f.ndim == 2 else f, run=r) for r, f in flows.items()],
                tables.STUDY_INVARIANCE_FLOW,
            ),
            "table1_accuracy": make_table1({r: 1 for r in flows}),
        }
        if floor is not None:
            profile = np.broadcast_to(np.asarray(floor, dtype=np.float64), (L,))
            values = {"learning": seeded(profile), "forgetting": seeded(profile), "cka_divergence": seeded(0 * profile)}
            identical = make_layer_metrics(values, run=IMAGENET_CLS, epochs=(0,))
            built["control_layer_metrics"] = tables.conform(
                identical.drop(columns=list(tables.STUDY_CONTEXT)).assign(control="identical_copy"),
                tables.CONTROL_LAYER_METRICS,
            )
        return built

    return build
