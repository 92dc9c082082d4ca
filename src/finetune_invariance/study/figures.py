"""Every figure of the paper, drawn in one seaborn style from numbers the analyses computed.

Figures only draw. The figure scripts compute what is drawn with the analysis modules and
pass it in: per-layer means and standard deviations over STIR seeds
(:func:`..finetuning_metrics.summarize_over_seeds`), the seed-mean invariance-flow matrix
(:func:`..finetuning_metrics.flow_matrix`), the headline hypothesis within each seed
summarised over seeds (:func:`.hypotheses.seed_summary`), the accuracy per severity and the
mean corrupted accuracy (:mod:`.robust_accuracy`) and the early-epoch correlations
(:func:`.hypotheses.early_epoch_correlation`). A line is a given mean and its band the
given mean ± sd; nothing is averaged here. The style, the saving and the drawing both wings
share (a line with its seed band, the layer axis, the flow heatmap) are the metrics
library's (:mod:`..plots`), so the study's figures and the command line's look alike.

Figure numbers are the published paper's (some text copies of it number them from 0).
Each function writes ``<stem>.png`` and ``<stem>.pdf`` through :func:`save_figure`:

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
:func:`plot_forgetting_monitor`           beyond the paper: the forgetting monitor
========================================  =====================================

Every title says which checkpoints it shows: the per-layer figures (Figs. 1-4) each run's
analysed checkpoint ('best epoch 4', 'last epoch 5', from its ``table1_accuracy`` row),
the dynamics figures the checkpoint of every epoch. The dynamics, variants and early-epoch
figures show the paper's headline hypothesis (:func:`.hypotheses.headline_hypothesis`),
labelled with the layers it spans in this model. Layers are numbered 0..depth as in
docs/method.md, layer ``depth`` being the pooled representation. Datasets and sources are
named in legends and titles with what they play in the paper's design (:class:`Roles`,
e.g. 'glyphs10 (plays CIFAR10)').
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..plots import (
    METRIC_LABELS,
    PALETTE,
    Colour,
    draw_flow_heatmap,
    flow_figure_size,
    format_layer_axis,
    line_with_band,
    save_figure,
    seeds_label,
    style_rc,
    styled,
)
from .claims.evidence import number
from .hypotheses import Hypothesis
from .paper import HEADLINE, PAPER_DEPTH, paper_position
from .tables import EARLY_EPOCH_CORRELATION, NAMED_HYPOTHESES, TABLE1, TableSchema, conform
from .vocabulary import CLASSIFICATION, CLEAN_SEVERITY, DEFAULT_VARIANT, RECONSTRUCTION, RUN_KEYS, SCRATCH, Run, runs_in

# One colour-blind-safe palette for everything. Index 2 (green) is reserved for training
# from scratch, the colour the paper uses for it; the task colours are not reused for
# sources so that no colour means two things in Figs. 1-3.
_PALETTE: list[Colour] = PALETTE
SCRATCH_COLOUR: Colour = _PALETTE[2]
TASK_COLOURS: dict[str, Colour] = {CLASSIFICATION: _PALETTE[0], RECONSTRUCTION: _PALETTE[3]}
_SOURCE_COLOURS: list[Colour] = [_PALETTE[i] for i in (1, 4, 9, 5, 6, 8, 7)]
_LAYER_CMAP = "viridis"  # sequential: shallow layers dark, deep layers bright
_SEVERITY_PALETTE = "flare"  # sequential: severity 1 light, 5 dark
HEADLINE_COLOUR: Colour = (0.0, 0.0, 0.0)

_COMBINATION_LABELS: dict[str, str] = {
    "learning+forgetting": "learning + forgetting",
    "learning-forgetting": "learning − forgetting",
    "learning": "learning",
    "forgetting": "forgetting",
    "cka_divergence": "CKA divergence",
}

#: Columns of the per-layer seed summaries the layer-profile figures draw.
PROFILE_COLUMNS = (*RUN_KEYS, "epoch", "layer", "metric", "mean", "std", "n_seeds")
#: Columns of a hypothesis's seed summary (:func:`.hypotheses.seed_summary`).
HYPOTHESIS_SUMMARY_COLUMNS = (*RUN_KEYS, "epoch", "mean", "std", "n_seeds")
SEVERITY_COLUMNS = ("epoch", "severity", "accuracy")
MEAN_CORRUPTED_COLUMNS = (*RUN_KEYS, "epoch", "mean_corrupted_accuracy")


# --- style ----------------------------------------------------------------------------


def apply_style() -> None:
    """Make :func:`style_rc` the global matplotlib style (the plot functions use it anyway)."""
    mpl.rcParams.update(style_rc())


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


# --- labels ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Roles:
    """What each dataset and source plays in the paper's design
    (:meth:`.design.StudyDesign.dataset_roles`, :meth:`.design.StudyDesign.source_roles`),
    named beside it in legends and titles: 'glyphs10 (plays CIFAR10)'. A name without a
    role, or the role's own name, is written as it is."""

    datasets: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def dataset(self, name: str) -> str:
        return _played(name, self.datasets)

    def source(self, name: str) -> str:
        return _played(name, self.sources)

    def run(self, run: Run) -> str:
        """:attr:`.vocabulary.Run.label` with the source's and the dataset's roles."""
        variant = "" if run.variant == DEFAULT_VARIANT else f" ({run.variant})"
        return f"{self.source(run.source)} → {self.dataset(run.dataset)}, {run.task}{variant}"


