"""Shared by every stage: the study design, the artifact layout, resources, and the input
functions that expand the DAG over runs, checkpoints and seeds."""

from finetune_invariance.study import warm
from finetune_invariance.study.cifar_c import ARCHIVES, cifar_c_dir
from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.layout import RUN, checkpoint_label
from finetune_invariance.study.tables import STUDY_TABLES
from finetune_invariance.study.vocabulary import TASKS, Run

STUDY = StudyDesign(config, workflow_dir=workflow.basedir)
LAYOUT = STUDY.layout
RES = config["resources"]


def _one_of(names):
    return "|".join(sorted(names))


wildcard_constraints:
    source=_one_of(config["sources"]),
    dataset=_one_of(config["datasets"]),
    task=_one_of(TASKS),
    variant=_one_of(config["variants"]),
    checkpoint=r"epoch_\d{3}|best",
    seed=r"\d+",


_WARM_SERVERS = []


def start_warm_interpreter():
    """The warm interpreter for local jobs (config ``warm_interpreter``)."""
    if config["warm_interpreter"] and workflow.local_exec:
        _WARM_SERVERS.append(warm.start())


def stop_warm_interpreter():
    while _WARM_SERVERS:
        warm.stop(_WARM_SERVERS.pop())


def run_of(wildcards):
    return Run.from_wildcards(wildcards)


# GPU rules ask for one GPU (run `--resources gpu=1` on a one-GPU machine so they do not
# pile up; the SLURM profile turns `gpu` into a GPU request).
GPU_RESOURCES = dict(gpu=1, mem_mb=RES["gpu_mem_mb"])


# --- input functions -------------------------------------------------------------------


def dataset_files(wildcards):
    """A generated dataset's files (made by a rule); torchvision datasets are read from
    data_root (or downloaded) inside the job."""
    if not STUDY.is_generated(wildcards.dataset):
        return []
    return [
        LAYOUT.pattern(f"generated_{split}", dataset=wildcards.dataset)
        for split in ("train", "test")
    ]


def corrupted_source_files(wildcards):
    """A generated corrupted sample corrupts the test split; a published one is read from
    data_root (its labels.npy stands for the folder)."""
    if STUDY.corrupted_kind(wildcards.dataset) == "published":
        return [cifar_c_labels(wildcards.dataset)]
    return dataset_files(wildcards)


def cifar_c_labels(dataset):
    return cifar_c_dir(LAYOUT.data_root, dataset) / "labels.npy"


#: Published corrupted test sets by the folder they extract to.
CIFAR_C_FOLDERS = {archive.folder: dataset for dataset, archive in ARCHIVES.items()}


def source_inputs(wildcards):
    """A 'pretrain:' source is the checkpoint of the run that trains it."""
    run = STUDY.pretraining_run(wildcards.source)
    return {"checkpoints": LAYOUT.path("checkpoints", run)} if run else {}


def training_priority(wildcards):
    return STUDY.training_priority(run_of(wildcards))


def source_priority(wildcards):
    """A trained source's copy is on its pretraining run's chain: the same priority."""
    run = STUDY.pretraining_run(wildcards.source)
    return STUDY.training_priority(run) if run else 0


def source_checkpoint(wildcards):
    run = STUDY.pretraining_run(wildcards.source)
    if run is None:
        return None
    return LAYOUT.path(
        "checkpoint", run, checkpoint=STUDY.source_checkpoint(wildcards.source)
    )


def source_inversions(run):
    """The inversions of ``run``'s source on its dataset, one per STIR seed."""
    return [
        LAYOUT.path(
            "pretrained_inversions", source=run.source, dataset=run.dataset, seed=seed
        )
        for seed in STUDY.seeds
    ]


def monitor_inputs(wildcards):
    """A monitored run reads its source's inversions of every seed (the monitor's X'_p)."""
    run = run_of(wildcards)
    if not STUDY.is_monitored(run):
        return {}
    return {"inversions": source_inversions(run)}


def table(stem):
    return LAYOUT.path("table", stem=stem)


