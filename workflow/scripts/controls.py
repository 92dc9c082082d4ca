"""Every planted-effect control's checks in one table: the model controls' layer metrics and
flow, and the planted robustness correlation on the default dynamics run's layer metrics
with its shuffled twin (study.controls.evaluate_controls)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import control_plan, controls, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import Run

with logged_to(snakemake.log[0]):
    metrics, flows = controls.control_metrics(
        tables.read_table(path, tables.CONTROL_PAIR_SIMILARITY) for path in snakemake.input.pairs
    )
    run_metrics = None
    if snakemake.params.robustness_run is not None:
        study_metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
        run_metrics = Run.parse(snakemake.params.robustness_run).rows(study_metrics)
    specs = control_plan.control_specs(snakemake.params.block, snakemake.params.shift, int(metrics["layer"].max()))
    checks = controls.evaluate_controls(metrics, flows, specs, run_metrics, snakemake.params.layer_selections)
    tables.write_table(metrics, snakemake.output.layer_metrics, tables.CONTROL_LAYER_METRICS)
    tables.write_table(flows, snakemake.output.invariance_flow, tables.CONTROL_INVARIANCE_FLOW)
    tables.write_table(checks, snakemake.output.table, tables.CONTROLS)
    tables.write_markdown_and_html(checks, snakemake.output.markdown, snakemake.output.html, controls.TITLE)
