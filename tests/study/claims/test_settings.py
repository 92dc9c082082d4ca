"""Every claim on a complete hand-made study (tests/study/claims/complete.py), and the same
study with one setting, table, layer, cell, value or seed taken away: a claim whose
sentence names what is missing never holds (it is "not measured"), the others still hold,
and nothing crashes.

Which settings each sentence names is written here from the sentences (docs/claims.md),
independently of the claims' code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study import claims
from finetune_invariance.study.claims import HOLDS, NOT_MEASURED
from finetune_invariance.study.vocabulary import Run

from .complete import DATASETS, DYNAMICS, IMAGENET, OPTIMIZERS, OTHER_SOURCE, SCRATCH, SETTINGS, complete_study

ALL = [c.id for c in claims.CLAIMS]
DYNAMICS_CLAIMS = {
    "clean_accuracy_increases_gradually",
    "dynamics_peak_early",
    "cka_divergence_peaks_early",
    "robustness_high_at_peak",
    "std_forgetting_predicts_robustness",
    "cka_weaker_than_headline",
    "headline_and_accuracy_stabilize",
    "early_epochs_correlate",
    "headline_survives_permutation",
    "spread_pick_beats_clean_pick",
}
FOUR_TWO = {
    "pretrained_below_scratch_early",
    "imagenet_lower_in_later_layers",
    "scratch_higher_at_every_layer",
    "cka_orders_sources_oppositely",
}


def verdicts(tables, **settings) -> pd.Series:
    df = claims.evaluate_claims(tables, **(SETTINGS | settings))
    return df.set_index("claim")["verdict"]


def names(claim: str, run: Run, rows_only: bool) -> bool:
    """Whether the claim's sentence names ``run``'s setting: removing it must leave the claim
    unheld. ``rows_only``: the run stays on the study's roster (Table 1) with its rows gone;
    otherwise the study never had it, and only the settings the sentence names by role
    (a task, a kind of source, on a dataset that has the comparison) count."""
    default = run.variant == "default"
    imagenet = default and run.source == IMAGENET
    classification = default and run.task == "classification"
    by_role = {
        "reconstruction_learning_and_forgetting_diverge": imagenet and run.task == "reconstruction",
        "classification_learning_and_forgetting_agree": imagenet and classification,
        "classification_profile_dips_then_rises": imagenet and classification,
        "cka_misses_early_invariance_change": imagenet and classification,
        "initial_layers_change_like_later": imagenet and classification,
        "new_invariances_learned_by_both_tasks": imagenet and run.dataset == "cifar10",
        "reconstruction_learns_more": imagenet,
        "reconstruction_forgetting_rises_earlier": imagenet,
        "pretrained_below_scratch_early": classification,
        "imagenet_lower_in_later_layers": classification,
        "scratch_higher_at_every_layer": classification,
        "cka_orders_sources_oppositely": classification and run.source != SCRATCH,
        "compression_below_diagonal": imagenet,
        "expansion_for_reconstruction_only": imagenet,
        **{claim: run == DYNAMICS for claim in DYNAMICS_CLAIMS},
        "sgd_variants_show_trend": run == DYNAMICS,  # the default run the variants are compared with
        "adam_shows_no_trend": run.variant == "adam",
        "learning_forgetting_correlated": False,
        "correlation_lower_for_reconstruction_and_scratch": imagenet or (classification and run.source == SCRATCH),
    }
    if rows_only:  # a run of the roster without rows: every claim that reads it
        by_role |= {
            "sgd_variants_show_trend": OPTIMIZERS[run.variant] == "sgd"
            and run.dataset == DYNAMICS.dataset
            and run.source == IMAGENET
            and run.task == "classification",
            "learning_forgetting_correlated": default,
            "correlation_lower_for_reconstruction_and_scratch": by_role[
                "correlation_lower_for_reconstruction_and_scratch"
            ]
            or classification,
        }
    return by_role[claim]


def without(tables: dict, keep, stems=None) -> dict:
    """The tables without the rows ``keep`` rejects (in ``stems``, default all with run keys)."""
    out = {}
    for stem, df in tables.items():
        if {"source", "dataset", "task", "variant"} <= set(df.columns) and (stems is None or stem in stems):
            df = df[[keep(Run.from_row(row)) for row in df.to_dict("records")]]
        out[stem] = df
    return out


RUNS = sorted(Run.from_row(r) for r in complete_study()["table1_accuracy"].to_dict("records"))


def test_every_claim_holds_on_the_complete_study_with_the_shipped_three_seeds():
    assert list(verdicts(complete_study()).items()) == [(claim, HOLDS) for claim in ALL]


def test_the_roles_cover_every_registered_claim():
    assert {claim for claim in ALL} == set(ALL) and all(names(c, DYNAMICS, True) in (True, False) for c in ALL)


@pytest.mark.parametrize("run", RUNS, ids=lambda r: r.path)
def test_removing_a_run_leaves_no_claim_naming_it_holding(run):
    result = verdicts(without(complete_study(), lambda r: r != run))
    named = {c for c in ALL if names(c, run, rows_only=False)}
    assert {c for c in named if result[c] == HOLDS} == set()
    assert {c for c in set(ALL) - named if result[c] != HOLDS} == set()


@pytest.mark.parametrize("run", RUNS, ids=lambda r: r.path)
def test_a_run_on_the_roster_without_its_rows_is_unmeasured_wherever_a_claim_reads_it(run):
    data = set(complete_study()) - {"table1_accuracy"}
    result = verdicts(without(complete_study(), lambda r: r != run, stems=data))
    named = {c for c in ALL if names(c, run, rows_only=True)}
    assert {c: result[c] for c in named if result[c] != NOT_MEASURED} == {}
    assert {c: result[c] for c in set(ALL) - named if result[c] != HOLDS} == {}


KINDS = {
    "the ImageNet source": lambda r: r.source == IMAGENET,
    "the CIFAR-pretrained sources": lambda r: r.source in OTHER_SOURCE.values(),
    "scratch": lambda r: r.source == SCRATCH,
    "reconstruction": lambda r: r.task == "reconstruction",
    "classification": lambda r: r.task == "classification",
    "the SGD variants": lambda r: r.variant != "default" and OPTIMIZERS[r.variant] == "sgd",
    "every variant": lambda r: r.variant != "default",
}
UNHELD_WITHOUT = {
    "the ImageNet source": set(ALL) - {"learning_forgetting_correlated"},
    "the CIFAR-pretrained sources": FOUR_TWO - set(),
    "scratch": FOUR_TWO - {"cka_orders_sources_oppositely"} | {"correlation_lower_for_reconstruction_and_scratch"},
    "reconstruction": {
        "reconstruction_learning_and_forgetting_diverge",
        "new_invariances_learned_by_both_tasks",
        "reconstruction_learns_more",
        "reconstruction_forgetting_rises_earlier",
        "compression_below_diagonal",
        "expansion_for_reconstruction_only",
        "correlation_lower_for_reconstruction_and_scratch",
    },
    "classification": set(ALL) - {"reconstruction_learning_and_forgetting_diverge", "learning_forgetting_correlated"},
    "the SGD variants": set(),  # the default run is an SGD model of Fig. 6 too
    "every variant": {"sgd_variants_show_trend", "adam_shows_no_trend"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_removing_a_kind_of_setting_leaves_no_claim_naming_it_holding(kind):
    result = verdicts(without(complete_study(), lambda r: not KINDS[kind](r)))
    assert {c: result[c] for c in UNHELD_WITHOUT[kind] if result[c] == HOLDS} == {}
    assert {c: result[c] for c in set(ALL) - UNHELD_WITHOUT[kind] if result[c] != HOLDS} == {}


READS = {
    "layer_metrics": {
        *(c.id for c in claims.CLAIMS if c.section in ("4.1", "4.2")),
        "dynamics_peak_early",
        "cka_divergence_peaks_early",
        "robustness_high_at_peak",
        "headline_and_accuracy_stabilize",
    },
    "invariance_flow": {"compression_below_diagonal", "expansion_for_reconstruction_only"},
    "robust_accuracy": {
        "clean_accuracy_increases_gradually",
        "robustness_high_at_peak",
        "headline_and_accuracy_stabilize",
        "spread_pick_beats_clean_pick",
    },
    "hypotheses": {"cka_weaker_than_headline"},
    "named_hypotheses": {
        "std_forgetting_predicts_robustness",
        "cka_weaker_than_headline",
        "early_epochs_correlate",
        "headline_survives_permutation",
        "sgd_variants_show_trend",
        "adam_shows_no_trend",
    },
    "early_epoch_correlation": {"early_epochs_correlate", "sgd_variants_show_trend", "adam_shows_no_trend"},
    "learning_forgetting_correlation": {
        "learning_forgetting_correlated",
        "correlation_lower_for_reconstruction_and_scratch",
    },
    "table1_accuracy": {c.id for c in claims.CLAIMS if c.section in ("4.1", "4.2", "4.3")},
    "forgetting_monitor": set(),
    "checkpoint_picks": {"spread_pick_beats_clean_pick"},
    "control_layer_metrics": {
        "new_invariances_learned_by_both_tasks",
        "compression_below_diagonal",  # the flow detector's floor
        "expansion_for_reconstruction_only",
    },
}


@pytest.mark.parametrize("stem", READS)
def test_removing_a_table_leaves_every_claim_that_reads_it_unmeasured(stem):
    tables = complete_study()
    del tables[stem]
    result = verdicts(tables)
    assert {c: result[c] for c in READS[stem] if result[c] != NOT_MEASURED} == {}
    assert {c: result[c] for c in set(ALL) - READS[stem] if result[c] != HOLDS} == {}


def test_without_the_identical_copy_the_floor_claim_is_unmeasured():
    result = claims.evaluate_claims(complete_study(), **(SETTINGS | {"identical_copy": None})).set_index("claim")
    assert result.loc["new_invariances_learned_by_both_tasks", "verdict"] == NOT_MEASURED
    assert "no identical-copy control" in result.loc["new_invariances_learned_by_both_tasks", "evidence"]


# --- a layer, a cell, a value or a seed taken away ------------------------------------------

#: The claims that read the per-layer metrics of ImageNet -> cifar10 classification (also the dynamics run).
READS_CIFAR10_CLASSIFICATION = {
    "classification_learning_and_forgetting_agree",
    "classification_profile_dips_then_rises",
    "cka_misses_early_invariance_change",
    "initial_layers_change_like_later",
    "new_invariances_learned_by_both_tasks",
    "reconstruction_learns_more",
    "reconstruction_forgetting_rises_earlier",
    *FOUR_TWO,
    "dynamics_peak_early",
    "cka_divergence_peaks_early",
    "robustness_high_at_peak",
    "headline_and_accuracy_stabilize",
}


def _cifar10_classification_cells(metrics: pd.DataFrame, layer: int) -> pd.Series:
    return (
        (metrics["source"] == IMAGENET)
        & (metrics["dataset"] == "cifar10")
        & (metrics["task"] == "classification")
        & (metrics["variant"] == "default")
        & (metrics["epoch"] == 20)
        & (metrics["layer"] == layer)
    )


def _only_these_unmeasured(result: pd.Series, unmeasured: set[str]) -> None:
    assert {c: result[c] for c in unmeasured if result[c] != NOT_MEASURED} == {}
    assert {c: result[c] for c in set(ALL) - unmeasured if result[c] != HOLDS} == {}


def test_a_missing_layer_leaves_every_claim_that_reads_the_run_unmeasured():
    tables = complete_study()
    metrics = tables["layer_metrics"]
    tables["layer_metrics"] = metrics[~_cifar10_classification_cells(metrics, 9)]
    result = claims.evaluate_claims(tables, **SETTINGS).set_index("claim")
    _only_these_unmeasured(result["verdict"], READS_CIFAR10_CLASSIFICATION)
    assert "lacks layers [9] of 0-12" in result.loc["reconstruction_learns_more", "evidence"]


def test_a_missing_last_layer_is_found_from_the_sources_other_runs():
    tables = complete_study()
    metrics = tables["layer_metrics"]
    tables["layer_metrics"] = metrics[~_cifar10_classification_cells(metrics, 12)]
    _only_these_unmeasured(verdicts(tables), READS_CIFAR10_CLASSIFICATION)


def test_an_undefined_value_leaves_every_claim_that_reads_it_unmeasured():
    tables = complete_study()
    metrics = tables["layer_metrics"].copy()
    cell = _cifar10_classification_cells(metrics, 3) & (metrics["seed"] == 1) & (metrics["metric"] == "learning")
    metrics.loc[cell, "value"] = np.nan
    tables["layer_metrics"] = metrics
    result = claims.evaluate_claims(tables, **SETTINGS).set_index("claim")
    # A learning value: the claims that read forgetting or CKA divergence alone still hold.
    reads_other_metrics = {
        "cka_divergence_peaks_early",
        "reconstruction_forgetting_rises_earlier",
        "headline_and_accuracy_stabilize",
    }
    _only_these_unmeasured(result["verdict"], READS_CIFAR10_CLASSIFICATION - reads_other_metrics)
    assert (
        "undefined (NaN) or missing at (seed, layer) [(1, 3)]"
        in result.loc["initial_layers_change_like_later", "evidence"]
    )


@pytest.mark.parametrize("change", ["drop", "nan"])
def test_a_missing_or_undefined_flow_cell_leaves_the_flow_claims_unmeasured(change):
    tables = complete_study()
    flow = tables["invariance_flow"].copy()
    cell = (
        (flow["task"] == "classification")
        & (flow["dataset"] == "cifar100")
        & (flow["seed"] == 2)
        & (flow["pretrained_layer"] == 3)
        & (flow["finetuned_layer"] == 4)
    )
    if change == "drop":
        flow = flow[~cell]
    else:
        flow.loc[cell, "flow"] = np.nan
    tables["invariance_flow"] = flow
    result = claims.evaluate_claims(tables, **SETTINGS).set_index("claim")
    _only_these_unmeasured(result["verdict"], {"compression_below_diagonal", "expansion_for_reconstruction_only"})
    assert "(2, 3, 4)" in result.loc["expansion_for_reconstruction_only", "evidence"]


@pytest.mark.parametrize(
    "stem, column, unmeasured",
    [
        ("named_hypotheses", "r", {"std_forgetting_predicts_robustness", "cka_weaker_than_headline"}),
        ("named_hypotheses", "p_permutation_fwer", {"headline_survives_permutation"}),
        ("early_epoch_correlation", "r", {"early_epochs_correlate", "sgd_variants_show_trend"}),
        (
            "learning_forgetting_correlation",
            "r",
            {"learning_forgetting_correlated", "correlation_lower_for_reconstruction_and_scratch"},
        ),
    ],
)
def test_an_undefined_statistic_is_unmeasured_never_a_failure(stem, column, unmeasured):
    tables = complete_study()
    df = tables[stem].copy()
    default = (
        (df["variant"] == "default")
        & (df["source"] == IMAGENET)
        & (df["dataset"] == "cifar10")
        & (df["task"] == "classification")
    )
    df.loc[default, column] = np.nan
    tables[stem] = df
    _only_these_unmeasured(verdicts(tables), unmeasured)


def test_an_undefined_accuracy_leaves_every_claim_that_reads_the_accuracies_unmeasured():
    tables = complete_study()
    robust = tables["robust_accuracy"].copy()
    cell = (robust["variant"] == "default") & (robust["epoch"] == 3) & (robust["severity"] == 4)
    robust.loc[cell & (robust["corruption"] == robust["corruption"].iloc[-1]), "accuracy"] = np.nan
    tables["robust_accuracy"] = robust
    result = claims.evaluate_claims(tables, **SETTINGS).set_index("claim")
    unmeasured = {"robustness_high_at_peak", "headline_and_accuracy_stabilize", "spread_pick_beats_clean_pick"}
    _only_these_unmeasured(result["verdict"], unmeasured)
    assert "undefined (NaN)" in result.loc["robustness_high_at_peak", "evidence"]


SEED_SPREAD_CLAIMS = {
    *(c.id for c in claims.CLAIMS if c.section in ("4.1", "4.2", "4.3")),
    "dynamics_peak_early",
    "cka_divergence_peaks_early",
}


def test_with_one_seed_every_claim_that_reads_the_seed_spread_is_unmeasured():
    result = claims.evaluate_claims(complete_study(seeds=(0,)), **SETTINGS).set_index("claim")
    _only_these_unmeasured(result["verdict"], SEED_SPREAD_CLAIMS)
    assert "fewer than two seeds" in result.loc["reconstruction_forgetting_rises_earlier", "evidence"]


def test_with_two_seeds_the_significance_tests_have_their_one_degree_of_freedom():
    """The embedded config before issue 26 had two STIR seeds: Welch's test then has about one or
    two degrees of freedom, and the complete study's gaps are large enough to pass."""
    assert set(verdicts(complete_study(seeds=(0, 1)))) == {HOLDS}


