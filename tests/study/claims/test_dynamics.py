"""Section 4.4's claims on hand-made dynamics runs: metrics and robust accuracy per epoch,
the robustness hypotheses, their early-epoch windows and the hyperparameter variants."""

from __future__ import annotations

import numpy as np
import pytest

from finetune_invariance.study import claims, tables
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED

from .handmade import IMAGENET, IMAGENET_CLS, L, evaluate, flat, run, seeded, with_layers

EPOCHS = tuple(range(1, 11))


def late_dynamics(late_by_epoch) -> np.ndarray:
    """(epoch x layer): 0.1 at layers 0-6, the epoch's value at the later layers 7-12."""
    return np.stack([with_layers(flat(0.1), {layer: value for layer in range(7, 13)}) for value in late_by_epoch])


PEAK_AT_3 = [0.2, 0.3, 0.5, 0.45, 0.4, 0.35, 0.3, 0.3, 0.3, 0.3]


def dynamics_metrics(make_layer_metrics, late_by_epoch=PEAK_AT_3, cka_by_epoch=None):
    values = seeded(late_dynamics(late_by_epoch))
    cka = values if cka_by_epoch is None else seeded(late_dynamics(cka_by_epoch))
    return make_layer_metrics(
        {"learning": values, "forgetting": values, "cka_divergence": cka}, run=IMAGENET_CLS, epochs=EPOCHS
    )


# --- clean_accuracy_increases_gradually ------------------------------------------------------


def clean_tables(make_robust_accuracy, clean_by_epoch):
    return {"robust_accuracy": make_robust_accuracy({e: [0.5] * 5 for e in clean_by_epoch}, clean=clean_by_epoch)}


def test_clean_accuracy_rising_over_the_epochs_holds(make_robust_accuracy):
    clean = {e: 0.5 + 0.04 * e + (0.01 if e % 2 else 0.0) for e in EPOCHS}  # rising, with a wobble
    verdict, evidence = evaluate(clean_tables(make_robust_accuracy, clean), "clean_accuracy_increases_gradually")
    assert (
        verdict == HOLDS
        and "ρ = 1.000 over epochs 1-10; clean accuracy 0.550 at epoch 1, 0.900 at epoch 10" in evidence
    )


def test_clean_accuracy_without_a_clear_rise_fails(make_robust_accuracy):
    up_and_down = {e: 0.7 + (0.1 if e % 2 else 0.0) for e in EPOCHS}
    verdict, evidence = evaluate(clean_tables(make_robust_accuracy, up_and_down), "clean_accuracy_increases_gradually")
    assert verdict == FAILS and "ρ = -0.174" in evidence


def test_a_constant_clean_accuracy_leaves_the_rise_unmeasured(make_robust_accuracy):
    verdict, evidence = evaluate(
        clean_tables(make_robust_accuracy, {e: 0.9 for e in EPOCHS}), "clean_accuracy_increases_gradually"
    )
    assert verdict == NOT_MEASURED and "ρ = undefined" in evidence


# --- dynamics_peak_early, cka_divergence_peaks_early -------------------------------------------


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


def test_the_early_peak_confirmed_by_cka_divergence_or_not(make_layer_metrics):
    confirmed = {"layer_metrics": dynamics_metrics(make_layer_metrics)}
    verdict, evidence = evaluate(confirmed, "cka_divergence_peaks_early")
    assert verdict == HOLDS and "cka_divergence peaks 0.500±0.010 at epoch 3" in evidence
    rising_cka = {"layer_metrics": dynamics_metrics(make_layer_metrics, cka_by_epoch=np.linspace(0.1, 0.5, 10))}
    assert evaluate(rising_cka, "dynamics_peak_early")[0] == HOLDS
    verdict, evidence = evaluate(rising_cka, "cka_divergence_peaks_early")
    assert verdict == FAILS and "cka_divergence peaks 0.500±0.010 at epoch 10" in evidence


def test_runs_analysed_at_one_epoch_are_not_dynamics(make_layer_metrics):
    metrics = make_layer_metrics({m: seeded(flat(0.3)) for m in ("learning", "forgetting")}, run=IMAGENET_CLS)
    verdict, evidence = evaluate({"layer_metrics": metrics}, "dynamics_peak_early")
    assert verdict == NOT_MEASURED and "3 or more epochs" in evidence


