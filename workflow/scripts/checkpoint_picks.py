"""The checkpoint the spread of forgetting picks in each monitored dynamics run, beside the
best clean and the best corrupted accuracy (beyond the paper)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import checkpoint_selection, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import RUN_KEYS

with logged_to(snakemake.log[0]):
    monitor = tables.read_table(snakemake.input.monitor, tables.FORGETTING_MONITOR)
    robust = tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY)
    monitored = robust.merge(monitor[list(RUN_KEYS)].drop_duplicates())
    picks = checkpoint_selection.checkpoint_picks(monitor, monitored)
    tables.write_table(picks, snakemake.output.table, tables.CHECKPOINT_PICKS)
    tables.write_markdown_and_html(
        picks, snakemake.output.markdown, snakemake.output.html, "Beyond the paper: the checkpoint each rule picks"
    )
