"""Fig. 5 / Appendix E: learning, forgetting and robust accuracy across the epochs of one run."""

from finetune_invariance.study import figures, tables
from finetune_invariance.study.design import Run, logged_to

with logged_to(snakemake.log[0]):
    run = Run.from_wildcards(snakemake.wildcards)
    metrics = run.rows(tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS))
    robust = run.rows(tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY))
    figures.plot_dynamics(metrics, robust, snakemake.output.png)