# --- robustness_high_at_peak -------------------------------------------------------------------


def robust(make_robust_accuracy, at_peak=(0.6, 0.6, 0.6), at_end=(0.4, 0.4, 0.4)):
    """Severities 3-5 at the peak epoch 3 and the last epoch 10 as given, 0.5 elsewhere; 2 x 50 inputs per severity."""
    accuracy = {e: [0.8, 0.7, 0.5, 0.5, 0.5] for e in EPOCHS}
    accuracy[3] = [0.8, 0.7, *at_peak]
    accuracy[10] = [0.8, 0.7, *at_end]
    return make_robust_accuracy(accuracy)


def test_robustness_higher_at_the_peak_in_a_paired_test(make_layer_metrics, make_robust_accuracy):
    study_tables = {
        "layer_metrics": dynamics_metrics(make_layer_metrics),
        "robust_accuracy": robust(make_robust_accuracy),
    }
    verdict, evidence = evaluate(study_tables, "robustness_high_at_peak")
    assert verdict == HOLDS
    # 60 vs 40 of 100 inputs: at worst 60 + 40 discordant, P(Binomial(100, 1/2) >= 60) = 0.028.
    assert (
        "peak at epoch 3" in evidence
        and "severity 5: 0.600 vs 0.400 (+0.200 of 100 inputs, McNemar p <= 0.028)" in evidence
    )


@pytest.mark.parametrize(
    "at_peak, shown",
    [
        ((0.6, 0.6, 0.46), "severity 5: 0.460 vs 0.400 (+0.060 of 100 inputs, McNemar p <= 0.3)"),
        # +0.16 is beyond one independent-sample s.e. (0.070), yet not significant when paired.
        ((0.6, 0.6, 0.56), "severity 5: 0.560 vs 0.400 (+0.160 of 100 inputs, McNemar p <= 0.063)"),
    ],
)
def test_robustness_gain_not_significant_at_one_severity_fails(
    make_layer_metrics, make_robust_accuracy, at_peak, shown
):
    study_tables = {
        "layer_metrics": dynamics_metrics(make_layer_metrics),
        "robust_accuracy": robust(make_robust_accuracy, at_peak=at_peak),
    }
    verdict, evidence = evaluate(study_tables, "robustness_high_at_peak")
    assert verdict == FAILS and shown in evidence


def test_robustness_at_a_peak_on_the_last_epoch_fails(make_layer_metrics, make_robust_accuracy):
    study_tables = {
        "layer_metrics": dynamics_metrics(make_layer_metrics, np.linspace(0.1, 0.5, 10)),
        "robust_accuracy": robust(make_robust_accuracy),
    }
    verdict, evidence = evaluate(study_tables, "robustness_high_at_peak")
    assert verdict == FAILS and "peak at epoch 10" in evidence


# --- std_forgetting_predicts_robustness ------------------------------------------------------


def test_headline_correlation_strong_and_bonferroni_significant(make_named_correlations):
    named = make_named_correlations(
        {"headline": 0.78, "cka": 0.69}, p_value={"headline": 1e-4}, paper_r={"headline": 0.78}
    )
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == HOLDS  # 1e-4 x 352 = 0.035
    assert "stir:layers_2-12:forgetting:std (paper layers 2-12 = layers 2-12 here) r = 0.780" in evidence
    assert "Bonferroni p = 0.035" in evidence and "paper r 0.780" in evidence


@pytest.mark.parametrize(
    "r, p, n_epochs, shown",
    [
        (0.4, None, 100, "r = 0.400, Bonferroni p = 0.013, family-wise permutation p = undefined over 100 epochs"),
        (0.75, 1e-3, 20, "Bonferroni p = 0.35"),  # strong, but not significant after the correction
        (-0.9, 1e-9, 20, "r = -0.900"),
    ],
)
def test_headline_weak_not_significant_or_negative_fails(make_named_correlations, r, p, n_epochs, shown):
    named = make_named_correlations({"headline": r}, p_value=None if p is None else {"headline": p}, n_epochs=n_epochs)
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == FAILS and shown in evidence


