"""Figs. 1-3: learning, forgetting and CKA divergence per layer at each run's analysed
checkpoint (mean and sd over STIR seeds), by finetuning task (per source) and by
pretraining source (per task), each dataset and source named with what it plays
(params roles)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.finetuning_metrics import summarize_over_seeds
from finetune_invariance.study import figures, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import RUN_KEYS, analysed_rows, variant_rows

DRAW = {
    "task_comparison": figures.plot_task_comparison,
    "cka_divergence_by_task": figures.plot_cka_divergence_by_task,
    "source_comparison": figures.plot_source_comparison,
    "cka_divergence_by_source": figures.plot_cka_divergence_by_source,
}


def matching(df, selection):
    return df[(df[list(selection)] == list(selection.values())).all(axis=1)]


with logged_to(snakemake.log[0]):
    roles = figures.Roles(**snakemake.params.roles)
    metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
    analysed = variant_rows(tables.read_table(snakemake.input.table1, tables.TABLE1))
    profiles = summarize_over_seeds(analysed_rows(metrics, analysed), keys=[*RUN_KEYS, "epoch", "layer", "metric"])
    for kind, plan in snakemake.params.figures.items():
        for png, selection in plan.items():
            DRAW[kind](matching(profiles, selection), matching(analysed, selection), png, roles)
