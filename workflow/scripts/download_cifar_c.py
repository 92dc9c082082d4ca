"""Download and checksum CIFAR-10-C / CIFAR-100-C into data_root (needs 'download: true')."""

from pathlib import Path

from finetune_invariance.study import cifar_c
from finetune_invariance.study.design import logged_to

with logged_to(snakemake.log[0]):
    dataset = {"CIFAR-10-C": "cifar10", "CIFAR-100-C": "cifar100"}[snakemake.wildcards.cifar_c]
    root = Path(snakemake.output[0]).parent.parent
    if not snakemake.params.download:
        raise FileNotFoundError(
            f"{snakemake.output[0]} is missing and the config has 'download: false'. "
            f"Place the published {snakemake.wildcards.cifar_c} files there, or set 'download: true'. "
            f"Archive: {cifar_c.ARCHIVES[dataset].url}"
        )
    cifar_c.download_cifar_c(root, dataset)
