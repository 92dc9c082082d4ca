"""Planted-effect controls (beyond the paper): model pairs built from a source, whose
answer is known by construction, measured by the same inversion and STIR code as the
runs; then every control's checks, with the planted robustness correlation, in one table.
"""


rule control_stir:
    input:
        source=LAYOUT.path("source_weights", source=STUDY.controls_source),
        inversions_pretrained=LAYOUT.pattern(
            "pretrained_inversions",
            source=STUDY.controls_source,
            dataset=STUDY.controls_dataset,
        ),
    output:
        LAYOUT.pattern("control_pair_similarity"),
    log:
        LAYOUT.log("control_stir", "{control}/seed{seed}"),
    benchmark:
        LAYOUT.benchmark("control_stir", "{control}/seed{seed}")
    wildcard_constraints:
        control=_one_of(MODEL_CONTROLS),
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        block=config["controls"]["block"],
        shift=config["controls"]["shift"],
        stir=STUDY.stir,
        device=config["device"],
    script:
        "../scripts/control_stir.py"


rule controls:
    input:
        pairs=control_tables(),
        layer_metrics=table("layer_metrics"),
    output:
        layer_metrics=table("control_layer_metrics"),
        invariance_flow=table("control_invariance_flow"),
        table=table("controls"),
        markdown=markdown("controls"),
        html=report(
            table_page("controls"),
            caption="../report/controls.rst",
            category="9. Beyond the paper: planted-effect controls",
        ),
    log:
        LAYOUT.log("controls"),
    conda:
        "../../envs/study.yaml"
    params:
        block=config["controls"]["block"],
        shift=config["controls"]["shift"],
        robustness_run=(
            STUDY.robustness_control_run().path
            if STUDY.robustness_control_run()
            else None
        ),
        layer_selections=config["robustness"]["layer_selections"],
    script:
        "../scripts/controls.py"
