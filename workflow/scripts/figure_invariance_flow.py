"""Fig. 4 / Appendix D: the seed-mean invariance-flow matrix of every run at its analysed
checkpoint, titled with what its source and dataset play (params roles)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.finetuning_metrics import flow_matrix
from finetune_invariance.study import figures, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import Run, analysed_rows

with logged_to(snakemake.log[0]):
    roles = figures.Roles(**snakemake.params.roles)
    flow = tables.read_table(snakemake.input.invariance_flow, tables.STUDY_INVARIANCE_FLOW)
    table1 = tables.read_table(snakemake.input.table1, tables.TABLE1)
    analysed = analysed_rows(flow, table1)
    for png, run in snakemake.params.figures["invariance_flow"].items():
        run = Run.from_row(run)
        rows = run.rows(analysed)
        figures.plot_invariance_flow(flow_matrix(rows), run.rows(table1), rows["seed"].nunique(), png, roles)
