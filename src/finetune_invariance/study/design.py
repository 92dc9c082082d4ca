"""The study's design, read from a validated workflow config.

This module turns the config (schema: ``workflow/schemas/config.schema.yaml``) into the
set of runs, epochs and seeds the Snakemake DAG expands over, and into the objects the
training and metrics code take. The Snakefile and every workflow script go through it,
so the DAG and the jobs agree on what a run is.

Vocabulary:
- a *source* is a set of starting weights (``sources`` in the config);
- a *run* finetunes one source on one dataset for one task with one hyperparameter
  variant; its *pretrained model* p is the source checkpoint it started from and its
  *finetuned models* f are its checkpoints at the analysed epochs;
- a *dynamics run* is analysed at every epoch (Section 4.4), others at their last epoch.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

TASKS = ("classification", "reconstruction")


class ConfigError(ValueError):
    """A config value is valid for the schema but inconsistent with the rest of the design."""


@dataclass(frozen=True, order=True)
class Run:
    source: str
    dataset: str
    task: str
    variant: str

    @classmethod
    def from_wildcards(cls, wildcards) -> "Run":
        return cls(wildcards["source"], wildcards["dataset"], wildcards["task"], wildcards["variant"])

    @property
    def path(self) -> str:
        """The run's directory below each stage's results folder."""
        return f"{self.source}/{self.dataset}/{self.task}/{self.variant}"

    @property
    def context(self) -> dict[str, str]:
        return {"source": self.source, "dataset": self.dataset, "task": self.task, "variant": self.variant}

    def rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of a study table that belong to this run."""
        mask = pd.Series(True, index=df.index)
        for column, value in self.context.items():
            mask &= df[column] == value
        return df[mask]


class Study:
    """The design of one configured study (a validated config dict)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self._check_references()

    # --- what the config names --------------------------------------------------------

    @property
    def results(self) -> Path:
        return Path(self.config["results"])

    @property
    def seeds(self) -> list[int]:
        return list(self.config["stir"]["seeds"])

    def source_pretrain_dataset(self, source: str) -> str | None:
        weights = self._weights()[source]
        return weights.split(":", 1)[1] if weights.startswith("pretrain:") else None

    def corrupted_kind(self, dataset: str) -> str | None:
        return self.config["datasets"][dataset].get("corrupted")

    # --- runs, epochs, seeds --------------------------------------------------------

    def runs(self) -> list[Run]:
        """Every finetune run: the finetune_runs blocks (variant 'default') and the dynamics runs."""
        runs = {
            Run(s, d, t, "default")
            for block in self.config["finetune_runs"]
            for s in block["sources"]
            for d in block["datasets"]
            for t in block["tasks"]
        }
        runs |= set(self.dynamics_runs())
        return sorted(runs)

    def dynamics_runs(self) -> list[Run]:
        return sorted(
            Run(entry["source"], entry["dataset"], entry["task"], variant)
            for entry in self.config["dynamics"]
            for variant in entry["variants"]
        )

    def is_dynamics(self, run: Run) -> bool:
        return run in set(self.dynamics_runs())

    def epochs(self, run: Run) -> int:
        return int(self.training(stage="finetune", variant=run.variant)["epochs"])

    def analysed_epochs(self, run: Run) -> list[int]:
        """Every epoch of a dynamics run, the last epoch otherwise."""
        last = self.epochs(run)
        return list(range(1, last + 1)) if self.is_dynamics(run) else [last]

    def stir_tables(self) -> list[tuple[Run, int, int, Path]]:
        """(run, epoch, seed, path) of every PAIR_SIMILARITY table the study computes."""
        return [
            (run, epoch, seed, self.results / "stir" / run.path / f"epoch_{epoch:03d}" / f"seed{seed}.parquet")
            for run in self.runs()
            for epoch in self.analysed_epochs(run)
            for seed in self.seeds
        ]

    # --- objects for the package ----------------------------------------------------

    def training(self, stage: str, variant: str = "default") -> dict[str, Any]:
        """Hyperparameters of a stage ('pretrain' or 'finetune'), with a variant's overrides."""
        if variant not in self.config["variants"]:
            raise ConfigError(f"variant '{variant}' is not defined under 'variants' (defined: {sorted(self.config['variants'])})")
        return {**self.config[stage], **self.config["variants"][variant]}

    def model_spec(self, weights: str):
        from .models import ModelSpec

        model = self.config["model"]
        return ModelSpec(name=model["name"], overrides=dict(model.get("overrides", {})), weights=weights)

    def train_config(self, stage: str, variant: str = "default"):
        from .training import TrainConfig

        hyperparameters = self.training(stage, variant)
        return TrainConfig(**hyperparameters, image_size=self.image_size())

    def dataset(self, name: str, split: str, augment: bool = False):
        from .data import get_dataset

        return get_dataset(name, split, self.config["data_root"], download=self.config["download"], augment=augment)

    def train(self, model, *, stage: str, dataset: str, variant: str, work_dir: Path, checkpoint_epochs, run_name: str):
        """Train ``model`` on ``dataset`` with a stage's hyperparameters; resumes from ``work_dir``."""
        from .training import train

        config = self.train_config(stage, variant)
        return train(
            model,
            config,
            self.dataset(dataset, "train", augment=config.augment),
            self.dataset(dataset, "test"),
            work_dir,
            checkpoint_epochs=set(checkpoint_epochs),
            run_name=run_name,
            device=resolve_device(self.config["device"]),
        )

    def stir_images(self, dataset: str, seed: int):
        """The n test images of one STIR seed at the model's input size (float32 in [0, 1])."""
        import torch

        from .data import resize_to_model, sample_indices

        test = self.dataset(dataset, "test")
        indices = sample_indices(len(test), self.config["stir"]["n_images"], seed)
        images = torch.stack([test[int(i)][0] for i in indices])
        return resize_to_model(images, self.image_size())

    def image_size(self) -> int:
        model = self.config["model"]
        if "image_size" in model:
            return int(model["image_size"])
        return int(model.get("overrides", {}).get("img_size", 224))

    # --- consistency beyond the schema ----------------------------------------------

    def _weights(self) -> dict[str, str]:
        return {name: s["weights"] for name, s in self.config["sources"].items()}

    def _check_references(self) -> None:
        datasets = set(self.config["datasets"])
        sources = set(self.config["sources"])
        variants = set(self.config["variants"])
        for source, weights in self._weights().items():
            if weights.startswith("pretrain:") and weights.split(":", 1)[1] not in datasets:
                raise ConfigError(
                    f"sources.{source}.weights = '{weights}' names a dataset not under 'datasets' (defined: {sorted(datasets)})"
                )
        for i, block in enumerate(self.config["finetune_runs"]):
            _require_known(f"finetune_runs[{i}].sources", block["sources"], sources)
            _require_known(f"finetune_runs[{i}].datasets", block["datasets"], datasets)
        for i, entry in enumerate(self.config["dynamics"]):
            _require_known(f"dynamics[{i}].source", [entry["source"]], sources)
            _require_known(f"dynamics[{i}].dataset", [entry["dataset"]], datasets)
            _require_known(f"dynamics[{i}].variants", entry["variants"], variants)
            if self.corrupted_kind(entry["dataset"]) is None:
                raise ConfigError(
                    f"dynamics[{i}] analyses robustness on '{entry['dataset']}', which has no "
                    f"'corrupted' set: set datasets.{entry['dataset']}.corrupted"
                )
        if "default" not in variants:
            raise ConfigError("'variants' must define 'default' (the finetune hyperparameters unchanged)")


