"""Beyond the paper: each run's model, its profiles over the paper's early and later layers
and two of the paper's statements asked of it, in one table (study.model_comparison)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import model_comparison, tables
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    compared = model_comparison.compare_models(
        tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS),
        tables.read_table(snakemake.input.table1, tables.TABLE1),
        tables.read_table(snakemake.input.correlation, tables.LEARNING_FORGETTING_CORRELATION),
        tables.read_table(snakemake.input.named, tables.NAMED_HYPOTHESES),
        snakemake.params.models,
    )
    tables.write_table(compared, snakemake.output.table, tables.MODEL_COMPARISON)
    tables.write_markdown_and_html(
        compared,
        snakemake.output.markdown,
        snakemake.output.html,
        "Beyond the paper: the sources' models compared (profiles by relative depth, two of the paper's statements per model)",
    )
