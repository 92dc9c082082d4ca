"""Figures: every figure kind of the paper, as PNG (in the report) and PDF."""

FIG = R / "figures"


def sources_with_both_tasks():
    tasks = {}
    for run in STUDY.runs():
        if run.variant == "default":
            tasks.setdefault(run.source, set()).add(run.task)
    return sorted(s for s, t in tasks.items() if len(t) == 2)


def variant_groups():
    """(source, dataset, task) of dynamics entries compared across several variants."""
    groups = {}
    for run in STUDY.dynamics_runs():
        groups.setdefault((run.source, run.dataset, run.task), []).append(run.variant)
    return sorted(k for k, v in groups.items() if len(v) > 1)


def figure_files():
    files = [FIG / "source_comparison.png", FIG / "cka_divergence_by_source.png"]
    for source in sources_with_both_tasks():
        files += [FIG / "task_comparison" / f"{source}.png", FIG / "cka_divergence_by_task" / f"{source}.png"]
    files += [FIG / "invariance_flow" / f"{run.path}.png" for run in STUDY.runs() if run.variant == "default"]
    for run in STUDY.dynamics_runs():
        files += [FIG / "dynamics" / f"{run.path}.png", FIG / "early_epoch_correlation" / f"{run.path}.png"]
    files += [FIG / "variants" / f"{s}/{d}/{t}.png" for s, d, t in variant_groups()]
    return files


def figure(path, caption, category, subcategory=None):
    """A PNG output shown in the report (its PDF is written beside it)."""
    return report(
        path,
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=subcategory,
        labels=None,
    )


rule figure_task_comparison:
    input:
        TABLES["layer_metrics"],
    output:
        learning_forgetting=figure(
            FIG / "task_comparison" / "{source}.png", "task_comparison", "1. Finetuning task", "{source}"
        ),
        cka=figure(
            FIG / "cka_divergence_by_task" / "{source}.png", "cka_divergence_by_task", "1. Finetuning task", "{source}"
        ),
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
        learning_forgetting=figure(FIG / "source_comparison.png", "source_comparison", "2. Pretraining source"),
        cka=figure(FIG / "cka_divergence_by_source.png", "cka_divergence_by_source", "2. Pretraining source"),
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
        figure(
            FIG / "invariance_flow" / "{source}" / "{dataset}" / "{task}" / "{variant}.png",
            "invariance_flow",
            "3. Invariance flow",
            "{dataset}",
        ),
    log:
        log_path("figure_invariance_flow", "{source}/{dataset}/{task}/{variant}"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_invariance_flow.py"


rule figure_dynamics:
    input:
        layer_metrics=TABLES["layer_metrics"],
        robust_accuracy=TABLES["robust_accuracy"],
    output:
        figure(
            FIG / "dynamics" / "{source}" / "{dataset}" / "{task}" / "{variant}.png",
            "dynamics",
            "4. Dynamics and robustness",
            "{variant}",
        ),
    log:
        log_path("figure_dynamics", "{source}/{dataset}/{task}/{variant}"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_dynamics.py"


rule figure_early_epoch_correlation:
    input:
        TABLES["early_epoch_correlation"],
    output:
        figure(
            FIG / "early_epoch_correlation" / "{source}" / "{dataset}" / "{task}" / "{variant}.png",
            "early_epoch_correlation",
            "4. Dynamics and robustness",
            "{variant}",
        ),
    log:
        log_path("figure_early_epoch_correlation", "{source}/{dataset}/{task}/{variant}"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_early_epoch_correlation.py"


rule figure_variants:
    input:
        layer_metrics=TABLES["layer_metrics"],
        robust_accuracy=TABLES["robust_accuracy"],
    output:
        figure(
            FIG / "variants" / "{source}" / "{dataset}" / "{task}.png",
            "variants",
            "5. Hyperparameter variants",
        ),
    log:
        log_path("figure_variants", "{source}/{dataset}/{task}"),
    conda:
        "../../envs/study.yaml"
    script:
        "../scripts/figure_variants.py"
