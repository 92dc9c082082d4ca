"""STIR in both directions and plain CKA for one (pretrained, finetuned) pair and seed."""


from finetune_invariance import stir, tables
from finetune_invariance.study import checkpoints
from finetune_invariance.inversion import Inversions
from finetune_invariance.study.design import logged_to, resolve_device

with logged_to(snakemake.log[0]):
    device = resolve_device(snakemake.config["device"])
    epoch = snakemake.wildcards.epoch
    pretrained, _ = checkpoints.load_checkpoint(snakemake.input.pretrained, map_location=device)
    finetuned, _ = checkpoints.load_checkpoint(
        checkpoints.epoch_checkpoint(snakemake.input.checkpoints, epoch), map_location=device
    )
    inversions_p = Inversions.load(snakemake.input.inversions_pretrained)
    inversions_f = Inversions.load(snakemake.input.inversions_finetuned)
    similarity = stir.pair_similarity(
        pretrained,
        finetuned,
        inversions_p.targets,
        inversions_p,
        inversions_f,
        names=("pretrained", "finetuned"),
    )
    tables.write_table(similarity, snakemake.output[0], tables.PAIR_SIMILARITY)
