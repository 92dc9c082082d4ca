"""The library's figures draw what they are given: means as lines, mean ± sd as bands, the flow
matrix cell by cell on a symmetric scale."""

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest

from finetune_invariance import plots

N_LAYERS = 4
MEANS = {"forgetting": [0.1, 0.2, 0.3, 0.5], "learning": [0.05, 0.1, 0.2, 0.4], "cka_divergence": [0.0, 0.01, 0.1, 0.3]}
SDS = {"forgetting": [0.01, 0.02, 0.03, 0.04], "learning": [0.0, 0.01, 0.0, 0.02], "cka_divergence": [0.0, 0.0, 0.0, 0.0]}


def summary():
    rows = [
        {"pretrained": "p", "finetuned": "f", "layer": layer, "metric": metric, "mean": MEANS[metric][layer],
         "std": SDS[metric][layer], "n_seeds": 3}
        for metric in MEANS
        for layer in reversed(range(N_LAYERS))  # unsorted on purpose
    ]
    return pd.DataFrame(rows)


def test_layer_profiles_draw_each_metrics_means_and_bands(tmp_path):
    fig = plots.plot_layer_profiles(summary(), tmp_path / "profiles.png", "p → f")
    assert (tmp_path / "profiles.png").stat().st_size > 0 and (tmp_path / "profiles.pdf").exists()
    for ax, metric in zip(fig.axes, plots.METRIC_LABELS):
        assert ax.get_ylabel() == plots.METRIC_LABELS[metric]
        (line,) = ax.get_lines()
        np.testing.assert_array_equal(line.get_xdata(), range(N_LAYERS))
        np.testing.assert_allclose(line.get_ydata(), MEANS[metric])
        (band,) = ax.collections
        vertices = band.get_paths()[0].vertices
        mean, sd = np.array(MEANS[metric]), np.array(SDS[metric])
        assert vertices[:, 1].max() == pytest.approx((mean + sd).max())
        assert vertices[:, 1].min() == pytest.approx((mean - sd).min())
    assert "mean over 3 STIR seed(s)" in fig._suptitle.get_text()


def test_layer_profiles_refuse_the_rows_of_several_pairs(tmp_path):
    twice = pd.concat([summary(), summary().assign(finetuned="g")])
    with pytest.raises(ValueError, match=r"share a \(metric, layer\): pass the summary of one model pair"):
        plots.plot_layer_profiles(twice, tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match=r"missing columns \['std'\]"):
        plots.plot_layer_profiles(summary().drop(columns="std"), tmp_path / "x.png", "t")


def test_flow_heatmap_shows_the_matrix_row_by_row_on_a_symmetric_scale(tmp_path):
    values = np.arange(16.0).reshape(4, 4) / 10 - 0.5
    np.fill_diagonal(values, 0.0)
    matrix = pd.DataFrame(values)
    fig = plots.plot_flow_matrix(matrix, 2, tmp_path / "flow.png", "p → f")
    assert (tmp_path / "flow.png").exists() and (tmp_path / "flow.pdf").exists()
    mesh = fig.axes[0].collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(4, 4), matrix.to_numpy())  # row i = pretrained
    vmin, vmax = mesh.get_clim()
    assert vmin == pytest.approx(-vmax) and vmax == pytest.approx(np.abs(matrix.to_numpy()).max())
    assert "mean of 2 STIR seed(s)" in fig.axes[0].get_title()


def test_flow_heatmap_needs_a_finite_square_matrix(tmp_path):
    with pytest.raises(ValueError, match=r"square matrix of finite flows, got shape \(3, 4\)"):
        plots.plot_flow_matrix(pd.DataFrame(np.zeros((3, 4))), 1, tmp_path / "x.png", "t")
    with pytest.raises(ValueError, match="matrix: the selection is empty"):
        plots.plot_flow_matrix(pd.DataFrame(), 1, tmp_path / "x.png", "t")


def test_figures_leave_the_global_style_alone_and_need_a_png_path(tmp_path):
    before = mpl.rcParams["axes.facecolor"], mpl.rcParams["savefig.dpi"]
    plots.plot_layer_profiles(summary(), tmp_path / "a.png", "t")
    assert (mpl.rcParams["axes.facecolor"], mpl.rcParams["savefig.dpi"]) == before
    with pytest.raises(ValueError, match=r"must end in \.png"):
        plots.plot_layer_profiles(summary(), tmp_path / "a.pdf", "t")
