"""The planted-effect controls' checks on hand-made tables whose answer is known: each
planted effect found, its twin quiet, and each way the study could misbehave caught."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finetune_invariance.study import control_plan, controls, tables
from finetune_invariance.study.hypotheses import hypothesis_values, seed_mean_tables
from finetune_invariance.study.robust_accuracy import mean_corrupted_accuracy
from finetune_invariance.study.statistics import shuffled_columns
from finetune_invariance.study.vocabulary import Run

from .conftest import layer_metrics_table

DEPTH, BLOCK = 6, 3


def _floor(layer: int) -> float:
    return 0.01 * (layer + 1)


def _metrics(changed: dict[str, dict[int, float]] | None = None) -> pd.DataFrame:
    """CONTROL_LAYER_METRICS of the four controls over two seeds: every layer at the floor
    (learning = forgetting = 0.01 (l + 1), CKA divergence 0) except ``changed``: control ->
    {layer: rise above the floor} (seed 1 a little higher than seed 0)."""
    changed = (
        {control_plan.REINITIALISED: {layer: 0.2 for layer in range(BLOCK, DEPTH + 1)}} if changed is None else changed
    )
    rows = []
    for control in control_plan.MODEL_CONTROLS:
        for seed in (0, 1):
            for layer in range(DEPTH + 1):
                rise = changed.get(control, {}).get(layer, 0.0) * (1 + 0.1 * seed)
                for metric, value in (
                    ("learning", _floor(layer) + rise),
                    ("forgetting", _floor(layer) + rise),
                    ("cka_divergence", rise / 2),
                ):
                    rows.append(
                        dict(
                            control=control,
                            pretrained="pretrained",
                            finetuned="finetuned",
                            seed=seed,
                            layer=layer,
                            metric=metric,
                            value=value,
                        )
                    )
    return tables.conform(pd.DataFrame(rows), tables.CONTROL_LAYER_METRICS)


def _flows(cells: dict[str, dict[tuple[int, int], float]] | None = None) -> pd.DataFrame:
    """CONTROL_INVARIANCE_FLOW of the four controls: 0 everywhere except ``cells``:
    control -> {(i, j): flow}. By default the planted cells: compression (j + 1, j) and
    expansion (j - 1, j) from the block on."""
    if cells is None:
        cells = {
            control_plan.COMPRESSED: {(j + 1, j): 0.1 for j in range(BLOCK, DEPTH - 1)},
            control_plan.EXPANDED: {(j - 1, j): 0.1 for j in range(BLOCK, DEPTH)},
        }
    rows = [
        dict(
            control=control,
            pretrained="pretrained",
            finetuned="finetuned",
            seed=seed,
            pretrained_layer=i,
            finetuned_layer=j,
            flow=cells.get(control, {}).get((i, j), 0.0),
        )
        for control in control_plan.MODEL_CONTROLS
        for seed in (0, 1)
        for i in range(DEPTH + 1)
        for j in range(DEPTH + 1)
    ]
    return tables.conform(pd.DataFrame(rows), tables.CONTROL_INVARIANCE_FLOW)


def _checks(metrics=None, flows=None) -> pd.DataFrame:
    specs = control_plan.control_specs(BLOCK, None, DEPTH)
    metrics, flows = _metrics() if metrics is None else metrics, _flows() if flows is None else flows
    return controls.controls_table(controls.model_control_checks(metrics, flows, specs))


def _check(checks: pd.DataFrame, control: str, check: str) -> pd.Series:
    rows = checks[(checks.control == control) & checks.check.str.startswith(check)]
    assert len(rows) == 1, (control, check, checks[["control", "check"]])
    return rows.iloc[0]


def test_every_planted_effect_is_found_and_no_twin_shows_one():
    checks = _checks()
    assert checks.as_expected.all(), checks[~checks.as_expected][["control", "check", "evidence"]]
    assert set(checks.control) == set(control_plan.MODEL_CONTROLS)
    found = checks[checks.found]
    assert set(found.control) == {control_plan.REINITIALISED, control_plan.COMPRESSED, control_plan.EXPANDED}
    assert not checks[checks.control == control_plan.IDENTICAL].found.any()  # the twin of all of them


def test_an_identical_copy_whose_learning_and_forgetting_differ_is_caught():
    metrics = _metrics()
    mask = (metrics.control == control_plan.IDENTICAL) & (metrics.metric == "learning") & (metrics.layer == 2)
    metrics.loc[mask, "value"] += 1e-3  # two directions that do not see the same model
    row = _check(_checks(metrics=metrics), control_plan.IDENTICAL, "any change")
    assert row.found and not row.as_expected and row.value == pytest.approx(1e-3)


def test_a_change_that_leaks_before_the_block_is_caught():
    changed = {control_plan.REINITIALISED: {layer: 0.2 for layer in range(BLOCK - 1, DEPTH + 1)}}
    row = _check(
        _checks(metrics=_metrics(changed)), control_plan.REINITIALISED, f"forgetting: any change before layer {BLOCK}"
    )
    assert row.found and not row.as_expected


def test_a_change_within_the_seed_spread_or_below_the_minimum_is_not_found():
    for rise in (controls.MIN_EFFECT / 2, 0.2):
        changed = {control_plan.REINITIALISED: {layer: rise for layer in range(BLOCK, DEPTH + 1)}}
        metrics = _metrics(changed)
        if rise == 0.2:  # seeds far apart: the spread hides the change at every layer
            seed_one = (metrics.control == control_plan.REINITIALISED) & (metrics.seed == 1) & (metrics.layer >= BLOCK)
            metrics.loc[seed_one & (metrics.metric == "forgetting"), "value"] += 1.0
        row = _check(_checks(metrics=metrics), control_plan.REINITIALISED, f"forgetting: a change from layer {BLOCK}")
        assert not row.found and not row.as_expected


def test_a_change_that_shows_only_layers_after_the_block_is_found_where_it_shows():
    changed = {control_plan.REINITIALISED: {DEPTH - 1: 0.1, DEPTH: 0.3}}
    row = _check(
        _checks(metrics=_metrics(changed)), control_plan.REINITIALISED, f"learning: a change from layer {BLOCK}"
    )
    assert row.found and row.as_expected and f"resolved from layer {DEPTH - 1}" in row.evidence


def test_flow_of_the_wrong_side_or_in_too_few_layers_is_not_compression():
    wrong_side = {control_plan.COMPRESSED: {(j - 1, j): 0.1 for j in range(BLOCK, DEPTH)}}
    assert not _check(_checks(flows=_flows(wrong_side)), control_plan.COMPRESSED, "compression").found
    one_cell = {control_plan.COMPRESSED: {(DEPTH, DEPTH - 1): 0.1}}  # 1 of 6 pretrained layers, under 1/3
    assert not _check(_checks(flows=_flows(one_cell)), control_plan.COMPRESSED, "compression").found


def test_an_identical_copy_showing_expansion_is_a_twin_that_fails():
    """If an unchanged model's own flow passed the claims' test, the test would be unsound."""
    cells = {
        control_plan.EXPANDED: {(j - 1, j): 0.1 for j in range(BLOCK, DEPTH)},
        control_plan.IDENTICAL: {(i, i + 1): 0.05 for i in range(DEPTH)},
    }
    row = _check(_checks(flows=_flows(cells)), control_plan.IDENTICAL, "expansion")
    assert row.found and not row.as_expected


def test_the_controls_default_to_a_quarter_and_a_third_of_the_depth():
    specs = control_plan.control_specs(None, None, 12)
    assert [spec.kind for spec in specs] == list(control_plan.MODEL_CONTROLS)
    assert {(spec.block, spec.shift) for spec in specs} == {(3, 4)}  # 12 - 3 - 4 = 5 layers move
    assert {(spec.block, spec.shift) for spec in control_plan.control_specs(4, 2, 12)} == {(4, 2)}
    with pytest.raises(ValueError, match="controls.block"):
        control_plan.control_specs(12, None, 12)
    with pytest.raises(ValueError, match="controls.shift"):
        control_plan.control_specs(8, 4, 12)  # from block 8, 4 layers move past layer 11


def _run_metrics(epochs: int = 20, seed: int = 0) -> pd.DataFrame:
    """STUDY_LAYER_METRICS of one dynamics run: random (seed, epoch, layer) metrics over 13 layers."""
    rng = np.random.default_rng(seed)
    values = {metric: rng.uniform(size=(2, epochs, 13)) for metric in ("learning", "forgetting", "cka_divergence")}
    return layer_metrics_table(values, epochs=range(1, epochs + 1), seeds=(0, 1))


def test_a_planted_correlation_is_found_and_its_shuffles_stay_within_the_correction():
    checks = controls.controls_table(controls.robustness_checks(_run_metrics()))
    planted = _check(checks, control_plan.PLANTED_ROBUSTNESS, "a planted correlation")
    shuffled = _check(checks, control_plan.SHUFFLED_ROBUSTNESS, "the planted correlation in the shuffled series")
    assert planted.found and planted.value >= controls.STRONG_R
    assert not shuffled.found and shuffled.as_expected and shuffled.value <= controls.ALPHA


def test_the_headline_pass_rate_counts_shuffles_passing_the_planted_test():
    """Against a naive count: each shuffle of the series correlated with the headline by
    scipy, passing when r >= 0.7 and r's p times the family size is below 0.05."""
    rng = np.random.default_rng(4)
    headline = pd.Series(np.r_[0.0, rng.normal(size=7)], index=range(1, 9))
    accuracy = headline + pd.Series(rng.normal(0, 0.3, 8), index=headline.index)
    rate = controls.headline_pass_rate(headline, shuffled_columns(accuracy, 500, seed=9), family_size=3)
    shuffles = np.random.default_rng(9)
    naive = [stats.pearsonr(headline, shuffles.permutation(accuracy.to_numpy())) for _ in range(500)]
    assert rate == pytest.approx(np.mean([r.statistic >= 0.7 and r.pvalue * 3 < 0.05 for r in naive]))
    assert 0 < rate < 1


