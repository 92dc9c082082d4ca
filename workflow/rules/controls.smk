"""Planted-effect controls (beyond the paper, docs/controls.md): model pairs built from a
source, whose answer is known by construction, measured by the same inversion and STIR
code as the runs; a series of models with a planted robustness relation, measured by the
monitor's forgetting and the robustness code; then every control's checks in one table.
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
        LAYOUT.log("control_stir", "seed{seed}"),
    benchmark:
        LAYOUT.benchmark("control_stir", "seed{seed}")
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


rule control_robustness:
    input:
        unpack(control_robustness_inputs),
    output:
        layer_metrics=LAYOUT.pattern("control_robustness_metrics"),
        robust_accuracy=LAYOUT.pattern("control_robust_accuracy"),
    log:
        LAYOUT.log("control_robustness"),
    benchmark:
        LAYOUT.benchmark("control_robustness")
    conda:
        "../../envs/study.yaml"
    threads: RES["gpu_threads"]
    resources:
        **GPU_RESOURCES,
        runtime=RES["invert_runtime_min"],
    params:
        run=lambda wc: STUDY.robustness_control_run().path,
        end=lambda wc: LAYOUT.path(
            "checkpoint",
            STUDY.robustness_control_run(),
            checkpoint=checkpoint_label(
                STUDY.checkpoint_epochs(STUDY.robustness_control_run())[-1]
            ),
        ),
        image_size=lambda wc: STUDY.source_image_size(
            STUDY.robustness_control_run().source
        ),
        device=config["device"],
    script:
        "../scripts/control_robustness.py"


rule controls:
    input:
        unpack(controls_inputs),
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