def test_an_undefined_headline_r_is_unmeasured(make_named_correlations):
    named = make_named_correlations({"headline": np.nan}, p_value={"headline": np.nan}).assign(p_bonferroni=np.nan)
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == NOT_MEASURED and "r = undefined" in evidence


def test_headline_claim_ignores_a_stronger_selection(make_named_correlations):
    named = make_named_correlations({"headline": 0.2}, p_value={"headline": 0.2})
    best = named.assign(
        role="best_stir", hypothesis="stir:layer_3:learning:max", r=0.99, p_value=1e-12, p_bonferroni=1e-10
    )
    study_tables = {"named_hypotheses": tables.concat([named, best], tables.NAMED_HYPOTHESES)}
    assert evaluate(study_tables, "std_forgetting_predicts_robustness")[0] == FAILS


def test_headline_mapped_onto_a_shallow_model(make_named_correlations):
    named = make_named_correlations({"headline": 0.9}, p_value={"headline": 1e-6}, num_layers=5)
    verdict, evidence = evaluate({"named_hypotheses": named}, "std_forgetting_predicts_robustness")
    assert verdict == HOLDS and "(paper layers 2-12 = layers 2-4 here)" in evidence


# --- headline_survives_permutation (beyond the paper) ----------------------------------------


def permutation_tables(make_layer_metrics, make_robust_accuracy, make_named_correlations, spread, accuracy, p_fwer):
    """The headline series proportional to ``spread`` and every severity's accuracy
    ``accuracy``, over len(spread) epochs; the headline's named row with the family-wise
    permutation p ``p_fwer`` (as hypotheses.correlate_hypotheses computes it)."""
    n_epochs = len(spread)
    r = float(np.corrcoef(spread, accuracy)[0, 1])
    return {
        **stabilizing_tables(make_layer_metrics, make_robust_accuracy, spread, accuracy),
        "named_hypotheses": make_named_correlations(
            {"headline": r}, run=IMAGENET_CLS, n_epochs=n_epochs, p_permutation_fwer={"headline": p_fwer}
        ),
    }


def test_a_headline_passing_the_family_wise_permutation_test_survives(
    make_layer_metrics, make_robust_accuracy, make_named_correlations
):
    rng = np.random.default_rng(0)
    trend = np.linspace(0.1, 0.5, 20)
    study_tables = permutation_tables(
        make_layer_metrics,
        make_robust_accuracy,
        make_named_correlations,
        trend + rng.normal(0, 0.01, 20),
        trend + rng.normal(0, 0.01, 20),
        1 / 40,
    )
    verdict, evidence = evaluate(study_tables, "headline_survives_permutation")
    assert verdict == HOLDS and "family-wise permutation p = 0.025 over 20 epochs" in evidence


def test_a_correlation_resting_on_the_first_epoch_fails_the_permutation_test(
    make_layer_metrics, make_robust_accuracy, make_named_correlations
):
    """Independent noise but for one outlying first epoch in both series: the parametric
    Bonferroni p is tiny, the permutation p is not; r without epoch 1 says why."""
    rng = np.random.default_rng(1)
    spread, accuracy = 0.5 + rng.normal(0, 0.01, 20), 0.5 + rng.normal(0, 0.01, 20)
    spread[0], accuracy[0] = 0.1, 0.1
    study_tables = permutation_tables(
        make_layer_metrics, make_robust_accuracy, make_named_correlations, spread, accuracy, 0.35
    )
    assert study_tables["named_hypotheses"]["p_bonferroni"].iloc[0] < 1e-6
    verdict, evidence = evaluate(study_tables, "headline_survives_permutation")
    assert verdict == FAILS and "family-wise permutation p = 0.35 over 20 epochs" in evidence
    assert "; without epoch 1: r = " in evidence


def test_too_few_epochs_for_the_permutation_test_are_unmeasured(
    make_layer_metrics, make_robust_accuracy, make_named_correlations
):
    """Over 10 epochs the smallest p of the 20 circular shifts and reversals is 0.05: the
    test cannot find anything at 0.05, so it says nothing."""
    study_tables = permutation_tables(
        make_layer_metrics,
        make_robust_accuracy,
        make_named_correlations,
        np.linspace(0.1, 0.5, 10),
        np.linspace(0.2, 0.6, 10),
        0.05,
    )
    verdict, evidence = evaluate(study_tables, "headline_survives_permutation")
    assert verdict == NOT_MEASURED and "over 10 epochs the permutation test's smallest p is 0.05" in evidence


