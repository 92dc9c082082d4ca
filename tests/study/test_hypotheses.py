"""The hypothesis family of Appendix E.1 and its correlation analyses, on planted tables."""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finetune_invariance.study import hypotheses as hypotheses_module
from finetune_invariance.study import tables
from finetune_invariance.study.hypotheses import (
    Hypothesis,
    LayerSelection,
    correlate_hypotheses,
    correlated_epochs,
    early_epoch_correlation,
    headline_hypothesis,
    hypothesis_family,
    layer_selections,
    named_hypotheses,
    values_per_seed,
)
from finetune_invariance.study.paper import HEADLINE
from finetune_invariance.study.vocabulary import Run

from .conftest import PAPER_RUN, layer_metrics_table, robust_accuracy_table

L = 13
EPOCHS = list(range(1, 26))
SEEDS = (0, 1, 2)
PLANTED = "stir:layers_8-12:forgetting:std"


def with_seed_noise(per_epoch_layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three seeds whose mean is exactly the given (epoch, layer) values."""
    noise = rng.normal(scale=0.05, size=per_epoch_layer.shape)
    return np.stack([per_epoch_layer - noise, per_epoch_layer, per_epoch_layer + noise])


@pytest.fixture(scope="module")
def planted():
    """std of forgetting over layers 8-12 equals the mean corrupted accuracy; the rest is
    noise. Epoch 0 (the starting weights) has zero metrics and an off-line accuracy: it
    must not be correlated."""
    rng = np.random.default_rng(0)
    accuracy = rng.uniform(0.3, 0.6, size=len(EPOCHS))
    forgetting = rng.uniform(0.0, 1.0, size=(len(EPOCHS), L))
    for j, y in enumerate(accuracy):
        # A fresh zero-mean, unit-std direction per epoch: only the 5 layers together have std y.
        direction = rng.standard_normal(5)
        direction = (direction - direction.mean()) / direction.std()
        forgetting[j, -5:] = rng.uniform(0.5, 1.0) + y * direction
    learning = rng.uniform(0.0, 1.0, size=(len(EPOCHS), L))
    cka = rng.uniform(0.0, 1.0, size=(len(EPOCHS), L))
    zeros = np.zeros((1, L))
    metrics = layer_metrics_table(
        {
            name: with_seed_noise(np.vstack([zeros, values]), rng)
            for name, values in (("forgetting", forgetting), ("learning", learning), ("cka_divergence", cka))
        },
        epochs=[0, *EPOCHS],
        seeds=SEEDS,
    )
    severity = {0: [0.1] * 5, **{e: [y + d for d in (0.2, 0.1, 0.0, -0.1, -0.2)] for e, y in zip(EPOCHS, accuracy)}}
    return metrics, robust_accuracy_table(severity)


@pytest.fixture(scope="module")
def family_table(planted):
    return correlate_hypotheses(*planted)


def naive_values(metrics, metric, layers, combination, aggregate, epochs):
    def seed_mean(name, epoch, layer):
        rows = metrics[(metrics.metric == name) & (metrics.epoch == epoch) & (metrics.layer == layer)]
        return sum(rows.value) / len(rows)

    ops = {
        "learning+forgetting": lambda lrn, fgt: lrn + fgt,
        "learning-forgetting": lambda lrn, fgt: lrn - fgt,
        "learning": lambda lrn, fgt: lrn,
        "forgetting": lambda lrn, fgt: fgt,
    }
    aggregates = {"mean": statistics.fmean, "std": statistics.pstdev, "min": min, "max": max}
    out = []
    for epoch in epochs:
        if metric == "cka_divergence":
            per_layer = [seed_mean("cka_divergence", epoch, layer) for layer in layers]
        else:
            per_layer = [ops[combination](seed_mean("learning", epoch, l), seed_mean("forgetting", epoch, l)) for l in layers]
        out.append(aggregates[aggregate](per_layer))
    return out


def naive_target(robust, epochs):
    """Mean over severities 1..5 of the accuracy on all inputs of the severity."""
    out = []
    for epoch in epochs:
        rows = robust[(robust.epoch == epoch) & (robust.corruption != "clean")]
        per_severity = [sum(r.accuracy * r.n_images for r in rows[rows.severity == s].itertuples()) / sum(rows[rows.severity == s].n_images) for s in range(1, 6)]
        out.append(statistics.fmean(per_severity))
    return out


# --- the family -----------------------------------------------------------------------


def test_paper_reading_has_22_selections_with_single_layers_and_the_two_named_ones():
    selections = layer_selections(13)
    names = [s.name for s in selections]
    assert len(selections) == 22 == len(set(names))
    assert names[:2] == ["layer_1", "layers_1-2"] and "layer_12" in names  # single layers
    assert "layers_1-8" in names and "layers_2-12" in names  # the paper's two named selections
    assert all(s.first >= 1 for s in selections)  # layer 0 left out
    assert LayerSelection(1, 12) not in selections  # first 12 = last 12: not counted twice


def test_all_layers_reading_is_first_and_last_k_of_every_layer():
    names = {s.name for s in layer_selections(13, "all_layers")}
    assert len(names) == 22 and {"layers_0-1", "layers_0-11", "layers_1-12", "layers_11-12"} <= names
    assert "layers_1-8" not in names and not any(name.startswith("layer_") for name in names)
    with pytest.raises(ValueError, match="reading must be one of"):
        layer_selections(13, "middle")


def test_family_for_13_layers_has_352_stir_and_88_cka_hypotheses():
    for reading in ("paper", "all_layers"):
        family = hypothesis_family(13, reading)
        assert sum(h.family == "stir" for h in family) == 352 == 22 * 4 * 4
        assert sum(h.family == "cka" for h in family) == 88 == 22 * 4
        assert len({h.id for h in family}) == 440


def test_family_needs_depth_two():
    assert len(layer_selections(3)) == 2
    with pytest.raises(ValueError, match="depth >= 2"):
        hypothesis_family(2)


def test_hypothesis_ids_round_trip_and_bad_ids_are_named():
    for h in hypothesis_family(5):
        assert Hypothesis.from_id(h.id) == h
    with pytest.raises(ValueError, match="combination of a 'cka' hypothesis"):
        Hypothesis.from_id("cka:layers_1-2:forgetting:std")
    with pytest.raises(ValueError, match="aggregate must be one of"):
        Hypothesis.from_id("stir:layers_1-2:forgetting:median")
    with pytest.raises(ValueError, match="'layer_<l>' or 'layers_<first>-<last>'"):
        Hypothesis.from_id("stir:middle:forgetting:std")


def test_hypothesis_evaluates_combination_per_layer_then_aggregates():
    learning = pd.DataFrame([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]], index=[1, 2])
    forgetting = pd.DataFrame([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]], index=[1, 2])
    h = Hypothesis.from_id("stir:layers_1-2:learning-forgetting:max")
    # layers 1-2: epoch 1 -> (2-1, 3-1) = (1, 2); epoch 2 -> (0-2, 6-3) = (-2, 3)
    assert h.evaluate({"learning": learning, "forgetting": forgetting}).tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match=r"'layers_1-3' needs layers \[3\]"):
        Hypothesis.from_id("stir:layers_1-3:learning:max").evaluate({"learning": learning, "forgetting": forgetting})


def test_named_hypotheses_are_the_papers_at_depth_12_and_scale_with_depth():
    assert headline_hypothesis(13).id == "stir:layers_2-12:forgetting:std"
    assert headline_hypothesis(5).id == "stir:layers_2-4:forgetting:std"  # last 11/12 of 1..4 -> last 3
    # a depth-2 model: a single layer, still a member of its family
    assert headline_hypothesis(3).selection == LayerSelection(2, 2)
    assert headline_hypothesis(3) in hypothesis_family(3)


# --- correlate_hypotheses -------------------------------------------------------------


def test_the_planted_hypothesis_has_r_one(family_table):
    row = family_table.set_index("hypothesis").loc[PLANTED]
    assert row.r == pytest.approx(1.0, abs=1e-9) and row.p_bonferroni < 1e-10
    others = family_table[family_table.hypothesis != PLANTED]
    assert others.r.max() < 0.95


def test_table_conforms_and_covers_the_family(family_table):
    tables.conform(family_table, tables.HYPOTHESES)
    assert len(family_table) == 440 and family_table.hypothesis.is_unique and family_table.in_family.all()
    assert (family_table.n_epochs == len(EPOCHS)).all()  # epoch 0 left out
    assert (family_table[["source", "dataset", "task", "variant"]] == pd.Series(PAPER_RUN.context)).all().all()


def test_bonferroni_is_per_family_352_and_88(family_table):
    sizes = {"stir": 352, "cka": 88}
    assert (family_table.family_size == family_table.family.map(sizes)).all()
    expected = np.minimum(1.0, family_table.p_value * family_table.family.map(sizes))
    np.testing.assert_allclose(family_table.p_bonferroni, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "hypothesis_id, metric, layers",
    [
        (PLANTED, "forgetting", list(range(8, 13))),
        ("stir:layers_1-3:learning-forgetting:max", "stir", [1, 2, 3]),
        ("stir:layers_2-12:learning+forgetting:min", "stir", list(range(2, 13))),
        ("cka:layers_1-8:cka_divergence:std", "cka_divergence", list(range(1, 9))),
    ],
)
def test_r_and_p_match_a_naive_computation(planted, family_table, hypothesis_id, metric, layers):
    metrics, robust = planted
    _, _, combination, aggregate = hypothesis_id.split(":")
    x = naive_values(metrics, metric, layers, combination, aggregate, EPOCHS)
    expected = stats.pearsonr(x, naive_target(robust, EPOCHS))
    row = family_table.set_index("hypothesis").loc[hypothesis_id]
    assert row.r == pytest.approx(expected.statistic, abs=1e-10)
    # abs: the planted r is 1 up to rounding, where p is 0 or ~1e-178 depending on the last bit.
    assert row.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-100)


def test_single_layer_std_is_undefined_not_zero_and_keeps_the_family_size(family_table):
    single_std = family_table[family_table.layer_selection.str.startswith("layer_") & (family_table["aggregate"] == "std")]
    assert len(single_std) == 2 * (4 + 1)  # layers 1 and 12, each with 4 STIR combinations and CKA
    assert single_std.r.isna().all() and single_std.p_value.isna().all() and single_std.p_bonferroni.isna().all()
    assert (single_std.family_size == single_std.family.map({"stir": 352, "cka": 88})).all()


def test_constant_series_give_undefined_r_without_warnings(planted):
    metrics, robust = planted
    constant = metrics.copy()
    constant.loc[constant.metric == "cka_divergence", "value"] = 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = correlate_hypotheses(constant, robust)
    cka = result[result.family == "cka"]
    assert cka.r.isna().all() and cka.p_value.isna().all()
    assert result[(result.family == "stir") & (result["aggregate"] != "std")].r.notna().all()


def test_correlated_epochs_can_be_chosen(planted):
    result = correlate_hypotheses(*planted, epochs=range(1, 11)).set_index("hypothesis")
    assert result.loc[PLANTED, "n_epochs"] == 10
    with_start = correlate_hypotheses(*planted, epochs=range(0, 26)).set_index("hypothesis")
    assert with_start.loc[PLANTED, "r"] < 0.999  # the off-line epoch-0 point breaks the planted line


def test_the_configured_epochs_all_through_best_or_the_first_n():
    assert correlated_epochs("all", 83, 100) is None
    assert correlated_epochs("through_best", 83, 100) == range(1, 84)  # the paper's CIFAR10 p implies 83
    assert correlated_epochs(48, 78, 100) == range(1, 49)  # its CIFAR100 p implies 48; the best epoch is 78
    assert correlated_epochs(48, 12, 20) == range(1, 21)  # a 20-epoch variant: all its epochs
    for bad in ("best", 2, True, 48.0):
        with pytest.raises(ValueError, match="'all', 'through_best' or an integer >= 3"):
            correlated_epochs(bad, 10, 20)


def test_named_hypotheses_outside_the_all_layers_family_are_still_reported(planted):
    result = correlate_hypotheses(*planted, reading="all_layers")
    outside = result[~result.in_family]
    assert outside.hypothesis.tolist() == ["cka:layers_1-8:cka_divergence:std"]
    assert (outside.family_size == 88).all()
    assert len(result) == 441


def test_two_runs_in_one_table_are_rejected(planted):
    metrics, robust = planted
    with pytest.raises(ValueError, match="layer metrics table must hold exactly one run"):
        correlate_hypotheses(pd.concat([metrics, metrics.assign(variant="adam")]), robust)
    with pytest.raises(ValueError, match="robust accuracy is of run"):
        correlate_hypotheses(metrics, robust.assign(variant="adam"))


def test_missing_epochs_metrics_or_cells_are_named(planted):
    metrics, robust = planted
    with pytest.raises(ValueError, match=r"'robust accuracy': \[25\]"):
        correlate_hypotheses(metrics, robust[robust.epoch != 25])
    with pytest.raises(ValueError, match=r"needs the metric\(s\) \['cka_divergence'\]"):
        correlate_hypotheses(metrics[metrics.metric != "cka_divergence"], robust)
    hole = (metrics.metric == "learning") & (metrics.epoch == 3) & (metrics.layer == 4)
    with pytest.raises(ValueError, match=r"metric 'learning' is missing \(epoch, layer\) cells \[\(3, 4\)\]"):
        correlate_hypotheses(metrics[~hole], robust)
    with pytest.raises(ValueError, match="at least 3 epochs"):
        correlate_hypotheses(metrics, robust, epochs=[1, 2])


# --- the named hypotheses table ---------------------------------------------------------


def test_named_table_has_the_papers_r_beside_its_setting_only(family_table):
    other = Run("textures", "digits", "classification")
    variant = Run("imagenet", "cifar10", "classification", "adam")
    both = pd.concat(
        [family_table, *(family_table.assign(**run.context) for run in (other, variant))], ignore_index=True
    )
    named = named_hypotheses(both).set_index(["source", "variant", "role"])
    assert named.loc[("imagenet", "default", "headline"), "hypothesis"] == "stir:layers_2-12:forgetting:std"
    assert named.loc[("imagenet", "default", "headline"), "paper_r"] == 0.78
    assert named.loc[("imagenet", "default", "headline"), "paper_p_value"] == 3.52e-18
    assert named.loc[("imagenet", "default", "cka"), "paper_r"] == 0.69
    assert np.isnan(named.loc[("imagenet", "adam", "headline"), "paper_r"])  # not beside a variant
    assert np.isnan(named.loc[("textures", "default", "headline"), "paper_r"])
    best = named.loc[("imagenet", "default", "best_stir")]
    assert best.hypothesis == PLANTED and best.r == pytest.approx(1.0)
    assert named.loc[("imagenet", "default", "best_cka"), "hypothesis"].startswith("cka:")


# --- per-seed values and early epochs ---------------------------------------------------


def test_values_per_seed_take_the_aggregate_within_each_seed(planted):
    metrics, _ = planted
    per_seed = values_per_seed(Hypothesis.from_id(PLANTED), metrics)
    assert len(per_seed) == len(SEEDS) * (len(EPOCHS) + 1)
    one = metrics[(metrics.seed == 1) & (metrics.epoch == 7) & (metrics.metric == "forgetting") & (metrics.layer >= 8)]
    expected = statistics.pstdev(one.value)
    assert per_seed[(per_seed.seed == 1) & (per_seed.epoch == 7)].value.item() == pytest.approx(expected)


def test_early_epoch_correlation_over_epochs_one_to_e(planted):
    metrics, robust = planted
    noise_id = "stir:layers_1-4:learning:mean"
    result = early_epoch_correlation(metrics, robust, [PLANTED, Hypothesis.from_id(noise_id)])
    tables.conform(result, tables.EARLY_EPOCH_CORRELATION)
    planted_rows = result[result.hypothesis == PLANTED]
    assert planted_rows.last_epoch.tolist() == EPOCHS[2:]
    np.testing.assert_allclose(planted_rows.r, 1.0, atol=1e-9)
    x = naive_values(metrics, "stir", [1, 2, 3, 4], "learning", "mean", EPOCHS)
    y = naive_target(robust, EPOCHS)
    noise_rows = result[result.hypothesis == noise_id].set_index("last_epoch")
    for e in (3, 10, 25):
        expected = stats.pearsonr(x[:e], y[:e])
        assert noise_rows.loc[e, "r"] == pytest.approx(expected.statistic, abs=1e-10)
        assert noise_rows.loc[e, "p_value"] == pytest.approx(expected.pvalue, rel=1e-6)
    with pytest.raises(ValueError, match="min_epochs must be at least 3"):
        early_epoch_correlation(metrics, robust, [PLANTED], min_epochs=2)


def test_forgetting_alone_gives_the_headline_with_its_family_size(planted):
    """The dynamics variants measured by the forgetting monitor have forgetting only."""
    metrics, robust = planted
    forgetting = metrics[metrics.metric == "forgetting"]
    headline = correlate_hypotheses(forgetting, robust, only=[HEADLINE])
    full = correlate_hypotheses(metrics, robust)
    assert headline.hypothesis.tolist() == ["stir:layers_2-12:forgetting:std"]
    same = full[full.hypothesis == headline.hypothesis[0]].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        headline.drop(columns="p_permutation_fwer").reset_index(drop=True), same.drop(columns="p_permutation_fwer")
    )
    assert headline.p_permutation_fwer.isna().all()  # a maximum over the family needs the whole family
    named = named_hypotheses(headline)
    assert named.role.tolist() == ["headline"]  # no 'best' of a family that was not correlated
    with pytest.raises(ValueError, match="needs the metric"):
        correlate_hypotheses(forgetting, robust)


def test_passing_bonferroni_is_the_tables_p_bonferroni_below_alpha(planted):
    metrics, robust = planted
    full = correlate_hypotheses(metrics, robust)
    run, metric_tables, target = hypotheses_module.aligned_run(metrics, robust, None)
    values = hypotheses_module.hypothesis_values(run, metric_tables)
    for alpha in (0.05, 1e-6):
        expected = sorted(full[full.in_family & (full.p_bonferroni < alpha)].hypothesis)
        assert sorted(values.passing_bonferroni(target, alpha)) == expected
    assert values.passing_bonferroni(target, 0.05)  # the planted hypothesis passes


# --- beyond the paper: the permutation test that respects time series -------------------


def _naive_shift_p(x, y) -> tuple[float, list[float]]:
    """|r| of x with y and with every circular shift of y and of y reversed (scipy's r)."""
    transforms = [np.roll(y, s) for s in range(len(y))] + [np.roll(y[::-1], s) for s in range(len(y))]
    r = [abs(stats.pearsonr(x, t).statistic) for t in transforms]
    return float(np.mean([v >= r[0] - 1e-12 for v in r])), r


def test_permutation_p_values_are_the_circular_shift_test_per_member_and_over_its_family(planted, family_table):
    metrics, robust = planted
    y = naive_target(robust, EPOCHS)
    noise_id = "stir:layers_1-4:learning:mean"
    x = naive_values(metrics, "stir", [1, 2, 3, 4], "learning", "mean", EPOCHS)
    row = family_table.set_index("hypothesis").loc[noise_id]
    expected, _ = _naive_shift_p(x, y)
    assert row["p_permutation"] == pytest.approx(expected)
    # Family-wise: the share of transforms whose largest |r| over the 352 STIR members reaches it.
    stir = family_table[family_table.family == "stir"]
    assert (stir.p_permutation_fwer.dropna() >= stir.p_permutation.dropna()).all()
    planted_row = family_table.set_index("hypothesis").loc[PLANTED]
    assert planted_row["p_permutation"] == planted_row["p_permutation_fwer"] == pytest.approx(1 / (2 * len(EPOCHS)))
    undefined = family_table[family_table.r.isna()]
    assert undefined.p_permutation.isna().all() and undefined.p_permutation_fwer.isna().all()
    named = named_hypotheses(family_table).set_index("role")
    headline = family_table.set_index("hypothesis").loc[named.loc["headline", "hypothesis"]]
    assert named.loc["headline", ["p_permutation", "p_permutation_fwer"]].tolist() == pytest.approx(
        [headline["p_permutation"], headline["p_permutation_fwer"]]
    )


def test_family_wise_permutation_p_reads_the_maximum_over_the_family_not_bonferroni(planted, family_table):
    """A member's family-wise p is at least its own p and is the same for every member with
    the same |r|; the CKA family's maximum is over its 88 members only."""
    cka = family_table[family_table.family == "cka"].dropna(subset=["r"])
    stir = family_table[family_table.family == "stir"].dropna(subset=["r"])
    for members in (cka, stir):
        order = members.sort_values("r", key=abs)
        assert order.p_permutation_fwer.is_monotonic_decreasing  # larger |r|, smaller family-wise p


def test_early_windows_have_the_permutation_p_of_their_epochs(planted):
    metrics, robust = planted
    noise_id = "stir:layers_1-4:learning:mean"
    rows = early_epoch_correlation(metrics, robust, [noise_id]).set_index("last_epoch")
    x = naive_values(metrics, "stir", [1, 2, 3, 4], "learning", "mean", EPOCHS)
    y = naive_target(robust, EPOCHS)
    for e in (3, 10, 25):
        expected, _ = _naive_shift_p(x[:e], y[:e])
        assert rows.loc[e, "p_permutation"] == pytest.approx(expected)
