"""Finetune a source on a dataset for a task; keep the checkpoints of the analysed epochs."""

from pathlib import Path

from finetune_invariance.study import checkpoints, data, models
from finetune_invariance.study.design import Run, Study, logged_to, publish

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    run = Run.from_wildcards(snakemake.wildcards)
    config = study.train_config("finetune", run.variant)
    num_classes = data.dataset_info(run.dataset).num_classes if run.task == "classification" else None
    model = models.build_model(
        study.model_spec(f"checkpoint:{snakemake.input.source}"), run.task, num_classes, seed=config.seed
    )
    work = Path(snakemake.params.work)
    study.train(
        model,
        stage="finetune",
        dataset=run.dataset,
        variant=run.variant,
        work_dir=work,
        checkpoint_epochs=snakemake.params.epochs,
        run_name=f"finetune/{run.path}",
    )
    for epoch in snakemake.params.epochs:
        publish(checkpoints.epoch_checkpoint(work, epoch), checkpoints.epoch_checkpoint(snakemake.output.checkpoints, epoch))
    publish(work / "history.parquet", snakemake.output.history)
