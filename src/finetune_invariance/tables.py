"""Schemas of every table the library and the study write, and their parquet I/O.

Each table is a tidy pandas DataFrame: one row per the thing named in ``one_row_per``,
one column per entry of ``columns``. The README's "results map" is generated from this
module's :data:`SCHEMAS`, so the schema documented there and the one enforced here are
the same object.

Layers are numbered 0..depth as in METHOD.md: layer l < depth is the output of
transformer block l (all tokens, flattened), layer depth is the final normalised,
pooled representation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .atomic import atomic_path


@dataclass(frozen=True)
class Column:
    dtype: str  # a pandas dtype name: "int64", "float64", "string", "bool"
    doc: str


@dataclass(frozen=True)
class TableSchema:
    name: str
    one_row_per: str
    columns: dict[str, Column] = field(default_factory=dict)

    def with_columns(self, name: str, one_row_per: str, extra: dict[str, Column]) -> "TableSchema":
        """A schema that prefixes this one's columns with ``extra`` (study context columns)."""
        return TableSchema(name, one_row_per, {**extra, **self.columns})


def _c(dtype: str, doc: str) -> Column:
    return Column(dtype, doc)


# --- library tables -------------------------------------------------------------------

PAIR_SIMILARITY = TableSchema(
    "pair_similarity",
    "(reference model, target model, seed, reference layer, target layer)",
    {
        "reference": _c("string", "name of the model whose layer was inverted (m1)"),
        "target": _c("string", "name of the model whose representations are compared (m2)"),
        "seed": _c("int64", "STIR seed: draw of the n images and of the starting noise"),
        "reference_layer": _c("int64", "layer i of the reference model used for inversion"),
        "target_layer": _c("int64", "layer j of the target model used for CKA"),
        "stir": _c("float64", "STIR(target_j | reference_i) = CKA(target_j(X), target_j(X'_i)), unitless in [0, 1]"),
        "cka": _c("float64", "plain linear CKA(reference_i(X), target_j(X)), unitless in [0, 1]"),
        "n_images": _c("int64", "number of images n in X"),
    },
)

LAYER_METRICS = TableSchema(
    "layer_metrics",
    "(pretrained model, finetuned model, seed, layer, metric)",
    {
        "pretrained": _c("string", "name of the pretrained model p"),
        "finetuned": _c("string", "name of the finetuned model f"),
        "seed": _c("int64", "STIR seed"),
        "layer": _c("int64", "layer l (same index in p and f)"),
        "metric": _c("string", "'forgetting', 'learning' or 'cka_divergence'"),
        "value": _c("float64", "1 - STIR(f_l|p_l), 1 - STIR(p_l|f_l) or 1 - CKA(p_l, f_l); unitless"),
    },
)

INVARIANCE_FLOW = TableSchema(
    "invariance_flow",
    "(pretrained model, finetuned model, seed, pretrained layer i, finetuned layer j)",
    {
        "pretrained": _c("string", "name of the pretrained model p"),
        "finetuned": _c("string", "name of the finetuned model f"),
        "seed": _c("int64", "STIR seed"),
        "pretrained_layer": _c("int64", "row i: layer of p whose invariances are followed"),
        "finetuned_layer": _c("int64", "column j: layer of f"),
        "flow": _c("float64", "STIR(f_j|p_i) - STIR(f_i|p_i); 0 on the diagonal; unitless"),
    },
)

SEED_SUMMARY_COLUMNS = {
    "mean": _c("float64", "mean over seeds"),
    "std": _c("float64", "sample standard deviation over seeds (ddof=1; NaN for one seed)"),
    "n_seeds": _c("int64", "number of seeds averaged"),
}

# --- study tables ---------------------------------------------------------------------

STUDY_CONTEXT = {
    "source": _c("string", "pretraining source: a dataset name, a hub tag, or 'scratch'"),
    "dataset": _c("string", "finetune dataset"),
    "task": _c("string", "'classification' or 'reconstruction'"),
    "variant": _c("string", "hyperparameter variant name (config 'variants')"),
    "epoch": _c("int64", "finetuning epoch of the checkpoint (1-based; 0 is the starting weights)"),
}

