"""Table 1: each run's test accuracy at its analysed checkpoint, its source's (recorded in the
source checkpoint), the targets of both datasets, the paper's."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import checkpoints, finetuned_accuracy, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import Run

with logged_to(snakemake.log[0]):
    histories = {}
    for path in snakemake.input.histories:
        history = tables.read_table(path, tables.TRAINING_HISTORY)
        histories[history["run"].iloc[0]] = history
    table = finetuned_accuracy.table1(
        {Run.parse(name): histories[name] for name in snakemake.params.runs},
        {source: checkpoints.read_metadata(path) for source, path in zip(snakemake.params.sources, snakemake.input.sources)},
        snakemake.params.targets,
        snakemake.params.analysed_checkpoint,
    )
    tables.write_table(table, snakemake.output.table, tables.TABLE1)
    tables.write_markdown_and_html(
        table, snakemake.output.markdown, snakemake.output.html, "Table 1: test accuracy at each run's analysed checkpoint"
    )
