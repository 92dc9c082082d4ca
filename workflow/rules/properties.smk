"""The matched properties: which measured properties of the paper's setting this
configuration matches (docs/scale-model.md), read beside the claims' verdicts. Inputs:
Table 1 and the robust accuracy (the run's measurements) and the identical copy's layer
metrics where the controls run (the STIR floor)."""


rule matched_properties:
    input:
        **(
            {"control_layer_metrics": table("control_layer_metrics")}
            if STUDY.controls_enabled
            else {}
        ),
        table1_accuracy=table("table1_accuracy"),
        robust_accuracy=table("robust_accuracy"),
    output:
        table=table("matched_properties"),
        markdown=markdown("matched_properties"),
        html=report(
            table_page("matched_properties"),
            caption="../report/matched_properties.rst",
            category="6. Tables",
        ),
    log:
        LAYOUT.log("matched_properties"),
    conda:
        "../../envs/study.yaml"
    params:
        config=config,
    script:
        "../scripts/matched_properties.py"
