"""Fig. 2 and 3: learning, forgetting and CKA divergence per layer by pretraining source."""

from finetune_invariance.study import figures, tables
from finetune_invariance.study.design import final_epoch_rows, logged_to

with logged_to(snakemake.log[0]):
    metrics = final_epoch_rows(tables.read_table(snakemake.input[0], tables.STUDY_LAYER_METRICS))
    classification = metrics[metrics["task"] == "classification"]
    figures.plot_source_comparison(classification, snakemake.output.learning_forgetting)
    figures.plot_cka_divergence_by_source(classification, snakemake.output.cka)
