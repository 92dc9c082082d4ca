"""The planted robustness series: models between the robustness run's source and its last
checkpoint, measured as its epochs are (study.controls.measure_planted_series)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance import inversion
from finetune_invariance.study import cifar_c, controls, models, tables
from finetune_invariance.study.runtime import logged_to, resolve_device
from finetune_invariance.study.vocabulary import Run

with logged_to(snakemake.log[0]):
    device = resolve_device(snakemake.params.device)
    start, _ = models.load_checkpoint(snakemake.input.source, map_location=device)
    end, _ = models.load_checkpoint(snakemake.params.end, map_location=device)
    metrics, robust, _ = controls.measure_planted_series(
        start,
        end,
        [inversion.Inversions.load(path) for path in snakemake.input.inversions],
        cifar_c.load_sets(snakemake.input.corrupted),
        controls.planted_run(Run.parse(snakemake.params.run)),
        snakemake.params.image_size,
        device,
    )
    tables.write_table(metrics, snakemake.output.layer_metrics, tables.STUDY_LAYER_METRICS)
    tables.write_table(robust, snakemake.output.robust_accuracy, tables.ROBUST_ACCURACY)