# --- cka_weaker_than_headline ------------------------------------------------------------------

CKA_NAMED, CKA_OTHER = "cka:layers_1-8:cka_divergence:std", "cka:layers_9-12:cka_divergence:max"


def cka_family(r: dict[str, float], rest: float = 0.1) -> dict[str, float]:
    """Every one of the 88 CKA-divergence hypotheses of 13 layers: ``rest`` (NaN for the
    std of a single layer, undefined), but those given."""
    from finetune_invariance.study.hypotheses import hypothesis_family

    members = {
        h.id: (np.nan if h.aggregate == "std" and h.selection.first == h.selection.last else rest)
        for h in hypothesis_family(L)
        if h.family == "cka"
    }
    assert len(members) == 88
    return members | r


def cka_tables(make_named_correlations, make_hypotheses, headline: float, cka: dict[str, float], n_epochs=20):
    return {
        "named_hypotheses": make_named_correlations(
            {"headline": headline, "cka": 0.5}, p_value={"headline": 1e-4}, n_epochs=n_epochs
        ),
        "hypotheses": make_hypotheses(cka, n_epochs=n_epochs),
    }


def test_the_papers_numbers_are_weaker_at_its_epochs_but_not_at_twenty(make_named_correlations, make_hypotheses):
    """0.69 against 0.78: over the paper's 83 epochs the Fisher z gap (0.197) exceeds its
    standard error (0.158); over 20 epochs (0.343) it is within the noise. The looser
    reading (any r below) holds on both."""
    family = cka_family({CKA_NAMED: 0.69, CKA_OTHER: 0.3})
    verdict, evidence = evaluate(
        cka_tables(make_named_correlations, make_hypotheses, 0.78, family, n_epochs=83), "cka_weaker_than_headline"
    )
    assert verdict == HOLDS
    assert (
        f"best of the 88 CKA hypotheses {CKA_NAMED} r = 0.690 vs std of forgetting r = 0.780 over 83 epochs" in evidence
    )
    assert "z gap +0.197 vs s.e. 0.158 (paper r 0.690 vs none given)" in evidence
    verdict, evidence = evaluate(
        cka_tables(make_named_correlations, make_hypotheses, 0.78, family, n_epochs=20), "cka_weaker_than_headline"
    )
    assert verdict == FAILS and "z gap +0.197 vs s.e. 0.343" in evidence


def test_a_stronger_cka_hypothesis_than_the_named_one_fails(make_named_correlations, make_hypotheses):
    family = cka_family({CKA_NAMED: 0.5, CKA_OTHER: 0.85})
    verdict, evidence = evaluate(
        cka_tables(make_named_correlations, make_hypotheses, 0.78, family), "cka_weaker_than_headline"
    )
    assert verdict == FAILS and f"{CKA_OTHER} r = 0.850" in evidence


def test_weaker_is_judged_apart_from_the_headlines_own_test(make_named_correlations, make_hypotheses):
    """A headline that fails its own test (r = 0.5) can still beat CKA divergence: the claim
    is the comparison, not the headline counted a second time."""
    family = cka_family({CKA_NAMED: -0.2}, rest=-0.3)
    verdict, evidence = evaluate(
        cka_tables(make_named_correlations, make_hypotheses, 0.5, family, n_epochs=83), "cka_weaker_than_headline"
    )
    assert verdict == HOLDS and "r = -0.200 vs std of forgetting r = 0.500" in evidence


def test_an_incomplete_cka_family_or_undefined_correlations_are_unmeasured(make_named_correlations, make_hypotheses):
    verdict, evidence = evaluate(
        cka_tables(make_named_correlations, make_hypotheses, 0.78, {CKA_NAMED: 0.69, CKA_OTHER: 0.3}),
        "cka_weaker_than_headline",
    )
    assert verdict == NOT_MEASURED and "2 of the 88 CKA-divergence hypotheses" in evidence
    family = {h: np.nan for h in cka_family({})}
    verdict, evidence = evaluate(
        cka_tables(make_named_correlations, make_hypotheses, 0.78, family), "cka_weaker_than_headline"
    )
    assert verdict == NOT_MEASURED and "every one of the 88 CKA hypotheses has an undefined r" in evidence


