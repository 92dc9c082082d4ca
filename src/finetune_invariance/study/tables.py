"""Schemas of the study's tables (the library's are in :mod:`finetune_invariance.tables`).

Every study table carries the run's context columns (:data:`STUDY_CONTEXT`) before its
own. ``python -m finetune_invariance.study.tables`` prints the schemas of docs/results.md,
generated from :data:`SCHEMAS` so the documentation and the enforced schemas are one.
"""

from __future__ import annotations

from .vocabulary import RUN_KEYS
from ..tables import (  # noqa: F401  (the table I/O, re-exported for the study's code)
    INVARIANCE_FLOW,
    LAYER_METRICS,
    LIBRARY_SCHEMAS,
    PAIR_SIMILARITY,
    Column,
    SchemaError,
    TableSchema,
    concat,
    conform,
    markdown_schema,
    markdown_table,
    read_table,
    write_markdown_and_html,
    write_table,
)


def _c(dtype: str, doc: str) -> Column:
    return Column(dtype, doc)


STUDY_CONTEXT = {
    "source": _c("string", "pretraining source (config 'sources'); 'scratch' is random initialisation"),
    "dataset": _c("string", "finetune dataset"),
    "task": _c("string", "'classification' or 'reconstruction'"),
    "variant": _c("string", "hyperparameter variant name (config 'variants')"),
    "epoch": _c("int64", "finetuning epoch of the checkpoint (1-based; 0 is the starting weights)"),
}

#: The run's keys alone (tables with one row per run, or per run and something else).
RUN_CONTEXT = {key: STUDY_CONTEXT[key] for key in RUN_KEYS}

STUDY_PAIR_SIMILARITY = PAIR_SIMILARITY.with_columns(
    "study_pair_similarity",
    "(source, dataset, task, variant, epoch, reference model, target model, seed, reference layer, target layer)",
    STUDY_CONTEXT,
)
STUDY_LAYER_METRICS = LAYER_METRICS.with_columns(
    "study_layer_metrics", "(source, dataset, task, variant, epoch, seed, layer, metric)", STUDY_CONTEXT
)
STUDY_INVARIANCE_FLOW = INVARIANCE_FLOW.with_columns(
    "study_invariance_flow",
    "(source, dataset, task, variant, epoch, seed, pretrained layer, finetuned layer)",
    STUDY_CONTEXT,
)

TRAINING_HISTORY = TableSchema(
    "training_history",
    "(training run, epoch)",
    {
        "run": _c("string", "run name: '<source>/<dataset>/<task>/<variant>'"),
        "epoch": _c("int64", "epoch number, 1-based"),
        "train_loss": _c("float64", "mean training loss over the epoch (cross-entropy in nats, or L1 in [0,1] pixel units)"),
        "test_loss": _c("float64", "mean loss on the test split, same units as train_loss"),
        "test_accuracy": _c("float64", "top-1 accuracy on the test split in [0, 1]; NaN for reconstruction"),
        "test_l1": _c("float64", "mean absolute pixel error on the test split in [0, 1] units; NaN for classification"),
        "learning_rate": _c("float64", "learning rate of the epoch's last optimizer step"),
    },
)

FORGETTING_MONITOR = TableSchema(
    "forgetting_monitor",
    "(source, dataset, task, variant, step, seed, layer) measurement during training",
    {
        **RUN_CONTEXT,
        "step": _c("int64", "optimizer steps done when measured (0: the starting weights)"),
        "training_epochs": _c("float64", "epochs of training done, step / steps per epoch (an epoch's end is an integer)"),
        "seed": _c("int64", "STIR seed of the pretrained model's inversions"),
        "layer": _c("int64", "layer l"),
        "forgetting": _c("float64", "1 - STIR(f_l | p_l) of the model in training; at an epoch's end, the offline value"),
    },
)

ROBUST_ACCURACY = TableSchema(
    "robust_accuracy",
    "(source, dataset, task, variant, epoch, corruption, severity)",
    {
        **STUDY_CONTEXT,
        "corruption": _c("string", "corruption name, or 'clean' for the uncorrupted test sample"),
        "severity": _c("int64", "1..5; 0 for 'clean'"),
        "accuracy": _c("float64", "top-1 accuracy in [0, 1] on this corruption's sampled inputs of this severity"),
        "n_images": _c("int64", "number of those inputs (config robustness.sampling decides how a severity's are split)"),
    },
)