def _played(name: str, roles: Mapping[str, str]) -> str:
    """'glyphs10 (plays CIFAR10)'; the name alone where it has no role or is its role's own
    ('cifar10' plays CIFAR10)."""
    if name not in roles or _spelled(name) == _spelled(roles[name]):
        return name
    return f"{name} (plays {roles[name]})"


def _spelled(name: str) -> str:
    return "".join(character for character in name.lower() if character.isalnum())


NO_ROLES = Roles()


def checkpoint_label(analysed: Mapping[str, object]) -> str:
    """'best epoch 4' or 'last epoch 5': the checkpoint a ``table1_accuracy`` row names."""
    return f"{analysed['checkpoint']} epoch {int(analysed['epoch'])}"


def hypothesis_label(hypothesis: Hypothesis) -> str:
    """'std of forgetting, layers 2-4': the hypothesis in words, with this model's layers."""
    selection = hypothesis.selection
    layers = (
        f"layer {selection.first}"
        if selection.first == selection.last
        else f"layers {selection.first}-{selection.last}"
    )
    return f"{hypothesis.aggregate} of {_COMBINATION_LABELS[hypothesis.combination]}, {layers}"


def _joined(values: Iterable[object]) -> str:
    """Distinct values in sorted order, '/'-separated, for titles."""
    return "/".join(str(v) for v in sorted(set(values)))


def _epochs_label(epochs: Iterable[int]) -> str:
    epochs = sorted(set(int(e) for e in epochs))
    return f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {epochs[0]}-{epochs[-1]}"


# --- input validation -----------------------------------------------------------------