def markdown(stem):
    return LAYOUT.path("markdown", stem=stem)


def table_page(stem):
    """A table as an HTML page: the report shows HTML, not Markdown."""
    return LAYOUT.path("html", stem=stem)


def figure_path(kind, name):
    return LAYOUT.path("figure", figure=f"{kind}/{name}")


# --- what the DAG expands over ---------------------------------------------------------


def pair_tables():
    return [
        LAYOUT.path(
            "pair_similarity", job.run, checkpoint=job.checkpoint, seed=job.seed
        )
        for job in STUDY.pair_jobs()
    ]


def monitor_only_tables():
    """The monitor tables of the runs measured by the forgetting monitor alone."""
    return [
        LAYOUT.path("forgetting_monitor", run)
        for run in STUDY.runs()
        if STUDY.is_monitor_only(run)
    ]


def run_sources():
    return sorted({run.source for run in STUDY.runs()})


def history_tables():
    return [LAYOUT.path("history", run) for run in STUDY.training_runs()]


def robustness_tables():
    return [LAYOUT.path("robust_accuracy", run) for run in STUDY.dynamics_runs()]


def monitor_tables():
    return [
        LAYOUT.path("forgetting_monitor", run)
        for run in STUDY.runs()
        if STUDY.is_monitored(run)
    ]


def control_tables():
    """The model controls' STIR tables, one per seed (every control in each)."""
    return [LAYOUT.path("control_pair_similarity", seed=seed) for seed in STUDY.seeds]


def control_robustness_inputs(wildcards):
    """The planted robustness series' inputs: the robustness run's source and checkpoints,
    the source's inversions on its dataset (every seed) and its corrupted sample."""
    run = STUDY.robustness_control_run()
    return {
        "source": LAYOUT.path("source_weights", source=run.source),
        "checkpoints": LAYOUT.path("checkpoints", run),
        "inversions": source_inversions(run),
        "corrupted": LAYOUT.path("corrupted_testset", dataset=run.dataset),
    }


def controls_inputs(wildcards):
    """The controls table's inputs: the model controls' tables and, with a robustness run,
    the planted series and the run's own layer metrics and robust accuracy."""
    inputs = {"pairs": control_tables()}
    run = STUDY.robustness_control_run()
    if run is not None:
        inputs |= {
            "series_metrics": LAYOUT.path("control_robustness_metrics"),
            "series_robust": LAYOUT.path("control_robust_accuracy"),
            "layer_metrics": table("layer_metrics"),
            "robust_accuracy": LAYOUT.path("robust_accuracy", run),
        }
    return inputs


def controls_outputs():
    """The controls table, where config ``controls`` enables them."""
    return {"controls": table("controls")} if STUDY.controls_enabled else {}


#: Beyond the paper: the models compared (rule model_comparison), as table, Markdown and report page.
MODEL_COMPARISON_FILES = {
    "table": table("model_comparison"),
    "markdown": markdown("model_comparison"),
    "html": table_page("model_comparison"),
}
#: The rule's outputs: the files, the page shown in the report.
MODEL_COMPARISON_OUTPUTS = MODEL_COMPARISON_FILES | {
    "html": report(
        MODEL_COMPARISON_FILES["html"],
        caption="../report/model_comparison.rst",
        category="10. Beyond the paper: the sources' models compared",
    )
}


def model_comparison_outputs():
    """The model comparison, where the runs start from more than one model."""
    if not STUDY.compares_models:
        return []
    return list(MODEL_COMPARISON_FILES.values())


def final_outputs():
    return [
        *(table(stem) for stem in STUDY_TABLES),
        *controls_outputs().values(),
        *model_comparison_outputs(),
        *(markdown(stem) for stem in MARKDOWN_TABLES),
        *(table_page(stem) for stem in MARKDOWN_TABLES),
        LAYOUT.path("claims"),
        LAYOUT.path("claims_html"),
        *(png for pngs in FIGURES.values() for png in pngs),
    ]


