"""Figures of one model pair, and the drawing both wings share (the study's figures use it).

Figures only draw: per-layer seed summaries come from
:func:`.finetuning_metrics.summarize_over_seeds`, the flow matrix from
:func:`.finetuning_metrics.flow_matrix`. A line is a given mean and its band the given
mean ± sd; nothing is averaged here.

- :func:`plot_layer_profiles`: forgetting, learning and CKA divergence per layer, one
  panel each, with the band of ± 1 sd over STIR seeds;
- :func:`plot_flow_matrix`: the seed-mean invariance-flow matrix as a heatmap (rows
  pretrained layers i, columns finetuned layers j; below the diagonal compression, above
  it expansion), on a diverging scale centred on 0 with symmetric limits.

Each writes ``<stem>.png`` and ``<stem>.pdf`` (:func:`save_figure`: atomically and
without a date, so the same figure gives the same bytes), in one seaborn style
(:func:`style_rc`) applied for the duration of the call. This is the only library module
that imports matplotlib.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .atomic import atomic_path

Colour = tuple[float, float, float]

PNG_DPI = 150
BAND_ALPHA = 0.2
#: One colour-blind-safe palette for every figure.
PALETTE: list[Colour] = sns.color_palette("colorblind")
#: Metadata that would make the same figure give other bytes in another run: the PDF's
#: creation date (the PNG writer stores none).
_UNDATED = {"pdf": {"CreationDate": None}, "png": {}}

#: The per-layer metrics in the order they are drawn, with their axis labels.
METRIC_LABELS: dict[str, str] = {
    "learning": "learning\n1 − STIR(p_l | f_l)",
    "forgetting": "forgetting\n1 − STIR(f_l | p_l)",
    "cka_divergence": "CKA divergence\n1 − CKA(p_l, f_l)",
}
#: Columns of the seed summary :func:`plot_layer_profiles` draws.
PROFILE_COLUMNS = ("layer", "metric", "mean", "std", "n_seeds")


# --- style and saving ---------------------------------------------------------------------


def style_rc() -> dict[str, object]:
    """The rcParams of every figure: seaborn 'whitegrid' + 'paper' context, tight saving."""
    rc: dict[str, object] = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("paper", font_scale=1.1))
    rc.update(
        {
            "axes.prop_cycle": cycler(color=PALETTE),
            "figure.constrained_layout.use": True,
            "legend.frameon": False,
            "savefig.dpi": PNG_DPI,
            "savefig.bbox": "tight",
        }
    )
    return rc


def styled(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw and save under :func:`style_rc` without touching the caller's global rcParams."""

    @functools.wraps(plot)
    def with_style(*args: object, **kwargs: object) -> Figure:
        with mpl.rc_context(style_rc()):
            return plot(*args, **kwargs)

    return with_style


