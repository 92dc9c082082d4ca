"""Robust accuracy, the hypothesis family and the correlation analyses on planted tables."""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finetune_invariance.study import tables
from finetune_invariance.study.cifar_c import CorruptedSet
from finetune_invariance.study.robustness import (
    Hypothesis,
    correlate_hypotheses,
    early_epoch_correlation,
    hypothesis_family,
    learning_forgetting_correlation,
    robust_accuracy,
    strongest_hypotheses,
)
from finetune_invariance.study.paper import PAPER_HEADLINE
from finetune_invariance.study.design import Run, with_context

RUN = {"source": "imagenet", "dataset": "cifar10", "task": "classification", "variant": "default"}
L = 13
EPOCHS = list(range(1, 26))
SEEDS = [0, 1, 2]
PLANTED = "stir:last_5:forgetting:std"


# --- building tables ------------------------------------------------------------------


def layer_metrics(values: dict[str, np.ndarray], epochs: list[int], run: dict = RUN) -> pd.DataFrame:
    """STUDY_LAYER_METRICS rows from metric -> array (seed, epoch, layer)."""
    rows = [
        {
            **run,
            "epoch": epoch,
            "pretrained": "p",
            "finetuned": f"f{epoch}",
            "seed": seed,
            "layer": layer,
            "metric": metric,
            "value": array[i, j, layer],
        }
        for metric, array in values.items()
        for i, seed in enumerate(SEEDS)
        for j, epoch in enumerate(epochs)
        for layer in range(array.shape[2])
    ]
    return tables.conform(pd.DataFrame(rows), tables.STUDY_LAYER_METRICS)