HYPOTHESES = TableSchema(
    "robustness_hypotheses",
    "(source, dataset, task, variant, hypothesis)",
    {
        **RUN_CONTEXT,
        "hypothesis": _c("string", "identifier '<family>:<selection>:<combination>:<aggregate>'"),
        "family": _c("string", "'stir' (learning/forgetting) or 'cka' (CKA divergence)"),
        "layer_selection": _c("string", "'layer_<l>' or 'layers_<first>-<last>' (layer numbers 0..depth)"),
        "first_layer": _c("int64", "first selected layer"),
        "last_layer": _c("int64", "last selected layer (inclusive)"),
        "combination": _c("string", "'learning+forgetting', 'learning-forgetting', 'learning', 'forgetting' or 'cka_divergence'"),
        "aggregate": _c("string", "'mean', 'std', 'min' or 'max' across the selected layers"),
        "in_family": _c("bool", "member of the configured family; False for a paper-named hypothesis outside it"),
        "r": _c("float64", "Pearson r across epochs with the mean corrupted accuracy; NaN if undefined (a constant series)"),
        "p_value": _c("float64", "two-sided p-value of r (scipy.stats.pearsonr); NaN if r is undefined"),
        "p_bonferroni": _c("float64", "min(1, p_value * family_size)"),
        "family_size": _c("int64", "number of hypotheses of the family, the Bonferroni factor (352 / 88 for 13 layers)"),
        "n_epochs": _c("int64", "number of epochs correlated"),
        "p_permutation": _c("float64", "beyond the paper: two-sided p of r over the 2n circular shifts and reversals of the accuracy series (statistics.surrogate_p_values; at least 1 / (2 n_epochs)); NaN if r is undefined"),
        "p_permutation_fwer": _c("float64", "beyond the paper: the same test family-wise, Westfall-Young single-step max-T over the hypothesis's family (the counterpart of p_bonferroni)"),
    },
)

NAMED_HYPOTHESES = TableSchema(
    "named_hypotheses",
    "(source, dataset, task, variant, role)",
    {
        **RUN_CONTEXT,
        "role": _c("string", "'headline' and 'cka' (the paper's named hypotheses), 'best_stir' and 'best_cka' (largest r)"),
        "description": _c("string", "what the hypothesis is, in the paper's words"),
        "hypothesis": HYPOTHESES.columns["hypothesis"],
        "r": HYPOTHESES.columns["r"],
        "p_value": HYPOTHESES.columns["p_value"],
        "p_bonferroni": HYPOTHESES.columns["p_bonferroni"],
        "n_epochs": HYPOTHESES.columns["n_epochs"],
        "p_permutation": HYPOTHESES.columns["p_permutation"],
        "p_permutation_fwer": HYPOTHESES.columns["p_permutation_fwer"],
        "paper_r": _c("float64", "the paper's r for this run's setting, NaN where it reports none"),
        "paper_p_value": _c("float64", "the paper's p-value, NaN where it reports none"),
    },
)

CHECKPOINT_PICKS = TableSchema(
    "checkpoint_picks",
    "(source, dataset, task, variant, rule) dynamics run and checkpoint-selection rule",
    {
        **RUN_CONTEXT,
        "rule": _c("string", "'max_forgetting_spread' (the paper's suggested indicator), 'best_clean_accuracy' or 'best_corrupted_accuracy'"),
        "epoch": _c("int64", "the epoch the rule picks (the earliest on ties)"),
        "forgetting_spread": _c("float64", "the headline statistic (std of forgetting across the paper's layers 2-12) at that epoch, from the monitor"),
        "clean_accuracy": _c("float64", "accuracy on the clean test sample at that epoch"),
        "mean_corrupted_accuracy": _c("float64", "mean corrupted accuracy at that epoch"),
    },
)