def _rows(df: pd.DataFrame, columns: Sequence[str], argument: str) -> pd.DataFrame:
    """``df``, which must have ``columns`` and at least one row; errors name ``argument``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{argument}: missing columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{argument}: the selection is empty (nothing to plot)")
    return df


def _table_rows(df: pd.DataFrame, schema: TableSchema, argument: str) -> pd.DataFrame:
    """``df`` conformed to ``schema``, with at least one row."""
    return _rows(conform(df, schema), list(schema.columns), argument)


def _single_values(df: pd.DataFrame, keys: Iterable[str], what: str) -> dict[str, object]:
    """The value each ``keys`` column takes, which must be the same on every row of ``df``."""
    mixed = {k: sorted(map(str, df[k].unique())) for k in keys if df[k].nunique() > 1}
    if mixed:
        listing = "; ".join(f"{k} {v}" for k, v in mixed.items())
        raise ValueError(f"{what} mix several values of {listing}: select one before plotting")
    return {k: df[k].iloc[0] for k in keys}


def _single_run(df: pd.DataFrame, argument: str) -> Run:
    return Run.from_row(_single_values(df, RUN_KEYS, f"{argument} rows"))


def _require_unique_rows(df: pd.DataFrame, keys: Sequence[str], argument: str) -> None:
    """A repeated point would draw a line back and forth."""
    duplicated = df.duplicated(list(keys), keep=False)
    if duplicated.any():
        example = df.loc[duplicated, list(keys)].iloc[0].to_dict()
        raise ValueError(f"{argument}: {int(duplicated.sum())} rows share the same {list(keys)}, e.g. {example}")


def _require_metrics(df: pd.DataFrame, metrics: Iterable[str], argument: str) -> None:
    missing = [m for m in metrics if not (df["metric"] == m).any()]
    if missing:
        raise ValueError(f"{argument}: the selection has no rows with metric {missing}")


def _analysed_checkpoints(
    analysed: pd.DataFrame, profiles: pd.DataFrame, argument: str = "analysed"
) -> dict[Run, pd.Series]:
    """Each run of ``profiles`` -> its one ``table1_accuracy`` row, whose epoch the
    profiles must be at (they show that checkpoint)."""
    table = conform(analysed, TABLE1)
    checkpoints = {}
    for run in runs_in(profiles):
        rows = run.rows(table)
        if len(rows) != 1:
            raise ValueError(
                f"{argument}: run '{run.path}' needs exactly one table1_accuracy row (its analysed checkpoint), "
                f"found {len(rows)}"
            )
        row = rows.iloc[0]
        epochs = sorted(set(run.rows(profiles)["epoch"]))
        if epochs != [row["epoch"]]:
            raise ValueError(
                f"{argument}: run '{run.path}' is drawn at epochs {epochs} but its analysed checkpoint is "
                f"{checkpoint_label(row)}: pass the rows of the analysed checkpoint"
            )
        checkpoints[run] = row
    return checkpoints


# --- shared drawing helpers -----------------------------------------------------------


def _format_epoch_axis(ax: Axes) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_handles(palette: Mapping[str, Colour], marker: str | None = None) -> list[Line2D]:
    return [Line2D([], [], color=c, marker=marker, label=name) for name, c in palette.items()]


# --- Figs. 1-3: one value per layer ----------------------------------------------------


def _plot_layer_profiles(
    profiles: pd.DataFrame,
    analysed: pd.DataFrame,
    metrics: Sequence[str],
    hue: str,
    palette_for: Callable[[Iterable[str]], dict[str, Colour]],
    title: str,
    path: str | os.PathLike,
    roles: Roles,
) -> Figure:
    """Rows = metrics, columns = finetune datasets, one line per ``hue`` value over layers;
    datasets and sources named with their ``roles``."""
    df = _rows(profiles, PROFILE_COLUMNS, "profiles")
    df = df[df["metric"].isin(metrics)]
    _require_metrics(df, metrics, "profiles")
    for (dataset, value), line in df.groupby(["dataset", hue]):
        others = [k for k in (*RUN_KEYS, "epoch") if k not in ("dataset", hue)]
        _single_values(line, others, f"profiles rows for dataset {dataset}, {hue} {value}")
    _require_unique_rows(df, ["dataset", hue, "layer", "metric"], "profiles")
    checkpoints = _analysed_checkpoints(analysed, df)

    palette = palette_for(df[hue].unique())
    datasets = sorted(df["dataset"].unique())
    n_layers = int(df["layer"].max()) + 1
    # Lines of models of different depths are drawn at the paper's layer of their relative
    # depth (paper.paper_position); the legend gives each model's own numbering.
    depths = {name: int(depth) for name, depth in df.groupby(hue)["layer"].max().items()}
    relative = len(set(depths.values())) > 1
    fig = Figure(figsize=(3.1 * len(datasets) + 1.8, 2.5 * len(metrics) + 1.3))
    axes = fig.subplots(len(metrics), len(datasets), sharex=True, sharey="row", squeeze=False)
    for row, metric in enumerate(metrics):
        for col, dataset in enumerate(datasets):
            ax = axes[row, col]
            panel = df[(df["metric"] == metric) & (df["dataset"] == dataset)]
            for name, colour in palette.items():
                line = panel[panel[hue] == name].sort_values("layer")
                if not line.empty:
                    x = paper_position(line["layer"], depths[name]) if relative else line["layer"]
                    line_with_band(ax, x, line["mean"], line["std"], colour, marker="o", markersize=4, label=name)
            if panel.empty:
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="grey")
            format_layer_axis(ax, PAPER_DEPTH + 1 if relative else n_layers)
            if relative:
                ax.set_xlabel(f"paper layer = {PAPER_DEPTH} x layer / depth ({PAPER_DEPTH} = pooled output)")
            ax.set_ylabel(METRIC_LABELS[metric] if col == 0 else "")
            if row == 0:
                column_runs = [run for run in checkpoints if run.dataset == dataset]
                ax.set_title(_column_title(column_runs, checkpoints, hue, list(palette), roles), fontsize="small")
    named = roles.source if hue == "source" else str
    depth_of = (lambda name: f" (depth {depths[name]})") if relative else (lambda name: "")
    palette = {f"{named(name)}{depth_of(name)}": colour for name, colour in palette.items()}
    fig.legend(handles=_legend_handles(palette, "o"), title=hue, loc="outside right center")
    fig.suptitle(
        f"{title}\nvariant {_joined(df['variant'])}, each run at its analysed checkpoint; "
        f"lines: {seeds_label(df['n_seeds'])}"
    )
    save_figure(fig, path)
    return fig


def _column_title(
    runs: list[Run], checkpoints: Mapping[Run, pd.Series], hue: str, order: list[str], roles: Roles
) -> str:
    """The dataset column's setting (with the dataset's role), then one line per run:
    '<hue value>: best epoch 4'."""
    runs = sorted(runs, key=lambda run: order.index(getattr(run, hue)))
    dataset = roles.dataset(runs[0].dataset)
    header = (
        f"finetune {dataset}:\n{_joined(r.task for r in runs)}"  # two lines: a role makes it wide
        if hue == "source"
        else f"{_joined(roles.source(r.source) for r in runs)} →\n{dataset}"
    )
    return "\n".join([header, *(f"{getattr(run, hue)}: {checkpoint_label(checkpoints[run])}" for run in runs)])


@styled
def plot_task_comparison(
    profiles: pd.DataFrame, analysed: pd.DataFrame, path: str | os.PathLike, roles: Roles = NO_ROLES
) -> Figure:
    """Fig. 1a / Appendix C: learning and forgetting per layer, classification vs reconstruction.

    ``profiles``: seed summaries per (run, epoch, layer, metric) (:data:`PROFILE_COLUMNS`,
    from :func:`..finetuning_metrics.summarize_over_seeds`) with one (source, variant,
    epoch) per (dataset, task); ``analysed``: the runs' ``table1_accuracy`` rows, whose
    checkpoints the titles name. One panel column per finetune dataset.
    """
    return _plot_layer_profiles(
        profiles,
        analysed,
        ("learning", "forgetting"),
        "task",
        task_palette,
        "Learning and forgetting by finetuning task",
        path,
        roles,
    )


@styled
def plot_cka_divergence_by_task(
    profiles: pd.DataFrame, analysed: pd.DataFrame, path: str | os.PathLike, roles: Roles = NO_ROLES
) -> Figure:
    """Fig. 1b: CKA divergence per layer, classification vs reconstruction, per dataset."""
    return _plot_layer_profiles(
        profiles, analysed, ("cka_divergence",), "task", task_palette, "CKA divergence by finetuning task", path, roles
    )


@styled
def plot_source_comparison(
    profiles: pd.DataFrame, analysed: pd.DataFrame, path: str | os.PathLike, roles: Roles = NO_ROLES
) -> Figure:
    """Figs. 2a/2b: learning and forgetting per layer by pretraining source (and scratch).

    ``profiles`` as for :func:`plot_task_comparison`, with one (task, variant, epoch) per
    (dataset, source), normally classification; one panel column per finetune dataset.
    """
    return _plot_layer_profiles(
        profiles,
        analysed,
        ("learning", "forgetting"),
        "source",
        source_palette,
        "Learning and forgetting by pretraining source",
        path,
        roles,
    )


@styled
def plot_cka_divergence_by_source(
    profiles: pd.DataFrame, analysed: pd.DataFrame, path: str | os.PathLike, roles: Roles = NO_ROLES
) -> Figure:
    """Fig. 3: CKA divergence per layer by pretraining source, per finetune dataset."""
    return _plot_layer_profiles(
        profiles,
        analysed,
        ("cka_divergence",),
        "source",
        source_palette,
        "CKA divergence by pretraining source",
        path,
        roles,
    )


# --- Fig. 4: invariance flow -----------------------------------------------------------


@styled
def plot_invariance_flow(
    matrix: pd.DataFrame, analysed: pd.DataFrame, n_seeds: int, path: str | os.PathLike, roles: Roles = NO_ROLES
) -> Figure:
    """Fig. 4 / Appendix D: a run's seed-mean invariance-flow matrix as a heatmap.

    ``matrix``: :func:`..finetuning_metrics.flow_matrix` of the run's rows at its analysed
    checkpoint (rows pretrained layers i, columns finetuned layers j, 0..L-1), averaged over
    ``n_seeds`` STIR seeds; ``analysed``: the run's ``table1_accuracy`` row. Drawn by
    :func:`..plots.draw_flow_heatmap` (compression lower left, expansion upper right, a
    diverging scale centred on 0).
    """
    row = _table_rows(analysed, TABLE1, "analysed")
    if len(row) != 1:
        raise ValueError(f"analysed: need the one table1_accuracy row of the drawn run, got {len(row)} rows")
    row = row.iloc[0]
    fig = Figure(figsize=flow_figure_size(len(matrix)))
    ax = fig.subplots()
    draw_flow_heatmap(ax, matrix)
    ax.set_title(
        f"Invariance flow: {roles.run(Run.from_row(row))}\n{checkpoint_label(row)}; mean of {n_seeds} STIR seed(s)\n"
        "below diagonal: compression, above: expansion"
    )
    save_figure(fig, path)
    return fig


# --- the p-values of a correlation across epochs -----------------------------------------


def correlation_label(row: Mapping[str, object], familywise: bool, separator: str = ", ") -> str:
    """'r = 0.84 (20 epochs), Bonferroni p = 0.001, family-wise permutation p = 0.35': a
    correlation across epochs with the paper's parametric p and the permutation test that
    respects time series (family-wise where ``familywise``), from a named-hypotheses or
    early-epoch row, its parts joined by ``separator``; 'r undefined (20 epochs)' where r is
    (a constant series), its p-values then meaningless."""
    epochs = f" ({row['n_epochs']} epochs)" if "n_epochs" in row else ""
    if pd.isna(row["r"]):
        return f"r undefined{epochs}"
    if familywise:
        p = [
            f"Bonferroni p = {number(row['p_bonferroni'], '.2g')}",
            f"family-wise permutation p = {number(row['p_permutation_fwer'], '.2g')}",
        ]
    else:
        p = [f"p = {number(row['p_value'], '.2g')}", f"permutation p = {number(row['p_permutation'], '.2g')}"]
    return separator.join([f"r = {row['r']:.2f}{epochs}", *p])


def _headline_row(named: pd.DataFrame | None, run: Run) -> pd.Series | None:
    """The run's 'headline' row of a named-hypotheses table, if any."""
    if named is None:
        return None
    rows = run.rows(conform(named, NAMED_HYPOTHESES))
    rows = rows[rows["role"] == HEADLINE.role]
    return None if rows.empty else rows.iloc[0]


