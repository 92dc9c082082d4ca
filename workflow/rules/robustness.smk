"""Robustness: accuracy of every epoch of a dynamics run on its corrupted test sample."""


rule robust_accuracy:
    input:
        checkpoints=LAYOUT.pattern("checkpoints"),
        corrupted=LAYOUT.pattern("corrupted_testset"),
    output:
        LAYOUT.pattern("robust_accuracy"),
    log:
        LAYOUT.log("robust_accuracy", RUN),
    benchmark:
        LAYOUT.benchmark("robust_accuracy", RUN)
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        run=lambda wc: run_of(wc).path,
        checkpoints=lambda wc: {
            epoch: LAYOUT.path(
                "checkpoint", run_of(wc), checkpoint=checkpoint_label(epoch)
            )
            for epoch in STUDY.checkpoint_epochs(run_of(wc))
        },
        image_size=lambda wc: STUDY.source_image_size(wc.source),
        device=config["device"],
    script:
        "../scripts/robust_accuracy.py"
