"""The study's vocabulary: what a run is, the key columns of the study's tables, the
names every analysis shares, and the row selections they all make.

- A *source* is a set of starting weights (config ``sources``); ``scratch`` is random
  initialisation.
- A *run* finetunes one source on one dataset for one task with one hyperparameter
  variant (:class:`Run`); its *pretrained model* p is the source's weights and its
  *finetuned models* f are its checkpoints.
- A run's *analysed checkpoint* is the one the paper's per-layer comparisons (Figs. 1-4,
  Table 1) show: its best epoch by test accuracy (the authors' scripts) or its last
  epoch (config ``analysed_checkpoint``). A *dynamics run* is analysed at every epoch too
  (Section 4.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

CLASSIFICATION, RECONSTRUCTION = "classification", "reconstruction"
TASKS = (CLASSIFICATION, RECONSTRUCTION)

#: The source name and weights spelling of random initialisation.
SCRATCH = "scratch"
#: The variant that changes nothing: the paper's hyperparameters.
DEFAULT_VARIANT = "default"

#: Per-layer metrics of a (pretrained, finetuned) pair (docs/method.md "The study's metrics").
METRICS = ("forgetting", "learning", "cka_divergence")

#: The uncorrupted test sample in robust-accuracy tables, and its severity.
CLEAN, CLEAN_SEVERITY = "clean", 0

#: Which checkpoint of a run the per-layer analysis reads (config ``analysed_checkpoint``).
BEST, LAST = "best", "last"
ANALYSED_CHECKPOINTS = (BEST, LAST)

#: The columns that name a run in every study table.
RUN_KEYS = ("source", "dataset", "task", "variant")


@dataclass(frozen=True, order=True)
class Run:
    """One finetuning run: source x dataset x task x variant."""

    source: str
    dataset: str
    task: str
    variant: str = DEFAULT_VARIANT

    @classmethod
    def from_wildcards(cls, wildcards: Mapping[str, str]) -> Run:
        return cls(*(wildcards[key] for key in RUN_KEYS))

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Run:
        return cls(*(str(row[key]) for key in RUN_KEYS))

    @classmethod
    def parse(cls, path: str) -> Run:
        """The run named by its :attr:`path`, 'source/dataset/task/variant'."""
        parts = path.split("/")
        if len(parts) != len(RUN_KEYS):
            raise ValueError(f"a run is named '{'/'.join(RUN_KEYS)}', got {path!r}")
        return cls(*parts)

    @property
    def path(self) -> str:
        """The run's folder below each stage's results folder: source/dataset/task/variant."""
        return "/".join(self.context.values())

    @property
    def context(self) -> dict[str, str]:
        """The run's values of :data:`RUN_KEYS`."""
        return {"source": self.source, "dataset": self.dataset, "task": self.task, "variant": self.variant}

    @property
    def label(self) -> str:
        """A short human-readable name for titles and evidence: 'source → dataset, task (variant)'."""
        variant = "" if self.variant == DEFAULT_VARIANT else f" ({self.variant})"
        return f"{self.source} → {self.dataset}, {self.task}{variant}"

    def rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of a study table that belong to this run."""
        mask = pd.Series(True, index=df.index)
        for column, value in self.context.items():
            mask &= df[column] == value
        return df[mask]


def runs_in(df: pd.DataFrame) -> list[Run]:
    """The distinct runs of a study table, sorted."""
    return sorted(Run.from_row(row) for row in df[list(RUN_KEYS)].drop_duplicates().to_dict("records"))


def with_context(df: pd.DataFrame, run: Run, epoch: int | None = None) -> pd.DataFrame:
    """Prefix a table with the run's context columns (and the epoch, if given)."""
    context = {**run.context, **({} if epoch is None else {"epoch": epoch})}
    return df.assign(**context)[[*context, *df.columns]]


def analysed_rows(df: pd.DataFrame, analysed: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` at each run's analysed checkpoint.

    ``analysed`` holds one row per run with its analysed ``epoch`` (the ``table1_accuracy``
    table); runs of ``df`` without a row there are dropped.
    """
    keys = [*RUN_KEYS, "epoch"]
    selected = analysed[keys].drop_duplicates()
    return df.merge(selected, on=keys, how="inner")[list(df.columns)]


def variant_rows(df: pd.DataFrame, variant: str = DEFAULT_VARIANT) -> pd.DataFrame:
    """The rows of one hyperparameter variant."""
    return df[df["variant"] == variant]