def test_the_planted_accuracy_follows_the_headline():
    metrics = _run_metrics()
    accuracy = controls.planted_accuracy(metrics)
    assert list(accuracy.index) == list(range(1, 21))
    forgetting = metrics[metrics.metric == "forgetting"].groupby(["epoch", "layer"]).value.mean().unstack()
    headline = forgetting.loc[:, 2:12].std(axis=1, ddof=0)  # std of forgetting across layers 2-12, by hand
    assert np.corrcoef(headline, accuracy)[0, 1] > 0.7
    table = controls.accuracy_table(accuracy, Run("s", "d", "classification"))
    pd.testing.assert_series_equal(mean_corrupted_accuracy(table), accuracy, check_names=False, check_index_type=False)


def _family_wise_error(metrics: pd.DataFrame) -> dict[str, float]:
    accuracy = controls.planted_accuracy(metrics)
    tables = {metric: table.loc[accuracy.index] for metric, table in seed_mean_tables(metrics).items()}
    values = hypothesis_values(Run.from_row(metrics.iloc[0]), tables)
    return controls.family_wise_error(values, shuffled_columns(accuracy, 400, seed=1))


def test_shuffles_of_series_with_outlying_epochs_expose_an_anticonservative_test():
    """Pearson's p assumes normal series. On noise, shuffles of the planted series pass each
    family's Bonferroni at most as often as it promises; when the accuracy has one outlying
    epoch and many hypotheses each have one at some epoch, a shuffle that puts the
    accuracy's on any of theirs passes, far more often than promised, while the headline's
    own test (the shuffled twin) stays within the correction."""
    assert max(_family_wise_error(_run_metrics()).values()) <= controls.ALPHA
    metrics = _run_metrics()
    spread = (metrics.metric == "forgetting") & (metrics.epoch == 1) & (metrics.layer % 2 == 0)
    metrics.loc[spread, "value"] += 5.0  # the headline (and so the planted accuracy) jumps at epoch 1
    for layer in range(1, 13):  # learning of layer l jumps at epoch l + 2
        metrics.loc[
            (metrics.metric == "learning") & (metrics.layer == layer) & (metrics.epoch == layer + 2), "value"
        ] += 5.0
    assert _family_wise_error(metrics)["stir"] > 3 * controls.ALPHA
    checks = controls.controls_table(controls.robustness_checks(metrics))
    shuffled = _check(checks, control_plan.SHUFFLED_ROBUSTNESS, "the planted correlation in the shuffled series")
    assert shuffled.as_expected and "family-wise error" in shuffled.evidence.lower()


