"""Data: the generated datasets of the miniature study and the corrupted test sets."""


localrules:
    generate_dataset,


rule generate_dataset:
    output:
        train=DATA / "{dataset}" / "train.npz",
        test=DATA / "{dataset}" / "test.npz",
    log:
        log_path("generate_dataset", "{dataset}"),
    conda:
        "../../envs/study.yaml"
    params:
        sizes=lambda wc: {
            k: v
            for k, v in config["datasets"][wc.dataset].items()
            if k in ("n_train", "n_test")
        },
    script:
        "../scripts/generate_dataset.py"


rule corrupted_testset:
    input:
        corrupted_source_files,
    output:
        R / "data" / "corrupted" / "{dataset}.npz",
    log:
        log_path("corrupted_testset", "{dataset}"),
    benchmark:
        benchmark_path("corrupted_testset", "{dataset}")
    conda:
        "../../envs/study.yaml"
    resources:
        mem_mb=4000,
    params:
        robustness=config["robustness"],
    script:
        "../scripts/corrupted_testset.py"


rule download_cifar_c:
    output:
        DATA / "{cifar_c}" / "labels.npy",
    log:
        log_path("download_cifar_c", "{cifar_c}"),
    wildcard_constraints:
        cifar_c="CIFAR-10-C|CIFAR-100-C",
    conda:
        "../../envs/study.yaml"
    params:
        download=config["download"],
    script:
        "../scripts/download_cifar_c.py"
