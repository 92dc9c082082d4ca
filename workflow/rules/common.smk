"""Shared by every stage: the study design, paths, resources and input functions."""

from pathlib import Path

from finetune_invariance.study.design import Run, Study
from finetune_invariance.study.tables import STUDY_TABLES

STUDY = Study(config)
R = STUDY.results
DATA = Path(config["data_root"])
RES = config["resources"]


def _one_of(names):
    return "|".join(sorted(names))


wildcard_constraints:
    source=_one_of(config["sources"]),
    dataset=_one_of(config["datasets"]),
    task="classification|reconstruction",
    variant=_one_of(config["variants"]),
    epoch=r"\d{3}",
    seed=r"\d+",


def run_of(wildcards):
    return Run.from_wildcards(wildcards)


def log_path(rule_name, pattern):
    return R / "logs" / rule_name / f"{pattern}.log"


def benchmark_path(rule_name, pattern):
    return R / "benchmarks" / rule_name / f"{pattern}.tsv"


def dataset_files(wildcards):
    """Files a job reading the dataset depends on: generated datasets are made by a rule;
    torchvision datasets are read from data_root (or downloaded) inside the job."""
    if config["datasets"][wildcards.dataset]["kind"] == "generated":
        return [
            DATA / wildcards.dataset / "train.npz",
            DATA / wildcards.dataset / "test.npz",
        ]
    return []


# Resources: GPU rules ask for one GPU (run `--resources gpu=1` on a one-GPU machine so
# they do not pile up; the SLURM profile turns `gpu` into a GPU request).
GPU_RESOURCES = dict(gpu=1, mem_mb=RES["gpu_mem_mb"])


# --- the files the DAG expands over ---------------------------------------------------


def stir_tables():
    return [path for *_, path in STUDY.stir_tables()]


def robustness_tables():
    return [R / "robustness" / f"{run.path}.parquet" for run in STUDY.dynamics_runs()]


def history_tables():
    """Training histories of every run, in the order of STUDY.runs()."""
    return [R / "finetune" / run.path / "history.parquet" for run in STUDY.runs()]


TABLES = {stem: R / "tables" / f"{stem}.parquet" for stem in STUDY_TABLES}


def final_outputs():
    return [*TABLES.values(), *markdown_tables(), R / "claims.md", *figure_files()]


# --- input functions and output lists of the stages ------------------------------------


def corrupted_source_files(wildcards):
    """A generated corrupted set corrupts the test split; a published one is read from data_root."""
    if STUDY.corrupted_kind(wildcards.dataset) == "published":
        return [cifar_c_dir(wildcards.dataset) / "labels.npy"]
    return dataset_files(wildcards)


def cifar_c_dir(dataset):
    return DATA / {"cifar10": "CIFAR-10-C", "cifar100": "CIFAR-100-C"}[dataset]


def source_inputs(wildcards):
    dataset = STUDY.source_pretrain_dataset(wildcards.source)
    return [R / "pretrain" / dataset / "model.safetensors"] if dataset else []


def markdown_tables():
    return [
        R / "tables" / "table1_accuracy.md",
        R / "tables" / "learning_forgetting_correlation.md",
        R / "tables" / "strongest_hypotheses.md",
    ]


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
        files += [
            FIG / "task_comparison" / f"{source}.png",
            FIG / "cka_divergence_by_task" / f"{source}.png",
        ]
    files += [
        FIG / "invariance_flow" / f"{run.path}.png"
        for run in STUDY.runs()
        if run.variant == "default"
    ]
    for run in STUDY.dynamics_runs():
        files += [
            FIG / "dynamics" / f"{run.path}.png",
            FIG / "early_epoch_correlation" / f"{run.path}.png",
        ]
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