# --- headline_and_accuracy_stabilize ---------------------------------------------------------------


def stabilizing_tables(make_layer_metrics, make_robust_accuracy, spread, accuracy):
    """Forgetting = spread[e] x l / 12 at layer l (its std over layers 2-12 is 0.264 spread[e]);
    every severity's accuracy accuracy[e]."""
    epochs = tuple(range(1, len(spread) + 1))
    forgetting = np.outer(spread, np.arange(L) / 12)
    return {
        "layer_metrics": make_layer_metrics({"forgetting": seeded(forgetting)}, run=IMAGENET_CLS, epochs=epochs),
        "robust_accuracy": make_robust_accuracy({e: [a] * 5 for e, a in zip(epochs, accuracy)}),
    }


RISE_THEN_PLATEAU = np.minimum(np.linspace(0.1, 0.8, 16), 0.5)  # 16 epochs, flat from epoch 8


def test_spread_and_accuracy_constant_towards_the_end(make_layer_metrics, make_robust_accuracy):
    study_tables = stabilizing_tables(make_layer_metrics, make_robust_accuracy, RISE_THEN_PLATEAU, RISE_THEN_PLATEAU)
    verdict, evidence = evaluate(study_tables, "headline_and_accuracy_stabilize")
    assert verdict == HOLDS
    assert "std of forgetting moves " in evidence and "0.0000 over epochs 13-16 vs range 0.1054" in evidence


def test_accuracy_still_rising_at_the_end_fails(make_layer_metrics, make_robust_accuracy):
    rising = np.linspace(0.3, 0.6, 16)  # +0.06 over the last 4 epochs, a fifth of its range
    study_tables = stabilizing_tables(make_layer_metrics, make_robust_accuracy, RISE_THEN_PLATEAU, rising)
    verdict, evidence = evaluate(study_tables, "headline_and_accuracy_stabilize")
    assert verdict == FAILS and "mean corrupted accuracy moves +0.0600 over epochs 13-16 vs range 0.3000" in evidence


def test_stabilization_of_a_short_run_is_not_measured(make_layer_metrics, make_robust_accuracy):
    study_tables = stabilizing_tables(
        make_layer_metrics, make_robust_accuracy, RISE_THEN_PLATEAU[:10], RISE_THEN_PLATEAU[:10]
    )
    verdict, evidence = evaluate(study_tables, "headline_and_accuracy_stabilize")
    assert verdict == NOT_MEASURED and "10 epochs with both series, fewer than 12" in evidence


# --- early_epochs_correlate ----------------------------------------------------------------------


def early_by_epoch(short: float, early: float, late: float, last_epoch: int = 40) -> dict[int, float]:
    """r over 1..e: ``short`` for e < 10, ``early`` for 10 <= e <= 20, ``late`` beyond."""
    return {e: short if e < 10 else early if e <= last_epoch / 2 else late for e in range(3, last_epoch + 1)}


def early_tables(make_named_correlations, make_early_correlations, windows, n_epochs=40):
    return {
        "named_hypotheses": make_named_correlations({"headline": 0.8}, n_epochs=n_epochs),
        "early_epoch_correlation": make_early_correlations(windows),
    }


def test_early_windows_correlate_strongly_and_at_least_as_strongly(make_named_correlations, make_early_correlations):
    study_tables = early_tables(make_named_correlations, make_early_correlations, early_by_epoch(0.1, 0.9, 0.8))
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == HOLDS and "e = 10 to 20, is 0.900" in evidence and "vs r over epochs 1-40 0.800" in evidence


@pytest.mark.parametrize(
    "windows, shown",
    [
        (early_by_epoch(0.99, 0.6, 0.8), "e = 10 to 20, is 0.600"),  # only the unread 3..9-epoch windows are strong
        (early_by_epoch(0.1, 0.5, 0.3), "e = 10 to 20, is 0.500"),  # higher than the full run, but both weak
        (early_by_epoch(0.1, 0.8, 0.8), "e = 10 to 20, is 0.800"),  # as strong as the full run: comparable, not even higher
    ],
)
def test_early_correlation_weak_lower_or_undefined_fails(
    make_named_correlations, make_early_correlations, windows, shown
):
    study_tables = early_tables(make_named_correlations, make_early_correlations, windows)
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == FAILS and shown in evidence