STUDY_LAYER_METRICS = LAYER_METRICS.with_columns(
    "study_layer_metrics", "(source, dataset, task, variant, epoch, seed, layer, metric)", STUDY_CONTEXT
)
STUDY_INVARIANCE_FLOW = INVARIANCE_FLOW.with_columns(
    "study_invariance_flow",
    "(source, dataset, task, variant, epoch, seed, pretrained layer, finetuned layer)",
    STUDY_CONTEXT,
)

TRAINING_HISTORY = TableSchema(
    "training_history",
    "(training run, epoch)",
    {
        "run": _c("string", "run name: '<stage>/<source>/<dataset>/<task>/<variant>'"),
        "epoch": _c("int64", "epoch number, 1-based"),
        "train_loss": _c("float64", "mean training loss over the epoch (cross-entropy in nats, or L1 in [0,1] pixel units)"),
        "test_loss": _c("float64", "mean loss on the test split, same units as train_loss"),
        "test_accuracy": _c("float64", "top-1 accuracy on the test split in [0, 1]; NaN for reconstruction"),
        "test_l1": _c("float64", "mean absolute pixel error on the test split in [0, 1] units; NaN for classification"),
        "learning_rate": _c("float64", "learning rate at the end of the epoch"),
        "seconds": _c("float64", "wall time of the epoch in seconds (training and evaluation)"),
    },
)

ROBUST_ACCURACY = TableSchema(
    "robust_accuracy",
    "(source, dataset, task, variant, epoch, corruption, severity)",
    {
        **STUDY_CONTEXT,
        "corruption": _c("string", "corruption name, or 'clean' for the uncorrupted test sample"),
        "severity": _c("int64", "1..5; 0 for 'clean'"),
        "accuracy": _c("float64", "top-1 accuracy in [0, 1] on the sampled inputs"),
        "n_images": _c("int64", "number of sampled test inputs"),
    },
)

HYPOTHESES = TableSchema(
    "robustness_hypotheses",
    "(source, dataset, task, variant, hypothesis)",
    {
        "source": STUDY_CONTEXT["source"],
        "dataset": STUDY_CONTEXT["dataset"],
        "task": STUDY_CONTEXT["task"],
        "variant": STUDY_CONTEXT["variant"],
        "hypothesis": _c("string", "identifier '<family>:<selection>:<combination>:<aggregate>'"),
        "family": _c("string", "'stir' (learning/forgetting) or 'cka' (CKA divergence)"),
        "layer_selection": _c("string", "'first_k' or 'last_k' with k layers, e.g. 'last_11'"),
        "combination": _c("string", "'learning+forgetting', 'learning-forgetting', 'learning', 'forgetting' or 'cka_divergence'"),
        "aggregate": _c("string", "'mean', 'std', 'min' or 'max' across the selected layers"),
        "r": _c("float64", "Pearson r across epochs with the mean corrupted accuracy"),
        "p_value": _c("float64", "two-sided p-value of r (scipy.stats.pearsonr)"),
        "p_bonferroni": _c("float64", "min(1, p_value * family size)"),
        "family_size": _c("int64", "number of hypotheses in the correction family"),
        "n_epochs": _c("int64", "number of epochs correlated"),
    },
)

TABLE1 = TableSchema(
    "table1_accuracy",
    "(source, dataset, task, variant) training run",
    {
        "source": STUDY_CONTEXT["source"],
        "dataset": STUDY_CONTEXT["dataset"],
        "task": STUDY_CONTEXT["task"],
        "variant": STUDY_CONTEXT["variant"],
        "epochs": _c("int64", "number of finetuning epochs"),
        "test_accuracy": _c("float64", "final top-1 test accuracy in [0, 1] (NaN for reconstruction)"),
        "test_l1": _c("float64", "final test L1 in [0, 1] pixel units (NaN for classification)"),
        "paper_accuracy": _c("float64", "the paper's Table 1 value where it reports one, else NaN"),
    },
)

EARLY_EPOCH_CORRELATION = TableSchema(
    "early_epoch_correlation",
    "(source, dataset, task, variant, hypothesis, last epoch e)",
    {
        "source": STUDY_CONTEXT["source"],
        "dataset": STUDY_CONTEXT["dataset"],
        "task": STUDY_CONTEXT["task"],
        "variant": STUDY_CONTEXT["variant"],
        "hypothesis": HYPOTHESES.columns["hypothesis"],
        "last_epoch": _c("int64", "e: the correlation uses epochs 1..e"),
        "r": _c("float64", "Pearson r over epochs 1..e with the mean corrupted accuracy"),
        "p_value": _c("float64", "two-sided p-value of r"),
    },
)

