"""Claims: hand-made tables where each claim is known to hold or to fail give that verdict,
and the evidence names the numbers behind it.

Most tables describe a 13-layer model (the paper's depth, so paper layer l is layer l)
with three seeds whose values are a profile plus -0.01, 0 and +0.01: every seed sd is
exactly 0.01, and a difference counts only if it exceeds that.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from finetune_invariance.study import claims, tables
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED
from finetune_invariance.study.vocabulary import Run

L = 13  # layers 0..12
SPREAD = 0.01
OFFSETS = np.array([-SPREAD, 0.0, SPREAD])
IMAGENET, CIFAR, SCRATCH = "imagenet", "cifar100", "scratch"
C10 = "cifar10"


def run(source: str, task: str = "classification", dataset: str = C10, variant: str = "default") -> Run:
    return Run(source, dataset, task, variant)


IMAGENET_CLS, IMAGENET_REC = run(IMAGENET), run(IMAGENET, "reconstruction")


def seeded(profile) -> np.ndarray:
    """(seed, epoch, layer) values: the profile (layers, or epoch x layer) plus each seed's offset."""
    array = np.asarray(profile, dtype=np.float64)
    array = array[None, :] if array.ndim == 1 else array
    return array[None] + OFFSETS[:, None, None]


def flat(value: float, n: int = L) -> np.ndarray:
    return np.full(n, value)


def with_layers(profile: np.ndarray, changes: dict[int, float]) -> np.ndarray:
    out = np.array(profile, dtype=np.float64)
    for layer, value in changes.items():
        out[layer] = value
    return out


@pytest.fixture
def static_tables(make_layer_metrics, make_table1):
    """Per-layer tables of runs analysed at epoch 1: run -> {metric: layer profile}."""

    def build(profiles: dict[Run, dict[str, np.ndarray]]) -> dict[str, object]:
        metrics = tables.concat(
            [make_layer_metrics({m: seeded(v) for m, v in ms.items()}, run=r) for r, ms in profiles.items()],
            tables.STUDY_LAYER_METRICS,
        )
        return {"layer_metrics": metrics, "table1_accuracy": make_table1({r: 1 for r in profiles})}

    return build


def evaluate(study_tables, claim: str, imagenet_source: str = IMAGENET, variant_optimizers=None) -> tuple[str, str]:
    df = claims.evaluate_claims(study_tables, imagenet_source, variant_optimizers)
    row = df.set_index("claim").loc[claim]
    return row["verdict"], row["evidence"]


def profiles(learning, forgetting, cka=None) -> dict[str, np.ndarray]:
    return {
        "learning": np.asarray(learning, dtype=float),
        "forgetting": np.asarray(forgetting, dtype=float),
        "cka_divergence": np.asarray(flat(0.02) if cka is None else cka, dtype=float),
    }


# --- the report's shape -----------------------------------------------------------------


def test_no_tables_leaves_every_claim_unmeasured_with_a_reason():
    df = claims.evaluate_claims({}, IMAGENET)
    assert list(df.columns) == claims.COLUMNS
    assert len(df) == len(claims.CLAIMS) == df["claim"].nunique()
    assert (df["verdict"] == NOT_MEASURED).all()
    assert df["evidence"].str.startswith("no ").all()
    for column in ("statement", "statistic", "threshold", "paper_value"):
        assert (df[column].str.len() > 10).all(), column


def test_an_unknown_table_is_an_error_naming_it():
    with pytest.raises(ValueError, match="layer_metricz"):
        claims.evaluate_claims({"layer_metricz": None}, IMAGENET)


def test_markdown_counts_the_verdicts():
    df = claims.evaluate_claims({}, IMAGENET)
    df.loc[0, "verdict"], df.loc[1, "verdict"] = HOLDS, FAILS
    text = claims.claims_markdown(df)
    n = len(claims.CLAIMS)
    assert text.splitlines()[0] == (
        f"{n} claims of the paper: holds: 1, does not hold: 1, not measured by this config: {n - 2}."
    )
    assert "| claim | section | statement | statistic | threshold | paper_value | verdict | evidence |" in text


def test_claims_do_not_import_the_plotting_stack():
    code = "import sys, finetune_invariance.study.claims; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- rows: analysed checkpoint, default variant, depth -----------------------------------


