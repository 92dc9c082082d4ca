"""Training: pretraining sources, source checkpoints, finetuning runs."""


rule pretrain:
    input:
        dataset_files,
    output:
        model=R / "pretrain" / "{dataset}" / "model.safetensors",
        history=R / "pretrain" / "{dataset}" / "history.parquet",
    log:
        log_path("pretrain", "{dataset}"),
    benchmark:
        benchmark_path("pretrain", "{dataset}")
    params:
        work=lambda wc: R / "work" / "pretrain" / wc.dataset,
    threads: RES["gpu_threads"]
    resources:
        runtime=RES["train_runtime_min"],
        **GPU_RESOURCES,
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/pretrain.py"


def source_inputs(wildcards):
    dataset = STUDY.source_pretrain_dataset(wildcards.source)
    return [R / "pretrain" / dataset / "model.safetensors"] if dataset else []


rule source_model:
    input:
        source_inputs,
    output:
        R / "sources" / "{source}.safetensors",
    log:
        log_path("source_model", "{source}"),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/source_model.py"


rule finetune:
    input:
        dataset_files,
        source=R / "sources" / "{source}.safetensors",
    output:
        checkpoints=directory(R / "finetune" / "{source}" / "{dataset}" / "{task}" / "{variant}" / "checkpoints"),
        history=R / "finetune" / "{source}" / "{dataset}" / "{task}" / "{variant}" / "history.parquet",
    log:
        log_path("finetune", "{source}/{dataset}/{task}/{variant}"),
    benchmark:
        benchmark_path("finetune", "{source}/{dataset}/{task}/{variant}")
    params:
        # Resume state lives outside the declared outputs, which Snakemake deletes
        # before rerunning a job; a killed run restarts from its last complete epoch.
        work=lambda wc: R / "work" / "finetune" / run_of(wc).path,
        epochs=lambda wc: STUDY.analysed_epochs(run_of(wc)),
    threads: RES["gpu_threads"]
    resources:
        runtime=RES["train_runtime_min"],
        **GPU_RESOURCES,
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/finetune.py"
