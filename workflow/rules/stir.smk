"""STIR: each source inverted once per dataset and seed; each analysed checkpoint of a run
inverted and compared with its source in both directions (the full L x L STIR matrices
and plain CKA), one job per (run, checkpoint, seed)."""


rule invert_pretrained:
    input:
        dataset_files,
        model=LAYOUT.pattern("source_weights"),
    output:
        LAYOUT.pattern("pretrained_inversions"),
    log:
        LAYOUT.log("invert_pretrained", "{dataset}/seed{seed}/{source}"),
    benchmark:
        LAYOUT.benchmark("invert_pretrained", "{dataset}/seed{seed}/{source}")
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        stir=STUDY.stir,
        data=lambda wc: STUDY.data(wc.dataset),
        image_size=lambda wc: STUDY.source_image_size(wc.source),
        device=config["device"],
    script:
        "../scripts/invert_pretrained.py"


rule stir:
    input:
        pretrained=LAYOUT.pattern("source_weights"),
        checkpoints=LAYOUT.pattern("checkpoints"),
        inversions_pretrained=LAYOUT.pattern("pretrained_inversions"),
    output:
        LAYOUT.pattern("pair_similarity"),
    log:
        LAYOUT.log("stir", f"{RUN}/{{checkpoint}}/seed{{seed}}"),
    benchmark:
        LAYOUT.benchmark("stir", f"{RUN}/{{checkpoint}}/seed{{seed}}")
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        run=lambda wc: run_of(wc).path,
        finetuned=lambda wc: LAYOUT.path(
            "checkpoint", run_of(wc), checkpoint=wc.checkpoint
        ),
        stir=STUDY.stir,
        device=config["device"],
    script:
        "../scripts/stir.py"
