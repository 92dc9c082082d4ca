"""Training: each source's starting weights, and every run (analysed runs and the runs that
pretrain a source; docs/method.md: scratch -> X classification is the same training as
pretraining on X, so it is trained once)."""


localrules:
    source_model,


rule source_model:
    input:
        unpack(source_inputs),
    output:
        LAYOUT.pattern("source_weights"),
    log:
        LAYOUT.log("source_model", "{source}"),
    priority: source_priority
    conda:
        "../../envs/study.yaml"
    resources:
        mem_mb=4000,
    params:
        checkpoint=source_checkpoint,
        model=lambda wc: STUDY.source_model(wc.source),
    script:
        "../scripts/source_model.py"


rule finetune:
    input:
        dataset_files,
        unpack(monitor_inputs),
        source=LAYOUT.pattern("source_weights"),
    output:
        checkpoints=directory(LAYOUT.pattern("checkpoints")),
        history=LAYOUT.pattern("history"),
        monitor=LAYOUT.pattern("forgetting_monitor"),
    log:
        LAYOUT.log("finetune", RUN),
    benchmark:
        LAYOUT.benchmark("finetune", RUN)
    priority: training_priority
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["train_runtime_min"],
    params:
        run=lambda wc: run_of(wc).path,
        model=lambda wc, input: STUDY.model(
            f"checkpoint:{input.source}", source=wc.source
        ),
        num_classes=lambda wc: STUDY.num_classes(run_of(wc)),
        training=lambda wc: STUDY.training(run_of(wc)),
        data=lambda wc: STUDY.data(wc.dataset),
        device=config["device"],
        # Resume state lives outside the declared outputs, which Snakemake deletes
        # before rerunning a job; a killed run restarts from its last complete epoch.
        work=lambda wc: LAYOUT.path("work", run_of(wc)),
        checkpoint_epochs=lambda wc: STUDY.checkpoint_epochs(run_of(wc)),
        keep_best=STUDY.analysed_checkpoint == "best",
        published=lambda wc: STUDY.kept_checkpoints(run_of(wc)),
        monitor=lambda wc: (
            STUDY.monitor_schedule() if STUDY.is_monitored(run_of(wc)) else None
        ),
    script:
        "../scripts/finetune.py"
