"""Section 4.1's claims on hand-made per-layer tables of the ImageNet source's runs."""

from __future__ import annotations

import numpy as np
import pytest

from finetune_invariance.study import claims, tables
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED

from .handmade import IMAGENET_CLS, IMAGENET_REC, L, evaluate, flat, profiles, seeded, with_layers

# --- reconstruction_learning_and_forgetting_diverge ---------------------------------------

# Layers 0-5: learning constant while forgetting rises 0.1 -> 0.6; layers 5-12: forgetting
# constant while learning falls 0.5 -> 0.15.
DIVERGING_LEARNING = np.array([0.5] * 6 + [0.45, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15])
DIVERGING_FORGETTING = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6] + [0.6] * 7)


def test_reconstruction_learning_and_forgetting_diverge(static_tables):
    study_tables = static_tables({IMAGENET_REC: profiles(DIVERGING_LEARNING, DIVERGING_FORGETTING)})
    verdict, evidence = evaluate(study_tables, "reconstruction_learning_and_forgetting_diverge")
    assert verdict == HOLDS
    assert "forgetting rises: layers 0-5 (forgetting +0.500, learning range 0.000)" in evidence
    assert "learning falls: layers 5-12 (learning -0.350, forgetting range 0.000)" in evidence


def test_metrics_moving_together_do_not_diverge(static_tables):
    rising = np.linspace(0.1, 0.6, L)
    verdict, evidence = evaluate(
        static_tables({IMAGENET_REC: profiles(rising, rising)}), "reconstruction_learning_and_forgetting_diverge"
    )
    assert verdict == FAILS and evidence.count(": none") == 2


def test_one_kind_of_divergence_is_not_enough(static_tables):
    learning = flat(0.5)  # constant everywhere: forgetting rises under it, but learning never falls
    verdict, evidence = evaluate(
        static_tables({IMAGENET_REC: profiles(learning, DIVERGING_FORGETTING)}),
        "reconstruction_learning_and_forgetting_diverge",
    )
    assert verdict == FAILS and "learning falls: none" in evidence


def test_a_metric_moving_more_than_a_quarter_of_the_other_is_not_constant(static_tables):
    # Over layers 0-5 learning rises by 0.15 while forgetting rises by 0.5: 0.15 > 0.25 x 0.5.
    learning = with_layers(DIVERGING_LEARNING, {i: 0.35 + 0.03 * i for i in range(6)})
    verdict, evidence = evaluate(
        static_tables({IMAGENET_REC: profiles(learning, DIVERGING_FORGETTING)}),
        "reconstruction_learning_and_forgetting_diverge",
    )
    assert verdict == FAILS and "forgetting rises: none" in evidence


def test_divergence_needs_a_reconstruction_run(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(DIVERGING_LEARNING, DIVERGING_FORGETTING)}),
        "reconstruction_learning_and_forgetting_diverge",
    )
    assert verdict == NOT_MEASURED
    assert "no 'layer_metrics' rows of imagenet → cifar10, reconstruction at its analysed checkpoint" in evidence


# --- classification_profile_dips_then_rises ------------------------------------------------

U_SHAPE = np.array([0.30, 0.28, 0.26, 0.24, 0.22, 0.10, 0.15, 0.20, 0.25, 0.30, 0.33, 0.36, 0.40])  # lowest at 5


def test_classification_profile_dips_at_layer_5_and_rises_slightly_above_the_initial_layers(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(U_SHAPE, U_SHAPE)}), "classification_profile_dips_then_rises"
    )
    assert verdict == HOLDS
    assert (
        "learning: lowest 0.100±0.010 at layer 5, initial layers 0.290±0.010, rho -1.00 down to it and +1.00 after "
        "it, last layer 0.400±0.010 (+0.110 above the initial layers)" in evidence
    )
    assert "paper layers 4-6 = layers 4-6 here" in evidence


@pytest.mark.parametrize(
    "profile, shown",
    [
        (np.linspace(0.1, 0.5, L), "lowest 0.100±0.010 at layer 0"),  # no dip: rises from the start
        (np.roll(U_SHAPE, 4), "at layer 9"),  # dips, but at layer 9
        (with_layers(U_SHAPE, {l: min(U_SHAPE[l], 0.27) for l in range(7, L)}), "last layer 0.270±0.010"),
    ],
)
def test_a_profile_without_the_dip_at_layer_5_or_the_rise_above_the_initial_layers_fails(static_tables, profile, shown):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(U_SHAPE, profile)}), "classification_profile_dips_then_rises"
    )
    assert verdict == FAILS and shown in evidence.split("forgetting: ")[1]