def with_seed_noise(per_epoch_layer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three seeds whose mean is exactly the given (epoch, layer) values."""
    noise = rng.normal(scale=0.05, size=per_epoch_layer.shape)
    return np.stack([per_epoch_layer - noise, per_epoch_layer, per_epoch_layer + noise])


def robust_table(target: dict[int, float], rng: np.random.Generator) -> pd.DataFrame:
    """Clean rows at random accuracies and 2 corruptions x 5 severities averaging to ``target``."""
    offsets = rng.normal(scale=0.05, size=10)
    offsets -= offsets.mean()
    rows = []
    for epoch, mean in target.items():
        rows.append(
            {
                **RUN,
                "epoch": epoch,
                "corruption": "clean",
                "severity": 0,
                "accuracy": rng.uniform(0.8, 1.0),
                "n_images": 1000,
            }
        )
        for i, (corruption, severity) in enumerate((c, s) for c in ("fog", "contrast") for s in range(1, 6)):
            rows.append(
                {
                    **RUN,
                    "epoch": epoch,
                    "corruption": corruption,
                    "severity": severity,
                    "accuracy": mean + offsets[i],
                    "n_images": 1000,
                }
            )
    return tables.conform(pd.DataFrame(rows), tables.ROBUST_ACCURACY)


@pytest.fixture(scope="module")
def planted():
    """std of forgetting over the last 5 layers equals the mean corrupted accuracy; the rest is noise.

    Epoch 0 (the starting weights) has zero metrics and an off-line accuracy: it must not be
    correlated.
    """
    rng = np.random.default_rng(0)
    accuracy = rng.uniform(0.3, 0.6, size=len(EPOCHS))
    forgetting = rng.uniform(0.0, 1.0, size=(len(EPOCHS), L))
    for j, y in enumerate(accuracy):
        # A fresh zero-mean, unit-std direction per epoch: only all 5 layers together have std y.
        direction = rng.standard_normal(5)
        direction = (direction - direction.mean()) / direction.std()
        forgetting[j, -5:] = rng.uniform(0.5, 1.0) + y * direction
    learning = rng.uniform(0.0, 1.0, size=(len(EPOCHS), L))
    cka = rng.uniform(0.0, 1.0, size=(len(EPOCHS), L))
    zeros = np.zeros((1, L))
    metrics = layer_metrics(
        {
            name: with_seed_noise(np.vstack([zeros, values]), rng)
            for name, values in (("forgetting", forgetting), ("learning", learning), ("cka_divergence", cka))
        },
        [0, *EPOCHS],
    )
    robust = robust_table({0: 0.1, **dict(zip(EPOCHS, accuracy))}, rng)
    return metrics, robust


@pytest.fixture(scope="module")
def hypotheses(planted):
    return correlate_hypotheses(*planted)


# --- naive reference computations -----------------------------------------------------


def naive_hypothesis_values(
    metrics: pd.DataFrame, family_metric: str, layers: list[int], combination: str, aggregate: str, epochs: list[int]
) -> list[float]:
    def seed_mean(metric, epoch, layer):
        rows = metrics[(metrics.metric == metric) & (metrics.epoch == epoch) & (metrics.layer == layer)]
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
        if family_metric == "cka_divergence":
            per_layer = [seed_mean("cka_divergence", epoch, layer) for layer in layers]
        else:
            per_layer = [
                ops[combination](seed_mean("learning", epoch, layer), seed_mean("forgetting", epoch, layer))
                for layer in layers
            ]
        out.append(aggregates[aggregate](per_layer))
    return out


def naive_target(robust: pd.DataFrame, epochs: list[int]) -> list[float]:
    out = []
    for epoch in epochs:
        rows = robust[(robust.epoch == epoch) & (robust.corruption != "clean")]
        out.append(sum(rows.accuracy) / len(rows))
    return out


# --- the family -----------------------------------------------------------------------


def test_family_for_13_layers_has_352_stir_and_88_cka_hypotheses():
    family = hypothesis_family(13)
    assert sum(h.family == "stir" for h in family) == 352
    assert sum(h.family == "cka" for h in family) == 88
    assert len({h.id for h in family}) == 440
    selections = {h.selection.name for h in family}
    assert len(selections) == 22
    assert selections == {f"{side}_{k}" for side in ("first", "last") for k in range(2, 13)}


@pytest.mark.parametrize("num_layers", [3, 4, 7, 25])
def test_family_size_is_40_times_l_minus_2(num_layers):
    family = hypothesis_family(num_layers)
    assert len(family) == 40 * (num_layers - 2) == len({h.id for h in family})


def test_family_needs_three_layers():
    with pytest.raises(ValueError, match="num_layers must be at least 3"):
        hypothesis_family(2)


def test_hypothesis_ids_round_trip_and_bad_ids_are_named():
    for h in hypothesis_family(5):
        assert Hypothesis.from_id(h.id) == h
    with pytest.raises(ValueError, match="combination of a 'cka' hypothesis"):
        Hypothesis.from_id("cka:first_2:forgetting:std")
    with pytest.raises(ValueError, match="aggregate must be one of"):
        Hypothesis.from_id("stir:first_2:forgetting:median")
    with pytest.raises(ValueError, match="'first_<k>' or 'last_<k>'"):
        Hypothesis.from_id("stir:middle:forgetting:std")


def test_hypothesis_evaluates_combination_per_layer_then_aggregates():
    learning = pd.DataFrame([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]], index=[1, 2])
    forgetting = pd.DataFrame([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]], index=[1, 2])
    h = Hypothesis.from_id("stir:last_2:learning-forgetting:max")
    # last 2 layers: epoch 1 -> (2-1, 3-1) = (1, 2); epoch 2 -> (0-2, 6-3) = (-2, 3)
    assert h.evaluate({"learning": learning, "forgetting": forgetting}).tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="'first_4' needs 4 layers, the table has 3"):
        Hypothesis.from_id("stir:first_4:learning:max").evaluate({"learning": learning, "forgetting": forgetting})


# --- correlate_hypotheses -------------------------------------------------------------


def test_the_planted_hypothesis_is_the_strongest(hypotheses):
    top = strongest_hypotheses(hypotheses, 2)
    assert top.loc[0, "hypothesis"] == PLANTED
    assert top.loc[0, "r"] == pytest.approx(1.0, abs=1e-9)
    assert top.loc[1, "r"] < 0.95
    assert top.loc[0, "p_bonferroni"] < 1e-10


def test_table_conforms_and_covers_the_family(hypotheses):
    tables.conform(hypotheses, tables.HYPOTHESES)
    assert len(hypotheses) == 440 and hypotheses.hypothesis.is_unique
    assert (hypotheses.family_size == 440).all()
    assert (hypotheses.n_epochs == len(EPOCHS)).all()  # epoch 0 left out
    assert (hypotheses[list(RUN)] == pd.Series(RUN)).all().all()


def test_bonferroni_multiplies_by_the_whole_family(hypotheses):
    expected = np.minimum(1.0, hypotheses.p_value * 440)
    np.testing.assert_allclose(hypotheses.p_bonferroni, expected, rtol=1e-12)
    assert (hypotheses.p_bonferroni == 1.0).any() and (hypotheses.p_bonferroni < 1.0).any()


@pytest.mark.parametrize(
    "hypothesis_id, metric, layers",
    [
        (PLANTED, "forgetting", list(range(8, 13))),
        ("stir:first_3:learning-forgetting:max", "stir", [0, 1, 2]),
        ("stir:last_12:learning+forgetting:min", "stir", list(range(1, 13))),
        ("cka:first_8:cka_divergence:std", "cka_divergence", list(range(8))),
    ],
)
def test_r_and_p_match_a_naive_computation(planted, hypotheses, hypothesis_id, metric, layers):
    metrics, robust = planted
    _, _, combination, aggregate = hypothesis_id.split(":")
    x = naive_hypothesis_values(metrics, metric, layers, combination, aggregate, EPOCHS)
    expected = stats.pearsonr(x, naive_target(robust, EPOCHS))
    row = hypotheses.set_index("hypothesis").loc[hypothesis_id]
    assert row.r == pytest.approx(expected.statistic, abs=1e-10)
    # abs: the planted r is 1 up to rounding, where p is 0 or ~1e-178 depending on the last bit.
    assert row.p_value == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-100)
    assert row.p_bonferroni == pytest.approx(min(1.0, expected.pvalue * 440), rel=1e-6, abs=1e-100)


def test_constant_series_give_nan_r_and_p_one_without_warnings(planted):
    metrics, robust = planted
    constant = metrics.copy()
    constant.loc[constant.metric == "cka_divergence", "value"] = 0.25
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = correlate_hypotheses(constant, robust)
    cka = result[result.family == "cka"]
    assert cka.r.isna().all() and (cka.p_value == 1.0).all() and (cka.p_bonferroni == 1.0).all()
    assert result[result.family == "stir"].r.notna().all()


def test_first_epoch_zero_includes_the_starting_checkpoint(planted):
    result = correlate_hypotheses(*planted, first_epoch=0).set_index("hypothesis")
    assert result.loc[PLANTED, "n_epochs"] == len(EPOCHS) + 1
    assert result.loc[PLANTED, "r"] < 0.999  # the off-line epoch-0 point breaks the planted line


def test_two_runs_in_one_table_are_rejected(planted):
    metrics, robust = planted
    other = metrics.assign(variant="adam")
    with pytest.raises(ValueError, match="layer metrics table must hold exactly one run"):
        correlate_hypotheses(pd.concat([metrics, other]), robust)
    with pytest.raises(ValueError, match="robust accuracy is of run"):
        correlate_hypotheses(metrics, robust.assign(variant="adam"))


def test_misaligned_epochs_are_named(planted):
    metrics, robust = planted
    with pytest.raises(ValueError, match=r"only in layer metrics \[25\], only in robust accuracy \[\]"):
        correlate_hypotheses(metrics, robust[robust.epoch != 25])


def test_missing_metric_or_cell_is_named(planted):
    metrics, robust = planted
    with pytest.raises(ValueError, match="no rows for metric 'cka_divergence'"):
        correlate_hypotheses(metrics[metrics.metric != "cka_divergence"], robust)
    hole = (metrics.metric == "learning") & (metrics.epoch == 3) & (metrics.layer == 4)
    with pytest.raises(ValueError, match=r"metric 'learning' is missing \(epoch, layer\) cells \[\(3, 4\)\]"):
        correlate_hypotheses(metrics[~hole], robust)


def test_duplicate_robust_rows_are_rejected(planted):
    metrics, robust = planted
    with pytest.raises(ValueError, match="several rows for"):
        correlate_hypotheses(metrics, pd.concat([robust, robust.iloc[[3]]]))


# --- early epochs ---------------------------------------------------------------------


def test_early_epoch_correlation_over_epochs_one_to_e(planted):
    metrics, robust = planted
    noise_id = "stir:first_4:learning:mean"
    result = early_epoch_correlation(metrics, robust, [PLANTED, Hypothesis.from_id(noise_id)])
    tables.conform(result, tables.EARLY_EPOCH_CORRELATION)
    planted_rows = result[result.hypothesis == PLANTED]
    assert planted_rows.last_epoch.tolist() == EPOCHS[2:]
    np.testing.assert_allclose(planted_rows.r, 1.0, atol=1e-9)

    x = naive_hypothesis_values(metrics, "stir", [0, 1, 2, 3], "learning", "mean", EPOCHS)
    y = naive_target(robust, EPOCHS)
    noise_rows = result[result.hypothesis == noise_id].set_index("last_epoch")
    for e in (3, 10, 25):
        expected = stats.pearsonr(x[:e], y[:e])
        assert noise_rows.loc[e, "r"] == pytest.approx(expected.statistic, abs=1e-10)
        assert noise_rows.loc[e, "p_value"] == pytest.approx(expected.pvalue, rel=1e-6)


def test_early_epoch_accepts_all_layers_and_rejects_fewer_than_three_epochs(planted):
    metrics, robust = planted
    result = early_epoch_correlation(metrics, robust, ["stir:first_13:forgetting:std"], min_epochs=20)
    assert result.last_epoch.tolist() == EPOCHS[19:]
    with pytest.raises(ValueError, match="min_epochs must be at least 3"):
        early_epoch_correlation(metrics, robust, [PLANTED], min_epochs=2)


# --- learning vs forgetting across layers ---------------------------------------------


def test_learning_forgetting_correlation_per_setting():
    rng = np.random.default_rng(1)
    forgetting = rng.uniform(size=(2, 6))  # (epoch, layer)
    learning = np.stack([2 * forgetting[0] + 0.1, 1 - forgetting[1]])
    values = {"forgetting": with_seed_noise(forgetting, rng), "learning": with_seed_noise(learning, rng)}
    other_run = {**RUN, "source": "scratch"}
    df = pd.concat(
        [layer_metrics(values, [1, 2]), layer_metrics({**values, "learning": values["forgetting"]}, [1, 2], other_run)]
    )
    result = learning_forgetting_correlation(df)
    tables.conform(result, tables.LEARNING_FORGETTING_CORRELATION)
    by_setting = result.set_index(["source", "epoch"])
    assert by_setting.loc[("imagenet", 1), "r"] == pytest.approx(1.0)
    assert by_setting.loc[("imagenet", 2), "r"] == pytest.approx(-1.0)
    assert by_setting.loc[("scratch", 1), "r"] == pytest.approx(1.0)
    assert (result.n_layers == 6).all() and len(result) == 4


def test_learning_forgetting_correlation_needs_both_metrics():
    values = {"forgetting": np.zeros((3, 1, 4))}
    with pytest.raises(ValueError, match="learning and forgetting must both be present"):
        learning_forgetting_correlation(layer_metrics(values, [1]))


# --- the paper's numbers --------------------------------------------------------------


def test_strongest_hypotheses_carry_the_paper_numbers_where_it_has_them(hypotheses):
    both = pd.concat([hypotheses, hypotheses.assign(dataset="cifar100")])
    top = strongest_hypotheses(both, 440)
    assert len(top) == 880
    headline = top[(top.dataset == "cifar10") & (top.hypothesis == PLANTED)].iloc[0]
    assert headline.paper_r == 0.78 and headline.paper_p_value == 3.52e-18
    assert top[(top.dataset == "cifar100") & (top.hypothesis == PLANTED)].iloc[0].paper_r == 0.877
    cka_std = top[(top.dataset == "cifar100") & (top.hypothesis == "cka:first_8:cka_divergence:std")].iloc[0]
    assert cka_std.paper_r == 0.63
    unmatched = top[top["aggregate"] != "std"]
    assert unmatched.paper_r.isna().all() and unmatched.paper_claim.isna().all()
    assert PAPER_HEADLINE.r == {"cifar10": 0.78, "cifar100": 0.877}


def test_strongest_hypotheses_rank_by_absolute_r_within_each_run():
    df = pd.DataFrame(
        {
            **{k: [v] * 4 for k, v in RUN.items()},
            "hypothesis": list("abcd"),
            "combination": ["learning"] * 4,
            "aggregate": ["mean"] * 4,
            "r": [0.2, -0.9, float("nan"), 0.5],
        }
    )
    assert strongest_hypotheses(df, 3).hypothesis.tolist() == ["b", "d", "a"]


# --- robust accuracy ------------------------------------------------------------------


def bright_is_one(images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((images.reshape(len(images), -1).mean(axis=1) > 127) == labels))


def test_robust_accuracy_has_a_clean_row_and_one_row_per_set():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=20)
    sets = [CorruptedSet("contrast", s, images // s, labels) for s in (1, 2, 3)]
    result = robust_accuracy(bright_is_one, sets, (images, labels))
    assert result.corruption.tolist() == ["clean", "contrast", "contrast", "contrast"]
    assert result.severity.tolist() == [0, 1, 2, 3]
    assert (result.n_images == 20).all()
    for row, divisor in zip(result.itertuples(), (1, 1, 2, 3)):
        naive = sum(int((images[i] // divisor).mean() > 127) == labels[i] for i in range(20)) / 20
        assert row.accuracy == pytest.approx(naive)
    table = tables.conform(with_context(result, Run(**RUN), epoch=4), tables.ROBUST_ACCURACY)
    assert list(table.columns) == list(tables.ROBUST_ACCURACY.columns) and (table.epoch == 4).all()


def test_accuracy_outside_zero_one_is_rejected():
    images, labels = np.zeros((2, 2, 2, 3), np.uint8), np.zeros(2)
    with pytest.raises(ValueError, match=r"accuracy_fn returned 2.0 for 'clean'"):
        robust_accuracy(lambda x, y: 2.0, [], (images, labels))
