"""Figures draw the numbers they are given: lines are the hand-computed seed means, bands
mean ± sd, the heatmap the hand-computed seed-mean flow; titles name the checkpoint; the
robustness figures show the headline hypothesis over its layers only.

Tables come from the conftest builders; the summaries are computed with the analysis
functions the figure scripts call, and every drawn number is checked against a value
worked out by hand here. The mini model has 5 layers (depth 4), so the paper's layers 2-12
are layers 2-4.
"""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from finetune_invariance.finetuning_metrics import flow_matrix, summarize_over_seeds
from finetune_invariance.study import figures, hypotheses, robust_accuracy, tables
from finetune_invariance.study.vocabulary import RUN_KEYS, Run, analysed_rows

from .conftest import (
    PAPER_RUN,
    early_epoch_correlation_table,
    invariance_flow_table,
    layer_metrics_table,
    named_hypotheses_table,
    robust_accuracy_table,
    table1_table,
)

N_LAYERS = 5
HEADLINE = hypotheses.headline_hypothesis(N_LAYERS)
HEADLINE_ID = "stir:layers_2-4:forgetting:std"  # the paper's "layers 2-12" at depth 4
CKA_ID = "cka:layers_1-3:cka_divergence:std"
RECONSTRUCTION_RUN = Run("imagenet", "cifar10", "reconstruction")

# Three seeds 0.1 apart: seed mean = base + 0.1, sample sd (ddof=1) = 0.1 exactly.
BASE = np.array([0.30, 0.20, 0.25, 0.40, 0.55])
PER_SEED = np.stack([BASE + 0.1 * s for s in range(3)])[:, None, :]  # (seed, epoch, layer)
SEED_MEAN, SEED_SD = BASE + 0.1, 0.1


def profiles_of(metrics: pd.DataFrame, table1: pd.DataFrame) -> pd.DataFrame:
    """What figure_layer_profiles.py passes: seed summaries at the analysed checkpoints."""
    return summarize_over_seeds(analysed_rows(metrics, table1), keys=[*RUN_KEYS, "epoch", "layer", "metric"])


def task_setting(checkpoint: str = "best") -> tuple[pd.DataFrame, pd.DataFrame]:
    """ImageNet -> CIFAR10 classification (analysed at epoch 4) and reconstruction (epoch 7)."""
    classification = layer_metrics_table(
        {"learning": PER_SEED + 0.05, "forgetting": PER_SEED, "cka_divergence": PER_SEED / 2}, epochs=(4,)
    )
    reconstruction = layer_metrics_table(
        {"learning": PER_SEED + 0.3, "forgetting": PER_SEED + 0.2, "cka_divergence": PER_SEED},
        run=RECONSTRUCTION_RUN,
        epochs=(7,),
    )
    table1 = table1_table({PAPER_RUN: 4, RECONSTRUCTION_RUN: 7}, checkpoint=checkpoint)
    return pd.concat([classification, reconstruction]), table1


def source_setting() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = {
        PAPER_RUN: 0.0,
        Run("cifar100", "cifar10", "classification"): 0.1,
        Run("scratch", "cifar10", "classification"): 0.3,
    }
    metrics = pd.concat(
        [
            layer_metrics_table({m: PER_SEED + shift for m in ("learning", "forgetting", "cka_divergence")}, run=run)
            for run, shift in runs.items()
        ]
    )
    return metrics, table1_table(dict.fromkeys(runs, 1))


def assert_written(png) -> None:
    """The PNG is a real, non-uniform image and the PDF beside it is non-empty."""
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image[..., :3].std()) > 0.01, f"{png} is blank"
    pdf = png.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def data_axes(fig) -> list:
    """Axes that hold data (colour bars are axes too in matplotlib)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def line_of(ax, colour) -> mpl.lines.Line2D:
    (line,) = [line for line in ax.get_lines() if np.allclose(mpl.colors.to_rgb(line.get_color()), colour)]
    return line


def band_edges(ax, colour, x) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge at each ``x`` of the band drawn in ``colour``."""
    (band,) = [
        c for c in ax.collections if isinstance(c, PolyCollection) and np.allclose(c.get_facecolor()[0][:3], colour)
    ]
    vertices = band.get_paths()[0].vertices
    lower = [vertices[np.isclose(vertices[:, 0], xi), 1].min() for xi in x]
    upper = [vertices[np.isclose(vertices[:, 0], xi), 1].max() for xi in x]
    return np.array(lower), np.array(upper)


