"""The planted-effect controls' checks on hand-made tables whose answer is known: each
planted effect found where it was planted, its twin quiet, and each way the study could
misbehave caught; the pairs the workflow builds are the library's controls; the robustness
control's statistics against independent facts. (Real measurements: test_control_mutations.py.)"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from finetune_invariance import controls as planted
from finetune_invariance.layers import ViTLayers
from finetune_invariance.study import control_plan, controls, tables
from finetune_invariance.study.statistics import pearson_columns, shuffled_columns

from .conftest import layer_metrics_table

DEPTH, BLOCK, SHIFT = 6, 2, 2


def _floor(layer: int) -> float:
    return 0.01 * (layer + 1)


def _specs():
    return control_plan.control_specs(BLOCK, SHIFT, DEPTH)


def _default_changes() -> dict[tuple[str, str], dict[int, float]]:
    """(control, metric) -> {layer: rise above the floor}: what each control plants."""
    after, before = range(BLOCK, DEPTH + 1), range(BLOCK)
    return {
        (control_plan.REINITIALISED, "learning"): dict.fromkeys(after, 0.2),
        (control_plan.REINITIALISED, "forgetting"): dict.fromkeys(after, 0.2),
        (control_plan.REINITIALISED, "cka_divergence"): dict.fromkeys(after, 0.1),
        (control_plan.LINEARLY_MAPPED, "cka_divergence"): dict.fromkeys(after, 0.1),
        (control_plan.COLLAPSED, "learning"): dict.fromkeys(before, 0.05),
    }


def _metrics(changes: dict | None = None) -> pd.DataFrame:
    """CONTROL_LAYER_METRICS of every model control over two seeds: learning = forgetting =
    the floor 0.01 (l + 1), CKA divergence 0, plus ``changes`` (seed 1 a little higher)."""
    changes = _default_changes() if changes is None else changes
    rows = []
    for control in control_plan.MODEL_CONTROLS:
        for seed in (0, 1):
            for layer in range(DEPTH + 1):
                for metric in ("learning", "forgetting", "cka_divergence"):
                    base = 0.0 if metric == "cka_divergence" else _floor(layer)
                    rise = changes.get((control, metric), {}).get(layer, 0.0) * (1 + 0.1 * seed)
                    rows.append(
                        dict(
                            control=control,
                            pretrained="pretrained",
                            finetuned="finetuned",
                            seed=seed,
                            layer=layer,
                            metric=metric,
                            value=base + rise,
                        )
                    )
    return tables.conform(pd.DataFrame(rows), tables.CONTROL_LAYER_METRICS)


def _planted_cells() -> dict[str, dict[tuple[int, int], float]]:
    by_kind = {spec.kind: spec for spec in _specs()}
    return {
        kind: dict.fromkeys(by_kind[kind].planted_flow_cells(DEPTH), 0.1)
        for kind in (control_plan.COMPRESSED, control_plan.EXPANDED)
    }


def _flows(cells: dict[str, dict[tuple[int, int], float]] | None = None) -> pd.DataFrame:
    """CONTROL_INVARIANCE_FLOW of every control: 0 everywhere except ``cells``:
    control -> {(i, j): flow}; by default the planted cells of compression and expansion."""
    cells = _planted_cells() if cells is None else cells
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
    metrics, flows = _metrics() if metrics is None else metrics, _flows() if flows is None else flows
    return controls.controls_table(controls.model_control_checks(metrics, flows, _specs()))


def _check(checks: pd.DataFrame, control: str, check: str) -> pd.Series:
    rows = checks[(checks.control == control) & checks.check.str.startswith(check)]
    assert len(rows) == 1, (control, check, checks[["control", "check"]])
    return rows.iloc[0]


def test_every_planted_effect_is_found_where_it_was_planted_and_no_twin_shows_one():
    checks = _checks()
    assert checks.as_expected.all(), checks[~checks.as_expected][["control", "check", "evidence"]]
    assert set(checks.control) == set(control_plan.MODEL_CONTROLS)
    assert (checks.kind == controls.CHECK).all()
    assert "layers 2-6" in _check(checks, control_plan.REINITIALISED, "learning: a change at every").check
    assert "(4, 2)..(5, 3)" in _check(checks, control_plan.COMPRESSED, "compression").check
    assert not checks[checks.control == control_plan.IDENTICAL].found.any()


def test_a_change_that_starts_one_layer_late_misses_the_onset():
    changes = _default_changes()
    changes[(control_plan.REINITIALISED, "learning")] = dict.fromkeys(range(BLOCK + 1, DEPTH + 1), 0.2)
    row = _check(_checks(_metrics(changes)), control_plan.REINITIALISED, "learning: a change at every")
    assert not row.found and not row.as_expected and f"unchanged at [{BLOCK}]" in row.evidence


def test_a_change_that_leaks_before_the_block_is_caught():
    changes = _default_changes()
    changes[(control_plan.REINITIALISED, "forgetting")] = dict.fromkeys(range(BLOCK - 1, DEPTH + 1), 0.2)
    row = _check(_checks(_metrics(changes)), control_plan.REINITIALISED, "forgetting: any change")
    assert row.found and not row.as_expected and row.value == pytest.approx(0.22)  # seed 1: 10% higher


def test_a_change_within_the_seed_spread_or_below_the_minimum_is_not_a_change():
    for rise, spread in ((controls.MIN_EFFECT / 2, 0.0), (0.2, 1.0)):
        metrics = _metrics()
        reinitialised = (metrics.control == control_plan.REINITIALISED) & (metrics.layer >= BLOCK)
        forgetting = reinitialised & (metrics.metric == "forgetting")
        metrics.loc[forgetting, "value"] = [_floor(layer) + rise for layer in metrics.loc[forgetting, "layer"]]
        metrics.loc[forgetting & (metrics.seed == 1), "value"] += spread
        row = _check(_checks(metrics), control_plan.REINITIALISED, "forgetting: a change at every")
        assert not row.found and not row.as_expected


def test_stir_that_follows_cka_fails_the_linear_map_and_the_collapse():
    """Learning and forgetting that move with CKA divergence, as plain CKA would."""
    changes = _default_changes()
    changes[(control_plan.LINEARLY_MAPPED, "forgetting")] = dict.fromkeys(range(BLOCK, DEPTH + 1), 0.1)
    changes[(control_plan.COLLAPSED, "learning")] = {}
    checks = _checks(_metrics(changes))
    assert not _check(checks, control_plan.LINEARLY_MAPPED, "forgetting").as_expected
    assert _check(checks, control_plan.LINEARLY_MAPPED, "learning").as_expected
    assert not _check(checks, control_plan.COLLAPSED, "learning").as_expected


def test_flow_of_the_wrong_side_or_missing_one_planted_cell_is_not_the_planted_effect():
    cells = _planted_cells()
    wrong_side = {control_plan.COMPRESSED: {(j, i): v for (i, j), v in cells[control_plan.COMPRESSED].items()}}
    assert not _check(_checks(flows=_flows(wrong_side)), control_plan.COMPRESSED, "compression").found
    one_short = dict(list(cells[control_plan.EXPANDED].items())[:-1])
    row = _check(_checks(flows=_flows({**cells, control_plan.EXPANDED: one_short})), control_plan.EXPANDED, "expansion")
    assert not row.found and "not positive at" in row.evidence


def test_flow_elsewhere_in_the_triangle_does_not_stand_in_for_the_planted_cells():
    """Rows of identity copies (as the compression's pretrained layers k..k+s-1) with positive
    flow fill the claims' third, but the planted cells are read."""
    elsewhere = {control_plan.COMPRESSED: {(i, BLOCK - 1): 0.1 for i in range(BLOCK, DEPTH + 1)}}
    assert not _check(_checks(flows=_flows(elsewhere)), control_plan.COMPRESSED, "compression").found


def test_an_identical_copy_showing_expansion_is_a_twin_that_fails():
    cells = {**_planted_cells(), control_plan.IDENTICAL: {(i, i + 1): 0.05 for i in range(DEPTH)}}
    row = _check(_checks(flows=_flows(cells)), control_plan.IDENTICAL, "expansion")
    assert row.found and not row.as_expected


def test_incomplete_or_repeated_measurements_are_refused_with_the_problem_named():
    metrics = _metrics()
    lacking = metrics[~((metrics.control == control_plan.COLLAPSED) & (metrics.layer == 3))]
    with pytest.raises(ValueError, match="collapsed"):
        _checks(metrics=lacking)
    with pytest.raises(ValueError, match="identical_copy.*share the same"):
        _checks(metrics=pd.concat([metrics, metrics.iloc[:1]]))
    flows = _flows()
    with pytest.raises(ValueError, match="expanded"):
        _checks(flows=flows[~((flows.control == control_plan.EXPANDED) & (flows.seed == 1))].iloc[:-1])


def test_the_controls_default_to_a_quarter_and_a_third_of_the_depth():
    specs = control_plan.control_specs(None, None, 12)
    assert [spec.kind for spec in specs] == list(control_plan.MODEL_CONTROLS)
    assert {(spec.block, spec.shift) for spec in specs} == {(3, 4)}  # 12 - 3 - 4 = 5 layers move
    with pytest.raises(ValueError, match="controls.block"):
        control_plan.control_specs(12, None, 12)
    with pytest.raises(ValueError, match="controls.shift"):
        control_plan.control_specs(8, 4, 12)


@pytest.fixture(scope="module")
def small_source():
    """A stand-in for the controls' source: its backbone (a small trained-looking ViT) and
    its layered view, as an ImageModel offers them."""
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=DEPTH, num_heads=2, num_classes=0
    )
    with torch.no_grad():
        for parameter in vit.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return SimpleNamespace(backbone=vit.eval(), layered=lambda: ViTLayers(vit))


