"""Pearson r across layers between learning and forgetting, per setting (Appendix C.1)."""

from finetune_invariance.study import robustness, tables
from finetune_invariance.study.design import logged_to

with logged_to(snakemake.log[0]):
    metrics = tables.read_table(snakemake.input[0], tables.STUDY_LAYER_METRICS)
    correlation = robustness.learning_forgetting_correlation(metrics)
    tables.write_table(correlation, snakemake.output.table, tables.LEARNING_FORGETTING_CORRELATION)
    with open(snakemake.output.markdown, "w") as markdown:
        markdown.write(tables.markdown_table(correlation))