# --- Figs. 1-3: per-layer profiles ------------------------------------------------------


def test_layer_profile_line_is_the_seed_mean_and_band_is_mean_plus_minus_sd(tmp_path):
    metrics, table1 = task_setting()
    fig = figures.plot_task_comparison(profiles_of(metrics, table1), table1, tmp_path / "fig1a.png")
    assert_written(tmp_path / "fig1a.png")
    axes = np.array(data_axes(fig)).reshape(2, 1)  # (learning, forgetting) x (cifar10)
    forgetting_ax = axes[1, 0]
    classification = figures.TASK_COLOURS["classification"]
    np.testing.assert_allclose(line_of(forgetting_ax, classification).get_ydata(), SEED_MEAN)
    np.testing.assert_allclose(
        line_of(forgetting_ax, figures.TASK_COLOURS["reconstruction"]).get_ydata(), SEED_MEAN + 0.2
    )
    lower, upper = band_edges(forgetting_ax, classification, range(N_LAYERS))
    np.testing.assert_allclose(lower, SEED_MEAN - SEED_SD)
    np.testing.assert_allclose(upper, SEED_MEAN + SEED_SD)
    np.testing.assert_allclose(line_of(axes[0, 0], classification).get_ydata(), SEED_MEAN + 0.05)


def test_layer_profile_draws_the_given_summary_without_averaging(tmp_path):
    """Given one row per layer, the line is that row's mean (nothing is recomputed)."""
    given = pd.DataFrame(
        {
            **PAPER_RUN.context,
            "epoch": 1,
            "layer": np.tile(range(N_LAYERS), 2),
            "metric": ["learning"] * N_LAYERS + ["forgetting"] * N_LAYERS,
            "mean": [0.7, 0.1, 0.9, 0.2, 0.5] * 2,
            "std": 0.05,
            "n_seeds": 3,
        }
    )
    fig = figures.plot_task_comparison(given, table1_table({PAPER_RUN: 1}), tmp_path / "given.png")
    line = line_of(data_axes(fig)[1], figures.TASK_COLOURS["classification"])
    np.testing.assert_allclose(line.get_ydata(), [0.7, 0.1, 0.9, 0.2, 0.5])


@pytest.mark.parametrize(
    "checkpoint, expected", [("best", ("best epoch 4", "best epoch 7")), ("last", ("last epoch 4", "last epoch 7"))]
)
def test_layer_profile_titles_name_each_runs_checkpoint(tmp_path, checkpoint, expected):
    metrics, table1 = task_setting(checkpoint)
    fig = figures.plot_cka_divergence_by_task(profiles_of(metrics, table1), table1, tmp_path / "fig1b.png")
    (ax,) = data_axes(fig)
    assert f"classification: {expected[0]}" in ax.get_title()
    assert f"reconstruction: {expected[1]}" in ax.get_title()


def test_source_comparison_draws_scratch_green_and_each_source_in_its_own_colour(tmp_path):
    metrics, table1 = source_setting()
    fig = figures.plot_source_comparison(profiles_of(metrics, table1), table1, tmp_path / "fig2.png")
    assert_written(tmp_path / "fig2.png")
    forgetting_ax = data_axes(fig)[1]
    np.testing.assert_allclose(line_of(forgetting_ax, figures.SCRATCH_COLOUR).get_ydata(), SEED_MEAN + 0.3)
    assert len({tuple(mpl.colors.to_rgb(line.get_color())) for line in forgetting_ax.get_lines()}) == 3
    assert "scratch: best epoch 1" in data_axes(fig)[0].get_title()
    fig = figures.plot_cka_divergence_by_source(profiles_of(metrics, table1), table1, tmp_path / "fig3.png")
    assert_written(tmp_path / "fig3.png")


