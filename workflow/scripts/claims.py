"""The paper's findings checked on this run's tables: the claims report, Markdown and HTML
(the HTML shown in the report), opening with what the configuration is, and its tallies and
verdicts alone (output summary), which the report's landing page includes.

params: about (config ``about``), imagenet_source (the source that plays the paper's
ImageNet), plays (dataset -> the paper's dataset it plays), variant_optimizers (each
dynamics variant's optimizer, for the claims of Figs. 6 and 15), inference (config
``robustness.inference``) and identical_copy (the controls' source and dataset, or None).
"""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from pathlib import Path

from finetune_invariance.study import claims, controls, tables
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    study_tables = {
        stem: tables.read_table(snakemake.input[stem], schema)
        for stem, schema in claims.CLAIM_TABLES.items()
        if stem in snakemake.input.keys()
    }
    identical_copy = snakemake.params.identical_copy
    verdicts = claims.evaluate_claims(
        study_tables,
        snakemake.params.imagenet_source,
        snakemake.params.variant_optimizers,
        inference=snakemake.params.inference,
        identical_copy=None if identical_copy is None else tuple(identical_copy),
    )
    about = claims.About(
        snakemake.params.about["title"],
        snakemake.params.about["summary"],
        snakemake.params.imagenet_source,
        snakemake.params.plays,
        snakemake.params.inference,
    )
    sections = []
    if "controls" in snakemake.input.keys():
        sections.append(controls.report_section(tables.read_table(snakemake.input.controls, tables.CONTROLS)))
    report = claims.claims_report(verdicts, about, sections)
    Path(snakemake.output.markdown).write_text(report.markdown(), encoding="utf-8")
    Path(snakemake.output.html).write_text(report.html(), encoding="utf-8")
    Path(snakemake.output.summary).write_text(report.landing(), encoding="utf-8")