def test_per_layer_claims_read_the_analysed_checkpoint_only(make_layer_metrics, make_table1):
    learning = {IMAGENET_CLS: flat(0.2), IMAGENET_REC: flat(0.5)}
    # At epoch 2 reconstruction learns less than classification; epoch 1 is the analysed one.
    rows = [
        make_layer_metrics(
            {"learning": seeded(np.stack([learning[r], flat(0.1 if r == IMAGENET_REC else 0.3)]))}, run=r, epochs=(1, 2)
        )
        for r in learning
    ]
    metrics = tables.concat(rows, tables.STUDY_LAYER_METRICS)
    at = {"layer_metrics": metrics}
    assert (
        evaluate(
            {**at, "table1_accuracy": make_table1({IMAGENET_CLS: 1, IMAGENET_REC: 1})}, "reconstruction_learns_more"
        )[0]
        == HOLDS
    )
    assert (
        evaluate(
            {**at, "table1_accuracy": make_table1({IMAGENET_CLS: 2, IMAGENET_REC: 2})}, "reconstruction_learns_more"
        )[0]
        == FAILS
    )
    verdict, evidence = evaluate(at, "reconstruction_learns_more")
    assert verdict == NOT_MEASURED and "table1_accuracy" in evidence


def test_per_layer_claims_ignore_other_variants(static_tables):
    default = static_tables(
        {IMAGENET_CLS: profiles(flat(0.2), flat(0.2)), IMAGENET_REC: profiles(flat(0.5), flat(0.2))}
    )
    variant = static_tables({run(IMAGENET, "reconstruction", variant="adam"): profiles(flat(0.0), flat(0.2))})
    merged = {
        "layer_metrics": tables.concat(
            [default["layer_metrics"], variant["layer_metrics"]], tables.STUDY_LAYER_METRICS
        ),
        "table1_accuracy": tables.concat([default["table1_accuracy"], variant["table1_accuracy"]], tables.TABLE1),
    }
    assert evaluate(merged, "reconstruction_learns_more")[0] == HOLDS


def test_layers_are_the_papers_mapped_onto_the_models_depth(static_tables):
    # Depth 4: paper layers 7-12 are layers 2-4 (round(7 * 4 / 12) = 2), paper layers 0-1 are layer 0.
    initial_high = profiles([0.3, 0.1, 0.35, 0.35, 0.35], [0.3, 0.1, 0.35, 0.35, 0.35], flat(0.02, 5))
    verdict, evidence = evaluate(static_tables({IMAGENET_CLS: initial_high}), "initial_layers_change_like_later")
    assert verdict == HOLDS
    assert "paper layers 0-1 = layer 0 here" in evidence and "paper layers 7-12 = layers 2-4 here" in evidence


# --- Section 4.1 ------------------------------------------------------------------------


def test_reconstruction_learns_more_in_every_layer(static_tables):
    cls, rec = profiles(flat(0.3), flat(0.2)), profiles(flat(0.5), flat(0.2))
    verdict, evidence = evaluate(static_tables({IMAGENET_CLS: cls, IMAGENET_REC: rec}), "reconstruction_learns_more")
    assert verdict == HOLDS and "13/13 layers resolved" in evidence and "+0.200" in evidence


def test_reconstruction_learning_within_seed_spread_at_one_layer_fails(static_tables):
    cls = profiles(flat(0.3), flat(0.2))
    rec = profiles(with_layers(flat(0.5), {4: 0.305}), flat(0.2))
    verdict, evidence = evaluate(static_tables({IMAGENET_CLS: cls, IMAGENET_REC: rec}), "reconstruction_learns_more")
    assert verdict == FAILS
    assert "12/13 layers resolved, tightest layer 4: +0.005 vs seed sd 0.010" in evidence


def test_reconstruction_learns_more_needs_both_tasks(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.3), flat(0.2))}), "reconstruction_learns_more"
    )
    assert verdict == NOT_MEASURED and "reconstruction" in evidence and "'imagenet'" in evidence


U_SHAPE = np.array([0.30, 0.28, 0.26, 0.24, 0.22, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45])  # lowest at 5


