"""The clean and corrupted test sample of one dataset: published CIFAR-C rows or generated corruptions."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from finetune_invariance.study import cifar_c, data
from finetune_invariance.study.runtime import logged_to
from finetune_invariance.study.vocabulary import CLEAN, CLEAN_SEVERITY

with logged_to(snakemake.log[0]):
    settings = snakemake.params.robustness
    n, seed = settings["n_images"], settings["seed"]
    test_images, test_labels = data.uint8_images(data.get_dataset(snakemake.wildcards.dataset, "test", **snakemake.params.data))
    clean_rows = data.sample_indices(len(test_labels), min(n, len(test_labels)), seed)
    clean = cifar_c.CorruptedSet(CLEAN, CLEAN_SEVERITY, test_images[clean_rows], test_labels[clean_rows])
    plan = cifar_c.sample_plan(len(test_labels), settings["corruptions"], n, seed, settings["sampling"])
    if snakemake.params.published:
        corrupted = cifar_c.published_sample(snakemake.params.data["root"], snakemake.wildcards.dataset, plan)
    else:
        corrupted = cifar_c.generated_sample(test_images, test_labels, plan, seed=seed)
    cifar_c.save_sets(snakemake.output[0], [clean, *corrupted])
