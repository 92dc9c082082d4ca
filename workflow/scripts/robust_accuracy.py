"""Clean and corrupted accuracy of every analysed epoch of one dynamics run."""


import pandas as pd
import torch
from torch.utils.data import TensorDataset

from finetune_invariance.study import checkpoints, cifar_c, robustness, tables, training
from finetune_invariance.study.design import Run, Study, logged_to, resolve_device, with_context

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    run = Run.from_wildcards(snakemake.wildcards)
    device = resolve_device(snakemake.config["device"])
    sets = cifar_c.load_sets(snakemake.input.corrupted)
    (clean,) = [s for s in sets if s.corruption == robustness.CLEAN]
    corrupted = [s for s in sets if s.corruption != robustness.CLEAN]
    frames = []
    for epoch in snakemake.params.epochs:
        model, _ = checkpoints.load_checkpoint(
            checkpoints.epoch_checkpoint(snakemake.input.checkpoints, epoch), map_location=device
        )

        def accuracy(images, labels):
            batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
            dataset = TensorDataset(batch, torch.from_numpy(labels))
            return training.evaluate(model, dataset, run.task, study.image_size(), device)["accuracy"]

        table = robustness.robust_accuracy(accuracy, corrupted, (clean.images, clean.labels))
        frames.append(with_context(table, run, epoch))
    tables.write_table(pd.concat(frames), snakemake.output[0], tables.ROBUST_ACCURACY)