def test_forgetting_of_reconstruction_rises_from_an_earlier_layer(static_tables):
    # Flat (within the seed spread) up to layer 3, then rising: the trend starts at layer 3.
    rec_forgetting = np.array([0.105, 0.10, 0.108, 0.10, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60])
    tables_ = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), U_SHAPE), IMAGENET_REC: profiles(flat(0.5), rec_forgetting)}
    )
    verdict, evidence = evaluate(tables_, "reconstruction_forgetting_rises_earlier")
    assert verdict == HOLDS
    assert "layer 3 (reconstruction) and layer 5 (classification)" in evidence
    assert "paper layers 3 and 5 = layers 3 and 5 here" in evidence


def test_forgetting_rising_from_the_same_layer_for_both_tasks_fails(static_tables):
    tables_ = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), U_SHAPE), IMAGENET_REC: profiles(flat(0.5), U_SHAPE + 0.1)}
    )
    verdict, evidence = evaluate(tables_, "reconstruction_forgetting_rises_earlier")
    assert verdict == FAILS and "layer 5 (reconstruction) and layer 5 (classification)" in evidence


def test_forgetting_without_a_rising_trend_fails(static_tables):
    falling = np.linspace(0.6, 0.1, L)  # lowest at the last layer: no rise after it
    rising = np.linspace(0.1, 0.6, L)
    tables_ = static_tables({IMAGENET_CLS: profiles(flat(0.3), falling), IMAGENET_REC: profiles(flat(0.5), rising)})
    verdict, evidence = evaluate(tables_, "reconstruction_forgetting_rises_earlier")
    assert verdict == FAILS and "layer 0 (reconstruction) and layer 12 (classification)" in evidence


def test_initial_layers_learn_and_forget_like_later_layers(static_tables):
    profile = with_layers(flat(0.1), {0: 0.3, 1: 0.3, **{layer: 0.35 for layer in range(7, 13)}})
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(profile, profile)}), "initial_layers_change_like_later"
    )
    assert verdict == HOLDS
    assert "learning initial 0.300±0.010 vs later 0.350±0.010 (ratio 0.86)" in evidence


def test_initial_layers_that_forget_but_barely_learn_fail(static_tables):
    forgetting = with_layers(flat(0.1), {0: 0.3, 1: 0.3, **{layer: 0.35 for layer in range(7, 13)}})
    learning = with_layers(forgetting, {0: 0.1, 1: 0.1})  # below half of the later layers' 0.35
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(learning, forgetting)}), "initial_layers_change_like_later"
    )
    assert verdict == FAILS and "learning initial 0.100±0.010 vs later 0.350±0.010 (ratio 0.29)" in evidence


def test_cka_divergence_below_learning_and_forgetting_in_early_layers(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.25), flat(0.2), flat(0.02))}), "cka_misses_early_invariance_change"
    )
    assert verdict == HOLDS
    assert (
        "paper layers 1-6 = layers 1-6 here" in evidence
        and "forgetting 0.200±0.010 vs CKA divergence 0.020±0.010" in evidence
    )


def test_cka_divergence_as_high_as_forgetting_fails(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.25), flat(0.2), flat(0.195))}),
        "cka_misses_early_invariance_change",
    )
    assert verdict == FAILS and "forgetting 0.200±0.010 vs CKA divergence 0.195±0.010" in evidence


# --- Section 4.2 ------------------------------------------------------------------------

SOURCES = {IMAGENET: 0.2, CIFAR: 0.4, SCRATCH: 0.6}  # learning and forgetting at every layer


def source_tables(static_tables, levels=SOURCES, changes=None, cka=None):
    """Classification runs of each source on CIFAR10; ``changes``: source -> {metric: profile}."""
    built = {}
    for source, level in levels.items():
        p = profiles(flat(level), flat(level), flat((cka or {}).get(source, 0.1)))
        p.update((changes or {}).get(source, {}))
        built[run(source)] = p
    return static_tables(built)


def test_pretrained_sources_below_scratch_in_early_layers(static_tables):
    verdict, evidence = evaluate(source_tables(static_tables), "pretrained_below_scratch_early")
    assert verdict == HOLDS and "holds in 2/2" in evidence
    assert "learning scratch 0.600±0.010 vs cifar100 0.400±0.010" in evidence