LEARNING_FORGETTING_CORRELATION = TableSchema(
    "learning_forgetting_correlation",
    "(source, dataset, task, variant, epoch) setting",
    {
        **STUDY_CONTEXT,
        "r": _c("float64", "Pearson r across layers between seed-mean learning and seed-mean forgetting"),
        "p_value": _c("float64", "two-sided p-value of r"),
        "n_layers": _c("int64", "number of layers correlated"),
    },
)

SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in (
        PAIR_SIMILARITY,
        LAYER_METRICS,
        INVARIANCE_FLOW,
        STUDY_LAYER_METRICS,
        STUDY_INVARIANCE_FLOW,
        TRAINING_HISTORY,
        ROBUST_ACCURACY,
        HYPOTHESES,
        TABLE1,
        EARLY_EPOCH_CORRELATION,
        LEARNING_FORGETTING_CORRELATION,
    )
}


#: The study's aggregated tables, ``results/tables/<stem>.parquet``, by file stem.
STUDY_TABLES: dict[str, TableSchema] = {
    "layer_metrics": STUDY_LAYER_METRICS,
    "invariance_flow": STUDY_INVARIANCE_FLOW,
    "robust_accuracy": ROBUST_ACCURACY,
    "hypotheses": HYPOTHESES,
    "early_epoch_correlation": EARLY_EPOCH_CORRELATION,
    "learning_forgetting_correlation": LEARNING_FORGETTING_CORRELATION,
    "table1_accuracy": TABLE1,
}


class SchemaError(ValueError):
    """A table does not have the columns or dtypes its schema documents."""


def conform(df: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    """Return ``df`` with exactly the schema's columns, in order, cast to their dtypes.

    Raises :class:`SchemaError` naming the missing columns; extra columns are an error too,
    so an undocumented column never reaches a parquet file.
    """
    missing = [c for c in schema.columns if c not in df.columns]
    extra = [c for c in df.columns if c not in schema.columns]
    if missing or extra:
        raise SchemaError(
            f"table '{schema.name}': missing columns {missing}, undocumented columns {extra}; "
            f"expected {list(schema.columns)}"
        )
    out = df[list(schema.columns)].copy()
    for name, col in schema.columns.items():
        try:
            out[name] = out[name].astype(col.dtype)
        except (TypeError, ValueError) as err:
            raise SchemaError(f"table '{schema.name}': column '{name}' cannot be {col.dtype}: {err}") from err
    return out.reset_index(drop=True)


def concat(frames: list[pd.DataFrame], schema: TableSchema) -> pd.DataFrame:
    """Stack tables of one schema; no frames gives the schema's empty table."""
    empty = pd.DataFrame({name: pd.Series(dtype=col.dtype) for name, col in schema.columns.items()})
    return conform(pd.concat([empty, *frames], ignore_index=True) if frames else empty, schema)


def write_table(df: pd.DataFrame, path: str | os.PathLike, schema: TableSchema) -> Path:
    """Validate ``df`` against ``schema`` and write it to parquet atomically.

    The file appears under its final name only once completely written, so an interrupted
    job never leaves a table that looks complete.
    """
    table = conform(df, schema)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False)
    return Path(path)


def read_table(path: str | os.PathLike, schema: TableSchema) -> pd.DataFrame:
    """Read a parquet table and check it against ``schema``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table '{schema.name}' expected at {path} does not exist")
    return conform(pd.read_parquet(path, engine="pyarrow"), schema)


def _escape_pipes(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_schema(schema: TableSchema) -> str:
    """The schema as a Markdown table (used to write the README's results map)."""
    lines = [f"One row per {schema.one_row_per}.", "", "| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {c.dtype} | {_escape_pipes(c.doc)} |" for n, c in schema.columns.items()]
    return "\n".join(lines)


def results_map() -> str:
    """Markdown documentation of every table in :data:`SCHEMAS` (README.md's results map)."""
    sections = [f"#### `{schema.name}`\n\n{markdown_schema(schema)}" for schema in SCHEMAS.values()]
    return "\n\n".join(sections) + "\n"


if __name__ == "__main__":
    print(results_map(), end="")
