"""The matched-properties table of this configuration and its run (docs/scale-model.md)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import matched_properties, tables
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    stems = {
        "table1_accuracy": tables.TABLE1,
        "robust_accuracy": tables.ROBUST_ACCURACY,
        "control_layer_metrics": tables.CONTROL_LAYER_METRICS,
    }
    read = {
        stem: tables.read_table(snakemake.input[stem], schema)
        for stem, schema in stems.items()
        if stem in snakemake.input.keys()
    }
    facts = matched_properties.Facts(snakemake.params.config, read)
    table = tables.write_table(matched_properties.measure(facts), snakemake.output.table, tables.MATCHED_PROPERTIES)
    tables.write_markdown_and_html(
        tables.read_table(table, tables.MATCHED_PROPERTIES),
        snakemake.output.markdown,
        snakemake.output.html,
        "Matched properties of the paper's setting",
    )
