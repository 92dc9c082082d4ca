"""Pearson r across layers between learning and forgetting of every run at its analysed checkpoint (Appendix C.1)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import layer_statistics, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import analysed_rows

with logged_to(snakemake.log[0]):
    metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
    analysed = tables.read_table(snakemake.input.table1, tables.TABLE1)
    correlation = layer_statistics.learning_forgetting_correlation(analysed_rows(metrics, analysed))
    tables.write_table(correlation, snakemake.output.table, tables.LEARNING_FORGETTING_CORRELATION)
    tables.write_markdown_and_html(
        correlation, snakemake.output.markdown, snakemake.output.html, "Appendix C.1: learning vs forgetting across layers"
    )
