"""Statistics of the per-layer metrics across layers: Appendix C.1's correlation between
learning and forgetting."""

from __future__ import annotations

import pandas as pd

from . import tables
from .paper import learning_forgetting_r
from .statistics import pearson
from .vocabulary import RUN_KEYS, Run


def learning_forgetting_correlation(layer_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (run, epoch) in ``layer_metrics``: Pearson r across layers between the seed-mean
    learning and the seed-mean forgetting (Appendix C.1 reports 0.83-0.99), with the
    paper's r beside the run it measured.

    Pass the rows of each run's analysed checkpoint (:func:`.vocabulary.analysed_rows`).
    A run without learning rows (a dynamics variant measured by the forgetting monitor
    alone) has no such r. Returns ``tables.LEARNING_FORGETTING_CORRELATION``.
    """
    setting_keys = [*RUN_KEYS, "epoch"]
    stir = layer_metrics[layer_metrics["metric"].isin(["learning", "forgetting"])]
    stir = stir.groupby(setting_keys).filter(lambda rows: (rows["metric"] == "learning").any())
    means = stir.groupby([*setting_keys, "layer", "metric"])["value"].mean().unstack("metric")
    if set(means.columns) != {"learning", "forgetting"} or means.isna().any().any():
        incomplete = means.index[means.reindex(columns=["learning", "forgetting"]).isna().any(axis=1)]
        raise ValueError(
            f"learning and forgetting must both be present for every layer; missing at {incomplete.tolist()}"
        )
    rows = []
    for setting, per_layer in means.groupby(level=setting_keys):
        context = dict(zip(setting_keys, setting))
        r, p = pearson(per_layer["learning"], per_layer["forgetting"])
        paper_r = learning_forgetting_r(Run.from_row(context))
        rows.append({**context, "r": r, "p_value": p, "n_layers": len(per_layer), "paper_r": paper_r})
    return tables.concat([pd.DataFrame(rows)] if rows else [], tables.LEARNING_FORGETTING_CORRELATION)