# What each dataset and source plays: the study's own names beside the paper's.
ROLES = figures.Roles(
    datasets={"cifar10": "CIFAR-10 stand-in"}, sources={"imagenet": "ImageNet-1k", "cifar100": "CIFAR-100 stand-in"}
)


def test_legends_and_column_titles_name_what_each_source_and_dataset_plays(tmp_path):
    metrics, table1 = source_setting()
    fig = figures.plot_source_comparison(profiles_of(metrics, table1), table1, tmp_path / "fig2.png", ROLES)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "cifar100 (plays CIFAR-100 stand-in)",
        "imagenet (plays ImageNet-1k)",
        "scratch",  # no role: its name
    ]
    assert data_axes(fig)[0].get_title().startswith("finetune cifar10 (plays CIFAR-10 stand-in):\nclassification")
    metrics, table1 = task_setting()
    fig = figures.plot_task_comparison(profiles_of(metrics, table1), table1, tmp_path / "fig1.png", ROLES)
    assert data_axes(fig)[0].get_title().startswith("imagenet (plays ImageNet-1k) →\ncifar10 (plays CIFAR-10 stand-in)")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["classification", "reconstruction"]  # tasks play none


def test_a_name_that_is_its_roles_own_is_not_repeated():
    roles = figures.Roles(datasets={"cifar10": "CIFAR10", "oxford_pets": "Oxford-IIIT Pet", "glyphs10": "CIFAR10"})
    assert [roles.dataset(n) for n in ("cifar10", "oxford_pets", "glyphs10", "other")] == [
        "cifar10",
        "oxford_pets (plays Oxford-IIIT Pet)",
        "glyphs10 (plays CIFAR10)",
        "other",
    ]


def test_the_roles_the_figure_rules_pass_are_the_configs(repo_root):
    """config.yaml's datasets name what they play; its ImageNet source and its pretrain: sources
    play what their config says (read here from the YAML, not from the code)."""
    import yaml

    from finetune_invariance.study.design import StudyDesign

    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    study = StudyDesign(config)
    assert study.dataset_roles() == {"glyphs64": "ImageNet", "glyphs10": "CIFAR10", "glyphs30": "CIFAR100"}
    sources = config["sources"]
    assert (
        sources["glyphs10"]["weights"] == "pretrain:glyphs10" and sources["glyphs30"]["weights"] == "pretrain:glyphs30"
    )
    assert config["imagenet_source"] == "glyphs64" and sources["scratch"]["weights"] == "scratch"
    assert study.source_roles() == {"glyphs64": "ImageNet", "glyphs10": "CIFAR10", "glyphs30": "CIFAR100"}


def test_source_palette_is_stable_and_keeps_scratch_green():
    a = figures.source_palette(["scratch", "imagenet", "cifar100"])
    b = figures.source_palette(["cifar100", "imagenet", "scratch"])
    assert a == b
    assert a["scratch"] == figures.SCRATCH_COLOUR
    assert len(set(a.values())) == 3
    assert figures.source_order(["scratch", "b", "a"]) == ["a", "b", "scratch"]


def test_layer_profiles_at_another_epoch_than_the_analysed_checkpoint_are_an_error(tmp_path):
    metrics, table1 = task_setting()
    profiles = summarize_over_seeds(metrics, keys=[*RUN_KEYS, "epoch", "layer", "metric"])
    shifted = table1.assign(epoch=[4, 9])
    with pytest.raises(
        ValueError, match=r"run 'imagenet/cifar10/reconstruction/default' is drawn at epochs \[7\].*best epoch 9"
    ):
        figures.plot_task_comparison(profiles, shifted, tmp_path / "x.png")
    with pytest.raises(
        ValueError, match=r"run 'imagenet/cifar10/reconstruction/default' needs exactly one table1_accuracy row"
    ):
        figures.plot_task_comparison(profiles, table1.iloc[:1], tmp_path / "x.png")


def test_layer_profiles_of_two_variants_on_one_line_are_an_error(tmp_path):
    metrics, table1 = task_setting()
    profiles = profiles_of(metrics, table1)
    other_variant = profiles.assign(variant="lr_0.01")
    with pytest.raises(ValueError, match=r"dataset cifar10, task classification mix several values of variant"):
        figures.plot_task_comparison(pd.concat([profiles, other_variant]), table1, tmp_path / "x.png")


