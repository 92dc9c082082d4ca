"""Analysis: the study metrics and robustness statistics, aggregated into tables."""


localrules:
    robust_accuracy_table,
    learning_forgetting_correlation,
    table1,
    claims,


rule layer_metrics:
    input:
        stir_tables(),
    output:
        layer_metrics=TABLES["layer_metrics"],
        invariance_flow=TABLES["invariance_flow"],
    log:
        log_path("layer_metrics", "all"),
    benchmark:
        benchmark_path("layer_metrics", "all")
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
        TABLES["robust_accuracy"],
    log:
        log_path("robust_accuracy_table", "all"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/robust_accuracy_table.py"


rule robustness_correlations:
    input:
        layer_metrics=TABLES["layer_metrics"],
        robust_accuracy=TABLES["robust_accuracy"],
    output:
        hypotheses=TABLES["hypotheses"],
        early=TABLES["early_epoch_correlation"],
        strongest=R / "tables" / "strongest_hypotheses.md",
    log:
        log_path("robustness_correlations", "all"),
    benchmark:
        benchmark_path("robustness_correlations", "all")
    conda:
        "../../envs/study.yaml"
    params:
        top_k=config["robustness"]["early_epoch_top_k"],
    script:
        "../scripts/robustness_correlations.py"


rule learning_forgetting_correlation:
    input:
        TABLES["layer_metrics"],
    output:
        table=TABLES["learning_forgetting_correlation"],
        markdown=R / "tables" / "learning_forgetting_correlation.md",
    log:
        log_path("learning_forgetting_correlation", "all"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/learning_forgetting_correlation.py"


rule table1:
    input:
        history_tables(),
    output:
        table=TABLES["table1_accuracy"],
        markdown=R / "tables" / "table1_accuracy.md",
    log:
        log_path("table1", "all"),
    conda:
        "../../envs/study.yaml"
    params:
        runs=STUDY.runs(),
    script:
        "../scripts/table1.py"


rule claims:
    input:
        **TABLES,
    output:
        report(
            R / "claims.md",
            caption="../report/claims.rst",
            category="6. Claims of the paper",
        ),
    log:
        log_path("claims", "all"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/claims.py"