def test_the_workflow_builds_the_library_controls_with_their_planted_cells(small_source):
    """What the control_stir job builds (ControlSpec.build) is the library's pair, and the
    planted cells the checks read are the built pair's."""
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for spec in control_plan.control_specs(None, None, DEPTH):
        built = spec.build(small_source, images, seed=3)
        if spec.kind in (control_plan.COMPRESSED, control_plan.EXPANDED):
            assert built.planted_flow_cells() == spec.planted_flow_cells(DEPTH)
        if spec.kind == control_plan.REINITIALISED:
            reference = planted.reinitialised_from(small_source.backbone, spec.block, seed=3).finetuned
            assert all(torch.equal(a, b) for a, b in zip(built.finetuned.parameters(), reference.parameters()))
            gain = (
                built.finetuned.blocks[spec.block].mlp.fc2.weight.std()
                / small_source.backbone.blocks[spec.block].mlp.fc2.weight.std()
            )
            assert gain.item() == pytest.approx(planted.REWRITE_GAIN, rel=0.3)  # the amplified rewrite
        if spec.kind == control_plan.LINEARLY_MAPPED:
            assert built.mapped_layers() == list(range(spec.block, DEPTH + 1))
        if spec.kind == control_plan.COLLAPSED:
            assert built.mapped_layers() == list(range(spec.block))


