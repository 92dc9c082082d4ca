"""Download and checksum CIFAR-10-C / CIFAR-100-C into data_root (needs 'download: true')."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import cifar_c
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    dataset = snakemake.params.dataset
    if not snakemake.params.download:
        raise FileNotFoundError(
            f"{snakemake.output[0]} is missing and the config has 'download: false': set 'download: true', or "
            + cifar_c.where_to_place(snakemake.params.root, dataset)
        )
    cifar_c.download_cifar_c(snakemake.params.root, dataset)
