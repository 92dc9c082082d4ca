"""A source's starting weights as a checkpoint: the pretrained model p of every run from it."""

from finetune_invariance.study import checkpoints, models
from finetune_invariance.study.runtime import logged_to, publish

with logged_to(snakemake.log[0]):
    if snakemake.params.checkpoint is not None:  # a 'pretrain:' source: its pretraining run's checkpoint
        checkpoints.read_checkpoint(snakemake.params.checkpoint)  # a damaged file fails here, named
        publish(snakemake.params.checkpoint, snakemake.output[0])
    else:
        # The head is never used: runs build their own and the metrics read the backbone.
        spec = models.ModelSpec(**snakemake.params.model)
        model = models.build_model(spec, "classification", num_classes=1, seed=0)
        checkpoints.save_checkpoint(snakemake.output[0], model, {"source": snakemake.wildcards.source, "epoch": 0})
