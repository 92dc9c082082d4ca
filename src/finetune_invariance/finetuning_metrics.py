"""The study's metrics from PAIR_SIMILARITY tables (docs/method.md, "The study's metrics").

Nothing here touches a model: every metric is read off the STIR and CKA values that
:func:`finetune_invariance.stir.pair_similarity` stored, p the pretrained and f the
finetuned model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from . import tables


def _direction(pair_df: pd.DataFrame, reference: str, target: str) -> pd.DataFrame:
    """The rows with the given reference (inverted) and target (compared) model."""
    rows = pair_df[(pair_df["reference"] == reference) & (pair_df["target"] == target)]
    if rows.empty:
        pairs = sorted(set(zip(pair_df["reference"], pair_df["target"])))
        raise ValueError(f"no rows with reference='{reference}' and target='{target}'; the table has {pairs}")
    tables.require_unique(rows, tables.PAIR_SIMILARITY.keys, "pair_similarity rows", _COUNTED_TWICE)
    return rows


#: Why a repeated row is refused: it would pass for another seed's measurement.
_COUNTED_TWICE = " (the same table read twice?): a repeated row would count as another seed"


def _same_layer(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows where the inverted layer and the compared layer are the same layer l."""
    same = rows[rows["reference_layer"] == rows["target_layer"]]
    return same.rename(columns={"reference_layer": "layer"})


def _metric_rows(rows: pd.DataFrame, metric: str, column: str, pretrained: str, finetuned: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pretrained": pretrained,
            "finetuned": finetuned,
            "seed": rows["seed"].to_numpy(),
            "layer": rows["layer"].to_numpy(),
            "metric": metric,
            "value": 1.0 - rows[column].to_numpy(),
        }
    )


def layer_metrics(pair_df: pd.DataFrame, pretrained: str, finetuned: str) -> pd.DataFrame:
    """Forgetting, learning and CKA divergence per (seed, layer), as :data:`tables.LAYER_METRICS`.

    - Forgetting(l) = 1 - STIR(f_l | p_l)   (docs/method.md Eq. 2 with STIR(p_l | p_l) = 1)
    - Learning(l) = 1 - STIR(p_l | f_l)
    - CKA divergence(l) = 1 - CKA(p_l(X), f_l(X))
    """
    p_to_f = _same_layer(_direction(pair_df, pretrained, finetuned))
    f_to_p = _same_layer(_direction(pair_df, finetuned, pretrained))
    out = pd.concat(
        [
            _metric_rows(p_to_f, "forgetting", "stir", pretrained, finetuned),
            _metric_rows(f_to_p, "learning", "stir", pretrained, finetuned),
            _metric_rows(p_to_f, "cka_divergence", "cka", pretrained, finetuned),
        ],
        ignore_index=True,
    )
    return tables.conform(out.sort_values(["metric", "seed", "layer"], kind="stable"), tables.LAYER_METRICS)


def invariance_flow(pair_df: pd.DataFrame, pretrained: str, finetuned: str) -> pd.DataFrame:
    """Invariance Flow(i, j) = STIR(f_j | p_i) - STIR(f_i | p_i) (docs/method.md) per seed.

    Returned as :data:`tables.INVARIANCE_FLOW`. Rows i are pretrained layers, columns j
    finetuned layers; the diagonal is exactly 0. Positive values below the diagonal (j < i):
    invariances compressed into earlier layers; above it (j > i): expanded to deeper layers.
    :func:`flow_matrix` averages it over seeds.
    """
    rows = _direction(pair_df, pretrained, finetuned)
    diagonal = _same_layer(rows).set_index(["seed", "layer"])["stir"]
    missing = set(zip(rows["seed"], rows["reference_layer"])) - set(diagonal.index)
    if missing:
        raise ValueError(
            f"no STIR(f_i | p_i) for (seed, layer i) {sorted(missing)[:5]}: the table lacks those target layers"
        )
    baseline = diagonal.loc[list(zip(rows["seed"], rows["reference_layer"]))].to_numpy()
    out = pd.DataFrame(
        {
            "pretrained": pretrained,
            "finetuned": finetuned,
            "seed": rows["seed"].to_numpy(),
            "pretrained_layer": rows["reference_layer"].to_numpy(),
            "finetuned_layer": rows["target_layer"].to_numpy(),
            "flow": rows["stir"].to_numpy() - baseline,
        }
    )
    return tables.conform(
        out.sort_values(["seed", "pretrained_layer", "finetuned_layer"], kind="stable"), tables.INVARIANCE_FLOW
    )


