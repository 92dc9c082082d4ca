"""The corrupted test sample of one dataset: published CIFAR-C files or generated corruptions."""

import numpy as np

from finetune_invariance.study import cifar_c, data, robustness
from finetune_invariance.study.design import Study, logged_to

with logged_to(snakemake.log[0]):
    study = Study(snakemake.config)
    dataset = snakemake.wildcards.dataset
    settings = snakemake.params.robustness
    n, seed = settings["n_per_severity"], settings["seed"]
    test = study.dataset(dataset, "test")
    indices = data.sample_indices(len(test), n, seed)
    # Back to the uint8 HWC layout of the published CIFAR-C files (exact for 8-bit sources).
    clean_images = np.stack([(test[int(i)][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for i in indices])
    clean_labels = np.array([test[int(i)][1] for i in indices], dtype=np.int64)
    clean = cifar_c.CorruptedSet(robustness.CLEAN, 0, clean_images, clean_labels)
    if study.corrupted_kind(dataset) == "published":
        corrupted = cifar_c.sample_per_severity(
            cifar_c.published_sets(snakemake.config["data_root"], dataset, settings["corruptions"]), n, seed
        )
    else:
        corrupted = cifar_c.generated_sets(clean_images, clean_labels, settings["corruptions"], seed=seed)
    cifar_c.save_sets(snakemake.output[0], [clean, *corrupted])
