"""Figures: every figure kind of the paper, as PNG (in the report) and PDF beside it. One
job draws all figures of a kind group: they read the same tables."""


localrules:
    figure_layer_profiles,
    figure_invariance_flow,
    figure_dynamics,


LAYER_PROFILES = (
    "task_comparison",
    "cka_divergence_by_task",
    "source_comparison",
    "cka_divergence_by_source",
)
DYNAMICS = ("dynamics", "early_epoch_correlation", "variants", "forgetting_monitor")


rule figure_layer_profiles:
    input:
        layer_metrics=table("layer_metrics"),
        table1=table("table1_accuracy"),
    output:
        figure_outputs(*LAYER_PROFILES),
    log:
        LAYOUT.log("figure_layer_profiles"),
    conda:
        "../../envs/study.yaml"
    params:
        figures=figure_plan(*LAYER_PROFILES),
        roles=figure_roles(),
    script:
        "../scripts/figure_layer_profiles.py"


rule figure_invariance_flow:
    input:
        invariance_flow=table("invariance_flow"),
        table1=table("table1_accuracy"),
    output:
        figure_outputs("invariance_flow"),
    log:
        LAYOUT.log("figure_invariance_flow"),
    conda:
        "../../envs/study.yaml"
    params:
        figures=figure_plan("invariance_flow"),
        roles=figure_roles(),
    script:
        "../scripts/figure_invariance_flow.py"


rule figure_dynamics:
    input:
        layer_metrics=table("layer_metrics"),
        robust_accuracy=table("robust_accuracy"),
        early=table("early_epoch_correlation"),
        named=table("named_hypotheses"),
        monitor=table("forgetting_monitor"),
        picks=table("checkpoint_picks"),
    output:
        figure_outputs(*DYNAMICS),
    log:
        LAYOUT.log("figure_dynamics"),
    conda:
        "../../envs/study.yaml"
    params:
        figures=figure_plan(*DYNAMICS),
        roles=figure_roles(),
    script:
        "../scripts/figure_dynamics.py"