def test_a_pretrained_source_as_high_as_scratch_in_early_layers_fails(static_tables):
    close = with_layers(flat(0.4), {layer: 0.595 for layer in range(1, 7)})
    verdict, evidence = evaluate(
        source_tables(static_tables, changes={CIFAR: {"forgetting": close}}), "pretrained_below_scratch_early"
    )
    assert (
        verdict == FAILS
        and "holds in 1/2" in evidence
        and "forgetting scratch 0.600±0.010 vs cifar100 0.595±0.010" in evidence
    )


def test_pretrained_below_scratch_needs_a_scratch_run(static_tables):
    verdict, evidence = evaluate(
        source_tables(static_tables, {IMAGENET: 0.2, CIFAR: 0.4}), "pretrained_below_scratch_early"
    )
    assert verdict == NOT_MEASURED and "scratch" in evidence


def test_imagenet_lowest_in_later_layers(static_tables):
    verdict, evidence = evaluate(source_tables(static_tables), "imagenet_lower_in_later_layers")
    assert verdict == HOLDS and "paper layers 7-12 = layers 7-12 here" in evidence
    assert "forgetting cifar100 0.400±0.010 vs imagenet 0.200±0.010" in evidence


def test_cifar_pretraining_as_low_as_imagenet_in_later_layers_fails(static_tables):
    low_late = with_layers(flat(0.4), {layer: 0.2 for layer in range(7, 13)})
    verdict, evidence = evaluate(
        source_tables(static_tables, changes={CIFAR: {"learning": low_late}}), "imagenet_lower_in_later_layers"
    )
    assert verdict == FAILS and "learning cifar100 0.200±0.010 vs imagenet 0.200±0.010" in evidence


def test_the_imagenet_source_is_the_one_named(static_tables):
    # With 'cifar100' playing ImageNet, it is not below the source called imagenet.
    verdict, _ = evaluate(source_tables(static_tables), "imagenet_lower_in_later_layers", imagenet_source=CIFAR)
    assert verdict == FAILS
    verdict, evidence = evaluate(
        source_tables(static_tables), "imagenet_lower_in_later_layers", imagenet_source="textures"
    )
    assert verdict == NOT_MEASURED and "'textures'" in evidence


def test_scratch_higher_at_every_layer(static_tables):
    verdict, evidence = evaluate(source_tables(static_tables), "scratch_higher_at_every_layer")
    assert verdict == HOLDS and "13/13 layers resolved" in evidence


def test_scratch_not_higher_at_the_last_layer_fails(static_tables):
    verdict, evidence = evaluate(
        source_tables(static_tables, changes={IMAGENET: {"learning": with_layers(flat(0.2), {12: 0.6})}}),
        "scratch_higher_at_every_layer",
    )
    assert verdict == FAILS and "tightest layer 12: +0.000 vs seed sd 0.010" in evidence


def test_cka_divergence_higher_for_imagenet_while_learning_and_forgetting_lower(static_tables):
    cka = {IMAGENET: 0.5, CIFAR: 0.3, SCRATCH: 0.1}
    verdict, evidence = evaluate(source_tables(static_tables, cka=cka), "cka_orders_sources_oppositely")
    assert verdict == HOLDS and "holds in 1/1" in evidence  # scratch is not a CIFAR-pretrained source
    assert "cka_divergence imagenet 0.500±0.010 vs cifar100 0.300±0.010" in evidence


def test_cka_divergence_ordered_like_forgetting_fails(static_tables):
    cka = {IMAGENET: 0.3, CIFAR: 0.5, SCRATCH: 0.9}
    verdict, evidence = evaluate(source_tables(static_tables, cka=cka), "cka_orders_sources_oppositely")
    assert verdict == FAILS and "cka_divergence imagenet 0.300±0.010 vs cifar100 0.500±0.010" in evidence


# --- Section 4.3 ------------------------------------------------------------------------


def flow_matrix(below: dict[int, float] | None = None, above: dict[int, float] | None = None, n: int = L) -> np.ndarray:
    """-0.1 |i - j| off the diagonal, with flow ``below[i]`` at (i, i - 1) and ``above[i]`` at (i, i + 1)."""
    i, j = np.meshgrid(range(n), range(n), indexing="ij")
    flow = -0.1 * np.abs(i - j)
    for row, value in (below or {}).items():
        flow[row, row - 1] = value
    for row, value in (above or {}).items():
        flow[row, row + 1] = value
    return flow