# --- Fig. 5: dynamics of one run -------------------------------------------------------


def _plot_accuracy_over_epochs(ax: Axes, severity: pd.DataFrame, mean_corrupted: pd.Series) -> None:
    """Accuracy per corrupted severity, their mean, and the clean accuracy (severity 0)."""
    corrupted = severity[severity["severity"] != CLEAN_SEVERITY]
    severities = sorted(corrupted["severity"].unique())
    colours = dict(zip(severities, sns.color_palette(_SEVERITY_PALETTE, len(severities))))
    for level in severities:
        line = corrupted[corrupted["severity"] == level].sort_values("epoch")
        ax.plot(line["epoch"], line["accuracy"], color=colours[level], lw=1.2, label=f"severity {level}")
    ax.plot(mean_corrupted.index, mean_corrupted.to_numpy(), color="dimgrey", lw=2.0, ls="--", label="mean corrupted")
    clean = severity[severity["severity"] == CLEAN_SEVERITY].sort_values("epoch")
    if not clean.empty:
        ax.plot(clean["epoch"], clean["accuracy"], color="black", lw=1.5, ls=":", label="clean test")
    ax.set_ylabel("top-1 accuracy")
    _format_epoch_axis(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


@styled
def plot_dynamics(
    profiles: pd.DataFrame,
    headline: Hypothesis,
    headline_values: pd.DataFrame,
    severity: pd.DataFrame,
    mean_corrupted: pd.Series,
    path: str | os.PathLike,
    named: pd.DataFrame | None = None,
    roles: Roles = NO_ROLES,
) -> Figure:
    """Fig. 5 / Appendix E: one dynamics run across epochs.

    Panels: (a) learning per layer, (b) forgetting per layer with the ``headline``
    hypothesis (std of forgetting across its layers, Section 4.4), (c) CKA divergence per
    layer when the profiles include it (Appendix Fig. 11), and last the clean accuracy,
    the accuracy per corrupted severity and the mean corrupted accuracy.

    ``profiles``: seed summaries per (epoch, layer, metric) of the run
    (:data:`PROFILE_COLUMNS`); ``headline_values``: :func:`.hypotheses.seed_summary` of the
    headline for the run; ``severity``: :func:`.robust_accuracy.severity_accuracy` of the
    run (severity 0 is the clean sample); ``mean_corrupted``:
    :func:`.robust_accuracy.mean_corrupted_accuracy` of the run, by epoch; ``named``: the
    ``named_hypotheses`` rows, whose headline row's r and p-values (Bonferroni and the
    family-wise permutation test) the headline's legend gives.
    """
    df = _rows(profiles, PROFILE_COLUMNS, "profiles")
    values = _rows(headline_values, HYPOTHESIS_SUMMARY_COLUMNS, "headline_values")
    severity = _rows(severity, SEVERITY_COLUMNS, "severity")
    if mean_corrupted.empty:
        raise ValueError("mean_corrupted: the selection is empty (nothing to plot)")
    run, values_run = _single_run(df, "profiles"), _single_run(values, "headline_values")
    if values_run != run:
        raise ValueError(f"headline_values are of run '{values_run.path}' but profiles of run '{run.path}'")
    _require_metrics(df, ("learning", "forgetting"), "profiles")
    _require_unique_rows(df, ["epoch", "layer", "metric"], "profiles")
    _require_unique_rows(values, ["epoch"], "headline_values")
    metrics = [m for m in ("learning", "forgetting", "cka_divergence") if (df["metric"] == m).any()]

    n_layers = int(df["layer"].max()) + 1
    norm = Normalize(vmin=0, vmax=n_layers - 1)
    cmap = mpl.colormaps[_LAYER_CMAP]
    fig = Figure(figsize=(3.4 * (len(metrics) + 1) + 2.4, 4.2))
    axes = fig.subplots(1, len(metrics) + 1, sharex=True)
    for ax, metric in zip(axes, metrics):
        for layer, line in df[df["metric"] == metric].groupby("layer"):
            line = line.sort_values("epoch")
            line_with_band(ax, line["epoch"], line["mean"], line["std"], cmap(norm(layer)), lw=1.0)
        ax.set_ylabel(METRIC_LABELS[metric])
        _format_epoch_axis(ax)
    forgetting_ax = axes[metrics.index("forgetting")]
    values = values.sort_values("epoch")
    label = f"{hypothesis_label(headline)} (headline)"
    row = _headline_row(named, run)
    if row is not None:
        correlation = correlation_label(row, familywise=True, separator="\n")
        label += f"\nwith mean corrupted accuracy: {correlation}"
    line_with_band(
        forgetting_ax, values["epoch"], values["mean"], values["std"], HEADLINE_COLOUR, lw=1.8, ls="--", label=label
    )
    # below the figure: the label's lines are wider than the panel
    fig.legend(*forgetting_ax.get_legend_handles_labels(), loc="outside lower center", fontsize="small", frameon=False)
    _plot_accuracy_over_epochs(axes[-1], severity, mean_corrupted)
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
        f"Dynamics: {roles.run(run)}, checkpoints of {_epochs_label(df['epoch'])}\n"
        f"lines: {seeds_label(df['n_seeds'])}"
    )
    save_figure(fig, path)
    return fig


