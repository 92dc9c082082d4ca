"""The paper's findings checked on this run's tables (Markdown, shown in the report).

params: imagenet_source (the source that plays the paper's ImageNet) and, optionally,
variant_optimizers (each dynamics variant's optimizer, for the claims of Figs. 6 and 15).
"""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import claims, tables
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    study_tables = {
        stem: tables.read_table(snakemake.input[stem], schema) for stem, schema in tables.STUDY_TABLES.items()
    }
    verdicts = claims.evaluate_claims(
        study_tables, snakemake.params.imagenet_source, snakemake.params.get("variant_optimizers")
    )
    with open(snakemake.output[0], "w") as markdown:
        markdown.write("# Claims of the paper, checked on this run\n\n" + claims.claims_markdown(verdicts))
