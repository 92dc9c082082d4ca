"""Robustness: accuracy of every epoch of a dynamics run on its corrupted test set."""


rule robust_accuracy:
    input:
        checkpoints=R / "finetune" / "{source}" / "{dataset}" / "{task}" / "{variant}" / "checkpoints",
        corrupted=R / "data" / "corrupted" / "{dataset}.npz",
    output:
        R / "robustness" / "{source}" / "{dataset}" / "{task}" / "{variant}.parquet",
    log:
        log_path("robust_accuracy", "{source}/{dataset}/{task}/{variant}"),
    benchmark:
        benchmark_path("robust_accuracy", "{source}/{dataset}/{task}/{variant}")
    params:
        epochs=lambda wc: STUDY.analysed_epochs(run_of(wc)),
    threads: RES["gpu_threads"]
    resources:
        runtime=RES["invert_runtime_min"],
        **GPU_RESOURCES,
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/robust_accuracy.py"
