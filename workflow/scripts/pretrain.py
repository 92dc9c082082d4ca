"""Pretrain a source from scratch: classification on one dataset (sources 'pretrain:<dataset>')."""

from pathlib import Path

from finetune_invariance.study import checkpoints, data, models
from finetune_invariance.study.design import Study, logged_to, publish

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    dataset = snakemake.wildcards.dataset
    config = study.train_config("pretrain")
    model = models.build_model(
        study.model_spec("scratch"), "classification", data.dataset_info(dataset).num_classes, seed=config.seed
    )
    work = Path(snakemake.params.work)
    study.train(
        model,
        stage="pretrain",
        dataset=dataset,
        variant="default",
        work_dir=work,
        checkpoint_epochs={config.epochs},
        run_name=f"pretrain/{dataset}",
    )
    publish(checkpoints.epoch_checkpoint(work, config.epochs), snakemake.output.model)
    publish(work / "history.parquet", snakemake.output.history)
