"""One analysed checkpoint of a run against its source, for one STIR seed: the checkpoint's
layers inverted from the same images and starting noise as the source's, then STIR in both
directions and plain CKA (the pair's similarity table, with the run's context)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance import inversion, stir
from finetune_invariance.study import models, tables
from finetune_invariance.study.runtime import logged_to, resolve_device
from finetune_invariance.study.vocabulary import Run, with_context

with logged_to(snakemake.log[0]):
    settings = snakemake.params.stir
    device = resolve_device(snakemake.params.device)
    pretrained, _ = models.load_checkpoint(snakemake.input.pretrained, map_location=device)
    finetuned, metadata = models.load_checkpoint(snakemake.params.finetuned, map_location=device)
    inversions_p = inversion.Inversions.load(snakemake.input.inversions_pretrained)
    images = inversions_p.targets
    inversions_f = inversion.invert(
        finetuned,
        images.to(device),
        seed=int(snakemake.wildcards.seed),
        iterations=settings["iterations"],
        step_size=settings["step_size"],
        memory_budget=int(settings["memory_budget_gb"] * 2**30),
        precision=settings["precision"],
    )
    similarity = stir.pair_similarity(
        pretrained, finetuned, images, inversions_p, inversions_f, names=("pretrained", "finetuned")
    )
    context = with_context(similarity, Run.parse(snakemake.params.run), epoch=metadata["epoch"])
    tables.write_table(context, snakemake.output[0], tables.STUDY_PAIR_SIMILARITY)
