"""Invert every layer of one model (a source, or a finetuned checkpoint) for one STIR seed."""

from pathlib import Path

from finetune_invariance import inversion
from finetune_invariance.study import checkpoints
from finetune_invariance.study.design import Study, logged_to, resolve_device

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    settings = snakemake.params.stir
    seed = int(snakemake.wildcards.seed)
    if "model" in snakemake.input.keys():
        path = Path(snakemake.input.model)
    else:
        path = checkpoints.epoch_checkpoint(snakemake.input.checkpoints, snakemake.wildcards.epoch)
    device = resolve_device(snakemake.config["device"])
    model, _ = checkpoints.load_checkpoint(path, map_location=device)
    images = study.stir_images(snakemake.wildcards.dataset, seed).to(device)
    inverted = inversion.invert(
        model,
        images,
        seed=seed,
        iterations=settings["iterations"],
        step_size=settings["step_size"],
        memory_budget=int(settings["memory_budget_gb"] * 2**30),
    )
    inverted.save(snakemake.output[0])
