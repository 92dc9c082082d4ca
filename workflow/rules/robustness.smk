"""Robustness: accuracy of every epoch of a dynamics run on its corrupted test set."""


rule robust_accuracy:
    input:
        checkpoints=R
        / "finetune"
        / "{source}"
        / "{dataset}"
        / "{task}"
        / "{variant}"
        / "checkpoints",
        corrupted=R / "data" / "corrupted" / "{dataset}.npz",
    output:
        R / "robustness" / "{source}" / "{dataset}" / "{task}" / "{variant}.parquet",
    log:
        log_path("robust_accuracy", "{source}/{dataset}/{task}/{variant}"),
    benchmark:
        benchmark_path("robust_accuracy", "{source}/{dataset}/{task}/{variant}")
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        epochs=lambda wc: STUDY.analysed_epochs(run_of(wc)),
    script:
        "../scripts/robust_accuracy.py"
