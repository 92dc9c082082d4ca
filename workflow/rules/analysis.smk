"""Analysis: Table 1, the per-layer metrics, robustness statistics and the claims report,
aggregated over every run into the study's tables."""


localrules:
    table1,
    layer_metrics,
    robust_accuracy_table,
    forgetting_monitor_table,
    checkpoint_picks,
    learning_forgetting_correlation,
    claims,


rule table1:
    input:
        histories=history_tables(),
        sources=expand(LAYOUT.pattern("source_weights"), source=run_sources()),
    output:
        table=table("table1_accuracy"),
        markdown=markdown("table1_accuracy"),
        html=report(
            table_page("table1_accuracy"),
            caption="../report/table1.rst",
            category="6. Tables",
        ),
    log:
        LAYOUT.log("table1"),
    conda:
        "../../envs/study.yaml"
    params:
        runs=[run.path for run in STUDY.runs()],
        sources=run_sources(),
        targets={
            name: dataset["target_accuracy"]
            for name, dataset in config["datasets"].items()
            if "target_accuracy" in dataset
        },
        analysed_checkpoint=STUDY.analysed_checkpoint,
    script:
        "../scripts/table1.py"


rule layer_metrics:
    input:
        pairs=pair_tables(),
        monitored=monitor_only_tables(),
    output:
        layer_metrics=table("layer_metrics"),
        invariance_flow=table("invariance_flow"),
    log:
        LAYOUT.log("layer_metrics"),
    benchmark:
        LAYOUT.benchmark("layer_metrics")
    conda:
        "../../envs/study.yaml"
    resources:
        mem_mb=4000,
    script:
        "../scripts/layer_metrics.py"


rule robust_accuracy_table:
    input:
        robustness_tables(),
    output:
        table("robust_accuracy"),
    log:
        LAYOUT.log("robust_accuracy_table"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/robust_accuracy_table.py"


rule forgetting_monitor_table:
    input:
        monitor_tables(),
    output:
        table("forgetting_monitor"),
    log:
        LAYOUT.log("forgetting_monitor_table"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/forgetting_monitor_table.py"


rule checkpoint_picks:
    input:
        monitor=table("forgetting_monitor"),
        robust_accuracy=table("robust_accuracy"),
    output:
        table=table("checkpoint_picks"),
        markdown=markdown("checkpoint_picks"),
        html=report(
            table_page("checkpoint_picks"),
            caption="../report/checkpoint_picks.rst",
            category="8. Beyond the paper: forgetting monitor",
        ),
    log:
        LAYOUT.log("checkpoint_picks"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/checkpoint_picks.py"


rule robustness_correlations:
    input:
        layer_metrics=table("layer_metrics"),
        robust_accuracy=table("robust_accuracy"),
        table1=table("table1_accuracy"),
    output:
        hypotheses=table("hypotheses"),
        named=table("named_hypotheses"),
        early=table("early_epoch_correlation"),
        markdown=markdown("named_hypotheses"),
        html=report(
            table_page("named_hypotheses"),
            caption="../report/named_hypotheses.rst",
            category="6. Tables",
        ),
    log:
        LAYOUT.log("robustness_correlations"),
    benchmark:
        LAYOUT.benchmark("robustness_correlations")
    conda:
        "../../envs/study.yaml"
    params:
        runs=[run.path for run in STUDY.dynamics_runs()],
        monitor_only=[
            run.path for run in STUDY.dynamics_runs() if STUDY.is_monitor_only(run)
        ],
        layer_selections=config["robustness"]["layer_selections"],
        correlation_epochs=config["robustness"]["correlation_epochs"],
    script:
        "../scripts/robustness_correlations.py"


rule learning_forgetting_correlation:
    input:
        layer_metrics=table("layer_metrics"),
        table1=table("table1_accuracy"),
    output:
        table=table("learning_forgetting_correlation"),
        markdown=markdown("learning_forgetting_correlation"),
        html=report(
            table_page("learning_forgetting_correlation"),
            caption="../report/learning_forgetting_correlation.rst",
            category="6. Tables",
        ),
    log:
        LAYOUT.log("learning_forgetting_correlation"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/learning_forgetting_correlation.py"


rule claims:
    input:
        **{stem: table(stem) for stem in STUDY_TABLES},
        **controls_outputs(),
        **identical_copy_floor(),
    output:
        markdown=LAYOUT.path("claims"),
        html=report(
            LAYOUT.path("claims_html"),
            caption="../report/claims.rst",
            category="7. Claims of the paper",
        ),
        summary=LAYOUT.path("claims_summary"),
    log:
        LAYOUT.log("claims"),
    conda:
        "../../envs/study.yaml"
    params:
        about=config["about"],
        imagenet_source=config["imagenet_source"],
        plays=STUDY.dataset_roles(),
        variant_optimizers={
            run.variant: STUDY.training(run)["optimizer"]
            for run in STUDY.dynamics_runs()
        },
        inference=config["robustness"]["inference"],
        identical_copy=(
            [STUDY.controls_source, STUDY.controls_dataset]
            if STUDY.controls_enabled
            else None
        ),
    script:
        "../scripts/claims.py"