@pytest.fixture
def flow_tables(make_invariance_flow, make_table1):
    def build(flows: dict[Run, np.ndarray]) -> dict[str, object]:
        return {
            "invariance_flow": tables.concat(
                [make_invariance_flow(seeded(f) if f.ndim == 2 else f, run=r) for r, f in flows.items()],
                tables.STUDY_INVARIANCE_FLOW,
            ),
            "table1_accuracy": make_table1({r: 1 for r in flows}),
        }

    return build


def test_compression_in_a_third_of_the_pretrained_layers_holds(make_invariance_flow, make_table1, flow_tables):
    compressed = flow_matrix(below={i: 0.2 for i in range(8, 12)})  # 4 of the 12 layers 1..12
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: compressed, IMAGENET_REC: compressed}), "compression_below_diagonal"
    )
    assert verdict == HOLDS
    assert "4/12 pretrained layers (0.33) below the diagonal, largest +0.200±0.010 at (i, j) = (8, 7)" in evidence


def test_compression_in_one_cell_fails(flow_tables):
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: flow_matrix(below={12: 0.2})}), "compression_below_diagonal"
    )
    assert verdict == FAILS and "1/12 pretrained layers (0.08) below the diagonal" in evidence


def test_flow_within_the_minimum_or_the_seed_spread_is_not_compression(flow_tables):
    tiny = flow_matrix(below={i: 0.009 for i in range(1, 13)})  # each seed's flow is 0.009 (sd 0)
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_CLS: np.broadcast_to(tiny, (3, L, L))}), "compression_below_diagonal"
    )
    assert verdict == FAILS and "0/12 pretrained layers (0.00) below the diagonal, none" in evidence
    noisy = np.stack([flow_matrix(below={i: v for i in range(1, 13)}) for v in (-0.1, 0.05, 0.2)])  # mean 0.05, sd 0.15
    verdict, _ = evaluate(flow_tables({IMAGENET_CLS: noisy}), "compression_below_diagonal")
    assert verdict == FAILS


def test_expansion_for_reconstruction_only(flow_tables):
    expanded = flow_matrix(above={i: 0.2 for i in range(0, 4)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: expanded, IMAGENET_CLS: flow_matrix()}), "expansion_for_reconstruction_only"
    )
    assert verdict == HOLDS
    assert "reconstruction 4/12 pretrained layers (0.33) above" in evidence and "classification 0/12" in evidence


def test_expansion_in_classification_too_fails(flow_tables):
    expanded = flow_matrix(above={i: 0.2 for i in range(0, 4)})
    verdict, evidence = evaluate(
        flow_tables({IMAGENET_REC: expanded, IMAGENET_CLS: expanded}), "expansion_for_reconstruction_only"
    )
    assert verdict == FAILS and "classification 4/12 pretrained layers (0.33) above" in evidence


# --- Section 4.4: dynamics and robustness -----------------------------------------------

EPOCHS = tuple(range(1, 11))


def late_dynamics(late_by_epoch) -> np.ndarray:
    """(epoch x layer): 0.1 at layers 0-6, the epoch's value at the later layers 7-12."""
    return np.stack([with_layers(flat(0.1), {layer: value for layer in range(7, 13)}) for value in late_by_epoch])


PEAK_AT_3 = [0.2, 0.3, 0.5, 0.45, 0.4, 0.35, 0.3, 0.3, 0.3, 0.3]


def dynamics_metrics(make_layer_metrics, late_by_epoch=PEAK_AT_3, r: Run = IMAGENET_CLS):
    values = seeded(late_dynamics(late_by_epoch))
    return make_layer_metrics({m: values for m in ("learning", "forgetting", "cka_divergence")}, run=r, epochs=EPOCHS)


def test_later_layers_peak_in_early_epochs(make_layer_metrics):
    verdict, evidence = evaluate({"layer_metrics": dynamics_metrics(make_layer_metrics)}, "dynamics_peak_early")
    assert verdict == HOLDS
    assert "learning peaks 0.500±0.010 at epoch 3, ends 0.300±0.010 at epoch 10" in evidence


