"""Table 1: final test accuracy per finetune run, the paper's value beside it."""

from finetune_invariance.study import paper, tables
from finetune_invariance.study.design import logged_to

with logged_to(snakemake.log[0]):
    histories = {
        (run.source, run.dataset, run.task, run.variant): tables.read_table(path, tables.TRAINING_HISTORY)
        for run, path in zip(snakemake.params.runs, snakemake.input)
    }
    table = paper.table1(histories)
    tables.write_table(table, snakemake.output.table, tables.TABLE1)
    with open(snakemake.output.markdown, "w") as markdown:
        markdown.write(tables.markdown_table(table))
