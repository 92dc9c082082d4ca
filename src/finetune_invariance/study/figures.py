"""Every figure of the paper, drawn from the study's tables in one seaborn style.

Figure numbers are the published paper's (the text copy in ``paper/`` numbers them from
0). Each function takes rows the caller has already selected (e.g. the final epoch and
the default variant), validates them against their schema in :mod:`.tables`, and writes
``<stem>.png`` and ``<stem>.pdf`` through :func:`save_figure`:

========================================  =====================================
function                                  paper figure
========================================  =====================================
:func:`plot_task_comparison`              Fig. 1a, Appendix C
:func:`plot_cka_divergence_by_task`       Fig. 1b
:func:`plot_source_comparison`            Fig. 2a, 2b
:func:`plot_cka_divergence_by_source`     Fig. 3
:func:`plot_invariance_flow`              Fig. 4a, 4b, Appendix D
:func:`plot_dynamics`                     Fig. 5, Appendix E (Figs. 10-13)
:func:`plot_variants`                     Figs. 6, 15
:func:`plot_early_epoch_correlation`      Fig. 14
========================================  =====================================

Wherever the tables hold several STIR seeds, the line is the seed mean and the band is
one standard deviation over the per-seed rows (seaborn ``errorbar="sd"``). Layers are
numbered 0..depth as in METHOD.md, layer ``depth`` being the pooled representation.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .robustness import mean_corrupted_accuracy
from .tables import (
    EARLY_EPOCH_CORRELATION,
    ROBUST_ACCURACY,
    STUDY_INVARIANCE_FLOW,
    STUDY_LAYER_METRICS,
    TableSchema,
    conform,
)

Colour = tuple[float, float, float]

PNG_DPI = 150

# One colour-blind-safe palette for everything. Index 2 (green) is reserved for training
# from scratch, the colour the paper uses for it; the task colours are not reused for
# sources so that no colour means two things in Figs. 1-3.
_PALETTE: list[Colour] = sns.color_palette("colorblind")
SCRATCH = "scratch"
SCRATCH_COLOUR: Colour = _PALETTE[2]
TASK_COLOURS: dict[str, Colour] = {"classification": _PALETTE[0], "reconstruction": _PALETTE[3]}
_SOURCE_COLOURS: list[Colour] = [_PALETTE[i] for i in (1, 4, 9, 5, 6, 8, 7)]
_LAYER_CMAP = "viridis"  # sequential: shallow layers dark, deep layers bright
_SEVERITY_PALETTE = "flare"  # sequential: severity 1 light, 5 dark

METRIC_LABELS: dict[str, str] = {
    "learning": "learning\n1 − STIR(p_l | f_l)",
    "forgetting": "forgetting\n1 − STIR(f_l | p_l)",
    "cka_divergence": "CKA divergence\n1 − CKA(p_l, f_l)",
}
RUN_KEYS = ("source", "dataset", "task", "variant")
_CONTEXT_KEYS = (*RUN_KEYS, "epoch")
_CLEAN = "clean"


# --- style ----------------------------------------------------------------------------


def style_rc() -> dict[str, object]:
    """The rcParams of every figure: seaborn 'whitegrid' + 'paper' context, tight saving."""
    rc: dict[str, object] = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("paper", font_scale=1.1))
    rc.update(
        {
            "axes.prop_cycle": cycler(color=_PALETTE),
            "figure.constrained_layout.use": True,
            "legend.frameon": False,
            "savefig.dpi": PNG_DPI,
            "savefig.bbox": "tight",
        }
    )
    return rc


def apply_style() -> None:
    """Make :func:`style_rc` the global matplotlib style (the plot functions use it anyway)."""
    mpl.rcParams.update(style_rc())


def _styled(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw and save under :func:`style_rc` without touching the caller's global rcParams."""

    @functools.wraps(plot)
    def styled(*args: object, **kwargs: object) -> Figure:
        with mpl.rc_context(style_rc()):
            return plot(*args, **kwargs)

    return styled


def task_palette(tasks: Iterable[str]) -> dict[str, Colour]:
    """Fixed colour per finetuning task; an unknown task name is an error."""
    names = sorted(set(tasks))
    unknown = [t for t in names if t not in TASK_COLOURS]
    if unknown:
        raise ValueError(f"no colour for task(s) {unknown}; known tasks: {sorted(TASK_COLOURS)}")
    return {t: TASK_COLOURS[t] for t in names}