@pytest.mark.parametrize(
    "profile, shown, looser",
    [
        # lowest at layer 5, but it rises first: no decrease up to layer 5 (the old reading read only the minimum's place)
        (
            np.array([0.30, 0.36, 0.42, 0.48, 0.40, 0.10, 0.15, 0.20, 0.25, 0.30, 0.33, 0.36, 0.40]),
            "rho -0.03 down to it",
            "argmin in layers 4-6",
        ),
        # twice the initial layers at the end: far above, not slightly (the old reading: above)
        (with_layers(U_SHAPE, {10: 0.45, 11: 0.52, 12: 0.60}), "(+0.310 above the initial layers)", "above"),
        # one later layer well above, the last one within the seed spread (the old reading: the best of layers 7-12)
        (with_layers(U_SHAPE, {10: 0.36, 11: 0.37, 12: 0.295}), "last layer 0.295±0.010", "the best later layer"),
    ],
)
def test_the_dip_reading_is_stricter_than_where_the_minimum_falls_or_the_best_later_layer(
    static_tables, profile, shown, looser
):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(U_SHAPE, profile)}), "classification_profile_dips_then_rises"
    )
    assert verdict == FAILS and shown in evidence.split("forgetting: ")[1], looser


def test_initial_layers_near_zero_are_not_moderate(static_tables):
    low = with_layers(U_SHAPE, {0: 0.09, 1: 0.08, 2: 0.07, 3: 0.06, 4: 0.05, 5: 0.02, 6: 0.04, 12: 0.12})
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(U_SHAPE, low)}), "classification_profile_dips_then_rises"
    )
    assert verdict == FAILS and "initial layers 0.085±0.010" in evidence


# --- cka_misses_early_invariance_change ----------------------------------------------------


def test_cka_divergence_almost_zero_while_learning_and_forgetting_are_moderate(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.25), flat(0.2), flat(0.02))}), "cka_misses_early_invariance_change"
    )
    assert verdict == HOLDS
    assert "paper layers 1-6 = layers 1-6 here" in evidence
    assert "CKA divergence 0.020±0.010 (highest layer 0.020); learning 0.250±0.010; forgetting 0.200±0.010" in evidence


def test_cka_divergence_of_0_3_is_not_almost_zero_even_below_learning_of_0_5(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.5), flat(0.5), flat(0.3))}), "cka_misses_early_invariance_change"
    )
    assert verdict == FAILS and "CKA divergence 0.300±0.010" in evidence


def test_learning_almost_zero_too_is_not_moderate(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.05), flat(0.2), flat(0.02))}), "cka_misses_early_invariance_change"
    )
    assert verdict == FAILS and "learning 0.050±0.010" in evidence


def test_cka_divergence_as_high_as_forgetting_fails(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.25), flat(0.105), flat(0.1))}),
        "cka_misses_early_invariance_change",
    )
    assert verdict == FAILS
    assert "CKA divergence 0.100±0.010 (highest layer 0.100); learning 0.250±0.010; forgetting 0.105±0.010" in evidence


def test_one_early_layer_far_from_zero_is_not_almost_zero_even_with_a_small_mean(static_tables):
    """CKA divergence 0.25 at layer 3, 0.02 elsewhere: the mean over layers 1-6 is 0.058,
    under 0.1 (the old reading, a mean), yet one of the early layers is not almost 0."""
    cka = with_layers(flat(0.02), {3: 0.25})
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(flat(0.25), flat(0.2), cka)}), "cka_misses_early_invariance_change"
    )
    assert verdict == FAILS and "CKA divergence 0.058±0.010 (highest layer 0.250)" in evidence


# --- initial_layers_change_like_later -------------------------------------------------------

INITIAL_AND_LATER = with_layers(flat(0.1), {0: 0.3, 1: 0.3, **{layer: 0.35 for layer in range(7, 13)}})


def test_initial_layers_learn_and_forget_like_later_layers(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(INITIAL_AND_LATER, INITIAL_AND_LATER)}),
        "initial_layers_change_like_later",
    )
    assert verdict == HOLDS
    # Every seed's difference is -0.05 (the offsets cancel): the interval is that point, inside ±0.175.
    assert (
        "learning initial 0.300±0.010 vs later 0.350±0.010: difference -0.050, 90% CI [-0.050, -0.050] vs ±0.175"
        in evidence
    )


def test_initial_layers_that_forget_but_barely_learn_fail(static_tables):
    learning = with_layers(INITIAL_AND_LATER, {0: 0.1, 1: 0.1})  # 0.25 below the later layers' 0.35
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(learning, INITIAL_AND_LATER)}), "initial_layers_change_like_later"
    )
    assert verdict == FAILS and "learning initial 0.100±0.010 vs later 0.350±0.010: difference -0.250" in evidence


