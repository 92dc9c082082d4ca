"""Beyond the paper: the sources' models side by side (sources.<name>.model), when the
runs start from more than one model (docs/your-models.md)."""


localrules:
    model_comparison,


rule model_comparison:
    input:
        layer_metrics=table("layer_metrics"),
        table1=table("table1_accuracy"),
        correlation=table("learning_forgetting_correlation"),
        named=table("named_hypotheses"),
    output:
        **MODEL_COMPARISON_OUTPUTS,
    log:
        LAYOUT.log("model_comparison"),
    conda:
        "../../envs/study.yaml"
    params:
        models={source: STUDY.model_entry(source)["name"] for source in run_sources()},
    script:
        "../scripts/model_comparison.py"
