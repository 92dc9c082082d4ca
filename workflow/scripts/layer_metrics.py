"""Forgetting, learning, CKA divergence and invariance flow of every pair, as study tables."""

import pandas as pd

from finetune_invariance import finetuning_metrics
from finetune_invariance.study import tables
from finetune_invariance.study.design import Study, logged_to, with_context

with logged_to(snakemake.log[0]):
    metrics, flows = [], []
    for run, epoch, _, path in Study(snakemake.config).stir_tables():
        similarity = tables.read_table(path, tables.PAIR_SIMILARITY)
        metrics.append(with_context(finetuning_metrics.layer_metrics(similarity, "pretrained", "finetuned"), run, epoch))
        flows.append(with_context(finetuning_metrics.invariance_flow(similarity, "pretrained", "finetuned"), run, epoch))
    tables.write_table(pd.concat(metrics), snakemake.output.layer_metrics, tables.STUDY_LAYER_METRICS)
    tables.write_table(pd.concat(flows), snakemake.output.invariance_flow, tables.STUDY_INVARIANCE_FLOW)
