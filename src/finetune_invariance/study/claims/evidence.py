"""What the claims read: the study's tables with the selections the claims make, seed
statistics, and the paper's layer numbers mapped onto the model's depth."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..paper import scaled_layer
from ..tables import STUDY_TABLES, conform
from ..vocabulary import CLASSIFICATION, DEFAULT_VARIANT, Run, analysed_rows, runs_in

# Thresholds shared by several claims (each claim's own are beside it).
ALPHA = 0.05  # significance level of every test; after the per-family Bonferroni correction where the paper applies one
STRONG_R = 0.7  # a "strong" correlation: the conventional r >= 0.7 (the paper's strong ones are 0.78 and 0.877)
MIN_DYNAMICS_EPOCHS = 3  # a run with fewer finetuned epochs cannot rise and fall


class NotMeasured(Exception):
    """The tables lack the rows a claim needs; the message says which."""


class StudyTables:
    """The study's tables by ``STUDY_TABLES`` stem, with the selections the claims make.

    ``variant_optimizers`` maps each variant of the dynamics runs to its optimizer
    ('sgd' or 'adam'); None leaves the variant claims unmeasured.
    """

    def __init__(
        self,
        tables: Mapping[str, pd.DataFrame],
        imagenet_source: str,
        variant_optimizers: Mapping[str, str] | None = None,
    ) -> None:
        unknown = sorted(set(tables) - set(STUDY_TABLES))
        if unknown:
            raise ValueError(f"unknown study table(s) {unknown}; expected stems among {sorted(STUDY_TABLES)}")
        self._tables = {stem: conform(df, STUDY_TABLES[stem]) for stem, df in tables.items()}
        self.imagenet_source = imagenet_source
        self.variant_optimizers = None if variant_optimizers is None else dict(variant_optimizers)
        if self.variant_optimizers is not None and "named_hypotheses" in self._tables:
            lacking = sorted(set(self._tables["named_hypotheses"]["variant"]) - set(self.variant_optimizers))
            if lacking:
                raise ValueError(
                    f"variant_optimizers lacks the variant(s) {lacking} of the named_hypotheses table; "
                    "give every dynamics variant's optimizer"
                )

    def all_variants(self, stem: str) -> pd.DataFrame:
        """Every row of a table; :class:`NotMeasured` if it is absent or empty."""
        df = self._tables.get(stem)
        if df is None or df.empty:
            raise NotMeasured(f"no '{stem}' table" if df is None else f"the '{stem}' table is empty")
        return df

    def table(self, stem: str) -> pd.DataFrame:
        """The default variant's rows of a table."""
        df = self.all_variants(stem)
        df = df[df["variant"] == DEFAULT_VARIANT]
        if df.empty:
            raise NotMeasured(f"'{stem}' has no rows of the '{DEFAULT_VARIANT}' variant")
        return df

    def analysed(self, stem: str) -> pd.DataFrame:
        """The default variant's rows at each run's analysed checkpoint (``table1_accuracy``)."""
        df = analysed_rows(self.table(stem), self.table("table1_accuracy"))
        if df.empty:
            raise NotMeasured(f"'{stem}' has no rows at the runs' analysed checkpoints (table1_accuracy epochs)")
        return df

    def dynamics_metrics(self) -> dict[Run, pd.DataFrame]:
        """Layer metrics (epochs >= 1) of the default variant's runs with metrics at
        MIN_DYNAMICS_EPOCHS or more epochs."""
        df = self.table("layer_metrics")
        df = df[df["epoch"] >= 1]
        runs = {run: rows for run, rows in by_run(df).items() if rows["epoch"].nunique() >= MIN_DYNAMICS_EPOCHS}
        if not runs:
            raise NotMeasured(f"no run has layer metrics at {MIN_DYNAMICS_EPOCHS} or more epochs")
        return runs

    def imagenet_runs(self, stem: str, task: str) -> dict[Run, pd.DataFrame]:
        """Analysed-checkpoint rows of the ImageNet source's default runs of ``task``, by run."""
        df = self.analysed(stem)
        return by_run(df[(df["source"] == self.imagenet_source) & (df["task"] == task)])


def by_run(df: pd.DataFrame) -> dict[Run, pd.DataFrame]:
    return {run: run.rows(df) for run in runs_in(df)}


def collect(findings: Iterable, needs: str) -> list:
    """The findings, or :class:`NotMeasured` saying what setting the tables lack."""
    collected = list(findings)
    if not collected:
        raise NotMeasured(f"no {needs}")
    return collected


