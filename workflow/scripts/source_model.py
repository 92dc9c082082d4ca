"""A source's starting weights as a checkpoint: the pretrained model p of every run from it."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study.runtime import logged_to, publish

with logged_to(snakemake.log[0]):
    if snakemake.params.checkpoint is not None:
        # A 'pretrain:' source is its pretraining run's published checkpoint, copied
        # without loading it (no torch import): the jobs that load it name a damaged file.
        publish(snakemake.params.checkpoint, snakemake.output[0])
    else:
        from finetune_invariance.study import checkpoints, models

        spec = models.ModelSpec(**snakemake.params.model)
        weights_file = models.verified_weights_file(spec) if spec.weight_source()[0] in models.FILE_KINDS else None
        if weights_file is not None and checkpoints.is_checkpoint(weights_file):
            # A checkpoint of this study (a shipped pretrained source): copied with the
            # metadata of the run that trained it, which Table 1 reads.
            publish(weights_file, snakemake.output[0])
        else:
            # The head is never used: runs build their own and the metrics read the backbone.
            model = models.build_model(spec, "classification", num_classes=1, seed=0)
            checkpoints.save_checkpoint(snakemake.output[0], model, {"source": snakemake.wildcards.source, "epoch": 0})
