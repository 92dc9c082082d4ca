"""Figures: every figure kind of the paper, as PNG (in the report) and PDF beside it."""

RUN = "{source}/{dataset}/{task}/{variant}"


localrules:
    figure_task_comparison,
    figure_source_comparison,
    figure_invariance_flow,
    figure_dynamics,
    figure_early_epoch_correlation,
    figure_variants,


rule figure_task_comparison:
    input:
        TABLES["layer_metrics"],
    output:
        learning_forgetting=figure(
            f"{FIG}/task_comparison/{{source}}.png",
            "task_comparison",
            "1. Finetuning task",
            "{source}",
        ),
        learning_forgetting_pdf=f"{FIG}/task_comparison/{{source}}.pdf",
        cka=figure(
            f"{FIG}/cka_divergence_by_task/{{source}}.png",
            "cka_divergence_by_task",
            "1. Finetuning task",
            "{source}",
        ),
        cka_pdf=f"{FIG}/cka_divergence_by_task/{{source}}.pdf",
    log:
        log_path("figure_task_comparison", "{source}"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_task_comparison.py"


rule figure_source_comparison:
    input:
        TABLES["layer_metrics"],
    output:
        learning_forgetting=figure(
            f"{FIG}/source_comparison.png",
            "source_comparison",
            "2. Pretraining source",
        ),
        learning_forgetting_pdf=f"{FIG}/source_comparison.pdf",
        cka=figure(
            f"{FIG}/cka_divergence_by_source.png",
            "cka_divergence_by_source",
            "2. Pretraining source",
        ),
        cka_pdf=f"{FIG}/cka_divergence_by_source.pdf",
    log:
        log_path("figure_source_comparison", "all"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_source_comparison.py"


rule figure_invariance_flow:
    input:
        TABLES["invariance_flow"],
    output:
        png=figure(
            f"{FIG}/invariance_flow/{RUN}.png",
            "invariance_flow",
            "3. Invariance flow",
            "{dataset}",
        ),
        pdf=f"{FIG}/invariance_flow/{RUN}.pdf",
    log:
        log_path("figure_invariance_flow", RUN),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_invariance_flow.py"


rule figure_dynamics:
    input:
        layer_metrics=TABLES["layer_metrics"],
        robust_accuracy=TABLES["robust_accuracy"],
    output:
        png=figure(
            f"{FIG}/dynamics/{RUN}.png",
            "dynamics",
            "4. Dynamics and robustness",
            "{variant}",
        ),
        pdf=f"{FIG}/dynamics/{RUN}.pdf",
    log:
        log_path("figure_dynamics", RUN),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_dynamics.py"


rule figure_early_epoch_correlation:
    input:
        TABLES["early_epoch_correlation"],
    output:
        png=figure(
            f"{FIG}/early_epoch_correlation/{RUN}.png",
            "early_epoch_correlation",
            "4. Dynamics and robustness",
            "{variant}",
        ),
        pdf=f"{FIG}/early_epoch_correlation/{RUN}.pdf",
    log:
        log_path("figure_early_epoch_correlation", RUN),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_early_epoch_correlation.py"


rule figure_variants:
    input:
        layer_metrics=TABLES["layer_metrics"],
        robust_accuracy=TABLES["robust_accuracy"],
    output:
        png=figure(
            f"{FIG}/variants/{{source}}/{{dataset}}/{{task}}.png",
            "variants",
            "5. Hyperparameter variants",
        ),
        pdf=f"{FIG}/variants/{{source}}/{{dataset}}/{{task}}.pdf",
    log:
        log_path("figure_variants", "{source}/{dataset}/{task}"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_variants.py"