#: Tables also written as Markdown and as an HTML page (the page shown in the report).
MARKDOWN_TABLES = (
    "table1_accuracy",
    "learning_forgetting_correlation",
    "named_hypotheses",
)


def sources_with_both_tasks():
    tasks = {}
    for run in STUDY.runs():
        if run.variant == "default":
            tasks.setdefault(run.source, set()).add(run.task)
    return sorted(s for s, t in tasks.items() if len(t) == len(TASKS))


def default_runs():
    return [run for run in STUDY.runs() if run.variant == "default"]


#: Every figure, by kind: PNG path -> what it shows (the figure script's instructions).
FIGURES = {
    "task_comparison": {
        figure_path("task_comparison", source): {"source": source}
        for source in sources_with_both_tasks()
    },
    "cka_divergence_by_task": {
        figure_path("cka_divergence_by_task", source): {"source": source}
        for source in sources_with_both_tasks()
    },
    "source_comparison": {
        figure_path("source_comparison", "classification"): {"task": "classification"}
    },
    "cka_divergence_by_source": {
        figure_path("cka_divergence_by_source", "classification"): {
            "task": "classification"
        }
    },
    "invariance_flow": {
        figure_path("invariance_flow", run.path): run.context for run in default_runs()
    },
    "dynamics": {
        figure_path("dynamics", run.path): run.context
        for run in STUDY.dynamics_runs()
        if not STUDY.is_monitor_only(run)
    },
    "early_epoch_correlation": {
        figure_path("early_epoch_correlation", run.path): run.context
        for run in STUDY.dynamics_runs()
    },
    "variants": {
        figure_path("variants", "/".join(setting)): dict(
            zip(("source", "dataset", "task"), setting)
        )
        for setting in STUDY.variant_groups()
    },
    "forgetting_monitor": {
        figure_path("forgetting_monitor", run.path): run.context
        for run in STUDY.dynamics_runs()
        if STUDY.is_monitored(run)
    },
}

#: The report's caption file and category of each figure kind.
FIGURE_REPORT = {
    "task_comparison": ("task_comparison", "1. Finetuning task"),
    "cka_divergence_by_task": ("cka_divergence_by_task", "1. Finetuning task"),
    "source_comparison": ("source_comparison", "2. Pretraining source"),
    "cka_divergence_by_source": ("cka_divergence_by_source", "2. Pretraining source"),
    "invariance_flow": ("invariance_flow", "3. Invariance flow"),
    "dynamics": ("dynamics", "4. Dynamics and robustness"),
    "early_epoch_correlation": (
        "early_epoch_correlation",
        "4. Dynamics and robustness",
    ),
    "variants": ("variants", "5. Hyperparameter variants"),
    "forgetting_monitor": (
        "forgetting_monitor",
        "8. Beyond the paper: forgetting monitor",
    ),
}


def shown_in_report(path, caption, category):
    """``path`` flagged for the HTML report with its caption file and category."""
    return report(path, caption=f"../report/{caption}.rst", category=category)


def figure_outputs(*kinds):
    """A figure rule's outputs: each PNG of ``kinds`` (shown in the report) and its PDF."""
    outputs = []
    for kind in kinds:
        for png in FIGURES[kind]:
            outputs += [
                shown_in_report(png, *FIGURE_REPORT[kind]),
                png.with_suffix(".pdf"),
            ]
    return outputs


def figure_plan(*kinds):
    """{kind: {PNG path: selection}} for a figure script's params."""
    return {
        kind: {str(png): what for png, what in FIGURES[kind].items()} for kind in kinds
    }


def identical_copy_floor():
    """The controls' layer metrics, whose identical copy is the floor of learning a claim
    reads (where config ``controls`` enables them)."""
    if not STUDY.controls_enabled:
        return {}
    return {"control_layer_metrics": table("control_layer_metrics")}


def figure_roles():
    """What each dataset and source plays in the paper's design, named in the figures."""
    return {"datasets": STUDY.dataset_roles(), "sources": STUDY.source_roles()}