def test_noisy_seeds_around_half_the_later_value_are_not_equivalent(static_tables):
    # Initial layers at 0.10, 0.20, 0.30 by seed (mean 0.2, above half of 0.35): a failure
    # to tell them from the later layers is not equivalence, and the interval is too wide.
    noisy = np.stack(
        [with_layers(INITIAL_AND_LATER + offset, {0: v, 1: v}) for offset, v in zip((-0.01, 0, 0.01), (0.1, 0.2, 0.3))]
    )
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(INITIAL_AND_LATER, INITIAL_AND_LATER) | {"learning": noisy[:, None, :]}}),
        "initial_layers_change_like_later",
    )
    assert verdict == FAILS and "difference -0.150, 90% CI [-0.302, +0.002] vs ±0.175" in evidence


def test_similarity_is_undefined_with_one_seed(make_layer_metrics, make_table1):
    metrics = make_layer_metrics(
        {m: INITIAL_AND_LATER for m in ("learning", "forgetting", "cka_divergence")}, run=IMAGENET_CLS, seeds=(0,)
    )
    study_tables = {"layer_metrics": metrics, "table1_accuracy": make_table1({IMAGENET_CLS: 1})}
    verdict, evidence = evaluate(study_tables, "initial_layers_change_like_later")
    assert verdict == NOT_MEASURED and "CI [undefined, undefined]" in evidence


# --- reconstruction_learns_more ---------------------------------------------------------------


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
    assert verdict == NOT_MEASURED and "imagenet → cifar10, reconstruction" in evidence


# --- reconstruction_forgetting_rises_earlier ----------------------------------------------------

REC_FROM_3 = np.array([0.105, 0.10, 0.108, 0.10, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60])


def test_forgetting_of_reconstruction_rises_from_layer_3_and_of_classification_from_layer_5(static_tables):
    study_tables = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), U_SHAPE), IMAGENET_REC: profiles(flat(0.5), REC_FROM_3)}
    )
    verdict, evidence = evaluate(study_tables, "reconstruction_forgetting_rises_earlier")
    assert verdict == HOLDS
    assert "layer 3 (reconstruction; paper layers 2-4 = layers 2-4 here)" in evidence
    assert "layer 5 (classification; paper layers 4-6 = layers 4-6 here) of 0-12" in evidence


def test_forgetting_rising_from_the_same_layer_for_both_tasks_fails(static_tables):
    study_tables = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), U_SHAPE), IMAGENET_REC: profiles(flat(0.5), U_SHAPE + 0.1)}
    )
    verdict, evidence = evaluate(study_tables, "reconstruction_forgetting_rises_earlier")
    assert verdict == FAILS and "layer 5 (reconstruction;" in evidence


def test_forgetting_rising_in_order_but_far_from_layers_3_and_5_fails(static_tables):
    # Reconstruction from layer 0, classification from layer 2: earlier, but not where the paper saw it.
    cls = np.concatenate([[0.1, 0.1, 0.1], np.linspace(0.2, 0.6, 10)])
    study_tables = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), cls), IMAGENET_REC: profiles(flat(0.5), np.linspace(0.1, 0.6, L))}
    )
    verdict, evidence = evaluate(study_tables, "reconstruction_forgetting_rises_earlier")
    assert verdict == FAILS
    assert "layer 0 (reconstruction;" in evidence and "layer 2 (classification;" in evidence


def test_layers_are_the_papers_mapped_onto_the_models_depth(static_tables):
    # Depth 4: paper layers 0-1 are layer 0, paper layers 7-12 are layers 2-4 (round(7 * 4 / 12) = 2).
    profile = [0.3, 0.1, 0.35, 0.35, 0.35]
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(profile, profile, flat(0.02, 5))}), "initial_layers_change_like_later"
    )
    assert verdict == HOLDS
    assert "paper layers 0-1 = layer 0 here" in evidence and "paper layers 7-12 = layers 2-4 here" in evidence


def test_per_layer_claims_read_the_analysed_checkpoint_only(make_layer_metrics, make_table1):
    learning = {IMAGENET_CLS: flat(0.2), IMAGENET_REC: flat(0.5)}
    # At epoch 2 reconstruction learns less than classification; epoch 1 is the analysed one.
    rows = [
        make_layer_metrics(
            {"learning": seeded(np.stack([learning[r], flat(0.1 if r == IMAGENET_REC else 0.3)]))}, run=r, epochs=(1, 2)
        )
        for r in learning
    ]
    at = {"layer_metrics": tables.concat(rows, tables.STUDY_LAYER_METRICS)}
    analysed_at = {e: {**at, "table1_accuracy": make_table1({IMAGENET_CLS: e, IMAGENET_REC: e})} for e in (1, 2)}
    assert evaluate(analysed_at[1], "reconstruction_learns_more")[0] == HOLDS
    assert evaluate(analysed_at[2], "reconstruction_learns_more")[0] == FAILS
    verdict, evidence = evaluate(at, "reconstruction_learns_more")
    assert verdict == NOT_MEASURED and "table1_accuracy" in evidence


