"""The hypothesis family against mean corrupted accuracy, per dynamics run (Appendix E.1),
the paper's named hypotheses beside the strongest ones, and the early-epoch correlations
(Fig. 14); for a variant measured by the forgetting monitor alone, the headline only."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import hypotheses, tables
from finetune_invariance.study.paper import HEADLINE
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import Run

with logged_to(snakemake.log[0]):
    metrics = tables.read_table(snakemake.input.layer_metrics, tables.STUDY_LAYER_METRICS)
    robust = tables.read_table(snakemake.input.robust_accuracy, tables.ROBUST_ACCURACY)
    analysed = tables.read_table(snakemake.input.table1, tables.TABLE1)
    family, early = [], []
    for run in map(Run.parse, snakemake.params.runs):
        run_metrics, run_robust = run.rows(metrics), run.rows(robust)
        trained = run.rows(analysed).iloc[0]
        epochs = hypotheses.correlated_epochs(
            snakemake.params.correlation_epochs, int(trained["epoch"]), int(trained["epochs"])
        )
        monitor_only = run.path in snakemake.params.monitor_only  # forgetting alone: the headline
        run_hypotheses = hypotheses.correlate_hypotheses(
            run_metrics, run_robust, snakemake.params.layer_selections, epochs, only=[HEADLINE] if monitor_only else None
        )
        family.append(run_hypotheses)
        followed = hypotheses.named_hypotheses(run_hypotheses)["hypothesis"].unique()
        early.append(hypotheses.early_epoch_correlation(run_metrics, run_robust, followed))
    family = tables.concat(family, tables.HYPOTHESES)
    named = hypotheses.named_hypotheses(family)
    tables.write_table(family, snakemake.output.hypotheses, tables.HYPOTHESES)
    tables.write_table(named, snakemake.output.named, tables.NAMED_HYPOTHESES)
    tables.write_table(tables.concat(early, tables.EARLY_EPOCH_CORRELATION), snakemake.output.early, tables.EARLY_EPOCH_CORRELATION)
    tables.write_markdown_and_html(
        named, snakemake.output.markdown, snakemake.output.html, "Section 4.4: the named and the strongest robustness hypotheses"
    )
