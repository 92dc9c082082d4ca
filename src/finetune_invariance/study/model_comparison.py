"""Beyond the paper: the sources' models side by side (docs/your-models.md).

When the sources of a study start from different models (``sources.<name>.model``, e.g.
config/foundation.yaml: AugReg, DeiT, DINOv2, CLIP, MAE), :func:`compare_models` puts each
default-variant run's profile and headline correlations in one row, with its model and
depth, so that the models can be read against each other:

- the learning, forgetting and CKA-divergence profiles, each summarised over the paper's
  early layers 1-6 and later layers 7-12 (:data:`.claims.evidence.EARLY_LAYERS`,
  :data:`.claims.evidence.LATER_LAYERS`), mapped onto the model's depth by relative depth
  (:func:`.paper.scaled_layer`): per seed the mean over those layers, then the mean over seeds;
- two of the paper's statements asked of each model, with the claims' thresholds
  (:data:`.claims.evidence.ALPHA`, :data:`.claims.evidence.STRONG_R`), defined before any
  model was measured:

  - Appendix C.1, "learning and forgetting are significantly correlated across layers":
    holds when r > 0 and p < ALPHA (:func:`.layer_statistics.learning_forgetting_correlation`);
  - Section 4.4, the headline "the std of forgetting across layers 2-12 correlates strongly
    with the mean corrupted accuracy": holds when r >= STRONG_R and the Bonferroni p <
    ALPHA (the ``headline`` row of the named hypotheses); measured on dynamics runs only.

A statement is "not measured" for a run without its row (a run without dynamics has no
headline); an undefined r (a constant series) does not hold, as in the claims.

The paper measured one model (ViT-B/32 pretrained on ImageNet); every verdict here is a
finding beyond the paper, labelled so in the table and the report.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .claims.evidence import ALPHA, EARLY_LAYERS, LATER_LAYERS, STRONG_R, PaperLayers
from .claims.registry import FAILS, HOLDS, NOT_MEASURED
from .paper import HEADLINE
from .tables import MODEL_COMPARISON, conform
from .vocabulary import DEFAULT_VARIANT, RUN_KEYS, Run, analysed_rows

#: The profile summaries: (column suffix, the paper's layer range).
RANGES: dict[str, PaperLayers] = {"early": EARLY_LAYERS, "later": LATER_LAYERS}
METRICS = ("learning", "forgetting", "cka_divergence")


def _verdict(measured: bool, holds: bool) -> str:
    return NOT_MEASURED if not measured else HOLDS if holds else FAILS


def _range_means(rows: pd.DataFrame, depth: int) -> dict[str, float]:
    """Per seed the mean of each metric over each range's layers, then the mean over seeds."""
    means = {}
    for metric in METRICS:
        for suffix, paper_layers in RANGES.items():
            selected = rows[(rows["metric"] == metric) & rows["layer"].isin(paper_layers.layers(depth))]
            per_seed = selected.groupby("seed")["value"].mean()
            means[f"{metric}_{suffix}"] = float(per_seed.mean()) if len(per_seed) else np.nan
    return means


def compare_models(
    metrics: pd.DataFrame,
    analysed: pd.DataFrame,
    correlation: pd.DataFrame,
    named: pd.DataFrame,
    models: Mapping[str, str],
) -> pd.DataFrame:
    """One :data:`.tables.MODEL_COMPARISON` row per default-variant run at its analysed
    checkpoint (module docstring).

    ``metrics``: ``layer_metrics``; ``analysed``: ``table1_accuracy``; ``correlation``:
    ``learning_forgetting_correlation``; ``named``: ``named_hypotheses``; ``models``: each
    source's timm model name.
    """
    analysed = analysed[analysed["variant"] == DEFAULT_VARIANT]
    at_checkpoint = analysed_rows(metrics, analysed)
    rows = []
    for run_row in analysed.sort_values(list(RUN_KEYS)).itertuples(index=False):
        key = {k: getattr(run_row, k) for k in RUN_KEYS}
        run = Run(*key.values())
        run_metrics = run.rows(at_checkpoint)
        if run_metrics.empty:
            continue
        depth = int(run_metrics["layer"].max())
        lf = run.rows(correlation)
        lf_r, lf_p = (float(lf["r"].iloc[0]), float(lf["p_value"].iloc[0])) if len(lf) else (np.nan, np.nan)
        headline = run.rows(named)
        headline = headline[headline["role"] == HEADLINE.role]
        h_r, h_p = (
            (float(headline["r"].iloc[0]), float(headline["p_bonferroni"].iloc[0]))
            if len(headline)
            else (np.nan, np.nan)
        )
        rows.append(
            {
                **key,
                "epoch": int(run_row.epoch),
                "model": models[run_row.source],
                "depth": depth,
                "n_seeds": int(run_metrics["seed"].nunique()),
                **_range_means(run_metrics, depth),
                "learning_forgetting_r": lf_r,
                "learning_forgetting_p": lf_p,
                "learning_forgetting_verdict": _verdict(len(lf) > 0, lf_r > 0 and lf_p < ALPHA),
                "headline_r": h_r,
                "headline_p_bonferroni": h_p,
                "headline_verdict": _verdict(len(headline) > 0, h_r >= STRONG_R and h_p < ALPHA),
            }
        )
    empty = pd.DataFrame({name: pd.Series(dtype=column.dtype) for name, column in MODEL_COMPARISON.columns.items()})
    return conform(pd.DataFrame(rows) if rows else empty, MODEL_COMPARISON)
