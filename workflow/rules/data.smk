"""Data: the generated datasets of the miniature study and the corrupted test samples."""


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
        data=lambda wc: STUDY.data(wc.dataset),
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
