"""What happens to a Vision Transformer's invariances when it is finetuned.

    snakemake --cores 2                               # the embedded miniature study
    snakemake --configfile config/paper.yaml ...      # the paper's design (README.md)
    snakemake --report report.html                    # the HTML report

The science lives in the `finetune_invariance` package; rules only wire files to it.
"""

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from finetune_invariance.study.config import (
    ConfigError,
    check_config,
    describe_schema_error,
)

min_version("9.0")


# The embedded miniature study is the default; `--configfile other.yaml` replaces it
# (rather than being merged into it, which would mix the two designs).
if not workflow.config_settings.configfiles:

    configfile: Path(workflow.basedir) / "config.yaml"


try:
    validate(config, "workflow/schemas/config.schema.yaml")
    check_config(
        config,
        model_check_cache=Path(".snakemake/finetune_invariance/model_checks.json"),
    )
except WorkflowError as error:
    # Snakemake's message dumps the whole schema; name the key and what it allows instead.
    raise WorkflowError(describe_schema_error(error.__context__)) from None
except ConfigError as error:
    raise WorkflowError(str(error)) from None


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/stir.smk"
include: "workflow/rules/robustness.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/figures.smk"


onstart:
    start_warm_interpreter()


onsuccess:
    stop_warm_interpreter()


onerror:
    stop_warm_interpreter()


localrules:
    all,


rule all:
    default_target: True
    input:
        final_outputs(),
