"""Data: the generated datasets of the miniature study and the corrupted test samples."""

from finetune_invariance.study.cifar_c import ARCHIVES, cifar_c_dir


localrules:
    generate_dataset,
    download_cifar_c,


rule generate_dataset:
    output:
        train=LAYOUT.pattern("generated_train"),
        test=LAYOUT.pattern("generated_test"),
    log:
        LAYOUT.log("generate_dataset", "{dataset}"),
    conda:
        "../../envs/study.yaml"
    params:
        sizes=lambda wc: STUDY.generated_sizes(wc.dataset),
    script:
        "../scripts/generate_dataset.py"


def corrupted_source_files(wildcards):
    """A generated corrupted sample corrupts the test split; a published one is read from
    data_root (its labels.npy stands for the folder)."""
    if STUDY.corrupted_kind(wildcards.dataset) == "published":
        return [cifar_c_labels(wildcards.dataset)]
    return dataset_files(wildcards)


def cifar_c_labels(dataset):
    return cifar_c_dir(LAYOUT.data_root, dataset) / "labels.npy"


#: Published corrupted test sets by the folder they extract to.
CIFAR_C_FOLDERS = {archive.folder: dataset for dataset, archive in ARCHIVES.items()}


rule corrupted_testset:
    input:
        corrupted_source_files,
    output:
        LAYOUT.pattern("corrupted_testset"),
    log:
        LAYOUT.log("corrupted_testset", "{dataset}"),
    benchmark:
        LAYOUT.benchmark("corrupted_testset", "{dataset}")
    conda:
        "../../envs/study.yaml"
    resources:
        mem_mb=4000,
    params:
        robustness=STUDY.robustness,
        published=lambda wc: STUDY.corrupted_kind(wc.dataset) == "published",
        data=STUDY.data(),
    script:
        "../scripts/corrupted_testset.py"


rule download_cifar_c:
    output:
        str(LAYOUT.data_root / "{cifar_c}" / "labels.npy"),
    log:
        LAYOUT.log("download_cifar_c", "{cifar_c}"),
    wildcard_constraints:
        cifar_c=_one_of(CIFAR_C_FOLDERS),
    conda:
        "../../envs/study.yaml"
    params:
        dataset=lambda wc: CIFAR_C_FOLDERS[wc.cifar_c],
        root=LAYOUT.data_root,
        download=config["download"],
    script:
        "../scripts/download_cifar_c.py"