def reached_accuracy(study: StudyTables, runs: Sequence[Run]) -> list[str]:
    """What each run reached at its analysed checkpoint (``table1_accuracy``), beside the
    paper's value: the measured fact that most often explains a failing claim (a model
    that did not learn its task has nothing to show)."""
    table1 = study.all_variants("table1_accuracy")
    facts = []
    for run in runs:
        rows = run.rows(table1)
        if rows.empty:
            continue
        row = rows.iloc[0]
        if run.task == CLASSIFICATION:
            accuracy = row["test_accuracy"]
            reached = f"test accuracy {accuracy:.3f}{_against(accuracy, row['target_accuracy'], row['paper_accuracy'])}"
        else:
            reached = f"test L1 {row['test_l1']:.3f}"
        if not pd.isna(row["source_accuracy"]):
            reached += (
                f", its source {row['source_accuracy']:.3f}"
                f"{_against(row['source_accuracy'], row['source_target_accuracy'], row['paper_source_accuracy'])}"
            )
        facts.append(f"{run.label}: {reached} at epoch {row['epoch']} of {row['epochs']}")
    return facts


def _against(accuracy: float, target: float, paper: float) -> str:
    """' (below its target 0.85; paper 0.97)': the stated target and the paper's value, where known."""
    parts = []
    if not pd.isna(target):
        parts.append(f"{'below' if accuracy < target else 'meets'} its target {target:.2f}")
    if not pd.isna(paper):
        parts.append(f"paper {paper:.2f}")
    return f" ({'; '.join(parts)})" if parts else ""


# --- seed statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class SeedStats:
    """Mean and standard deviation (ddof=1; 0 for one seed) of per-seed values."""

    mean: float
    sd: float

    @classmethod
    def of(cls, per_seed: pd.Series) -> SeedStats:
        return cls(float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0)

    def exceeds(self, other: SeedStats) -> bool:
        """Whether this mean is above ``other``'s by more than the larger seed sd."""
        return self.mean - other.mean > max(self.sd, other.sd)

    def __str__(self) -> str:
        return f"{self.mean:.3f}±{self.sd:.3f}"


def per_seed_mean(rows: pd.DataFrame, metric: str, layers: list[int]) -> pd.Series:
    """Per seed: the mean of ``metric`` over ``layers``."""
    selected = rows[(rows["metric"] == metric) & rows["layer"].isin(layers)]
    if selected.empty:
        raise NotMeasured(f"no '{metric}' rows on layers {layers}")
    return selected.groupby("seed")["value"].mean()


def seed_stats(rows: pd.DataFrame, metric: str, layers: list[int]) -> SeedStats:
    """Seed statistics of the per-seed mean of ``metric`` over ``layers``."""
    return SeedStats.of(per_seed_mean(rows, metric, layers))


def layer_stats(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per layer: seed mean and seed sd (ddof=1; 0 for one seed) of ``metric``."""
    values = rows[rows["metric"] == metric].groupby("layer")["value"]
    if values.ngroups == 0:
        raise NotMeasured(f"no '{metric}' rows")
    return pd.DataFrame({"mean": values.mean(), "sd": values.std(ddof=1).fillna(0.0)})


def at_layer(stats: pd.DataFrame, layer: int) -> SeedStats:
    return SeedStats(float(stats.loc[layer, "mean"]), float(stats.loc[layer, "sd"]))


def exceeds_at_every_layer(higher: pd.DataFrame, lower: pd.DataFrame) -> tuple[bool, str]:
    """Whether ``higher``'s seed mean exceeds ``lower``'s by more than the seed spread at
    every layer (:func:`layer_stats` tables); and the tightest layer's numbers."""
    margin = (higher["mean"] - lower["mean"]).dropna()
    spread = np.maximum(higher["sd"], lower["sd"]).loc[margin.index]
    resolved = margin > spread
    tightest = int((margin - spread).idxmin())
    return bool(resolved.all()), (
        f"{int(resolved.sum())}/{len(margin)} layers resolved, tightest layer {tightest}: "
        f"{margin[tightest]:+.3f} vs seed sd {spread[tightest]:.3f}"
    )


def comparison(higher: SeedStats, lower: SeedStats, names: tuple[str, str]) -> tuple[bool, str]:
    return higher.exceeds(lower), f"{names[0]} {higher} vs {names[1]} {lower}"


def depth_of(rows: pd.DataFrame) -> int:
    return int(rows["layer"].max())


# --- the paper's layer numbers ----------------------------------------------------------------


@dataclass(frozen=True)
class PaperLayers:
    """A range of the paper's layer numbers (0..12), mapped onto a model of another depth."""

    first: int
    last: int

    def layers(self, depth: int) -> list[int]:
        return list(range(scaled_layer(self.first, depth), scaled_layer(self.last, depth) + 1))

    def describe(self, depth: int) -> str:
        """E.g. 'paper layers 7-12 = layers 2-4 here'."""
        return f"paper layers {self.first}-{self.last} = {layer_span(self.layers(depth))} here"

    @classmethod
    def around(cls, layer: int, tolerance: int) -> PaperLayers:
        return cls(max(layer - tolerance, 0), layer + tolerance)


def layer_span(layers: list[int]) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"


INITIAL_LAYERS = PaperLayers(0, 1)  # "the initial layers (0,1)" (Section 4.1)
EARLY_LAYERS = PaperLayers(1, 6)  # "the early layers (1-6)" (Section 4.2)
LATER_LAYERS = PaperLayers(7, 12)  # "later layers (i.e. 7-12)" (Section 4.2)
