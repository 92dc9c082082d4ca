"""Figures: each plot function writes a non-blank PNG and a PDF with the expected panels.

The tables are constructed here with the shapes the paper reports (U-shaped forgetting,
scratch above pretrained, early peaks during finetuning), 13 layers and 3 seeds, so the
same builders also serve to look at the figures by eye.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study import figures
from finetune_invariance.study.tables import (
    EARLY_EPOCH_CORRELATION,
    ROBUST_ACCURACY,
    STUDY_INVARIANCE_FLOW,
    STUDY_LAYER_METRICS,
    conform,
)

N_LAYERS = 13
SEEDS = (0, 1, 2)
LAYERS = np.arange(N_LAYERS)
RNG = np.random.default_rng(0)


def _profile(kind: str) -> np.ndarray:
    """Per-layer seed-mean curves shaped like the paper's Figs. 1-3."""
    u_shape = 0.2 + 0.25 * ((LAYERS - 5) / 7.0) ** 2
    rise = 0.02 + 0.5 * (LAYERS / (N_LAYERS - 1)) ** 2
    return {
        "classification": u_shape,
        "reconstruction": u_shape + 0.25,
        "scratch": 0.75 + 0.1 * LAYERS / N_LAYERS,
        "cka": rise,
    }[kind]


def layer_metric_rows(
    source: str,
    dataset: str,
    task: str,
    profile: np.ndarray,
    *,
    metrics=("learning", "forgetting", "cka_divergence"),
    variant: str = "default",
    epoch: int = 100,
) -> pd.DataFrame:
    rows = []
    for metric in metrics:
        offset = {"learning": 0.03, "forgetting": 0.0, "cka_divergence": 0.0}[metric]
        for seed in SEEDS:
            noise = RNG.normal(0.0, 0.015, N_LAYERS)
            for layer in LAYERS:
                rows.append(
                    dict(
                        source=source,
                        dataset=dataset,
                        task=task,
                        variant=variant,
                        epoch=epoch,
                        pretrained=f"{source}",
                        finetuned=f"{source}-{dataset}-{task}",
                        seed=seed,
                        layer=int(layer),
                        metric=metric,
                        value=float(profile[layer] + offset + noise[layer]),
                    )
                )
    return conform(pd.DataFrame(rows), STUDY_LAYER_METRICS)


def task_tables() -> pd.DataFrame:
    return pd.concat(
        [
            layer_metric_rows("imagenet", dataset, task, _profile(task))
            for dataset in ("cifar10", "cifar100")
            for task in ("classification", "reconstruction")
        ]
    )


def source_tables() -> pd.DataFrame:
    settings = [
        ("imagenet", "cifar10", 0.0),
        ("cifar100", "cifar10", 0.1),
        ("imagenet", "cifar100", 0.0),
        ("cifar10", "cifar100", 0.1),
    ]
    parts = [
        layer_metric_rows(src, ds, "classification", _profile("classification") + shift) for src, ds, shift in settings
    ]
    parts += [layer_metric_rows("scratch", ds, "classification", _profile("scratch")) for ds in ("cifar10", "cifar100")]
    return pd.concat(parts)


def flow_rows(task: str) -> pd.DataFrame:
    i, j = np.meshgrid(LAYERS, LAYERS, indexing="ij")
    base = -0.08 * np.abs(i - j) + np.where(i - j == 1, 0.12, 0.0)  # compression just below the diagonal
    if task == "reconstruction":
        base += np.where(j - i == 2, 0.2, 0.0)  # expansion two layers deeper
    np.fill_diagonal(base, 0.0)
    rows = [
        dict(
            source="imagenet",
            dataset="cifar10",
            task=task,
            variant="default",
            epoch=100,
            pretrained="imagenet",
            finetuned="ft",
            seed=seed,
            pretrained_layer=int(a),
            finetuned_layer=int(b),
            flow=float(base[a, b] + (0.0 if a == b else RNG.normal(0, 0.01))),
        )
        for seed in SEEDS
        for a in LAYERS
        for b in LAYERS
    ]
    return conform(pd.DataFrame(rows), STUDY_INVARIANCE_FLOW)


