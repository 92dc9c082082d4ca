"""Figs. 5, 14, 6 and 15: each dynamics run across epochs with its robust accuracy, the
correlation over the first epochs, and the hyperparameter variants of a setting; all with
the paper's headline hypothesis (std of forgetting across its layers 2-12, scaled to the
model's depth) and its correlation's parametric and permutation p-values; each dataset and
source named with what it plays (params roles)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.finetuning_metrics import summarize_over_seeds
from finetune_invariance.study import checkpoint_selection, figures, hypotheses, robust_accuracy, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import RUN_KEYS, Run


def headline_of(layer_metrics):
    return hypotheses.headline_hypothesis(int(layer_metrics["layer"].max()) + 1)


def matching(df, selection):
    return df[(df[list(selection)] == list(selection.values())).all(axis=1)]


with logged_to(snakemake.log[0]):
    roles = figures.Roles(**snakemake.params.roles)
    metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
    robust = tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY)
    early = tables.read_table(snakemake.input.early, tables.EARLY_EPOCH_CORRELATION)
    named = tables.read_table(snakemake.input.named, tables.NAMED_HYPOTHESES)
    for png, run in snakemake.params.figures["dynamics"].items():
        run = Run.from_row(run)
        run_metrics, run_robust = run.rows(metrics), run.rows(robust)
        headline = headline_of(run_metrics)
        figures.plot_dynamics(
            summarize_over_seeds(run_metrics, keys=[*RUN_KEYS, "epoch", "layer", "metric"]),
            headline,
            hypotheses.seed_summary(headline, run_metrics),
            robust_accuracy.severity_accuracy(run_robust),
            robust_accuracy.mean_corrupted_accuracy(run_robust),
            png,
            named,
            roles,
        )
    for png, run in snakemake.params.figures["early_epoch_correlation"].items():
        run = Run.from_row(run)
        figures.plot_early_epoch_correlation(
            run.rows(early), run.rows(named), headline_of(run.rows(metrics)), png, roles
        )
    for png, setting in snakemake.params.figures["variants"].items():
        setting_metrics = matching(metrics, setting)
        headline = headline_of(setting_metrics)
        figures.plot_variants(
            robust_accuracy.mean_corrupted_accuracy_by_run(matching(robust, setting)),
            headline,
            hypotheses.seed_summary(headline, setting_metrics),
            png,
            named,
            roles,
        )
    monitor = tables.read_table(snakemake.input.monitor, tables.FORGETTING_MONITOR)
    picks = tables.read_table(snakemake.input.picks, tables.CHECKPOINT_PICKS)
    for png, run in snakemake.params.figures["forgetting_monitor"].items():
        run = Run.from_row(run)
        run_monitor = run.rows(monitor)
        figures.plot_forgetting_monitor(
            checkpoint_selection.headline_over_training(run_monitor),
            robust_accuracy.mean_corrupted_accuracy(run.rows(robust)),
            run.rows(picks),
            run,
            hypotheses.headline_hypothesis(int(run_monitor["layer"].max()) + 1),
            png,
            roles,
        )
