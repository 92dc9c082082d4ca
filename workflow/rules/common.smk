"""Helpers shared by the rule files: the study design, paths and resources."""

from pathlib import Path

from finetune_invariance.study import Run, Study
from finetune_invariance.tables import STUDY_TABLES

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
        return [DATA / wildcards.dataset / "train.npz", DATA / wildcards.dataset / "test.npz"]
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
    return [R / "finetune" / run.path / "history.parquet" for run in STUDY.runs()]


TABLES = {stem: R / "tables" / f"{stem}.parquet" for stem in STUDY_TABLES}


def final_outputs():
    return [*TABLES.values(), *markdown_tables(), R / "claims.md", *figure_files()]