def dynamics_rows(variant: str = "default", n_epochs: int = 12, peak: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Learning/forgetting peaking at ``peak`` in deep layers; robustness peaking with them."""
    epochs = np.arange(1, n_epochs + 1)
    bump = np.exp(-((epochs - peak) ** 2) / 4.0)
    metric_parts = []
    for e_idx, epoch in enumerate(epochs):
        depth_weight = LAYERS / (N_LAYERS - 1)
        profile = 0.2 + 0.1 * e_idx / n_epochs + 0.4 * bump[e_idx] * depth_weight
        metric_parts.append(
            layer_metric_rows("imagenet", "cifar10", "classification", profile, variant=variant, epoch=int(epoch))
        )
    accuracy_rows = []
    for e_idx, epoch in enumerate(epochs):
        clean = 0.6 + 0.35 * (1 - np.exp(-epoch / 3))
        accuracy_rows.append(dict(corruption="clean", severity=0, accuracy=clean))
        for corruption in ("gaussian_noise", "fog"):
            for severity in range(1, 6):
                acc = clean - 0.08 * severity + 0.1 * bump[e_idx] * severity / 5
                accuracy_rows.append(dict(corruption=corruption, severity=severity, accuracy=acc))
        for row in accuracy_rows[-11:]:
            row.update(
                source="imagenet",
                dataset="cifar10",
                task="classification",
                variant=variant,
                epoch=int(epoch),
                n_images=1000,
            )
    return pd.concat(metric_parts), conform(pd.DataFrame(accuracy_rows), ROBUST_ACCURACY)


def early_rows() -> pd.DataFrame:
    rows = []
    for dataset in ("cifar10", "cifar100"):
        for hypothesis, start in (("stir:last_11:forgetting:std", 0.95), ("cka:first_8:cka_divergence:std", 0.7)):
            for e in range(3, 13):
                rows.append(
                    dict(
                        source="imagenet",
                        dataset=dataset,
                        task="classification",
                        variant="default",
                        hypothesis=hypothesis,
                        last_epoch=e,
                        r=start - 0.02 * e,
                        p_value=0.01,
                    )
                )
    return conform(pd.DataFrame(rows), EARLY_EPOCH_CORRELATION)


# --- helpers ---------------------------------------------------------------------------


def assert_written(png: Path) -> None:
    """The PNG is a real, non-uniform image and the PDF beside it is non-empty."""
    image = mpimg.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image[..., :3].std()) > 0.01, f"{png} is blank"
    pdf = png.with_suffix(".pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 1000


def data_axes(fig) -> list:
    """Axes that hold data (colour bars are axes too in matplotlib)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


# --- tests -----------------------------------------------------------------------------


def test_task_comparison_has_metric_rows_and_dataset_columns(tmp_path):
    fig = figures.plot_task_comparison(task_tables(), tmp_path / "fig1a.png")
    assert_written(tmp_path / "fig1a.png")
    assert len(data_axes(fig)) == 2 * 2  # (learning, forgetting) x (cifar10, cifar100)
    # one line per task in every panel, in the fixed task colours
    colours = {tuple(np.round(line.get_color()[:3], 3)) for line in fig.axes[0].get_lines()}
    assert colours == {tuple(np.round(figures.TASK_COLOURS[t], 3)) for t in ("classification", "reconstruction")}


def test_cka_divergence_by_task_has_one_row(tmp_path):
    fig = figures.plot_cka_divergence_by_task(task_tables(), tmp_path / "fig1b.png")
    assert_written(tmp_path / "fig1b.png")
    assert len(data_axes(fig)) == 2


def test_source_comparison_draws_scratch_in_its_colour(tmp_path):
    fig = figures.plot_source_comparison(source_tables(), tmp_path / "fig2.png")
    assert_written(tmp_path / "fig2.png")
    assert len(data_axes(fig)) == 2 * 2
    colours = [tuple(line.get_color()[:3]) for line in fig.axes[0].get_lines()]
    assert tuple(figures.SCRATCH_COLOUR) in colours
    assert len(set(colours)) == 3  # imagenet, cifar100, scratch on the cifar10 column


def test_cka_divergence_by_source(tmp_path):
    fig = figures.plot_cka_divergence_by_source(source_tables(), tmp_path / "fig3.png")
    assert_written(tmp_path / "fig3.png")
    assert len(data_axes(fig)) == 2


def test_source_palette_is_stable_and_keeps_scratch_green():
    a = figures.source_palette(["scratch", "imagenet", "cifar100"])
    b = figures.source_palette(["cifar100", "imagenet", "scratch"])
    assert a == b
    assert a["scratch"] == figures.SCRATCH_COLOUR
    assert len(set(a.values())) == 3
    assert figures.source_order(["scratch", "b", "a"]) == ["a", "b", "scratch"]


@pytest.mark.parametrize("task", ["classification", "reconstruction"])
def test_invariance_flow_heatmap_is_seed_mean_with_symmetric_limits(tmp_path, task):
    flow = flow_rows(task)
    fig = figures.plot_invariance_flow(flow, tmp_path / f"flow_{task}.png")
    assert_written(tmp_path / f"flow_{task}.png")
    mesh = fig.axes[0].collections[0]
    vmin, vmax = mesh.get_clim()
    assert vmin == pytest.approx(-vmax) and vmax > 0
    # the drawn cells are the naive per-cell seed mean, row i = pretrained layer
    naive = np.zeros((N_LAYERS, N_LAYERS))
    for (i, j), cell in flow.groupby(["pretrained_layer", "finetuned_layer"]):
        naive[i, j] = sum(cell["flow"]) / len(cell)
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(N_LAYERS, N_LAYERS), naive)
    assert vmax == pytest.approx(np.abs(naive).max())


