"""Invert every layer of a source model for the test images of one STIR seed."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance import inversion
from finetune_invariance.study import data, models
from finetune_invariance.study.runtime import logged_to, resolve_device

with logged_to(snakemake.log[0]):
    settings = snakemake.params.stir
    seed = int(snakemake.wildcards.seed)
    device = resolve_device(snakemake.params.device)
    model, _ = models.load_checkpoint(snakemake.input.model, map_location=device)
    test = data.get_dataset(snakemake.wildcards.dataset, "test", **snakemake.params.data)
    images = data.sample_images(test, settings["n_images"], seed, snakemake.params.image_size).to(device)
    inverted = inversion.invert(
        model,
        images,
        seed=seed,
        iterations=settings["iterations"],
        step_size=settings["step_size"],
        memory_budget=int(settings["memory_budget_gb"] * 2**30),
        precision=settings["precision"],
    )
    inverted.save(snakemake.output[0])
