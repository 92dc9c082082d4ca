"""Data: the generated datasets of the miniature study and the corrupted test sets."""


rule generate_dataset:
    output:
        train=DATA / "{dataset}" / "train.npz",
        test=DATA / "{dataset}" / "test.npz",
    log:
        log_path("generate_dataset", "{dataset}"),
    params:
        sizes=lambda wc: {
            k: v for k, v in config["datasets"][wc.dataset].items() if k in ("n_train", "n_test")
        },
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/generate_dataset.py"


def corrupted_source_files(wildcards):
    """A generated corrupted set corrupts the test split; a published one is read from data_root."""
    if STUDY.corrupted_kind(wildcards.dataset) == "published":
        return [cifar_c_dir(wildcards.dataset) / "labels.npy"]
    return dataset_files(wildcards)


def cifar_c_dir(dataset):
    return DATA / {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}[dataset]


rule corrupted_testset:
    input:
        corrupted_source_files,
    output:
        R / "data" / "corrupted" / "{dataset}.npz",
    log:
        log_path("corrupted_testset", "{dataset}"),
    benchmark:
        benchmark_path("corrupted_testset", "{dataset}")
    params:
        robustness=config["robustness"],
        image_size=STUDY.image_size(),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/corrupted_testset.py"


rule download_cifar_c:
    output:
        DATA / "{cifar_c}" / "labels.npy",
    wildcard_constraints:
        cifar_c="CIFAR-10-C|CIFAR-100-C",
    log:
        log_path("download_cifar_c", "{cifar_c}"),
    params:
        download=config["download"],
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/download_cifar_c.py"