TABLE1 = TableSchema(
    "table1_accuracy",
    "(source, dataset, task, variant) run, at its analysed checkpoint",
    {
        **RUN_CONTEXT,
        "checkpoint": _c("string", "analysed checkpoint: 'best' (highest test accuracy; lowest L1 for reconstruction) or 'last'"),
        "epoch": _c("int64", "epoch of the analysed checkpoint"),
        "epochs": _c("int64", "number of epochs trained"),
        "test_accuracy": _c("float64", "top-1 test accuracy in [0, 1] at the analysed checkpoint (NaN for reconstruction)"),
        "test_l1": _c("float64", "test L1 in [0, 1] pixel units at the analysed checkpoint (NaN for classification)"),
        "target_accuracy": _c("float64", "the accuracy the run should reach to count as trained (config datasets.<name>.target_accuracy; NaN if none, or reconstruction)"),
        "source_accuracy": _c("float64", "test accuracy of the pretrained source on its own dataset, recorded by the run that trained it (NaN for scratch and downloaded sources)"),
        "source_target_accuracy": _c("float64", "the target accuracy of the source's own dataset (NaN if none)"),
        "paper_accuracy": _c("float64", "the paper's Table 1 accuracy for this setting, else NaN"),
        "paper_source_accuracy": _c("float64", "the paper's Table 1 pretraining accuracy for this setting, else NaN"),
    },
)

EARLY_EPOCH_CORRELATION = TableSchema(
    "early_epoch_correlation",
    "(source, dataset, task, variant, hypothesis, last epoch e)",
    {
        **RUN_CONTEXT,
        "hypothesis": HYPOTHESES.columns["hypothesis"],
        "last_epoch": _c("int64", "e: the correlation uses epochs 1..e"),
        "r": _c("float64", "Pearson r over epochs 1..e with the mean corrupted accuracy; NaN if undefined"),
        "p_value": _c("float64", "two-sided p-value of r; NaN if undefined"),
        "p_permutation": _c("float64", "beyond the paper: two-sided p of r over the 2e circular shifts and reversals of the accuracy series over epochs 1..e (at least 1 / (2e)); NaN if undefined"),
    },
)

LEARNING_FORGETTING_CORRELATION = TableSchema(
    "learning_forgetting_correlation",
    "(source, dataset, task, variant) run, at its analysed checkpoint (epoch)",
    {
        **STUDY_CONTEXT,
        "r": _c("float64", "Pearson r across layers between seed-mean learning and seed-mean forgetting"),
        "p_value": _c("float64", "two-sided p-value of r"),
        "n_layers": _c("int64", "number of layers correlated"),
        "paper_r": _c("float64", "the paper's r (Appendix C.1) for this setting, else NaN"),
    },
)

_BEYOND = "beyond the paper: the paper's statement asked of this model"
_RANGE_MEAN = "per seed the mean over paper layers {} mapped onto this model's depth, then the mean over seeds"
MODEL_COMPARISON = TableSchema(
    "model_comparison",
    "(source, dataset, task, variant) default-variant run at its analysed checkpoint (study.model_comparison)",
    {
        **RUN_CONTEXT,
        "epoch": _c("int64", "epoch of the analysed checkpoint"),
        "model": _c("string", "the source's timm model name (sources.<name>.model, else model)"),
        "depth": _c("int64", "the model's blocks: its layers are 0..depth"),
        "n_seeds": _c("int64", "STIR seeds averaged"),
        **{
            f"{metric}_{suffix}": _c("float64", f"{metric}: " + _RANGE_MEAN.format(layers))
            for metric in ("learning", "forgetting", "cka_divergence")
            for suffix, layers in (("early", "1-6"), ("later", "7-12"))
        },
        "learning_forgetting_r": _c("float64", "Pearson r across layers of seed-mean learning and forgetting (Appendix C.1)"),
        "learning_forgetting_p": _c("float64", "two-sided p-value of learning_forgetting_r"),
        "learning_forgetting_verdict": _c("string", f"{_BEYOND} 'learning and forgetting are significantly correlated across layers' (r > 0, p < ALPHA of claims.evidence)"),
        "headline_r": _c("float64", "Pearson r across epochs of the std of forgetting over paper layers 2-12 and the mean corrupted accuracy (Section 4.4; NaN without a dynamics run)"),
        "headline_p_bonferroni": _c("float64", "its p-value, Bonferroni-corrected over the hypothesis family"),
        "headline_verdict": _c("string", f"{_BEYOND} 'the std of forgetting across layers 2-12 correlates strongly with the mean corrupted accuracy' (r >= STRONG_R, Bonferroni p < ALPHA of claims.evidence)"),
    },
)

#: Every table the library and the study write, by schema name (docs/results.md's table schemas).