@pytest.mark.parametrize(
    "late, peak",
    [
        (np.linspace(0.1, 0.5, 10), "peaks 0.500±0.010 at epoch 10"),  # monotonic
        ([0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 0.4, 0.3, 0.3], "peaks 0.500±0.010 at epoch 7"),  # late peak
        ([0.2, 0.3, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.495], "at epoch 3"),  # no drop beyond the spread
    ],
)
def test_monotonic_late_peaking_or_flat_dynamics_fail(make_layer_metrics, late, peak):
    verdict, evidence = evaluate({"layer_metrics": dynamics_metrics(make_layer_metrics, late)}, "dynamics_peak_early")
    assert verdict == FAILS and peak in evidence


def test_runs_analysed_at_one_epoch_are_not_dynamics(static_tables):
    verdict, evidence = evaluate(static_tables({IMAGENET_CLS: profiles(flat(0.3), flat(0.2))}), "dynamics_peak_early")
    assert verdict == NOT_MEASURED and "3 or more epochs" in evidence


def robust(make_robust_accuracy, at_peak=(0.6, 0.6, 0.6), at_end=(0.4, 0.4, 0.4)):
    """Severities 3-5 at the peak epoch 3 and the last epoch 10 as given, 0.5 elsewhere; 2 x 50 inputs per severity."""
    accuracy = {e: [0.8, 0.7, 0.5, 0.5, 0.5] for e in EPOCHS}
    accuracy[3] = [0.8, 0.7, *at_peak]
    accuracy[10] = [0.8, 0.7, *at_end]
    return make_robust_accuracy(accuracy)


def test_robustness_higher_at_the_peak_at_high_severities(make_layer_metrics, make_robust_accuracy):
    study_tables = {
        "layer_metrics": dynamics_metrics(make_layer_metrics),
        "robust_accuracy": robust(make_robust_accuracy),
    }
    verdict, evidence = evaluate(study_tables, "robustness_high_at_peak")
    assert verdict == HOLDS
    # s.e. sqrt(0.6 * 0.4 / 100 + 0.4 * 0.6 / 100) = 0.069
    assert "peak at epoch 3" in evidence and "severity 5: 0.600 vs 0.400 (+0.200, s.e. 0.069)" in evidence


def test_robustness_gain_within_sampling_error_at_one_severity_fails(make_layer_metrics, make_robust_accuracy):
    study_tables = {
        "layer_metrics": dynamics_metrics(make_layer_metrics),
        "robust_accuracy": robust(make_robust_accuracy, at_peak=(0.6, 0.6, 0.45)),
    }
    verdict, evidence = evaluate(study_tables, "robustness_high_at_peak")
    assert verdict == FAILS and "severity 5: 0.450 vs 0.400 (+0.050, s.e. 0.070)" in evidence


def test_robustness_at_a_peak_on_the_last_epoch_fails(make_layer_metrics, make_robust_accuracy):
    study_tables = {
        "layer_metrics": dynamics_metrics(make_layer_metrics, np.linspace(0.1, 0.5, 10)),
        "robust_accuracy": robust(make_robust_accuracy),
    }
    verdict, evidence = evaluate(study_tables, "robustness_high_at_peak")
    assert verdict == FAILS and "peak at epoch 10" in evidence


def test_headline_correlation_positive_and_bonferroni_significant(make_named_correlations):
    named = make_named_correlations(
        {"headline": 0.78, "cka": 0.69}, p_value={"headline": 1e-4}, paper_r={"headline": 0.78}
    )
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == HOLDS  # 1e-4 x 352 = 0.035
    assert "stir:layers_2-12:forgetting:std (paper layers 2-12 = layers 2-12 here) r = 0.780" in evidence
    assert "Bonferroni p = 0.035" in evidence and "paper r 0.780" in evidence


@pytest.mark.parametrize("r, p, shown", [(0.5, 1e-3, "Bonferroni p = 0.35"), (-0.9, 1e-9, "r = -0.900")])
def test_headline_not_significant_after_correction_or_negative_fails(make_named_correlations, r, p, shown):
    named = make_named_correlations({"headline": r}, p_value={"headline": p})
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == FAILS and shown in evidence