def test_invariance_flow_rejects_incomplete_matrix_and_mixed_runs(tmp_path):
    flow = flow_rows("classification")
    holed = flow[~((flow["pretrained_layer"] == 3) & (flow["finetuned_layer"] == 4))]
    with pytest.raises(ValueError, match=r"lacks cells .*\(3, 4\)"):
        figures.plot_invariance_flow(holed, tmp_path / "x.png")
    mixed = pd.concat([flow, flow_rows("reconstruction")])
    with pytest.raises(ValueError, match="task"):
        figures.plot_invariance_flow(mixed, tmp_path / "x.png")


def test_dynamics_has_metric_panels_and_accuracy_panel(tmp_path):
    metrics, accuracy = dynamics_rows()
    fig = figures.plot_dynamics(metrics, accuracy, tmp_path / "fig5.png", std_layers=range(2, 13))
    assert_written(tmp_path / "fig5.png")
    assert len(data_axes(fig)) == 4  # learning, forgetting, CKA divergence, accuracy
    accuracy_ax = data_axes(fig)[-1]
    labels = {line.get_label() for line in accuracy_ax.get_lines()}
    assert {f"severity {s}" for s in range(1, 6)} | {"clean test", "mean corrupted"} <= labels
    # the mean-corrupted line is the naive mean over every corrupted row of each epoch
    mean_line = next(line for line in accuracy_ax.get_lines() if line.get_label() == "mean corrupted")
    corrupted = accuracy[accuracy["corruption"] != "clean"]
    naive = [corrupted.loc[corrupted["epoch"] == e, "accuracy"].sum() / 10 for e in range(1, 13)]
    np.testing.assert_allclose(mean_line.get_ydata(), naive)


def test_dynamics_without_cka_rows_has_three_panels(tmp_path):
    metrics, accuracy = dynamics_rows()
    fig = figures.plot_dynamics(metrics[metrics["metric"] != "cka_divergence"], accuracy, tmp_path / "d.png")
    assert len(data_axes(fig)) == 3


def test_dynamics_std_band_is_per_seed_population_std(tmp_path):
    metrics, accuracy = dynamics_rows(n_epochs=4)
    fig = figures.plot_dynamics(metrics, accuracy, tmp_path / "d.png", std_layers=[0, 1, 2])
    forgetting_ax = data_axes(fig)[1]
    std_line = next(line for line in forgetting_ax.get_lines() if line.get_label().startswith("std across"))
    forgetting = metrics[(metrics["metric"] == "forgetting") & metrics["layer"].isin([0, 1, 2])]
    expected = []
    for epoch in range(1, 5):
        per_seed = [
            np.sqrt(np.mean((v - v.mean()) ** 2))
            for v in (g["value"].to_numpy() for _, g in forgetting[forgetting["epoch"] == epoch].groupby("seed"))
        ]
        expected.append(np.mean(per_seed))
    np.testing.assert_allclose(std_line.get_ydata(), expected)


