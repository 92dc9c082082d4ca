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
    check_config_files,
    describe_schema_error,
)
from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.results_folder import (
    check_published_checkpoints,
    check_results_folder,
    check_weights_files,
    stamp_results_folder,
)
from finetune_invariance.study.slurm_site import check_site_values

min_version("9.0")


# The embedded miniature study is the default; `--configfile other.yaml` replaces it
# (rather than being merged into it, which would mix the two designs).
if not workflow.config_settings.configfiles:
    try:  # a YAML syntax error named with its line (profiles/default does it for --configfile)
        check_config_files([Path(workflow.basedir) / "config.yaml"])
    except ConfigError as error:
        raise WorkflowError(str(error)) from None

    configfile: Path(workflow.basedir) / "config.yaml"


SCHEMA = "workflow/schemas/config.schema.yaml"
CONFIG_FILES = workflow.config_settings.configfiles or [
    Path(workflow.basedir) / "config.yaml"
]
# The main Snakemake process checks the results folder; jobs re-parse this file, and --lint
# (the one command that skips the envvars check) reads the rules only.
CHECKS_RESULTS_FOLDER = workflow.exec_mode.name == "DEFAULT" and workflow.check_envvars

try:
    # Snakemake's YAML loading keeps the last of a repeated key without a word.
    check_config_files(CONFIG_FILES)
    validate(config, SCHEMA)
    check_config(
        config,
        model_check_cache=Path(".snakemake/finetune_invariance/model_checks.json"),
        workflow_dir=workflow.basedir,
    )
    check_site_values(workflow.resource_settings)
    if CHECKS_RESULTS_FOLDER:
        check_results_folder(config, CONFIG_FILES, Path(workflow.basedir) / SCHEMA)
        check_published_checkpoints(StudyDesign(config))
        check_weights_files(
            StudyDesign(config, workflow_dir=workflow.basedir),
            cache=Path(".snakemake/finetune_invariance/file_hashes.json"),
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
include: "workflow/rules/controls.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/properties.smk"


onstart:
    stamp_results_folder(config, CONFIG_FILES)
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