SHIPPED_SOURCE = Path(__file__).resolve().parents[2] / "workflow/resources/glyphs64_source.safetensors"


def test_planted_controls_are_found_on_the_scale_models_source():
    """End to end on a real trained model (the scale model's ImageNet-role source), through
    the code the workflow's control jobs run: every planted effect found, none in the
    identical copy."""
    import torch

    from finetune_invariance.inversion import invert
    from finetune_invariance.study import models, synthetic

    torch.set_num_threads(1)
    source, _ = models.load_checkpoint(SHIPPED_SOURCE)
    test_images = synthetic.make_splits("glyphs10", 0, n_train=10, n_test=24)["test"][0]
    images = torch.from_numpy(test_images).permute(0, 3, 1, 2).float() / 255
    recipe = dict(iterations=30, step_size=0.5, memory_budget=2**30, precision="fp32")
    specs = control_plan.control_specs(None, None, len(source.backbone.blocks))
    pairs = []
    for seed in (0, 1):
        stored = invert(source, images, seed=seed, iterations=recipe["iterations"], progress=False)
        pairs += [controls.measure_control(spec, source, stored, seed, recipe) for spec in specs]
    checks = controls.evaluate_controls(*controls.control_metrics(pairs), specs)
    assert checks.as_expected.all(), checks[~checks.as_expected][["control", "check", "evidence"]].to_string()
    assert set(checks[checks.found].control) == {
        control_plan.REINITIALISED,
        control_plan.COMPRESSED,
        control_plan.EXPANDED,
    }
