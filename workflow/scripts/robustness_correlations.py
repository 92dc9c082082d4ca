"""The hypothesis family against mean corrupted accuracy, per dynamics run (Appendix E)."""

from finetune_invariance.study import robustness, tables
from finetune_invariance.study.design import Study, logged_to

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
    robust = tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY)
    hypotheses, early = [], []
    for run in study.dynamics_runs():
        run_metrics = run.rows(metrics)
        run_robust = run.rows(robust)
        run_hypotheses = robustness.correlate_hypotheses(run_metrics, run_robust)
        followed = robustness.strongest_hypotheses(run_hypotheses, snakemake.params.top_k)["hypothesis"]
        num_layers = run_metrics["layer"].nunique()
        headline = f"stir:first_{num_layers}:forgetting:std"  # std of forgetting across all layers
        hypotheses.append(run_hypotheses)
        early.append(robustness.early_epoch_correlation(run_metrics, run_robust, [headline, *followed]))
    hypotheses = tables.concat(hypotheses, tables.HYPOTHESES)
    tables.write_table(hypotheses, snakemake.output.hypotheses, tables.HYPOTHESES)
    tables.write_table(tables.concat(early, tables.EARLY_EPOCH_CORRELATION), snakemake.output.early, tables.EARLY_EPOCH_CORRELATION)
    strongest = robustness.strongest_hypotheses(hypotheses, snakemake.params.top_k)
    with open(snakemake.output.strongest, "w") as markdown:
        markdown.write(tables.markdown_table(strongest))