def save_figure(fig: Figure, png_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` beside it, creating folders; close ``fig``.

    Each file is written atomically and without a date, so the same figure gives the same bytes.
    """
    png = Path(png_path)
    if png.suffix.lower() != ".png":
        raise ValueError(f"figure path {png} must end in .png (the PDF is written beside it)")
    pdf = png.with_suffix(".pdf")
    try:
        for path, kind in ((png, "png"), (pdf, "pdf")):
            with atomic_path(path, suffix=f".{kind}") as tmp:
                fig.savefig(tmp, format=kind, dpi=PNG_DPI, bbox_inches="tight", metadata=_UNDATED[kind])
    finally:
        plt.close(fig)  # a no-op for figures pyplot does not manage
    return png, pdf


# --- shared drawing -----------------------------------------------------------------------


def line_with_band(ax: Axes, x: object, mean: object, std: object, colour: Colour, **line: object) -> Line2D:
    """The given means as a line and mean ± sd as a band (none where the sd is NaN: one seed)."""
    x, mean, std = (np.asarray(v, dtype=np.float64) for v in (x, mean, std))
    (drawn,) = ax.plot(x, mean, color=colour, **line)
    ax.fill_between(x, mean - std, mean + std, color=colour, alpha=BAND_ALPHA, linewidth=0)
    return drawn


def format_layer_axis(ax: Axes, n_layers: int) -> None:
    """Integer layer ticks 0..L-1; the label says which one is the pooled representation."""
    step = 1 if n_layers <= 16 else 2
    ax.set_xticks(range(0, n_layers, step))
    ax.set_xlim(-0.3, n_layers - 0.7)
    ax.set_xlabel(f"layer ({n_layers - 1} = pooled output)")


def seeds_label(n_seeds: pd.Series) -> str:
    """'mean over 3 STIR seed(s), bands: ± 1 sd' (distinct counts joined by '/')."""
    counts = "/".join(str(k) for k in sorted(set(n_seeds.astype(int))))
    return f"mean over {counts} STIR seed(s), bands: ± 1 sd"


def draw_flow_heatmap(ax: Axes, matrix: pd.DataFrame) -> None:
    """A seed-mean flow matrix (rows pretrained layers i, columns finetuned layers j) as a heatmap.

    Row 0 is at the top, so compression (j < i) is the lower-left triangle and expansion
    (j > i) the upper right; the diverging scale is centred on 0 with symmetric limits.
    ValueError unless ``matrix`` is a non-empty square matrix of finite values.
    """
    if matrix.empty:
        raise ValueError("matrix: the selection is empty (no invariance-flow cells to plot)")
    n_layers = len(matrix)
    if matrix.shape != (n_layers, n_layers) or not np.isfinite(matrix.to_numpy(dtype=np.float64)).all():
        raise ValueError(f"matrix: need a square matrix of finite flows, got shape {matrix.shape}")
    limit = max(float(np.abs(matrix.to_numpy()).max()), 1e-6)  # all-zero matrix: any tiny range
    sns.heatmap(
        matrix,
        ax=ax,
        cmap="RdBu_r",
        center=0.0,
        vmin=-limit,
        vmax=limit,
        square=True,
        annot=n_layers <= 16,
        fmt=".2f",
        annot_kws={"fontsize": 5.5},
        linewidths=0.3,
        linecolor="white",
        cbar_kws={"label": "flow = STIR(f_j | p_i) − STIR(f_i | p_i)", "shrink": 0.8},
    )
    ax.set_xlabel(f"finetuned layer j ({n_layers - 1} = pooled)")
    ax.set_ylabel(f"pretrained layer i ({n_layers - 1} = pooled)")
    ax.tick_params(axis="y", rotation=0)


def flow_figure_size(n_layers: int) -> tuple[float, float]:
    """Inches for a flow heatmap of ``n_layers`` layers with its colour bar and a three-line title."""
    return 0.42 * n_layers + 2.6, 0.36 * n_layers + 1.8


# --- the figures of one model pair ---------------------------------------------------------


@styled
def plot_layer_profiles(summary: pd.DataFrame, path: str | os.PathLike, title: str) -> Figure:
    """Forgetting, learning and CKA divergence per layer, mean ± sd over seeds, one panel each.

    ``summary``: :func:`.finetuning_metrics.summarize_over_seeds` of one pair's
    ``layer_metrics`` (columns :data:`PROFILE_COLUMNS`, one row per (layer, metric)).
    """
    missing = [c for c in PROFILE_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"summary: missing columns {missing}; it has {list(summary.columns)}")
    repeated = summary.duplicated(["metric", "layer"], keep=False)
    if repeated.any():
        raise ValueError(
            f"summary: {int(repeated.sum())} rows share a (metric, layer): pass the summary of one model pair"
        )
    metrics = [m for m in METRIC_LABELS if (summary["metric"] == m).any()]
    if not metrics:
        raise ValueError(f"summary: no rows of the metrics {list(METRIC_LABELS)}")
    n_layers = int(summary["layer"].max()) + 1
    fig = Figure(figsize=(3.3 * len(metrics), 3.2))
    axes = fig.subplots(1, len(metrics), sharex=True, squeeze=False)[0]
    for ax, metric, colour in zip(axes, metrics, PALETTE):
        line = summary[summary["metric"] == metric].sort_values("layer")
        line_with_band(ax, line["layer"], line["mean"], line["std"], colour, marker="o", markersize=4)
        format_layer_axis(ax, n_layers)
        ax.set_ylabel(METRIC_LABELS[metric])
    fig.suptitle(f"{title}\n{seeds_label(summary['n_seeds'])}")
    save_figure(fig, path)
    return fig


@styled
def plot_flow_matrix(matrix: pd.DataFrame, n_seeds: int, path: str | os.PathLike, title: str) -> Figure:
    """The seed-mean invariance-flow ``matrix`` (:func:`.finetuning_metrics.flow_matrix`) of one pair."""
    fig = Figure(figsize=flow_figure_size(len(matrix)))
    ax = fig.subplots()
    draw_flow_heatmap(ax, matrix)
    ax.set_title(
        f"Invariance flow\n{title}\nmean of {n_seeds} STIR seed(s)\nbelow diagonal: compression, above: expansion"
    )
    save_figure(fig, path)
    return fig