def test_layer_profiles_without_a_metric_or_rows_are_errors(tmp_path):
    metrics, table1 = task_setting()
    profiles = profiles_of(metrics, table1)
    with pytest.raises(ValueError, match=r"profiles: the selection has no rows with metric \['learning'\]"):
        figures.plot_task_comparison(profiles[profiles["metric"] != "learning"], table1, tmp_path / "x.png")
    with pytest.raises(ValueError, match="profiles: the selection is empty"):
        figures.plot_source_comparison(profiles.iloc[:0], table1, tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()
    with pytest.raises(ValueError, match=r"profiles: missing columns \['std'"):
        figures.plot_task_comparison(profiles.drop(columns="std"), table1, tmp_path / "x.png")


# --- Fig. 4: invariance flow ------------------------------------------------------------


def flow_setting() -> tuple[np.ndarray, pd.DataFrame]:
    """Per-seed matrices base + s * delta for seeds 0, 1, 2: the seed mean is base + delta."""
    i, j = np.meshgrid(range(N_LAYERS), range(N_LAYERS), indexing="ij")
    base = np.where(i - j == 1, 0.3, -0.05 * np.abs(i - j))  # compression just below the diagonal
    delta = np.where(i == j, 0.0, 0.02)
    per_seed = np.stack([base + s * delta for s in range(3)])
    return base + delta, invariance_flow_table(per_seed, epoch=7)


def test_invariance_flow_heatmap_is_the_seed_mean_with_symmetric_limits_and_checkpoint(tmp_path):
    expected, flow = flow_setting()
    fig = figures.plot_invariance_flow(flow_matrix(flow), table1_table({PAPER_RUN: 7}), 3, tmp_path / "fig4.png")
    assert_written(tmp_path / "fig4.png")
    mesh = fig.axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(N_LAYERS, N_LAYERS), expected)  # row i = pretrained
    vmin, vmax = mesh.get_clim()
    assert vmin == pytest.approx(-vmax)
    assert vmax == pytest.approx(np.abs(expected).max())
    title = fig.axes[0].get_title()
    assert "best epoch 7" in title and "mean of 3 STIR seed(s)" in title
    fig = figures.plot_invariance_flow(flow_matrix(flow), table1_table({PAPER_RUN: 7}), 3, tmp_path / "4.png", ROLES)
    assert (
        fig.axes[0]
        .get_title()
        .startswith(
            "Invariance flow: imagenet (plays ImageNet-1k) → cifar10 (plays CIFAR-10 stand-in), classification\n"
        )
    )


def test_invariance_flow_needs_one_analysed_row_and_a_matrix(tmp_path):
    _, flow = flow_setting()
    matrix = flow_matrix(flow)
    table1 = table1_table({PAPER_RUN: 7, RECONSTRUCTION_RUN: 7})
    with pytest.raises(ValueError, match="analysed: need the one table1_accuracy row of the drawn run, got 2 rows"):
        figures.plot_invariance_flow(matrix, table1, 3, tmp_path / "x.png")
    with pytest.raises(ValueError, match="analysed: the selection is empty"):
        figures.plot_invariance_flow(matrix, table1.iloc[:0], 3, tmp_path / "x.png")
    with pytest.raises(ValueError, match="matrix: the selection is empty"):
        figures.plot_invariance_flow(matrix.iloc[:0, :0], table1.iloc[:1], 3, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"matrix: need a square matrix of finite flows, got shape \(4, 5\)"):
        figures.plot_invariance_flow(matrix.iloc[:4], table1.iloc[:1], 3, tmp_path / "x.png")


# --- Fig. 5: dynamics -------------------------------------------------------------------

EPOCHS = (1, 2, 3, 4)
SPREAD = np.array([0.05, 0.10, 0.08, 0.06])  # per epoch; seed s scales it by 1 + s
# Severities 1..5 per epoch; their mean is the mean corrupted accuracy.
SEVERITY_ACCURACY = {
    1: [0.8, 0.7, 0.6, 0.5, 0.4],
    2: [0.9, 0.8, 0.8, 0.7, 0.7],
    3: [0.85, 0.75, 0.7, 0.6, 0.5],
    4: [0.8] * 5,
}
MEAN_CORRUPTED = [0.6, 0.78, 0.68, 0.8]


