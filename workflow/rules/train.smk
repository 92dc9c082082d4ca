"""Training: pretraining sources, source checkpoints, finetuning runs."""


localrules:
    source_model,


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
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["train_runtime_min"],
    params:
        work=lambda wc: R / "work" / "pretrain" / wc.dataset,
    script:
        "../scripts/pretrain.py"


rule source_model:
    input:
        source_inputs,
    output:
        R / "sources" / "{source}.safetensors",
    log:
        log_path("source_model", "{source}"),
    conda:
        "../../envs/study.yaml"
    resources:
        mem_mb=4000,
    script:
        "../scripts/source_model.py"


rule finetune:
    input:
        dataset_files,
        source=R / "sources" / "{source}.safetensors",
    output:
        checkpoints=directory(
            R
            / "finetune"
            / "{source}"
            / "{dataset}"
            / "{task}"
            / "{variant}"
            / "checkpoints"
        ),
        history=R
        / "finetune"
        / "{source}"
        / "{dataset}"
        / "{task}"
        / "{variant}"
        / "history.parquet",
    log:
        log_path("finetune", "{source}/{dataset}/{task}/{variant}"),
    benchmark:
        benchmark_path("finetune", "{source}/{dataset}/{task}/{variant}")
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["train_runtime_min"],
    params:
        # Resume state lives outside the declared outputs, which Snakemake deletes
        # before rerunning a job; a killed run restarts from its last complete epoch.
        work=lambda wc: R / "work" / "finetune" / run_of(wc).path,
        epochs=lambda wc: STUDY.analysed_epochs(run_of(wc)),
    script:
        "../scripts/finetune.py"