# --- Figs. 6 and 15: hyperparameter variants -------------------------------------------


@styled
def plot_variants(
    mean_corrupted: pd.DataFrame,
    headline: Hypothesis,
    headline_values: pd.DataFrame,
    path: str | os.PathLike,
    named: pd.DataFrame | None = None,
    roles: Roles = NO_ROLES,
) -> Figure:
    """Figs. 6, 15: mean corrupted accuracy and the headline hypothesis per epoch, one line
    per hyperparameter variant of a single (source, dataset, task).

    ``mean_corrupted``: :func:`.robust_accuracy.mean_corrupted_accuracy_by_run` of the
    variants' runs; ``headline_values``: :func:`.hypotheses.seed_summary` of ``headline``
    for the same runs; ``named``: the ``named_hypotheses`` rows, whose headline row of each
    variant gives its r with p and the permutation test's p (uncorrected: one pre-named
    hypothesis per run) in the legend.
    """
    accuracy = _rows(mean_corrupted, MEAN_CORRUPTED_COLUMNS, "mean_corrupted")
    values = _rows(headline_values, HYPOTHESIS_SUMMARY_COLUMNS, "headline_values")
    setting_keys = ("source", "dataset", "task")
    setting = _single_values(values, setting_keys, "headline_values rows")
    accuracy_setting = _single_values(accuracy, setting_keys, "mean_corrupted rows")
    if accuracy_setting != setting:
        raise ValueError(f"mean_corrupted is for {accuracy_setting} but headline_values for {setting}")
    _require_unique_rows(accuracy, ["variant", "epoch"], "mean_corrupted")
    _require_unique_rows(values, ["variant", "epoch"], "headline_values")
    palette = _categorical_palette(sorted(set(values["variant"]) | set(accuracy["variant"])))

    fig = Figure(figsize=(9.0, 3.8))
    accuracy_ax, headline_ax = fig.subplots(1, 2, sharex=True)
    for variant, colour in palette.items():
        line = accuracy[accuracy["variant"] == variant].sort_values("epoch")
        accuracy_ax.plot(
            line["epoch"], line["mean_corrupted_accuracy"], color=colour, marker="o", markersize=3, label=variant
        )
        line = values[values["variant"] == variant].sort_values("epoch")
        line_with_band(
            headline_ax, line["epoch"], line["mean"], line["std"], colour, marker="o", markersize=3, label=variant
        )
    accuracy_ax.set_ylabel("mean corrupted accuracy\n(severities 1-5)")
    headline_ax.set_ylabel(f"headline: {hypothesis_label(headline)}")
    for label, ax in zip("ab", (accuracy_ax, headline_ax)):
        _format_epoch_axis(ax)
        ax.set_title(f"({label})", loc="left")
    labels = {}
    for variant in palette:
        row = _headline_row(named, Run(setting["source"], setting["dataset"], setting["task"], variant))
        labels[variant] = variant if row is None else f"{variant}\n{correlation_label(row, familywise=False)}"
    fig.legend(
        handles=_legend_handles({labels[v]: c for v, c in palette.items()}, "o"),
        title="variant (headline vs mean corrupted accuracy)",
        loc="outside right center",
        fontsize="small",
    )
    fig.suptitle(
        f"Hyperparameter variants: {roles.source(setting['source'])} → {roles.dataset(setting['dataset'])}, "
        f"{setting['task']}, "
        f"checkpoints of {_epochs_label(values['epoch'])}\n(b) lines: {seeds_label(values['n_seeds'])}"
    )
    save_figure(fig, path)
    return fig


