"""Forgetting, learning, CKA divergence and invariance flow of every (run, checkpoint, seed),
and the forgetting of the runs measured by the forgetting monitor alone (config variant_metrics)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance import finetuning_metrics
from finetune_invariance.study import checkpoint_selection, tables
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import Run, with_context

with logged_to(snakemake.log[0]):
    metrics, flows = [], []
    for path in snakemake.input.pairs:
        pair = tables.read_table(path, tables.STUDY_PAIR_SIMILARITY)
        run, epoch = Run.from_row(pair.iloc[0]), int(pair["epoch"].iloc[0])
        similarity = pair[list(tables.PAIR_SIMILARITY.columns)]
        metrics.append(with_context(finetuning_metrics.layer_metrics(similarity, "pretrained", "finetuned"), run, epoch))
        flows.append(with_context(finetuning_metrics.invariance_flow(similarity, "pretrained", "finetuned"), run, epoch))
    for path in snakemake.input.monitored:  # runs measured by the forgetting monitor alone
        metrics.append(checkpoint_selection.epoch_end_forgetting(tables.read_table(path, tables.FORGETTING_MONITOR)))
    tables.write_table(tables.concat(metrics, tables.STUDY_LAYER_METRICS), snakemake.output.layer_metrics, tables.STUDY_LAYER_METRICS)
    tables.write_table(tables.concat(flows, tables.STUDY_INVARIANCE_FLOW), snakemake.output.invariance_flow, tables.STUDY_INVARIANCE_FLOW)