def flow_matrix(flow: pd.DataFrame) -> pd.DataFrame:
    """The seed-mean Invariance Flow matrix of one model pair (docs/method.md, "The study's metrics").

    M[i, j] = mean over seeds of Invariance Flow(i, j) = STIR(f_j | p_i) - STIR(f_i | p_i),
    read from the ``flow`` column of an :data:`tables.INVARIANCE_FLOW` table (as
    :func:`invariance_flow` makes; other columns are ignored). Rows (index
    ``pretrained_layer``) are pretrained layers i, columns (``finetuned_layer``) finetuned
    layers j, both 0..L-1; below the diagonal is compression, above it expansion.

    ValueError unless the rows are of exactly one (pretrained, finetuned) pair, hold each
    (seed, i, j) once, and every seed covers every cell of the L x L grid (a seed missing a
    cell would shift that cell's mean); the message names the offending pairs or cells.
    """
    _require_columns(flow, tables.INVARIANCE_FLOW.columns)
    pairs = sorted(set(zip(flow["pretrained"], flow["finetuned"])))
    if len(pairs) != 1:
        raise ValueError(f"flow_matrix needs the rows of exactly one (pretrained, finetuned) pair, got {pairs}")
    keys = ["seed", "pretrained_layer", "finetuned_layer"]
    tables.require_unique(flow, keys, "flow rows")
    n_layers = int(max(flow["pretrained_layer"].max(), flow["finetuned_layer"].max())) + 1
    grid = pd.MultiIndex.from_product([sorted(flow["seed"].unique()), range(n_layers), range(n_layers)], names=keys)
    present = pd.MultiIndex.from_frame(flow[keys])
    missing = grid.difference(present)
    if len(missing):
        raise ValueError(
            f"the {n_layers}x{n_layers} flow matrix lacks {len(missing)} cells (seed, i, j): {list(missing[:5])}"
        )
    outside = present.difference(grid)
    if len(outside):
        raise ValueError(f"flow rows (seed, i, j) {list(outside[:5])} lie outside layers 0..{n_layers - 1}")
    undefined = flow["flow"].isna().to_numpy()
    if undefined.any():  # groupby's mean would skip them, averaging fewer seeds in those cells
        raise ValueError(f"flow is NaN in {int(undefined.sum())} rows, (seed, i, j) {list(present[undefined][:5])}")
    return flow.groupby(keys[1:])["flow"].mean().unstack().astype("float64")


def _require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    for column in columns:
        if column not in df.columns:
            raise ValueError(f"column '{column}' is not in the table; columns: {list(df.columns)}")


def summarize_over_seeds(df: pd.DataFrame, value: str = "value", keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count of ``value`` over seeds (:data:`tables.SEED_SUMMARY_COLUMNS`).

    Grouped by ``keys``: by default every column that is neither ``seed``, ``value``, nor
    another floating-point (measurement) column. ValueError when a (keys, seed) repeats.
    """
    _require_columns(df, ("seed", value))
    if keys is None:
        keys = [c for c in df.columns if c not in ("seed", value) and not pd.api.types.is_float_dtype(df[c])]
    if not keys:
        raise ValueError("no key columns to group by: pass keys=")
    tables.require_unique(df, [*keys, "seed"], "rows", _COUNTED_TWICE)  # n_seeds counts rows
    grouped = df.groupby(list(keys), dropna=False, sort=True)[value]
    out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
    return out.astype({"mean": "float64", "std": "float64", "n_seeds": "int64"})
