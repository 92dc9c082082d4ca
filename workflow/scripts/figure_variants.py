"""Fig. 6 and 15: hyperparameter variants of one dynamics setting, epoch by epoch."""

from finetune_invariance.study import figures, tables
from finetune_invariance.study.design import logged_to

with logged_to(snakemake.log[0]):
    setting = {k: snakemake.wildcards[k] for k in ("source", "dataset", "task")}

    def of_setting(df):
        return df[(df[list(setting)] == list(setting.values())).all(axis=1)]

    metrics = of_setting(tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS))
    robust = of_setting(tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY))
    figures.plot_variants(metrics, robust, snakemake.output.png)