def describe_schema_error(error) -> str:
    """A one-paragraph message for a ``jsonschema.ValidationError`` of the config: the
    offending key as a dotted path, what is wrong, and what the schema allows there."""
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    message = f"config key '{key}': {error.message}"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and "properties" in schema:
        message += f"; allowed keys here: {sorted(schema['properties'])}"
    elif "enum" in schema:
        message += f"; allowed values: {schema['enum']}"
    if "description" in schema:
        message += f" ({' '.join(schema['description'].split())})"
    return message


def _require_known(key: str, values: list[str], known: set[str]) -> None:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ConfigError(f"{key}: {unknown} not defined (defined: {sorted(known)})")


def final_epoch_rows(df: pd.DataFrame, variant: str = "default") -> pd.DataFrame:
    """The rows of one variant at each run's last analysed epoch (the paper's main comparisons)."""
    df = df[df["variant"] == variant]
    last = df.groupby(["source", "dataset", "task"])["epoch"].transform("max")
    return df[df["epoch"] == last]


def with_context(df: pd.DataFrame, run: Run, epoch: int | None = None) -> pd.DataFrame:
    """Prefix a table with the run's study context columns (and the epoch, if given)."""
    context = {**run.context, **({} if epoch is None else {"epoch": epoch})}
    return df.assign(**context)[[*context, *df.columns]]


def publish(source: Path, destination: Path) -> None:
    """Put a finished file of a job's work directory at its declared output path.

    A hard link where the file system allows (no copy of large checkpoints), a copy
    otherwise; the work directory keeps its file so a rerun can resume from it.
    """
    import os
    import shutil

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.unlink(missing_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def resolve_device(name: str) -> str:
    """'auto' means CUDA where there is one; anything else is passed to torch as is."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config 'device: {name}' but torch sees no CUDA device; use 'device: auto' or 'cpu'")
    return name


@contextlib.contextmanager
def logged_to(log_path: str | Path) -> Iterator[logging.Logger]:
    """Send a workflow job's stdout, stderr and logging to its rule's ``log:`` file."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield logging.getLogger("finetune_invariance")
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            raise
        finally:
            root.removeHandler(handler)
            sys.stdout.flush()
