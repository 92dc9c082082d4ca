"""A source's starting weights as a checkpoint: the pretrained model p of every run from it."""

from finetune_invariance.study import checkpoints, models
from finetune_invariance.study.design import Study, logged_to, publish

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    source = snakemake.wildcards.source
    weights = snakemake.config["sources"][source]["weights"]
    if weights.startswith("pretrain:"):
        publish(snakemake.input[0], snakemake.output[0])
    else:
        # The head is never used: runs build their own and the metrics read the backbone.
        model = models.build_model(study.model_spec(weights), "classification", num_classes=1, seed=0)
        checkpoints.save_checkpoint(snakemake.output[0], model, {"source": source, "epoch": 0})
