"""Fig. 14: correlation with mean corrupted accuracy over epochs 1..e, against e."""

from finetune_invariance.study import figures, tables
from finetune_invariance.study.design import Run, logged_to

with logged_to(snakemake.log[0]):
    run = Run.from_wildcards(snakemake.wildcards)
    early = run.rows(tables.read_table(snakemake.input[0], tables.EARLY_EPOCH_CORRELATION))
    figures.plot_early_epoch_correlation(early, snakemake.output.png)
