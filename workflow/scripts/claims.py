"""The paper's findings checked on this run's tables (Markdown, shown in the report)."""

from finetune_invariance.study import claims, tables
from finetune_invariance.study.design import logged_to

with logged_to(snakemake.log[0]):
    study_tables = {
        schema.name: tables.read_table(snakemake.input[stem], schema) for stem, schema in tables.STUDY_TABLES.items()
    }
    verdicts = claims.evaluate_claims(study_tables, main_variant="default")
    with open(snakemake.output[0], "w") as markdown:
        markdown.write("# Claims of the paper, checked on this run\n\n" + claims.claims_markdown(verdicts))