_CONTROL = {"control": _c("string", "planted-effect control: identical_copy, reinitialised, compressed, expanded, linearly_mapped or collapsed (study.controls, docs/controls.md)")}
CONTROL_PAIR_SIMILARITY = PAIR_SIMILARITY.with_columns(
    "control_pair_similarity", "(control, reference model, target model, seed, reference layer, target layer)", _CONTROL
)
CONTROL_LAYER_METRICS = LAYER_METRICS.with_columns("control_layer_metrics", "(control, seed, layer, metric)", _CONTROL)
CONTROL_INVARIANCE_FLOW = INVARIANCE_FLOW.with_columns(
    "control_invariance_flow", "(control, seed, pretrained layer, finetuned layer)", _CONTROL
)
CONTROLS = TableSchema(
    "controls",
    "(control, check)",
    {
        "control": _c("string", "the control measured: a model pair, the planted / shuffled robustness series, or the robustness run (family_wise_error)"),
        "check": _c("string", "the effect looked for, with the planted location (layers, cells) it reads"),
        "kind": _c("string", "'check' (counted: a pass or fail of the pipeline) or 'finding' (a measured fact about the method, not counted)"),
        "statistic": _c("string", "what was computed"),
        "threshold": _c("string", "when the effect counts as found"),
        "value": _c("float64", "the statistic's value"),
        "found": _c("bool", "whether the effect was found"),
        "expected": _c("bool", "whether the control has the effect by construction"),
        "as_expected": _c("bool", "found == expected: the study behaved as it should"),
        "evidence": _c("string", "the numbers behind the verdict"),
    },
    keys=("control", "check"),
)

MATCHED_PROPERTIES = TableSchema(
    "matched_properties",
    "property of the paper's setting (finetune_invariance.study.matched_properties.PROPERTIES)",
    {
        "property": _c("string", "the property's key"),
        "description": _c("string", "the property of the paper's setting"),
        "paper_value": _c("string", "the paper's value"),
        "paper_source": _c("string", "where the paper's value is read"),
        "value": _c("string", "this configuration's value, with the numbers behind it (what was missing, if not measured)"),
        "measured_by": _c("string", "how this configuration's value is measured"),
        "criterion": _c("string", "when it counts as matched (stated before the scale model was measured)"),
        "status": _c("string", "'matched', 'unmatched' or 'not measured'"),
        "bears_on": _c("string", "claims (ids, or sections of the paper) whose verdicts an unmatched value makes conditional"),
        "calibrates": _c("string", "claims the property's calibration partly fixes (not independent evidence)"),
    },
    keys=("property",),
)

SCHEMAS: dict[str, TableSchema] = {
    s.name: s
    for s in (
        *LIBRARY_SCHEMAS,
        STUDY_PAIR_SIMILARITY,
        STUDY_LAYER_METRICS,
        STUDY_INVARIANCE_FLOW,
        TRAINING_HISTORY,
        FORGETTING_MONITOR,
        ROBUST_ACCURACY,
        HYPOTHESES,
        NAMED_HYPOTHESES,
        CHECKPOINT_PICKS,
        TABLE1,
        EARLY_EPOCH_CORRELATION,
        LEARNING_FORGETTING_CORRELATION,
        CONTROL_PAIR_SIMILARITY,
        CONTROL_LAYER_METRICS,
        CONTROL_INVARIANCE_FLOW,
        CONTROLS,
        MATCHED_PROPERTIES,
    )
}


#: The study's aggregated tables, ``results/tables/<stem>.parquet``, by file stem.
STUDY_TABLES: dict[str, TableSchema] = {
    "layer_metrics": STUDY_LAYER_METRICS,
    "invariance_flow": STUDY_INVARIANCE_FLOW,
    "robust_accuracy": ROBUST_ACCURACY,
    "hypotheses": HYPOTHESES,
    "named_hypotheses": NAMED_HYPOTHESES,
    "early_epoch_correlation": EARLY_EPOCH_CORRELATION,
    "learning_forgetting_correlation": LEARNING_FORGETTING_CORRELATION,
    "table1_accuracy": TABLE1,
    "forgetting_monitor": FORGETTING_MONITOR,
    "checkpoint_picks": CHECKPOINT_PICKS,
    "matched_properties": MATCHED_PROPERTIES,
}


def results_map() -> str:
    """Markdown documentation of every table in :data:`SCHEMAS` (docs/results.md's table schemas)."""
    sections = [f"#### `{schema.name}`\n\n{markdown_schema(schema)}" for schema in SCHEMAS.values()]
    return "\n\n".join(sections) + "\n"


if __name__ == "__main__":
    print(results_map(), end="")
