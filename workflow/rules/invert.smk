"""Inversion: each model's layers inverted once per STIR seed, all layers in one batch.

The pretrained model's inversions on a dataset serve every run, task, variant and
epoch finetuned from it; only each finetuned checkpoint's own inversions are new.
"""


rule invert_pretrained:
    input:
        dataset_files,
        model=R / "sources" / "{source}.safetensors",
    output:
        R
        / "inversions"
        / "{dataset}"
        / "seed{seed}"
        / "pretrained"
        / "{source}.safetensors",
    log:
        log_path("invert_pretrained", "{dataset}/seed{seed}/{source}"),
    benchmark:
        benchmark_path("invert_pretrained", "{dataset}/seed{seed}/{source}")
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        stir=config["stir"],
    script:
        "../scripts/invert.py"


rule invert_finetuned:
    input:
        dataset_files,
        checkpoints=R
        / "finetune"
        / "{source}"
        / "{dataset}"
        / "{task}"
        / "{variant}"
        / "checkpoints",
    output:
        R
        / "inversions"
        / "{dataset}"
        / "seed{seed}"
        / "finetuned"
        / "{source}"
        / "{task}"
        / "{variant}"
        / "epoch_{epoch}.safetensors",
    log:
        log_path(
            "invert_finetuned",
            "{dataset}/seed{seed}/{source}/{task}/{variant}/epoch_{epoch}",
        ),
    benchmark:
        benchmark_path(
            "invert_finetuned",
            "{dataset}/seed{seed}/{source}/{task}/{variant}/epoch_{epoch}",
        )
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        stir=config["stir"],
    script:
        "../scripts/invert.py"