def test_per_layer_claims_ignore_other_variants(static_tables):
    from .handmade import run

    default = static_tables(
        {IMAGENET_CLS: profiles(flat(0.2), flat(0.2)), IMAGENET_REC: profiles(flat(0.5), flat(0.2))}
    )
    variant = static_tables({run("imagenet", "reconstruction", variant="adam"): profiles(flat(0.0), flat(0.2))})
    merged = {
        "layer_metrics": tables.concat(
            [default["layer_metrics"], variant["layer_metrics"]], tables.STUDY_LAYER_METRICS
        ),
        "table1_accuracy": tables.concat([default["table1_accuracy"], variant["table1_accuracy"]], tables.TABLE1),
    }
    assert evaluate(merged, "reconstruction_learns_more")[0] == HOLDS


# --- classification_learning_and_forgetting_agree ------------------------------------------


def test_classification_learning_and_forgetting_move_together(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(U_SHAPE, 0.9 * U_SHAPE)}), "classification_learning_and_forgetting_agree"
    )
    assert verdict == HOLDS and "r across layers = 1.000; no diverging window" in evidence


def test_classification_diverging_like_reconstruction_does_not_agree(static_tables):
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(DIVERGING_LEARNING, DIVERGING_FORGETTING)}),
        "classification_learning_and_forgetting_agree",
    )
    assert verdict == FAILS and "learning constant while forgetting rises: layers 0-5" in evidence


def test_no_diverging_window_is_not_enough_without_moving_together(static_tables):
    """Two unrelated zigzags: no steady window, so the absence-only reading would hold; they
    do not move together (r far below 0.7)."""
    zig = np.array([0.3, 0.5] * 6 + [0.3])
    zag = np.array([0.4, 0.4, 0.6, 0.6] * 3 + [0.4])
    verdict, evidence = evaluate(
        static_tables({IMAGENET_CLS: profiles(zig, zag)}), "classification_learning_and_forgetting_agree"
    )
    assert verdict == FAILS and "no diverging window" in evidence and "r across layers = 0.0" in evidence


# --- new_invariances_learned_by_both_tasks ------------------------------------------------------


def floor_table(make_layer_metrics, learning: float, seeds=(0, 1, 2)):
    values = {"learning": seeded(flat(learning), np.array([-0.01, 0.0, 0.01])[: len(seeds)])}
    table = make_layer_metrics(values, run=IMAGENET_CLS, epochs=(0,), seeds=seeds)
    return tables.conform(
        table.drop(columns=list(tables.STUDY_CONTEXT)).assign(control="identical_copy"), tables.CONTROL_LAYER_METRICS
    )


def learned(static_tables, make_layer_metrics, floor: float, identical_copy=("imagenet", "cifar10")):
    study = static_tables({IMAGENET_CLS: profiles(flat(0.3), flat(0.2)), IMAGENET_REC: profiles(flat(0.5), flat(0.2))})
    study["control_layer_metrics"] = floor_table(make_layer_metrics, floor)
    row = claims.evaluate_claims(study, "imagenet", identical_copy=identical_copy).set_index("claim")
    return row.loc["new_invariances_learned_by_both_tasks", ["verdict", "evidence"]].tolist()


def test_both_tasks_learn_above_the_identical_copy_floor(static_tables, make_layer_metrics):
    verdict, evidence = learned(static_tables, make_layer_metrics, 0.03)
    assert verdict == HOLDS and "holds in 2/2" in evidence
    assert "classification: learning 0.300±0.010 vs identical-copy floor 0.030±0.010 (all layers)" in evidence


def test_learning_at_the_floor_is_not_learning(static_tables, make_layer_metrics):
    """The floor at 0.295: classification's 0.300 is above 0 (the looser reading) but within
    the seed spread of what an unchanged model gets."""
    verdict, evidence = learned(static_tables, make_layer_metrics, 0.295)
    assert verdict == FAILS and "classification: learning 0.300±0.010 vs identical-copy floor 0.295±0.010" in evidence


def test_the_floor_is_the_imagenet_sources_own(static_tables, make_layer_metrics):
    verdict, evidence = learned(static_tables, make_layer_metrics, 0.03, identical_copy=("cifar100", "cifar10"))
    assert verdict == NOT_MEASURED and "the identical copy is of the source 'cifar100'" in evidence
    verdict, evidence = learned(static_tables, make_layer_metrics, 0.03, identical_copy=("imagenet", "eurosat"))
    assert verdict == NOT_MEASURED and "imagenet → eurosat, classification" in evidence