# --- the inference the verdicts read ---------------------------------------------------------


def test_the_permutation_inference_judges_the_correlations_across_epochs_by_their_permutation_p():
    """The complete study's headline has family-wise permutation p 1/40 over 20 epochs; the
    variants' 10 epochs cannot give a p below 1/20 = 0.05, so the SGD claim is unmeasured
    under the permutation inference, and holds under the parametric one."""
    parametric = verdicts(complete_study())
    permutation = claims.evaluate_claims(complete_study(), **(SETTINGS | {"inference": "permutation"})).set_index(
        "claim"
    )
    changed = {c for c in ALL if permutation.loc[c, "verdict"] != parametric[c]}
    assert changed == {"sgd_variants_show_trend"}
    assert permutation.loc["sgd_variants_show_trend", "verdict"] == NOT_MEASURED
    assert "permutation test's smallest p is 0.05" in permutation.loc["sgd_variants_show_trend", "evidence"]
    assert "Bonferroni p = " in permutation.loc["std_forgetting_predicts_robustness", "evidence"]
    assert "family-wise permutation p = 0.025" in permutation.loc["std_forgetting_predicts_robustness", "evidence"]


def test_the_permutation_inference_fails_a_headline_whose_permutation_p_does_not_pass():
    tables = complete_study()
    named = tables["named_hypotheses"].copy()
    named.loc[named["role"] == "headline", "p_permutation_fwer"] = (
        0.35  # the embedded run's, beside a tiny parametric p
    )
    tables["named_hypotheses"] = named
    assert verdicts(tables)["std_forgetting_predicts_robustness"] == HOLDS
    assert verdicts(tables, inference="permutation")["std_forgetting_predicts_robustness"] == "does not hold"


def test_an_unknown_inference_is_an_error_naming_the_key():
    with pytest.raises(ValueError, match="robustness.inference"):
        claims.evaluate_claims(complete_study(), **(SETTINGS | {"inference": "bayesian"}))


def test_the_complete_study_has_the_papers_datasets():
    assert set(DATASETS) == {r.dataset for r in RUNS}