# --- the robustness control -------------------------------------------------------------


def _series(accuracy_of_headline, epochs: int = 20, seed: int = 0):
    """A planted series: forgetting whose headline (std over layers 2-12) is a known
    increasing series, and a ROBUST_ACCURACY table whose mean corrupted accuracy is
    ``accuracy_of_headline(headline)``."""
    from finetune_invariance.study.vocabulary import CLEAN, CLEAN_SEVERITY, Run

    rng = np.random.default_rng(seed)
    spread = rng.permutation(np.linspace(0.01, 0.1, epochs))
    forgetting = np.stack([np.r_[0.0, 0.0, np.linspace(-1, 1, 11) * s] for s in spread])  # std over 2-12 ~ s
    run = Run("imagenet", "cifar10", "classification", control_plan.PLANTED_ROBUSTNESS)
    metrics = layer_metrics_table({"forgetting": forgetting}, run=run, epochs=range(1, epochs + 1), seeds=(0, 1))
    headline = np.array([f[2:].std() for f in forgetting])
    accuracy = accuracy_of_headline(headline)
    rows = [
        {**run.context, "epoch": epoch, "corruption": name, "severity": severity, "accuracy": value, "n_images": 10}
        for epoch, value in zip(range(1, epochs + 1), accuracy)
        for name, severity in [(CLEAN, CLEAN_SEVERITY), *(("noise", s) for s in range(1, 6))]
    ]
    return metrics, tables.conform(pd.DataFrame(rows), tables.ROBUST_ACCURACY)


def test_the_planted_series_is_a_shuffled_even_walk_of_the_backbone_alone():
    knobs = controls.planted_knobs(epochs=5, t_max=0.8)
    assert list(knobs.index) == [1, 2, 3, 4, 5]
    assert sorted(knobs) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert list(knobs) != sorted(knobs)  # shuffled: the epochs are not ordered by t
    assert sorted(controls.planted_knobs()) == pytest.approx(np.linspace(0, controls.PLANTED_T_MAX, 20))

    torch.manual_seed(0)
    start, end = torch.nn.ModuleDict(), torch.nn.ModuleDict()
    for model in (start, end):
        model["backbone"], model["head"] = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)
    model = controls.planted_model(start, end, 0.25)
    assert torch.allclose(model["backbone"].weight, 0.75 * start["backbone"].weight + 0.25 * end["backbone"].weight)
    assert torch.equal(model["head"].weight, end["head"].weight)  # the last checkpoint's head throughout