def test_an_undefined_early_window_is_unmeasured(make_named_correlations, make_early_correlations):
    study_tables = early_tables(make_named_correlations, make_early_correlations, early_by_epoch(0.1, np.nan, 0.8))
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == NOT_MEASURED and "r undefined over epochs 1-e for e = [10, 11," in evidence


def test_early_correlation_of_a_short_run_is_not_measured(make_named_correlations, make_early_correlations):
    windows = early_by_epoch(0.9, 0.9, 0.9, last_epoch=19)
    study_tables = early_tables(make_named_correlations, make_early_correlations, windows, n_epochs=19)
    verdict, evidence = evaluate(study_tables, "early_epochs_correlate")
    assert verdict == NOT_MEASURED and "no window of 10 or more epochs within the first half of epochs 1-19" in evidence


# --- sgd_variants_show_trend, adam_shows_no_trend -------------------------------------------------

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
    assert "r = 0.700, p = 0.00059, permutation p = undefined over epochs 1-20" in evidence  # the default's first 20 epochs
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == HOLDS and ", trained with adam: r = 0.100, p = 0.67, permutation p = undefined over epochs 1-20" in evidence
    assert "interval [-0.290, +0.462]" in evidence


def test_an_sgd_variant_without_the_trend_fails(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.2, "adam": 0.1}
    )
    verdict, evidence = evaluate(study_tables, "sgd_variants_show_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == FAILS and "(lr_1em2), trained with sgd: r = 0.200" in evidence


@pytest.mark.parametrize(
    "adam_r, shown",
    [
        (0.8, ", trained with adam: r = 0.800"),  # the trend after all
        (-0.6, ", trained with adam: r = -0.600, p = 0.0052"),  # a clear opposite trend is a clear trend
    ],
)
def test_adam_with_a_trend_of_either_sign_fails(make_named_correlations, make_early_correlations, adam_r, shown):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": adam_r}
    )
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == FAILS and shown in evidence


def test_no_clear_trend_is_shown_not_merely_a_trend_not_found(make_named_correlations, make_early_correlations):
    """Over 10 epochs r = 0.5 is not significant (p = 0.14; the old reading, non-significance
    and |r| < 0.7, holds) but a strong correlation is not excluded: the interval reaches 0.82."""
    study_tables = variant_tables(
        make_named_correlations,
        make_early_correlations,
        {"default": 0.9, "lr_1em2": 0.9, "adam": 0.5},
        epochs={"default": 40, "lr_1em2": 10, "adam": 10},
    )
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == FAILS and ", trained with adam: r = 0.500, p = 0.14" in evidence and "+0.82" in evidence


def test_an_undefined_adam_correlation_is_unmeasured(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": np.nan}
    )
    verdict, evidence = evaluate(study_tables, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == NOT_MEASURED and ", trained with adam: r = undefined" in evidence


def test_variant_claims_need_the_optimizers_and_long_enough_runs(make_named_correlations, make_early_correlations):
    r_at_20 = {"default": 0.7, "lr_1em2": 0.6, "adam": 0.1}
    verdict, evidence = evaluate(
        variant_tables(make_named_correlations, make_early_correlations, r_at_20), "adam_shows_no_trend"
    )
    assert verdict == NOT_MEASURED and "variant_optimizers" in evidence
    short = variant_tables(
        make_named_correlations, make_early_correlations, r_at_20, epochs={"default": 40, "lr_1em2": 5, "adam": 5}
    )
    verdict, evidence = evaluate(short, "adam_shows_no_trend", variant_optimizers=OPTIMIZERS)
    assert verdict == NOT_MEASURED and "the setting's common window is 5 epochs, fewer than 10" in evidence


def test_a_variant_without_an_optimizer_is_an_error_naming_it(make_named_correlations, make_early_correlations):
    study_tables = variant_tables(
        make_named_correlations, make_early_correlations, {"default": 0.7, "lr_1em2": 0.6, "adam": 0.1}
    )
    with pytest.raises(ValueError, match=r"\['lr_1em2'\]"):
        claims.evaluate_claims(study_tables, IMAGENET, {"default": "sgd", "adam": "adam"})