def test_headline_claim_ignores_a_stronger_selection(make_named_correlations):
    named = make_named_correlations({"headline": 0.2}, p_value={"headline": 0.2})
    best = named.assign(
        role="best_stir", hypothesis="stir:layer_3:learning:max", r=0.99, p_value=1e-12, p_bonferroni=1e-10
    )
    verdict, _ = evaluate(
        {"named_hypotheses": tables.concat([named, best], tables.NAMED_HYPOTHESES)},
        "std_forgetting_predicts_robustness",
    )
    assert verdict == FAILS


def test_headline_mapped_onto_a_shallow_model(make_named_correlations):
    named = make_named_correlations({"headline": 0.9}, p_value={"headline": 1e-6}, num_layers=5)
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == HOLDS and "(paper layers 2-12 = layers 2-4 here)" in evidence


def test_cka_correlation_weaker_than_the_headline(make_named_correlations):
    named = make_named_correlations({"headline": 0.78, "cka": 0.69})
    verdict, evidence = evaluate({"named_hypotheses": named}, "cka_weaker_than_headline")
    assert verdict == HOLDS and "r = 0.690 vs std of forgetting r = 0.780" in evidence


def test_cka_correlation_stronger_than_the_headline_fails(make_named_correlations):
    named = make_named_correlations({"headline": 0.78, "cka": 0.85})
    verdict, evidence = evaluate({"named_hypotheses": named}, "cka_weaker_than_headline")
    assert verdict == FAILS and "cka:layers_1-8:cka_divergence:std" in evidence and "r = 0.850" in evidence


def early_by_epoch(short: float, early: float, late: float, last_epoch: int = 40) -> dict[int, float]:
    """r over 1..e: ``short`` for e < 10, ``early`` for 10 <= e <= 20, ``late`` beyond."""
    return {e: short if e < 10 else early if e <= last_epoch / 2 else late for e in range(3, last_epoch + 1)}


def test_early_windows_correlate_at_least_as_strongly(make_named_correlations, make_early_correlations):
    study_tables = {
        "named_hypotheses": make_named_correlations({"headline": 0.8}, n_epochs=40),
        "early_epoch_correlation": make_early_correlations(early_by_epoch(short=0.1, early=0.9, late=0.8)),
    }
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == HOLDS and "e = 10..20 is 0.900" in evidence and "vs r over 1..40 0.800" in evidence


def test_early_correlation_only_in_short_windows_fails(make_named_correlations, make_early_correlations):
    study_tables = {
        "named_hypotheses": make_named_correlations({"headline": 0.8}, n_epochs=40),
        "early_epoch_correlation": make_early_correlations(early_by_epoch(short=0.99, early=0.6, late=0.8)),
    }
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == FAILS and "e = 10..20 is 0.600" in evidence  # the 3..9-epoch windows (r 0.99) are not read


def test_early_correlation_of_a_short_run_is_not_measured(make_named_correlations, make_early_correlations):
    study_tables = {
        "named_hypotheses": make_named_correlations({"headline": 0.8}, n_epochs=19),
        "early_epoch_correlation": make_early_correlations(early_by_epoch(0.9, 0.9, 0.9, last_epoch=19)),
    }
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == NOT_MEASURED and "10 or more epochs" in evidence and "[19]" in evidence


OPTIMIZERS = {"default": "sgd", "lr_1em2": "sgd", "adam": "adam"}


def variant_tables(make_named_correlations, make_early_correlations, r_at_20: dict[str, float], epochs=None):
    """Dynamics runs of three variants; r over 1..e is r_at_20[variant] for every e, except
    the default's after epoch 20 (its 40 epochs go beyond the variants' 20), which is -0.5."""
    epochs = epochs or {"default": 40, "lr_1em2": 20, "adam": 20}
    named, early = [], []
    for variant, last in epochs.items():
        r = run(IMAGENET, variant=variant)
        named.append(make_named_correlations({"headline": 0.5}, run=r, n_epochs=last))
        early.append(
            make_early_correlations({e: r_at_20[variant] if e <= 20 else -0.5 for e in range(3, last + 1)}, run=r)
        )
    return {
        "named_hypotheses": tables.concat(named, tables.NAMED_HYPOTHESES),
        "early_epoch_correlation": tables.concat(early, tables.EARLY_EPOCH_CORRELATION),
    }


