"""STIR: per model pair (pretrained source, finetuned checkpoint) and seed, the full
L x L STIR matrices in both directions and plain CKA, from the stored inversions."""


rule stir:
    input:
        pretrained=R / "sources" / "{source}.safetensors",
        checkpoints=R
        / "finetune"
        / "{source}"
        / "{dataset}"
        / "{task}"
        / "{variant}"
        / "checkpoints",
        inversions_pretrained=R
        / "inversions"
        / "{dataset}"
        / "seed{seed}"
        / "pretrained"
        / "{source}.safetensors",
        inversions_finetuned=R
        / "inversions"
        / "{dataset}"
        / "seed{seed}"
        / "finetuned"
        / "{source}"
        / "{task}"
        / "{variant}"
        / "epoch_{epoch}.safetensors",
    output:
        R
        / "stir"
        / "{source}"
        / "{dataset}"
        / "{task}"
        / "{variant}"
        / "epoch_{epoch}"
        / "seed{seed}.parquet",
    log:
        log_path("stir", "{source}/{dataset}/{task}/{variant}/epoch_{epoch}/seed{seed}"),
    benchmark:
        benchmark_path(
            "stir", "{source}/{dataset}/{task}/{variant}/epoch_{epoch}/seed{seed}"
        )
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    script:
        "../scripts/stir.py"
