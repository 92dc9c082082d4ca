"""Train one run (a source finetuned on a dataset for a task) and publish its checkpoints;
a monitored run also measures its forgetting while it trains (beyond the paper)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import data, models, run_folder, tables, training
from finetune_invariance.study.layout import checkpoint_path
from finetune_invariance.study.runtime import logged_to, publish, resolve_device
from finetune_invariance.study.vocabulary import Run

with logged_to(snakemake.log[0]):
    run = Run.parse(snakemake.params.run)
    device = resolve_device(snakemake.params.device)
    config = training.TrainConfig(**snakemake.params.training)
    model = models.build_model(
        models.ModelSpec(**snakemake.params.model), run.task, snakemake.params.num_classes, seed=config.seed
    )
    monitor = None
    if snakemake.params.monitor is not None:
        from finetune_invariance.inversion import Inversions
        from finetune_invariance.monitor import ForgettingMonitor

        inversions = [Inversions.load(path) for path in snakemake.input.inversions]
        monitor = ForgettingMonitor(model, inversions, device=device)
    work = snakemake.params.work
    training.train(
        model,
        config,
        data.get_dataset(
            run.dataset, "train", augment=config.augment, image_size=config.image_size, **snakemake.params.data
        ),
        data.get_dataset(run.dataset, "test", **snakemake.params.data),
        work,
        checkpoint_epochs=set(snakemake.params.checkpoint_epochs),
        keep_best=snakemake.params.keep_best,
        run_name=run.path,
        device=device,
        monitor=monitor,
        monitor_schedule=training.MonitorSchedule(**(snakemake.params.monitor or {})),
    )
    for label in snakemake.params.published:
        publish(run_folder.verified_checkpoint(work, label), checkpoint_path(snakemake.output.checkpoints, label))
    publish(work / run_folder.HISTORY_FILE, snakemake.output.history)
    tables.write_table(run_folder.monitor_table(work), snakemake.output.monitor, tables.FORGETTING_MONITOR)