def source_order(sources: Iterable[str]) -> list[str]:
    """Pretrained sources alphabetically, then 'scratch' (the baseline) last."""
    unique = set(sources)
    return sorted(unique - {SCRATCH}) + ([SCRATCH] if SCRATCH in unique else [])


def source_palette(sources: Iterable[str]) -> dict[str, Colour]:
    """'scratch' always green; pretrained sources take the source colours in sorted order.

    Figures drawn from the same set of sources therefore agree on every colour.
    """
    ordered = source_order(sources)
    pretrained = [s for s in ordered if s != SCRATCH]
    if len(pretrained) > len(_SOURCE_COLOURS):
        raise ValueError(f"{len(pretrained)} pretrained sources, but only {len(_SOURCE_COLOURS)} source colours")
    palette = dict(zip(pretrained, _SOURCE_COLOURS))
    if SCRATCH in ordered:
        palette[SCRATCH] = SCRATCH_COLOUR
    return palette


def _categorical_palette(names: Sequence[str]) -> dict[str, Colour]:
    """Distinct colours for variants or hypotheses (evenly spaced hues beyond 10 names)."""
    colours = sns.color_palette("colorblind" if len(names) <= len(_PALETTE) else "husl", len(names))
    return dict(zip(names, colours))


def save_figure(fig: Figure, png_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` beside it, creating folders; close ``fig``."""
    png = Path(png_path)
    if png.suffix.lower() != ".png":
        raise ValueError(f"figure path {png} must end in .png (the PDF is written beside it)")
    png.parent.mkdir(parents=True, exist_ok=True)
    pdf = png.with_suffix(".pdf")
    try:
        fig.savefig(png, dpi=PNG_DPI, bbox_inches="tight")
        fig.savefig(pdf, bbox_inches="tight")
    finally:
        plt.close(fig)  # a no-op for figures pyplot does not manage
    return png, pdf


# --- input validation -----------------------------------------------------------------


def _selection(df: pd.DataFrame, schema: TableSchema, argument: str) -> pd.DataFrame:
    """``df`` conformed to ``schema``; an empty selection is an error naming ``argument``."""
    table = conform(df, schema)
    if table.empty:
        raise ValueError(f"{argument}: the selection is empty (no '{schema.name}' rows to plot)")
    return table


def _single_values(df: pd.DataFrame, keys: Iterable[str], what: str) -> dict[str, object]:
    """The value each ``keys`` column takes, which must be the same on every row of ``df``."""
    mixed = {k: sorted(map(str, df[k].unique())) for k in keys if df[k].nunique() > 1}
    if mixed:
        listing = "; ".join(f"{k} {v}" for k, v in mixed.items())
        raise ValueError(f"{what} mix several values of {listing}: select one before plotting")
    return {k: df[k].iloc[0] for k in keys}


def _require_unique_rows(df: pd.DataFrame, keys: Sequence[str], argument: str) -> None:
    """Duplicated rows would silently count as extra seeds in the mean and the band."""
    duplicated = df.duplicated(list(keys), keep=False)
    if duplicated.any():
        example = df.loc[duplicated, list(keys)].iloc[0].to_dict()
        raise ValueError(f"{argument}: {int(duplicated.sum())} rows share the same {list(keys)}, e.g. {example}")


def _require_metrics(df: pd.DataFrame, metrics: Iterable[str], argument: str) -> None:
    missing = [m for m in metrics if not (df["metric"] == m).any()]
    if missing:
        raise ValueError(f"{argument}: the selection has no rows with metric {missing}")


def _joined(values: Iterable[object]) -> str:
    """Distinct values in sorted order, '/'-separated, for titles."""
    return "/".join(str(v) for v in sorted(set(values)))


# --- shared drawing helpers -----------------------------------------------------------


def _format_layer_axis(ax: Axes, n_layers: int) -> None:
    """Integer layer ticks 0..L-1; the label says which one is the pooled representation."""
    step = 1 if n_layers <= 16 else 2
    ax.set_xticks(range(0, n_layers, step))
    ax.set_xlim(-0.3, n_layers - 0.7)
    ax.set_xlabel(f"layer ({n_layers - 1} = pooled output)")


def _legend_handles(palette: Mapping[str, Colour], marker: str | None = None) -> list[Line2D]:
    return [Line2D([], [], color=c, marker=marker, label=name) for name, c in palette.items()]


def _per_seed_forgetting_std(layer_metrics: pd.DataFrame, layers: Sequence[int] | None) -> pd.DataFrame:
    """Standard deviation of forgetting across layers, one value per (run, epoch, seed).

    Population std (ddof=0) over the selected layers (all layers when ``layers`` is None),
    as in :mod:`.robustness`. It is taken within each seed so that the plot can show its
    seed-to-seed spread; the hypotheses table instead takes it of the seed-mean profile,
    which is never larger (a std over layers is a seminorm), the gap being seed noise.
    """
    forgetting = layer_metrics[layer_metrics["metric"] == "forgetting"]
    if layers is not None:
        forgetting = forgetting[forgetting["layer"].isin(layers)]
        if forgetting.empty:
            raise ValueError(f"std_layers={list(layers)}: no forgetting rows on these layers")
    keys = [*_CONTEXT_KEYS, "seed"]
    return forgetting.groupby(keys, as_index=False)["value"].agg(lambda v: float(np.std(v.to_numpy(), ddof=0)))


def _mean_corrupted_accuracy_by_variant(robust_accuracy: pd.DataFrame) -> pd.DataFrame:
    """Columns variant, epoch, accuracy: :func:`.robustness.mean_corrupted_accuracy` per variant.

    The same series the robustness hypotheses are correlated with (clean rows excluded).
    """
    parts = [
        mean_corrupted_accuracy(rows).rename("accuracy").reset_index().assign(variant=variant)
        for variant, rows in robust_accuracy.groupby("variant")
    ]
    return pd.concat(parts, ignore_index=True)


def _std_layers_text(layers: Sequence[int] | None) -> str:
    return "all layers" if layers is None else f"layers {min(layers)}-{max(layers)}"


# --- Figs. 1-3: one value per layer ----------------------------------------------------


def _plot_layer_profiles(
    layer_metrics: pd.DataFrame,
    metrics: Sequence[str],
    hue: str,
    palette_for: Callable[[Iterable[str]], dict[str, Colour]],
    title: str,
    path: str | os.PathLike,
) -> Figure:
    """Rows = metrics, columns = finetune datasets, one line per ``hue`` value over layers."""
    df = _selection(layer_metrics, STUDY_LAYER_METRICS, "layer_metrics")
    df = df[df["metric"].isin(metrics)]
    _require_metrics(df, metrics, "layer_metrics")
    _require_unique_rows(df, [*_CONTEXT_KEYS, "seed", "layer", "metric"], "layer_metrics")
    for (dataset, value), line in df.groupby(["dataset", hue]):
        others = [k for k in _CONTEXT_KEYS if k not in ("dataset", hue)]
        _single_values(line, others, f"layer_metrics rows for dataset {dataset}, {hue} {value}")

    palette = palette_for(df[hue].unique())
    datasets = sorted(df["dataset"].unique())
    n_layers = int(df["layer"].max()) + 1
    fig = Figure(figsize=(3.1 * len(datasets) + 1.8, 2.5 * len(metrics) + 0.7))
    axes = fig.subplots(len(metrics), len(datasets), sharex=True, sharey="row", squeeze=False)
    for row, metric in enumerate(metrics):
        for col, dataset in enumerate(datasets):
            ax = axes[row, col]
            panel = df[(df["metric"] == metric) & (df["dataset"] == dataset)]
            sns.lineplot(
                panel,
                x="layer",
                y="value",
                hue=hue,
                hue_order=[h for h in palette if h in set(panel[hue])],
                palette=palette,
                errorbar="sd",
                marker="o",
                markersize=4,
                legend=False,
                ax=ax,
            )
            if panel.empty:
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="grey")
            _format_layer_axis(ax, n_layers)
            ax.set_ylabel(METRIC_LABELS[metric] if col == 0 else "")
            if row == 0:
                ax.set_title(_column_title(df[df["dataset"] == dataset], hue))
    fig.legend(handles=_legend_handles(palette, "o"), title=hue, loc="outside right center")
    fig.suptitle(
        f"{title}\nvariant {_joined(df['variant'])}, epoch {_joined(df['epoch'])}; lines: mean over seeds, bands: ± sd"
    )
    save_figure(fig, path)
    return fig


def _column_title(column: pd.DataFrame, hue: str) -> str:
    dataset = column["dataset"].iloc[0]
    if hue == "source":
        return f"finetune {dataset}: {_joined(column['task'])}"
    return f"{_joined(column['source'])} → {dataset}"


@_styled
def plot_task_comparison(layer_metrics: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """Fig. 1a / Appendix C: learning and forgetting per layer, classification vs reconstruction.

    ``layer_metrics``: STUDY_LAYER_METRICS rows with one (source, variant, epoch) per
    (dataset, task); one panel column per finetune dataset.
    """
    return _plot_layer_profiles(
        layer_metrics,
        ("learning", "forgetting"),
        "task",
        task_palette,
        "Learning and forgetting by finetuning task",
        path,
    )


@_styled
def plot_cka_divergence_by_task(layer_metrics: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """Fig. 1b: CKA divergence per layer, classification vs reconstruction, per dataset."""
    return _plot_layer_profiles(
        layer_metrics, ("cka_divergence",), "task", task_palette, "CKA divergence by finetuning task", path
    )


@_styled
def plot_source_comparison(layer_metrics: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """Figs. 2a/2b: learning and forgetting per layer by pretraining source (and scratch).

    ``layer_metrics``: STUDY_LAYER_METRICS rows with one (task, variant, epoch) per
    (dataset, source), normally classification; one panel column per finetune dataset.
    """
    return _plot_layer_profiles(
        layer_metrics,
        ("learning", "forgetting"),
        "source",
        source_palette,
        "Learning and forgetting by pretraining source",
        path,
    )


@_styled
def plot_cka_divergence_by_source(layer_metrics: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """Fig. 3: CKA divergence per layer by pretraining source, per finetune dataset."""
    return _plot_layer_profiles(
        layer_metrics,
        ("cka_divergence",),
        "source",
        source_palette,
        "CKA divergence by pretraining source",
        path,
    )


# --- Fig. 4: invariance flow -----------------------------------------------------------


def flow_matrix(flow: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean invariance-flow matrix (METHOD.md): rows pretrained layer i, columns j.

    Every (i, j) of the square 0..L-1 grid must be present.
    """
    matrix = flow.groupby(["pretrained_layer", "finetuned_layer"])["flow"].mean().unstack()
    n_layers = int(max(matrix.index.max(), matrix.columns.max())) + 1
    matrix = matrix.reindex(index=range(n_layers), columns=range(n_layers))
    missing = [(i, j) for i in range(n_layers) for j in range(n_layers) if np.isnan(matrix.iat[i, j])]
    if missing:
        raise ValueError(f"flow: the {n_layers}x{n_layers} matrix lacks cells (i, j) = {missing[:5]}")
    matrix.index.name, matrix.columns.name = "pretrained layer i", "finetuned layer j"
    return matrix


@_styled
def plot_invariance_flow(flow: pd.DataFrame, path: str | os.PathLike, title: str | None = None) -> Figure:
    """Fig. 4 / Appendix D: the seed-mean invariance-flow matrix of one run as a heatmap.

    Flow(i, j) = STIR(f_j | p_i) - STIR(f_i | p_i). Rows are pretrained layers i (0 at the
    top), columns finetuned layers j, so compression (j < i) is the lower-left triangle
    and expansion (j > i) the upper right. The diverging colour scale is centred on 0
    with symmetric limits. ``title`` defaults to the run's source, dataset and task.
    """
    df = _selection(flow, STUDY_INVARIANCE_FLOW, "flow")
    run = _single_values(df, _CONTEXT_KEYS, "flow rows")
    _require_unique_rows(df, ["seed", "pretrained_layer", "finetuned_layer"], "flow")
    matrix = flow_matrix(df)
    n_layers = len(matrix)
    limit = max(float(np.abs(matrix.to_numpy()).max()), 1e-6)  # all-zero matrix: any tiny range

    fig = Figure(figsize=(0.42 * n_layers + 2.6, 0.36 * n_layers + 1.6))
    ax = fig.subplots()
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
    n_seeds = df["seed"].nunique()
    default = f"Invariance flow: {run['source']} → {run['dataset']}, {run['task']}"
    ax.set_title(
        f"{title or default}\nvariant {run['variant']}, epoch {run['epoch']}; mean of {n_seeds} seed(s)\n"
        "below diagonal: compression, above: expansion"
    )
    save_figure(fig, path)
    return fig


# --- Fig. 5: dynamics of one run -------------------------------------------------------


def _plot_layers_over_epochs(ax: Axes, rows: pd.DataFrame, norm: Normalize) -> None:
    sns.lineplot(
        rows,
        x="epoch",
        y="value",
        hue="layer",
        palette=_LAYER_CMAP,
        hue_norm=norm,
        errorbar="sd",
        linewidth=1.0,
        legend=False,
        ax=ax,
    )


def _plot_accuracy_over_epochs(ax: Axes, robust_accuracy: pd.DataFrame) -> None:
    """Clean accuracy, corrupted accuracy per severity (mean over corruptions) and their mean."""
    clean = robust_accuracy[robust_accuracy["corruption"] == _CLEAN]
    corrupted = robust_accuracy[robust_accuracy["corruption"] != _CLEAN]
    per_severity = corrupted.groupby(["epoch", "severity"], as_index=False)["accuracy"].mean()
    severities = sorted(per_severity["severity"].unique())
    colours = dict(zip(severities, sns.color_palette(_SEVERITY_PALETTE, len(severities))))
    for severity in severities:
        line = per_severity[per_severity["severity"] == severity]
        ax.plot(line["epoch"], line["accuracy"], color=colours[severity], lw=1.2, label=f"severity {severity}")
    mean = mean_corrupted_accuracy(robust_accuracy)
    ax.plot(mean.index, mean.to_numpy(), color="dimgrey", lw=2.0, ls="--", label="mean corrupted")
    if not clean.empty:
        clean_line = clean.groupby("epoch", as_index=False)["accuracy"].mean()
        ax.plot(clean_line["epoch"], clean_line["accuracy"], color="black", lw=1.5, ls=":", label="clean test")
    ax.set_ylabel("top-1 accuracy")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


@_styled
def plot_dynamics(
    layer_metrics: pd.DataFrame,
    robust_accuracy: pd.DataFrame,
    path: str | os.PathLike,
    std_layers: Sequence[int] | None = None,
) -> Figure:
    """Fig. 5 / Appendix E: one dynamics run across epochs.

    Panels: (a) learning per layer, (b) forgetting per layer with the standard deviation
    of forgetting across ``std_layers`` (all layers by default; Section 4.4), (c) CKA
    divergence per layer when the rows include it (Appendix Fig. 11), and last the clean
    accuracy, the corrupted accuracy per severity (mean over corruptions) and the mean
    corrupted accuracy. Both tables must hold exactly one (source, dataset, task, variant).
    """
    df = _selection(layer_metrics, STUDY_LAYER_METRICS, "layer_metrics")
    accuracy = _selection(robust_accuracy, ROBUST_ACCURACY, "robust_accuracy")
    run = _single_values(df, RUN_KEYS, "layer_metrics rows")
    accuracy_run = _single_values(accuracy, RUN_KEYS, "robust_accuracy rows")
    if accuracy_run != run:
        raise ValueError(f"robust_accuracy is for run {accuracy_run} but layer_metrics for {run}")
    _require_metrics(df, ("learning", "forgetting"), "layer_metrics")
    _require_unique_rows(df, ["epoch", "seed", "layer", "metric"], "layer_metrics")
    metrics = [m for m in ("learning", "forgetting", "cka_divergence") if (df["metric"] == m).any()]

    n_layers = int(df["layer"].max()) + 1
    norm = Normalize(vmin=0, vmax=n_layers - 1)
    fig = Figure(figsize=(3.4 * (len(metrics) + 1) + 2.4, 3.8))
    axes = fig.subplots(1, len(metrics) + 1, sharex=True)
    for ax, metric in zip(axes, metrics):
        _plot_layers_over_epochs(ax, df[df["metric"] == metric], norm)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    forgetting_ax = axes[metrics.index("forgetting")]
    spread = _per_seed_forgetting_std(df, std_layers)
    sns.lineplot(
        spread,
        x="epoch",
        y="value",
        color="black",
        ls="--",
        errorbar="sd",
        ax=forgetting_ax,
        label=f"std across {_std_layers_text(std_layers)}",
    )
    forgetting_ax.legend(loc="best", fontsize="small")
    _plot_accuracy_over_epochs(axes[-1], accuracy)
    colourbar = fig.colorbar(
        ScalarMappable(norm=norm, cmap=_LAYER_CMAP),
        ax=list(axes[: len(metrics)]),
        location="bottom",
        shrink=0.6,
        aspect=40,
    )
    colourbar.set_label(f"layer ({n_layers - 1} = pooled output)")
    colourbar.set_ticks(range(n_layers))
    for label, ax in zip("abcd", axes):
        ax.set_title(f"({label})", loc="left")
    fig.suptitle(
        f"Dynamics: {run['source']} → {run['dataset']}, {run['task']}, variant {run['variant']} "
        "(lines: mean over seeds, bands: ± sd)"
    )
    save_figure(fig, path)
    return fig


# --- Figs. 6 and 15: hyperparameter variants -------------------------------------------


@_styled
def plot_variants(
    layer_metrics: pd.DataFrame,
    robust_accuracy: pd.DataFrame,
    path: str | os.PathLike,
    std_layers: Sequence[int] | None = None,
) -> Figure:
    """Figs. 6, 15: mean corrupted accuracy and std of forgetting across layers per epoch.

    One line per hyperparameter variant of a single (source, dataset, task); the std is
    taken over ``std_layers`` (all layers by default; the paper's Fig. 6 uses layers 2-12).
    """
    df = _selection(layer_metrics, STUDY_LAYER_METRICS, "layer_metrics")
    accuracy = _selection(robust_accuracy, ROBUST_ACCURACY, "robust_accuracy")
    setting = ("source", "dataset", "task")
    run = _single_values(df, setting, "layer_metrics rows")
    accuracy_run = _single_values(accuracy, setting, "robust_accuracy rows")
    if accuracy_run != run:
        raise ValueError(f"robust_accuracy is for {accuracy_run} but layer_metrics for {run}")
    _require_metrics(df, ("forgetting",), "layer_metrics")
    _require_unique_rows(df, ["variant", "epoch", "seed", "layer", "metric"], "layer_metrics")
    palette = _categorical_palette(sorted(set(df["variant"]) | set(accuracy["variant"])))

    fig = Figure(figsize=(9.0, 3.4))
    acc_ax, std_ax = fig.subplots(1, 2, sharex=True)
    mean_accuracy = _mean_corrupted_accuracy_by_variant(accuracy)
    sns.lineplot(
        mean_accuracy,
        x="epoch",
        y="accuracy",
        hue="variant",
        palette=palette,
        marker="o",
        markersize=3,
        legend=False,
        ax=acc_ax,
    )
    acc_ax.set_ylabel("mean corrupted accuracy\n(all corruptions, severities 1-5)")
    spread = _per_seed_forgetting_std(df, std_layers)
    sns.lineplot(
        spread,
        x="epoch",
        y="value",
        hue="variant",
        palette=palette,
        errorbar="sd",
        marker="o",
        markersize=3,
        legend=False,
        ax=std_ax,
    )
    std_ax.set_ylabel(f"std of forgetting across\n{_std_layers_text(std_layers)}")
    for label, ax in zip("ab", (acc_ax, std_ax)):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"({label})", loc="left")
    fig.legend(handles=_legend_handles(palette, "o"), title="variant", loc="outside right center")
    fig.suptitle(f"Hyperparameter variants: {run['source']} → {run['dataset']}, {run['task']} (bands: ± sd over seeds)")
    save_figure(fig, path)
    return fig


# --- Fig. 14: correlation over the first epochs ----------------------------------------


@_styled
def plot_early_epoch_correlation(early: pd.DataFrame, path: str | os.PathLike) -> Figure:
    """Fig. 14: Pearson r over epochs 1..e against e, one line per hypothesis, one panel per run."""
    df = _selection(early, EARLY_EPOCH_CORRELATION, "early")
    _require_unique_rows(df, [*RUN_KEYS, "hypothesis", "last_epoch"], "early")
    runs = list(df.groupby(list(RUN_KEYS)))
    palette = _categorical_palette(sorted(df["hypothesis"].unique()))

    fig = Figure(figsize=(3.6 * len(runs) + 3.0, 3.2))
    axes = fig.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    for ax, ((source, dataset, task, variant), rows) in zip(axes, runs):
        sns.lineplot(
            rows,
            x="last_epoch",
            y="r",
            hue="hypothesis",
            palette=palette,
            marker="o",
            markersize=3,
            legend=False,
            ax=ax,
        )
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("last epoch e (correlation over epochs 1..e)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("Pearson r with mean\ncorrupted accuracy")
        ax.set_title(f"{source} → {dataset}\n{task}, variant {variant}")
    fig.legend(handles=_legend_handles(palette, "o"), title="hypothesis", loc="outside right center")
    fig.suptitle("Correlation with robustness computed on the first epochs only")
    save_figure(fig, path)
    return fig