def test_a_planted_relation_is_found_and_its_shuffles_have_the_permutation_moment():
    noise = np.random.default_rng(5).normal(0, 0.01, 20)
    rows = controls.controls_table(controls.robustness_checks(*_series(lambda h: 0.5 + 2 * h + noise)))
    planted_row = _check(rows, control_plan.PLANTED_ROBUSTNESS, "the planted relation")
    twin = _check(rows, control_plan.SHUFFLED_ROBUSTNESS, "the planted relation in the shuffled")
    assert planted_row.found and planted_row.as_expected and planted_row.value >= controls.STRONG_R
    assert not twin.found and twin.as_expected and abs(twin.value - 1) < 0.2


def test_an_accuracy_joined_to_the_wrong_epochs_loses_the_planted_relation():
    metrics, robust = _series(lambda h: 0.5 + 2 * h)
    robust = robust.assign(epoch=21 - robust["epoch"])  # epochs reversed: the mis-join
    row = _check(
        controls.controls_table(controls.robustness_checks(metrics, robust)), control_plan.PLANTED_ROBUSTNESS, "the"
    )
    assert not row.found and not row.as_expected


def test_the_twin_catches_shuffles_that_do_not_shuffle(monkeypatch):
    """(n - 1) mean r^2 = 1 for uniform shuffles of any series; shuffles that leave the series
    in place keep the planted r^2 and leave the band."""
    metrics, robust = _series(lambda h: 0.5 + 2 * h)

    def unshuffled(values, shuffles, seed):
        return np.repeat(np.asarray(values, dtype=float)[:, None], shuffles, axis=1)

    monkeypatch.setattr(controls, "shuffled_columns", unshuffled)
    twin = _check(
        controls.controls_table(controls.robustness_checks(metrics, robust)), control_plan.SHUFFLED_ROBUSTNESS, "the"
    )
    assert twin.found and not twin.as_expected


def test_the_permutation_moment_of_r_is_one_over_n_minus_one():
    """Against the closed form E[r^2] = 1 / (n - 1) under uniform shuffles, for a skewed series."""
    rng = np.random.default_rng(2)
    x, y = rng.exponential(size=9), rng.normal(size=9)
    r, _ = pearson_columns(shuffled_columns(y, 20000, seed=4), x)
    assert np.mean(r**2) * 8 == pytest.approx(1.0, abs=0.03)


def test_the_family_wise_error_of_the_papers_test_is_a_finding_not_a_check():
    """On series with outlying epochs the paper's parametric test passes some member far
    more often than the 5% its correction promises: the row says so as a finding."""
    from finetune_invariance.study.vocabulary import CLEAN, CLEAN_SEVERITY, Run

    run = Run("imagenet", "cifar10", "classification")
    rng = np.random.default_rng(0)
    values = {metric: rng.uniform(size=(2, 20, 13)) for metric in ("learning", "forgetting", "cka_divergence")}
    for layer in range(1, 13):  # learning of layer l jumps at epoch l + 2
        values["learning"][:, layer + 1, layer] += 5.0
    metrics = layer_metrics_table(values, run=run, epochs=range(1, 21), seeds=(0, 1))
    accuracy = np.r_[rng.normal(size=19) * 0.01, 1.0] + 0.5  # one outlying epoch
    robust = tables.conform(
        pd.DataFrame(
            [
                {**run.context, "epoch": e, "corruption": c, "severity": s, "accuracy": a, "n_images": 10}
                for e, a in zip(range(1, 21), accuracy)
                for c, s in [(CLEAN, CLEAN_SEVERITY), *(("noise", k) for k in range(1, 6))]
            ]
        ),
        tables.ROBUST_ACCURACY,
    )
    row = controls.family_wise_finding(metrics, robust)
    assert row["kind"] == controls.FINDING and row["found"] and row["value"] > 3 * controls.ALPHA
    table = controls.controls_table([*controls.model_control_checks(_metrics(), _flows(), _specs()), row])
    summary = controls.summary(table)
    assert summary.startswith(f"{len(table) - 1} of {len(table) - 1} checks as expected")
    assert "Finding (not a check)" in summary


def test_an_undefined_correlation_is_not_a_pass_of_the_planted_check_or_its_twin():
    """A constant accuracy (a model series the corruptions do not move) leaves r undefined."""
    rows = controls.controls_table(controls.robustness_checks(*_series(lambda h: np.full_like(h, 0.7))))
    assert not rows.as_expected.any(), rows[["control", "value", "found"]]
