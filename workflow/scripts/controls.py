"""Every planted-effect control's checks in one table: the model controls' layer metrics and
flow, the planted robustness series and its shuffled twin, and the family-wise error of the
paper's test on the robustness run's own series (study.controls.evaluate_controls)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import control_plan, controls, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import Run

with logged_to(snakemake.log[0]):
    metrics, flows = controls.control_metrics(
        tables.read_table(path, tables.CONTROL_PAIR_SIMILARITY) for path in snakemake.input.pairs
    )
    series = run = None
    if snakemake.params.robustness_run is not None:
        series = (
            tables.read_table(snakemake.input.series_metrics, tables.STUDY_LAYER_METRICS),
            tables.read_table(snakemake.input.series_robust, tables.ROBUST_ACCURACY),
        )
        study_metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
        run = (
            Run.parse(snakemake.params.robustness_run).rows(study_metrics),
            tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY),
        )
    specs = control_plan.control_specs(snakemake.params.block, snakemake.params.shift, int(metrics["layer"].max()))
    checks = controls.evaluate_controls(metrics, flows, specs, series, run, snakemake.params.layer_selections)
    tables.write_table(metrics, snakemake.output.layer_metrics, tables.CONTROL_LAYER_METRICS)
    tables.write_table(flows, snakemake.output.invariance_flow, tables.CONTROL_INVARIANCE_FLOW)
    tables.write_table(checks, snakemake.output.table, tables.CONTROLS)
    tables.write_markdown_and_html(checks, snakemake.output.markdown, snakemake.output.html, controls.TITLE)
