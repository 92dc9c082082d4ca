"""Every planted-effect control pair, built from the controls' source, measured for one STIR
seed as a run's checkpoint is (study.controls.measure_controls)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance import inversion
from finetune_invariance.study import control_plan, controls, models, tables
from finetune_invariance.study.runtime import logged_to, resolve_device

with logged_to(snakemake.log[0]):
    settings = snakemake.params.stir
    device = resolve_device(snakemake.params.device)
    source, _ = models.load_checkpoint(snakemake.input.source, map_location=device)
    specs = control_plan.control_specs(snakemake.params.block, snakemake.params.shift, len(source.backbone.blocks))
    pairs = controls.measure_controls(
        specs,
        source,
        inversion.Inversions.load(snakemake.input.inversions_pretrained),
        int(snakemake.wildcards.seed),
        dict(
            iterations=settings["iterations"],
            step_size=settings["step_size"],
            memory_budget=int(settings["memory_budget_gb"] * 2**30),
            precision=settings["precision"],
        ),
    )
    tables.write_table(pairs, snakemake.output[0], tables.CONTROL_PAIR_SIMILARITY)
