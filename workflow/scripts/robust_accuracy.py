"""Clean and corrupted accuracy of every epoch of one dynamics run."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

import pandas as pd

from finetune_invariance.study import cifar_c, evaluation, models, robust_accuracy, tables
from finetune_invariance.study.runtime import logged_to, resolve_device
from finetune_invariance.study.vocabulary import Run, with_context

with logged_to(snakemake.log[0]):
    run = Run.parse(snakemake.params.run)
    device = resolve_device(snakemake.params.device)
    sample = cifar_c.load_sets(snakemake.input.corrupted)
    frames = []
    for epoch, path in snakemake.params.checkpoints.items():
        model, _ = models.load_checkpoint(path, map_location=device)
        accuracy = evaluation.image_accuracy(model, run.task, snakemake.params.image_size, device)
        frames.append(with_context(robust_accuracy.robust_accuracy(accuracy, sample), run, epoch))
    tables.write_table(pd.concat(frames), snakemake.output[0], tables.ROBUST_ACCURACY)
