"""Fig. 1a/1b: learning, forgetting and CKA divergence per layer, classification vs reconstruction."""

from finetune_invariance.study import figures, tables
from finetune_invariance.study.design import final_epoch_rows, logged_to

with logged_to(snakemake.log[0]):
    metrics = final_epoch_rows(tables.read_table(snakemake.input[0], tables.STUDY_LAYER_METRICS))
    of_source = metrics[metrics["source"] == snakemake.wildcards.source]
    figures.plot_task_comparison(of_source, snakemake.output.learning_forgetting)
    figures.plot_cka_divergence_by_task(of_source, snakemake.output.cka)
