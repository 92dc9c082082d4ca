"""Fig. 4 / Appendix D: the invariance-flow matrix of one run at its last epoch."""

from finetune_invariance.study import figures, tables
from finetune_invariance.study.design import Run, final_epoch_rows, logged_to

with logged_to(snakemake.log[0]):
    run = Run.from_wildcards(snakemake.wildcards)
    flow = run.rows(final_epoch_rows(tables.read_table(snakemake.input[0], tables.STUDY_INVARIANCE_FLOW), run.variant))
    title = f"{run.source} \u2192 {run.dataset}, {run.task}"
    figures.plot_invariance_flow(flow, snakemake.output.png, title=title)
