"""Table schemas, their validated parquet I/O and Markdown / HTML rendering; the library's tables.

Each table is a tidy pandas DataFrame: one row per the thing named in ``one_row_per``,
one column per entry of ``columns``. :func:`write_table` and :func:`read_table` enforce
the schema, and the schemas page, docs/results.md, is generated from the schemas (``python -m
finetune_invariance.study.tables``), so the schema documented there and the one enforced
here are the same object. The study's own tables are in :mod:`.study.tables`.

Layers are numbered 0..depth as in docs/method.md: layer l < depth is the output of
transformer block l (all tokens, flattened), layer depth is the final normalised,
pooled representation.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
import re
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
    #: The columns that identify a row (``one_row_per``): :func:`conform` refuses a table
    #: that repeats them, which would count a measurement twice in every mean over it.
    keys: tuple[str, ...] = ()

    def with_columns(self, name: str, one_row_per: str, extra: dict[str, Column]) -> "TableSchema":
        """A schema that prefixes this one's columns with ``extra`` (study context columns,
        which join its keys)."""
        return TableSchema(name, one_row_per, {**extra, **self.columns}, (*extra, *self.keys) if self.keys else ())


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
    keys=("reference", "target", "seed", "reference_layer", "target_layer"),
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
    keys=("pretrained", "finetuned", "seed", "layer", "metric"),
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
    keys=("pretrained", "finetuned", "seed", "pretrained_layer", "finetuned_layer"),
)

#: The tables the metrics library writes (the study's are in :mod:`.study.tables`).
LIBRARY_SCHEMAS: tuple[TableSchema, ...] = (PAIR_SIMILARITY, LAYER_METRICS, INVARIANCE_FLOW)

SEED_SUMMARY_COLUMNS = {
    "mean": _c("float64", "mean over seeds"),
    "std": _c("float64", "sample standard deviation over seeds (ddof=1; NaN for one seed)"),
    "n_seeds": _c("int64", "number of seeds averaged"),
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
    if schema.keys:
        require_unique(
            out,
            schema.keys,
            f"rows of table '{schema.name}'",
            f": one row per {schema.one_row_per}, or a measurement counts twice in every mean over the table",
        )
    return out.reset_index(drop=True)


def require_unique(df: pd.DataFrame, keys: Sequence[str], what: str, why: str = "") -> None:
    """Raise :class:`SchemaError` when rows of ``df`` repeat the values of ``keys``, naming
    how many, an example, and ``why`` it matters."""
    repeated = df.duplicated(list(keys), keep=False)
    if repeated.any():
        example = df.loc[repeated, list(keys)].iloc[0].to_dict()
        raise SchemaError(f"{int(repeated.sum())} {what} share the same {list(keys)}, e.g. {example}{why}")


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
    """The schema as a Markdown table (used to write docs/results.md's table schemas)."""
    lines = [f"One row per {schema.one_row_per}.", "", "| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{n}` | {c.dtype} | {_escape_pipes(c.doc)} |" for n, c in schema.columns.items()]
    return "\n".join(lines)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """``df`` (without its index) as a GitHub-flavoured Markdown table.

    Floats use ``floatfmt``, missing values show as '–', numeric columns are right-aligned.
    Written here rather than via ``DataFrame.to_markdown`` so that the package does not
    depend on ``tabulate``.
    """
    if df.columns.empty:
        raise ValueError("markdown_table: the DataFrame has no columns")
    columns = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    lines = [
        "| " + " | ".join(_escape_pipes(c) for c in columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _markdown_cell(value: object, floatfmt: str) -> str:
    return _escape_pipes(_plain_cell(value, floatfmt)).replace("\n", " ")


def html_table(df: pd.DataFrame, floatfmt: str = ".3f", status_column: str | None = None) -> str:
    """``df`` (without its index) as an HTML ``<table>``, its cells as :func:`markdown_table`
    writes them (floats with ``floatfmt``, missing values '–', numeric columns right-aligned).

    Each cell of ``status_column`` carries the class ``status-<its value>`` (lower case,
    runs of other characters as '-'), so a page can colour verdicts.
    """
    if df.columns.empty:
        raise ValueError("html_table: the DataFrame has no columns")
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for row in df.itertuples(index=False):
        cells = []
        for column, value, is_numeric in zip(df.columns, row, numeric):
            classes = ["number"] if is_numeric else []
            if column == status_column:
                classes.append("status-" + re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-"))
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attribute}>{html.escape(_plain_cell(value, floatfmt))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"


def _plain_cell(value: object, floatfmt: str) -> str:
    """A cell's text: floats with ``floatfmt``, missing values '–'."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return format(value, floatfmt)
    return str(value)


_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; text-align: left; overflow-wrap: anywhere; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
"""


def html_page(title: str, body: str, style: str = "") -> str:
    """A self-contained HTML page (its style inline, nothing linked) with ``title`` as its
    heading and ``body`` (HTML) below: Snakemake's report shows such a page in a frame."""
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{html.escape(title)}</title>\n"
        f"<style>{_PAGE_STYLE}{style}</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    )


def write_markdown_and_html(df: pd.DataFrame, markdown_path: str | os.PathLike, html_path: str | os.PathLike, title: str) -> None:
    """``df`` as a Markdown table (to read beside the results) and as an HTML page titled
    ``title`` (the report shows it; it does not render Markdown)."""
    for path, text in ((markdown_path, markdown_table(df)), (html_path, html_page(title, html_table(df)))):
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
