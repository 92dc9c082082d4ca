"""The forgetting every monitored run measured while it trained, in one table."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import tables
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    frames = [tables.read_table(path, tables.FORGETTING_MONITOR) for path in snakemake.input]
    tables.write_table(tables.concat(frames, tables.FORGETTING_MONITOR), snakemake.output[0], tables.FORGETTING_MONITOR)