# --- Fig. 14: correlation over the first epochs ----------------------------------------


def _roles(named: pd.DataFrame, run: Run, headline: Hypothesis) -> dict[str, list[str]]:
    """hypothesis id -> its roles in the run's named_hypotheses rows (the headline's at least)."""
    roles: dict[str, list[str]] = {headline.id: [HEADLINE.role]}
    for row in run.rows(conform(named, NAMED_HYPOTHESES)).itertuples():
        if row.role not in roles.setdefault(row.hypothesis, []):
            roles[row.hypothesis].append(row.role)
    return roles


@styled
def plot_early_epoch_correlation(
    early: pd.DataFrame, named: pd.DataFrame, headline: Hypothesis, path: str | os.PathLike, roles: Roles = NO_ROLES
) -> Figure:
    """Fig. 14: Pearson r with the mean corrupted accuracy over epochs 1-e, against e.

    ``early``: the run's ``early_epoch_correlation`` rows; ``named``: ``named_hypotheses``
    rows, whose roles label the lines. The ``headline`` is drawn black and solid, every
    other hypothesis of ``early`` in its own colour, dashed; each label gives the r over all
    epochs with its p and the permutation test's p.
    """
    df = _table_rows(early, EARLY_EPOCH_CORRELATION, "early")
    run = _single_run(df, "early")
    _require_unique_rows(df, ["hypothesis", "last_epoch"], "early")
    present = sorted(df["hypothesis"].unique())
    if headline.id not in present:
        raise ValueError(f"early: no rows for the headline hypothesis '{headline.id}'; it has {present}")
    hypothesis_roles = _roles(named, run, headline)
    others = [h for h in present if h != headline.id]
    colours = {headline.id: HEADLINE_COLOUR, **_categorical_palette(others)}

    fig = Figure(figsize=(8.0, 3.6))
    ax = fig.subplots()
    for hypothesis in [headline.id, *others]:
        line = df[df["hypothesis"] == hypothesis].sort_values("last_epoch")
        is_headline = hypothesis == headline.id
        role = " = ".join(hypothesis_roles.get(hypothesis, [])) or "other"
        whole = line.iloc[-1]
        over = f"\n  over epochs 1-{int(whole['last_epoch'])}: {correlation_label(whole, familywise=False)}"
        ax.plot(
            line["last_epoch"],
            line["r"],
            color=colours[hypothesis],
            lw=2.0 if is_headline else 1.2,
            ls="-" if is_headline else "--",
            marker="o",
            markersize=3,
            zorder=3 if is_headline else 2,
            label=f"{role}: {hypothesis_label(Hypothesis.from_id(hypothesis))}{over}",
        )
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("last epoch e (correlation over the checkpoints of epochs 1-e)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("Pearson r with mean\ncorrupted accuracy")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
    ax.set_title(f"Correlation with robustness on the first epochs only: {roles.run(run)}")
    save_figure(fig, path)
    return fig


# --- beyond the paper: the forgetting monitor ------------------------------------------

_PICK_STYLES: dict[str, dict[str, object]] = {
    "max_forgetting_spread": {"color": HEADLINE_COLOUR, "ls": "--"},
    "best_clean_accuracy": {"color": _PALETTE[0], "ls": ":"},
    "best_corrupted_accuracy": {"color": _PALETTE[3], "ls": "-."},
}


@styled
def plot_forgetting_monitor(
    spread: pd.Series,
    mean_corrupted: pd.Series,
    picks: pd.DataFrame,
    run: Run,
    headline: Hypothesis,
    path: str | os.PathLike,
    roles: Roles = NO_ROLES,
) -> Figure:
    """The headline statistic measured while the run trained, over its mean corrupted
    accuracy per epoch, with the epoch each checkpoint-selection rule picks.

    ``spread``: :func:`.checkpoint_selection.headline_over_training` (indexed by training
    epochs); ``mean_corrupted``: :func:`.robust_accuracy.mean_corrupted_accuracy`;
    ``picks``: the run's rows of ``tables.CHECKPOINT_PICKS``.
    """
    if spread.empty or mean_corrupted.empty:
        raise ValueError(f"run {run}: nothing to plot (spread {len(spread)} points, accuracy {len(mean_corrupted)})")
    fig = Figure(figsize=(7.5, 3.8))
    spread_ax = fig.subplots()
    accuracy_ax = spread_ax.twinx()
    spread_ax.plot(
        spread.index, spread.to_numpy(), color=HEADLINE_COLOUR, marker="o", markersize=3, label="spread (monitor)"
    )
    accuracy_ax.plot(
        mean_corrupted.index,
        mean_corrupted.to_numpy(),
        color=_PALETTE[3],
        marker="s",
        markersize=3,
        label="mean corrupted accuracy",
    )
    for pick in picks.itertuples():
        spread_ax.axvline(
            pick.epoch, lw=1.2, label=f"{pick.rule.replace('_', ' ')}: epoch {pick.epoch}", **_PICK_STYLES[pick.rule]
        )
    spread_ax.set_xlabel("epochs of training")
    spread_ax.set_ylabel(f"{hypothesis_label(headline)}\n(seed-mean profile)")
    accuracy_ax.set_ylabel("mean corrupted accuracy", color=_PALETTE[3])
    accuracy_ax.grid(False)
    handles = [*spread_ax.get_legend_handles_labels()[0], *accuracy_ax.get_legend_handles_labels()[0]]
    fig.legend(handles=handles, loc="outside right center")
    fig.suptitle(f"Forgetting monitor: {roles.run(run)}\nmeasured during training from the source's stored inversions")
    save_figure(fig, path)
    return fig