def forgetting_over_epochs(scale: float = 1.0) -> np.ndarray:
    """(seed, epoch, layer): layers 0, 1 fixed far apart (an all-layer std would be much
    larger), layers 2-4 at 0.3 + (1 + s) * scale * SPREAD[e] * (-1, 0, 1)."""
    values = np.empty((3, len(EPOCHS), N_LAYERS))
    values[:, :, 0], values[:, :, 1] = 0.6, 0.05
    for s in range(3):
        values[s, :, 2:] = 0.3 + (1 + s) * scale * SPREAD[:, None] * np.array([-1.0, 0.0, 1.0])
    return values


def dynamics_tables(run: Run = PAPER_RUN, shift: float = 0.0, scale: float = 1.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A dynamics run: forgetting as :func:`forgetting_over_epochs`, accuracies shifted by ``shift``."""
    forgetting = forgetting_over_epochs(scale)
    metrics = layer_metrics_table(
        {"learning": forgetting + 0.05, "forgetting": forgetting, "cka_divergence": forgetting / 3},
        run=run,
        epochs=EPOCHS,
    )
    robust = robust_accuracy_table({e: np.add(a, shift) for e, a in SEVERITY_ACCURACY.items()}, run=run)
    return metrics, robust


def plot_dynamics_of(metrics: pd.DataFrame, robust: pd.DataFrame, path, headline_metrics=None) -> Figure:
    """What figure_dynamics.py passes for one run."""
    return figures.plot_dynamics(
        summarize_over_seeds(metrics, keys=[*RUN_KEYS, "epoch", "layer", "metric"]),
        HEADLINE,
        hypotheses.seed_summary(HEADLINE, metrics if headline_metrics is None else headline_metrics),
        robust_accuracy.severity_accuracy(robust),
        robust_accuracy.mean_corrupted_accuracy(robust),
        path,
    )


def test_headline_is_std_of_forgetting_over_layers_2_to_depth():
    assert HEADLINE.id == HEADLINE_ID
    assert figures.hypothesis_label(HEADLINE) == "std of forgetting, layers 2-4"


def test_dynamics_draws_the_headline_over_its_layers_only_with_its_seed_band(tmp_path):
    metrics, robust = dynamics_tables()
    fig = plot_dynamics_of(metrics, robust, tmp_path / "fig5.png")
    assert_written(tmp_path / "fig5.png")
    assert len(data_axes(fig)) == 4  # learning, forgetting, CKA divergence, accuracy
    forgetting_ax = data_axes(fig)[1]
    headline = line_of(forgetting_ax, figures.HEADLINE_COLOUR)
    assert headline.get_label() == "std of forgetting, layers 2-4 (headline)"
    # population std of (-d, 0, d) is d * sqrt(2/3); d = (1 + s) * SPREAD over seeds 0, 1, 2
    per_seed = np.sqrt(2 / 3) * SPREAD[None, :] * np.array([1.0, 2.0, 3.0])[:, None]
    np.testing.assert_allclose(headline.get_ydata(), per_seed.mean(axis=0))
    lower, upper = band_edges(forgetting_ax, figures.HEADLINE_COLOUR, EPOCHS)
    np.testing.assert_allclose(upper - per_seed.mean(axis=0), np.sqrt(2 / 3) * SPREAD)  # sd of 1, 2, 3 is 1
    np.testing.assert_allclose(per_seed.mean(axis=0) - lower, np.sqrt(2 / 3) * SPREAD)
    # the layer lines are seed means per epoch: layer 4 is 0.3 + 2 * SPREAD
    np.testing.assert_allclose(forgetting_ax.get_lines()[4].get_ydata(), 0.3 + 2 * SPREAD)
    assert "checkpoints of epochs 1-4" in fig.get_suptitle()
    titled = figures.plot_dynamics(
        summarize_over_seeds(metrics, keys=[*RUN_KEYS, "epoch", "layer", "metric"]),
        HEADLINE,
        hypotheses.seed_summary(HEADLINE, metrics),
        robust_accuracy.severity_accuracy(robust),
        robust_accuracy.mean_corrupted_accuracy(robust),
        tmp_path / "roles.png",
        roles=ROLES,
    )
    assert titled.get_suptitle().startswith(
        "Dynamics: imagenet (plays ImageNet-1k) → cifar10 (plays CIFAR-10 stand-in)"
    )


def test_dynamics_accuracy_panel_draws_each_severity_their_mean_and_clean(tmp_path):
    metrics, robust = dynamics_tables()
    fig = plot_dynamics_of(metrics, robust, tmp_path / "fig5.png")
    lines = {line.get_label(): line for line in data_axes(fig)[-1].get_lines()}
    np.testing.assert_allclose(lines["mean corrupted"].get_ydata(), MEAN_CORRUPTED)
    np.testing.assert_allclose(lines["severity 2"].get_ydata(), [SEVERITY_ACCURACY[e][1] for e in EPOCHS])
    np.testing.assert_allclose(lines["clean test"].get_ydata(), [0.9] * 4)


def test_dynamics_without_cka_rows_has_three_panels(tmp_path):
    metrics, robust = dynamics_tables()
    fig = plot_dynamics_of(metrics[metrics["metric"] != "cka_divergence"], robust, tmp_path / "d.png", metrics)
    assert len(data_axes(fig)) == 3


def test_dynamics_rejects_two_runs_a_headline_of_another_run_and_empty_accuracy(tmp_path):
    metrics, robust = dynamics_tables()
    other, _ = dynamics_tables(Run("imagenet", "cifar10", "classification", "lr_0.01"))
    with pytest.raises(ValueError, match=r"profiles rows mix several values of variant \['default', 'lr_0.01'\]"):
        plot_dynamics_of(pd.concat([metrics, other]), robust, tmp_path / "d.png", metrics)
    with pytest.raises(
        ValueError, match="headline_values are of run 'imagenet/cifar10/classification/lr_0.01' but profiles of run"
    ):
        plot_dynamics_of(metrics, robust, tmp_path / "d.png", other)
    with pytest.raises(ValueError, match="severity: the selection is empty"):
        figures.plot_dynamics(
            summarize_over_seeds(metrics, keys=[*RUN_KEYS, "epoch", "layer", "metric"]),
            HEADLINE,
            hypotheses.seed_summary(HEADLINE, metrics),
            robust_accuracy.severity_accuracy(robust).iloc[:0],
            robust_accuracy.mean_corrupted_accuracy(robust),
            tmp_path / "d.png",
        )


# --- Figs. 6, 15: variants --------------------------------------------------------------


def test_variants_draw_each_variants_mean_corrupted_accuracy_and_headline(tmp_path):
    lr = Run("imagenet", "cifar10", "classification", "lr_0.01")
    parts = [dynamics_tables(), dynamics_tables(lr, shift=-0.1, scale=0.5)]
    metrics, robust = (pd.concat(tables) for tables in zip(*parts))
    fig = figures.plot_variants(
        robust_accuracy.mean_corrupted_accuracy_by_run(robust),
        HEADLINE,
        hypotheses.seed_summary(HEADLINE, metrics),
        tmp_path / "fig6.png",
    )
    assert_written(tmp_path / "fig6.png")
    accuracy_ax, headline_ax = data_axes(fig)
    lines = {line.get_label(): line for line in accuracy_ax.get_lines()}
    np.testing.assert_allclose(lines["default"].get_ydata(), MEAN_CORRUPTED)
    np.testing.assert_allclose(lines["lr_0.01"].get_ydata(), np.subtract(MEAN_CORRUPTED, 0.1))
    headline = {line.get_label(): line for line in headline_ax.get_lines()}
    np.testing.assert_allclose(headline["default"].get_ydata(), np.sqrt(2 / 3) * SPREAD * 2)  # mean of 1, 2, 3
    np.testing.assert_allclose(headline["lr_0.01"].get_ydata(), np.sqrt(2 / 3) * SPREAD * 2 * 0.5)
    assert "std of forgetting, layers 2-4" in headline_ax.get_ylabel()


def test_variants_of_two_settings_are_an_error(tmp_path):
    metrics, robust = dynamics_tables()
    cifar100 = Run("imagenet", "cifar100", "classification", "lr_0.01")
    other_metrics, other_robust = dynamics_tables(cifar100)
    with pytest.raises(
        ValueError, match=r"headline_values rows mix several values of dataset \['cifar10', 'cifar100'\]"
    ):
        figures.plot_variants(
            robust_accuracy.mean_corrupted_accuracy_by_run(robust),
            HEADLINE,
            hypotheses.seed_summary(HEADLINE, pd.concat([metrics, other_metrics])),
            tmp_path / "x.png",
        )
    with pytest.raises(ValueError, match="mean_corrupted is for .*cifar100.* but headline_values for .*cifar10"):
        figures.plot_variants(
            robust_accuracy.mean_corrupted_accuracy_by_run(other_robust),
            HEADLINE,
            hypotheses.seed_summary(HEADLINE, metrics),
            tmp_path / "x.png",
        )


# --- Fig. 14: early-epoch correlation ---------------------------------------------------


def test_early_epoch_correlation_shows_the_headline_distinct_from_other_named_hypotheses(tmp_path):
    early = early_epoch_correlation_table({HEADLINE_ID: [0.9, 0.8, 0.7], CKA_ID: [0.2, 0.3, 0.4]})
    named = named_hypotheses_table({"headline": HEADLINE_ID, "best_stir": HEADLINE_ID, "cka": CKA_ID})
    fig = figures.plot_early_epoch_correlation(early, named, HEADLINE, tmp_path / "fig14.png")
    assert_written(tmp_path / "fig14.png")
    (ax,) = data_axes(fig)
    lines = {line.get_label().split("\n")[0]: line for line in ax.get_lines() if not line.get_label().startswith("_")}
    headline = lines["headline = best_stir: std of forgetting, layers 2-4"]
    cka = lines["cka: std of CKA divergence, layers 1-3"]
    # Each label: r over all epochs with the parametric p and the permutation test's p.
    assert headline.get_label().split("\n")[1] == "  over epochs 1-5: r = 0.70, p = 0.01, permutation p = undefined"
    titled = figures.plot_early_epoch_correlation(early, named, HEADLINE, tmp_path / "roles.png", ROLES)
    assert (
        titled.axes[0]
        .get_title()
        .endswith("imagenet (plays ImageNet-1k) → cifar10 (plays CIFAR-10 stand-in), classification")
    )
    np.testing.assert_allclose(headline.get_xdata(), [3, 4, 5])
    np.testing.assert_allclose(headline.get_ydata(), [0.9, 0.8, 0.7])
    np.testing.assert_allclose(cka.get_ydata(), [0.2, 0.3, 0.4])
    assert mpl.colors.to_rgb(headline.get_color()) == figures.HEADLINE_COLOUR
    assert mpl.colors.to_rgb(cka.get_color()) != figures.HEADLINE_COLOUR
    assert (headline.get_linestyle(), cka.get_linestyle()) == ("-", "--")
    assert ax.get_ylim() == pytest.approx((-1.05, 1.05))


def test_early_epoch_correlation_needs_the_headline_and_one_run(tmp_path):
    named = named_hypotheses_table({"cka": CKA_ID})
    without = early_epoch_correlation_table({CKA_ID: [0.2, 0.3, 0.4]})
    with pytest.raises(ValueError, match=f"early: no rows for the headline hypothesis '{HEADLINE_ID}'"):
        figures.plot_early_epoch_correlation(without, named, HEADLINE, tmp_path / "x.png")
    early = early_epoch_correlation_table({HEADLINE_ID: [0.9, 0.8, 0.7]})
    two_runs = pd.concat([early, early_epoch_correlation_table({HEADLINE_ID: [0.1] * 3}, run=RECONSTRUCTION_RUN)])
    with pytest.raises(ValueError, match=r"early rows mix several values of task"):
        figures.plot_early_epoch_correlation(two_runs, named, HEADLINE, tmp_path / "x.png")
    with pytest.raises(ValueError, match="early: the selection is empty"):
        figures.plot_early_epoch_correlation(early.iloc[:0], named, HEADLINE, tmp_path / "x.png")


# --- saving and style -------------------------------------------------------------------


def test_save_figure_requires_png_and_leaves_global_style_alone(tmp_path):
    metrics, table1 = task_setting()
    before = mpl.rcParams["axes.facecolor"], mpl.rcParams["savefig.dpi"]
    figures.plot_cka_divergence_by_task(profiles_of(metrics, table1), table1, tmp_path / "a" / "b.png")
    assert (tmp_path / "a" / "b.pdf").exists()
    assert (mpl.rcParams["axes.facecolor"], mpl.rcParams["savefig.dpi"]) == before
    with pytest.raises(ValueError, match=r"must end in \.png"):
        figures.save_figure(Figure(), tmp_path / "c.pdf")


def test_the_same_figure_gives_the_same_bytes_in_two_runs(tmp_path, monkeypatch):
    metrics, table1 = task_setting()
    first, second = tmp_path / "first" / "f.png", tmp_path / "second" / "f.png"
    figures.plot_cka_divergence_by_task(profiles_of(metrics, table1), table1, first)
    # The PDF writer dates its file from the clock unless told otherwise; a later "now" must not show.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")
    figures.plot_cka_divergence_by_task(profiles_of(metrics, table1), table1, second)
    for suffix in (".png", ".pdf"):
        assert first.with_suffix(suffix).read_bytes() == second.with_suffix(suffix).read_bytes(), suffix
    assert sorted(p.name for p in first.parent.iterdir()) == ["f.pdf", "f.png"]  # no temporary left


# --- the p-values beside each correlation across epochs (Figs. 5, 6, 14, 15) --------------


def _named_row(run: Run, **values) -> pd.DataFrame:
    table = named_hypotheses_table({"headline": HEADLINE_ID}, run=run)
    return tables.conform(table.assign(**values), tables.NAMED_HYPOTHESES)


def test_dynamics_gives_the_headlines_bonferroni_and_family_wise_permutation_p(tmp_path):
    metrics, robust = dynamics_tables()
    named = _named_row(PAPER_RUN, r=0.84, p_bonferroni=0.001, p_permutation_fwer=0.35, n_epochs=20)
    fig = figures.plot_dynamics(
        summarize_over_seeds(metrics, keys=[*RUN_KEYS, "epoch", "layer", "metric"]),
        HEADLINE,
        hypotheses.seed_summary(HEADLINE, metrics),
        robust_accuracy.severity_accuracy(robust),
        robust_accuracy.mean_corrupted_accuracy(robust),
        tmp_path / "fig5.png",
        named,
    )
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert (
        "std of forgetting, layers 2-4 (headline)\nwith mean corrupted accuracy: r = 0.84 (20 epochs)\n"
        "Bonferroni p = 0.001\nfamily-wise permutation p = 0.35"
    ) in labels


def test_an_undefined_correlation_is_said_so_without_its_p_values():
    row = {"r": np.nan, "p_value": np.nan, "p_permutation": np.nan, "n_epochs": 3}
    assert figures.correlation_label(row, familywise=False) == "r undefined (3 epochs)"


def test_variants_give_each_variants_p_and_permutation_p(tmp_path):
    lr = Run("imagenet", "cifar10", "classification", "lr_0.01")
    parts = [dynamics_tables(), dynamics_tables(lr, shift=-0.1, scale=0.5)]
    metrics, robust = (pd.concat(tables) for tables in zip(*parts))
    named = pd.concat(
        [
            _named_row(PAPER_RUN, r=0.7, p_value=0.001, p_permutation=0.025, n_epochs=20),
            _named_row(lr, r=0.1, p_value=0.6, p_permutation=0.7, n_epochs=10),
        ]
    )
    fig = figures.plot_variants(
        robust_accuracy.mean_corrupted_accuracy_by_run(robust),
        HEADLINE,
        hypotheses.seed_summary(HEADLINE, metrics),
        tmp_path / "fig6.png",
        named,
    )
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert labels == [
        "default\nr = 0.70 (20 epochs), p = 0.001, permutation p = 0.025",
        "lr_0.01\nr = 0.10 (10 epochs), p = 0.6, permutation p = 0.7",
    ]