def test_dynamics_rejects_two_runs_and_mismatched_accuracy(tmp_path):
    metrics, accuracy = dynamics_rows()
    other, _ = dynamics_rows(variant="lr_0.01")
    with pytest.raises(ValueError, match="variant"):
        figures.plot_dynamics(pd.concat([metrics, other]), accuracy, tmp_path / "d.png")
    _, other_accuracy = dynamics_rows(variant="lr_0.01")
    with pytest.raises(ValueError, match="robust_accuracy is for run"):
        figures.plot_dynamics(metrics, other_accuracy, tmp_path / "d.png")


def test_variants_one_line_per_variant(tmp_path):
    parts = [dynamics_rows(variant=v, n_epochs=8, peak=p) for v, p in (("default", 2), ("lr_1e-2", 3), ("adam", 5))]
    metrics = pd.concat([m for m, _ in parts])
    accuracy = pd.concat([a for _, a in parts])
    fig = figures.plot_variants(metrics, accuracy, tmp_path / "fig6.png", std_layers=range(2, 13))
    assert_written(tmp_path / "fig6.png")
    axes = data_axes(fig)
    assert len(axes) == 2
    assert len({tuple(line.get_color()[:3]) for line in axes[0].get_lines()}) == 3


def test_early_epoch_correlation_one_panel_per_run(tmp_path):
    fig = figures.plot_early_epoch_correlation(early_rows(), tmp_path / "fig14.png")
    assert_written(tmp_path / "fig14.png")
    assert len(data_axes(fig)) == 2
    assert data_axes(fig)[0].get_ylim() == pytest.approx((-1.05, 1.05))


@pytest.mark.parametrize(
    "plot, table",
    [
        (figures.plot_task_comparison, lambda: task_tables().iloc[:0]),
        (figures.plot_source_comparison, lambda: source_tables().iloc[:0]),
        (figures.plot_invariance_flow, lambda: flow_rows("classification").iloc[:0]),
        (figures.plot_early_epoch_correlation, lambda: early_rows().iloc[:0]),
    ],
)
def test_empty_selection_is_a_clear_error(tmp_path, plot, table):
    with pytest.raises(ValueError, match="selection is empty"):
        plot(table(), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_empty_accuracy_selection_names_the_argument(tmp_path):
    metrics, accuracy = dynamics_rows(n_epochs=3)
    with pytest.raises(ValueError, match="robust_accuracy: the selection is empty"):
        figures.plot_dynamics(metrics, accuracy.iloc[:0], tmp_path / "d.png")


def test_missing_metric_and_mixed_epochs_are_errors(tmp_path):
    table = task_tables()
    with pytest.raises(ValueError, match=r"no rows with metric \['learning'\]"):
        figures.plot_task_comparison(table[table["metric"] != "learning"], tmp_path / "x.png")
    later = table.assign(epoch=50)
    with pytest.raises(ValueError, match="epoch"):
        figures.plot_task_comparison(pd.concat([table, later]), tmp_path / "x.png")


def test_duplicated_rows_are_an_error(tmp_path):
    table = task_tables()
    with pytest.raises(ValueError, match="rows share the same"):
        figures.plot_task_comparison(pd.concat([table, table.iloc[:1]]), tmp_path / "x.png")


def test_save_figure_requires_png_and_leaves_global_style_alone(tmp_path):
    import matplotlib as mpl
    from matplotlib.figure import Figure

    before = mpl.rcParams["axes.facecolor"], mpl.rcParams["savefig.dpi"]
    figures.plot_cka_divergence_by_task(task_tables(), tmp_path / "a" / "b.png")
    assert (tmp_path / "a" / "b.pdf").exists()
    assert (mpl.rcParams["axes.facecolor"], mpl.rcParams["savefig.dpi"]) == before
    with pytest.raises(ValueError, match=r"must end in \.png"):
        figures.save_figure(Figure(), tmp_path / "c.pdf")