def test_sgd_variants_show_the_trend_and_adam_does_not(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": 0.1}
    )
    verdict, evidence = evaluate(study_tables, "sgd_variants_show_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == HOLDS and "holds in 2/2" in evidence
    assert "r = 0.700, p = 0.00059 over epochs 1..20" in evidence  # the default's first 20 epochs, not its 40
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == HOLDS and "[adam]: r = 0.100, p = 0.67 over epochs 1..20" in evidence


def test_an_sgd_variant_without_the_trend_fails(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.2, "adam": 0.1}
    )
    verdict, evidence = evaluate(study_tables, "sgd_variants_show_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == FAILS and "(lr_1em2) [sgd]: r = 0.200" in evidence


def test_adam_with_the_trend_fails(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": 0.8}
    )
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == FAILS and "[adam]: r = 0.800" in evidence


def test_variant_claims_need_the_optimizers_and_long_enough_runs(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": 0.1}
    )
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend")
    assert verdict == NOT_MEASURED and "variant_optimizers" in evidence
    short = variant_tables(
        make_named_correlations,
        make_early_correlations,
        {"default": 0.7, "lr_1em2": 0.6, "adam": 0.1},
        epochs={"default": 40, "lr_1em2": 5, "adam": 5},
    )
    verdict, evidence = evaluate(short, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == NOT_MEASURED and "common windows: [5]" in evidence


def test_a_variant_without_an_optimizer_is_an_error_naming_it(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": 0.1}
    )
    with pytest.raises(ValueError, match=r"\['lr_1em2'\]"):
        claims.evaluate_claims(study_tables, IMAGENET, {"default": "sgd", "adam": "adam"})


# --- Appendix C.1 -----------------------------------------------------------------------


def test_learning_and_forgetting_significantly_correlated(make_learning_forgetting_correlation):
    table = make_learning_forgetting_correlation({IMAGENET_CLS: (0.97, 1e-6), run(SCRATCH): (0.83, 0.001)})
    verdict, evidence = evaluate({"learning_forgetting_correlation": table}, "learning_forgetting_correlated")
    assert verdict == HOLDS and "holds in 2/2" in evidence and "r = 0.830, p = 0.001 over 13 layers" in evidence


def test_an_uncorrelated_run_fails(make_learning_forgetting_correlation):
    table = make_learning_forgetting_correlation({IMAGENET_CLS: (0.97, 1e-6), run(SCRATCH): (0.3, 0.2)})
    verdict, evidence = evaluate({"learning_forgetting_correlation": table}, "learning_forgetting_correlated")
    assert verdict == FAILS and "holds in 1/2" in evidence and "r = 0.300, p = 0.2" in evidence


# --- beyond the paper: the forgetting monitor's pick ---------------------------------------


def picks_table(spread_pick_corrupted: float, clean_pick_corrupted: float):
    import pandas as pd

    rows = [
        {**IMAGENET_CLS.context, "rule": rule, "epoch": epoch, "forgetting_spread": 0.2, "clean_accuracy": 0.9, "mean_corrupted_accuracy": acc}
        for rule, epoch, acc in (
            ("max_forgetting_spread", 3, spread_pick_corrupted),
            ("best_clean_accuracy", 9, clean_pick_corrupted),
            ("best_corrupted_accuracy", 3, max(spread_pick_corrupted, clean_pick_corrupted)),
        )
    ]
    return {"checkpoint_picks": tables.conform(pd.DataFrame(rows), tables.CHECKPOINT_PICKS)}


def test_the_spread_pick_beats_the_clean_pick_only_with_higher_corrupted_accuracy():
    verdict, evidence = evaluate(picks_table(0.62, 0.58), "spread_pick_beats_clean_pick")
    assert verdict == HOLDS and "epoch 3 (corrupted 0.620)" in evidence and "+0.040" in evidence
    assert evaluate(picks_table(0.58, 0.58), "spread_pick_beats_clean_pick")[0] == FAILS  # a tie does not beat
    assert evaluate(picks_table(0.55, 0.58), "spread_pick_beats_clean_pick")[0] == FAILS
    assert evaluate({}, "spread_pick_beats_clean_pick")[0] == NOT_MEASURED
