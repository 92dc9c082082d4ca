"""What the claims read: the study's tables with the selections the claims make, the
settings a claim must find (the study's roster of runs), seed statistics with their
completeness checks, and the paper's layer numbers mapped onto each model's depth.

Three-valued outcomes: a comparison is True or False where its statistics are defined and
None where one is undefined (:func:`decide`), and :func:`all_of` combines the parts of a
setting so that a measured failure stays a failure and an unmeasured part, absent a
failure, leaves the setting unmeasured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..control_plan import IDENTICAL  # the controls' negative control, f = p (study.controls)
from ..paper import PAPER_DEPTH, scaled_layer
from ..tables import CONTROL_LAYER_METRICS, STUDY_TABLES, TableSchema, conform
from ..vocabulary import CLASSIFICATION, DEFAULT_VARIANT, RUN_KEYS, Run, analysed_rows, runs_in

# Thresholds shared by several claims (each claim's own are beside it).
ALPHA = 0.05  # significance level of every test; after the per-family correction where the paper applies one
STRONG_R = 0.7  # a "strong" correlation: the conventional r >= 0.7 (the paper's strong ones are 0.78 and 0.877)
MIN_DYNAMICS_EPOCHS = 3  # a run with fewer finetuned epochs cannot rise and fall
PARAMETRIC, PERMUTATION = "parametric", "permutation"  # config robustness.inference
INFERENCES = (PARAMETRIC, PERMUTATION)

#: The tables the claims read beyond the study's own: the identical copy's floor (controls).
CLAIM_TABLES: dict[str, TableSchema] = {**STUDY_TABLES, "control_layer_metrics": CONTROL_LAYER_METRICS}
#: Tables of the dynamics runs: a run with rows in one of them is a dynamics run.
DYNAMICS_TABLES = ("robust_accuracy", "hypotheses", "named_hypotheses", "early_epoch_correlation", "checkpoint_picks")


class NotMeasured(Exception):
    """The tables lack the rows a claim (or one of its settings) needs; the message says which."""


Outcome = bool | None


class StudyTables:
    """The study's tables by :data:`CLAIM_TABLES` stem, with the selections the claims make.

    ``variant_optimizers`` maps each variant of the dynamics runs to its optimizer
    ('sgd' or 'adam'); None leaves the variant claims unmeasured. ``inference`` (config
    ``robustness.inference``) says which p-value of a correlation across epochs the
    verdicts read: the paper's parametric one, or the permutation test that respects time
    series. ``identical_copy`` is the (source, dataset) the controls' identical copy was
    measured on, whose learning is the floor of the claim that new invariances are learned.
    """

    def __init__(
        self,
        tables: Mapping[str, pd.DataFrame],
        imagenet_source: str,
        variant_optimizers: Mapping[str, str] | None = None,
        inference: str = PARAMETRIC,
        identical_copy: tuple[str, str] | None = None,
    ) -> None:
        unknown = sorted(set(tables) - set(CLAIM_TABLES))
        if unknown:
            raise ValueError(f"unknown study table(s) {unknown}; expected stems among {sorted(CLAIM_TABLES)}")
        if inference not in INFERENCES:
            raise ValueError(f"robustness.inference must be one of {list(INFERENCES)}, got {inference!r}")
        self._tables = {stem: conform(df, CLAIM_TABLES[stem]) for stem, df in tables.items()}
        self.imagenet_source = imagenet_source
        self.inference = inference
        self.identical_copy = None if identical_copy is None else tuple(identical_copy)
        self.variant_optimizers = None if variant_optimizers is None else dict(variant_optimizers)
        if self.variant_optimizers is not None and "named_hypotheses" in self._tables:
            lacking = sorted(set(self._tables["named_hypotheses"]["variant"]) - set(self.variant_optimizers))
            if lacking:
                raise ValueError(
                    f"variant_optimizers lacks the variant(s) {lacking} of the named_hypotheses table; "
                    "give every dynamics variant's optimizer"
                )

    def has(self, stem: str) -> bool:
        return stem in self._tables

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

    # --- the settings a claim must find ----------------------------------------------

    @cached_property
    def all_runs(self) -> frozenset[Run]:
        """Every run (of every variant) any table of the study has rows of: the runs the
        study trained. A claim's setting whose run is here but whose rows are not is
        unmeasured, never skipped."""
        runs: set[Run] = set()
        for df in self._tables.values():
            if set(RUN_KEYS) <= set(df.columns):
                runs.update(runs_in(df))
        return frozenset(runs)

    @property
    def roster(self) -> frozenset[Run]:
        """The default-variant runs of :attr:`all_runs`."""
        return frozenset(run for run in self.all_runs if run.variant == DEFAULT_VARIANT)

    def roster_of(self, *, source: str | None = None, dataset: str | None = None, task: str | None = None) -> list[Run]:
        return sorted(
            run
            for run in self.roster
            if (source is None or run.source == source)
            and (dataset is None or run.dataset == dataset)
            and (task is None or run.task == task)
        )

    def imagenet_datasets(self) -> list[str]:
        """The datasets the ImageNet source was finetuned on (Sections 4.1, 4.3)."""
        datasets = sorted({run.dataset for run in self.roster_of(source=self.imagenet_source)})
        if not datasets:
            raise NotMeasured(f"no run of the ImageNet source '{self.imagenet_source}'")
        return datasets

    @cached_property
    def dynamics_roster(self) -> list[Run]:
        """The default-variant dynamics runs: runs with rows in a dynamics table, or layer
        metrics at MIN_DYNAMICS_EPOCHS or more epochs."""
        runs: set[Run] = set()
        for stem in DYNAMICS_TABLES:
            if stem in self._tables:
                df = self._tables[stem]
                runs.update(runs_in(df[df["variant"] == DEFAULT_VARIANT]))
        if "layer_metrics" in self._tables:
            df = self._tables["layer_metrics"]
            df = df[(df["variant"] == DEFAULT_VARIANT) & (df["epoch"] >= 1)]
            counts = df.groupby(list(RUN_KEYS))["epoch"].nunique()
            runs.update(Run(*key) for key, n in counts.items() if n >= MIN_DYNAMICS_EPOCHS)
        if not runs:
            raise NotMeasured(f"no dynamics run (no run with metrics at {MIN_DYNAMICS_EPOCHS} or more epochs)")
        return sorted(runs)

    def identical_copy_rows(self) -> pd.DataFrame:
        """The controls' identical copy of the ImageNet source (``control_layer_metrics``
        rows, every seed and layer): the floor an unchanged model gives."""
        if self.identical_copy is None:
            raise NotMeasured("no identical-copy control (config controls) to give the floor")
        source, _ = self.identical_copy
        if source != self.imagenet_source:
            raise NotMeasured(f"the identical copy is of the source '{source}', not of the ImageNet source")
        controls = self.all_variants("control_layer_metrics")
        rows = controls[controls["control"] == IDENTICAL]
        if rows.empty:
            raise NotMeasured(f"no '{IDENTICAL}' rows in control_layer_metrics")
        return rows

    def run_rows(self, stem: str, run: Run, *, analysed: bool = False) -> pd.DataFrame:
        """One run's rows of a table (at its analysed checkpoint if ``analysed``); NotMeasured if none."""
        df = self.analysed(stem) if analysed else self.all_variants(stem)
        rows = run.rows(df)
        if rows.empty:
            where = " at its analysed checkpoint" if analysed else ""
            raise NotMeasured(f"no '{stem}' rows of {run.label}{where}")
        return rows

    # --- depths -------------------------------------------------------------------------

    def depth(self, source: str, stem: str = "layer_metrics") -> int:
        """The depth D of the source's model (its layers are 0..D): the deepest layer of any
        of its runs in the table (a run that lacks it is incomplete)."""
        df = self.all_variants(stem)
        column = "pretrained_layer" if stem == "invariance_flow" else "layer"
        layers = df.loc[df["source"] == source, column]
        if layers.empty:
            raise NotMeasured(f"no '{stem}' rows of the source '{source}'")
        return int(layers.max())

    def profile(self, run: Run, metric: str) -> pd.DataFrame:
        """(seed x layer) values of one metric of a run at its analysed checkpoint, every
        layer 0..D of its source's depth (:func:`seed_profile`)."""
        return seed_profile(self.run_rows("layer_metrics", run, analysed=True), metric, self.depth(run.source))

    def p_column(self, familywise: bool) -> str:
        """The column of a correlation's p-value the verdicts read (config robustness.inference)."""
        if self.inference == PERMUTATION:
            return "p_permutation_fwer" if familywise else "p_permutation"
        return "p_bonferroni" if familywise else "p_value"


def collect(findings: Iterable, needs: str) -> list:
    """The findings, or :class:`NotMeasured` saying what setting the tables lack."""
    collected = list(findings)
    if not collected:
        raise NotMeasured(f"no {needs}")
    return collected


def measure(label: str, runs: Sequence[Run], evaluate: Callable[[], tuple[Outcome, str]]):
    """One setting's :class:`.registry.Finding`: ``evaluate()`` gives (outcome, evidence);
    where it raises :class:`NotMeasured`, the setting is unmeasured with the reason, and
    the other settings are still evaluated."""
    from .registry import Finding

    try:
        holds, text = evaluate()
    except NotMeasured as missing:
        return Finding(None, f"{label}: {missing}" if label else str(missing), tuple(runs))
    return Finding(holds, f"{label}: {text}" if label else text, tuple(runs))


def decide(condition: object, *statistics: float) -> Outcome:
    """``bool(condition)``, or None (undefined) if any of the statistics it compares is NaN."""
    if any(value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)) for value in statistics):
        return None
    return bool(condition)


def combine(parts: Iterable[Callable[[], tuple[Outcome, str]]]) -> tuple[Outcome, str]:
    """The parts of one setting (e.g. its two metrics), each evaluated on its own so that a
    part without rows leaves the others' measured failures visible: (:func:`all_of` the
    outcomes, their evidence)."""
    outcomes, texts = [], []
    for part in parts:
        try:
            outcome, text = part()
        except NotMeasured as missing:
            outcome, text = None, f"not measured: {missing}"
        outcomes.append(outcome)
        texts.append(text)
    return all_of(outcomes), "; ".join(texts)


def all_of(outcomes: Iterable[Outcome]) -> Outcome:
    """Every part holds: False if any part fails, else None if any is unmeasured, else True."""
    outcomes = list(outcomes)
    if any(o is False for o in outcomes):
        return False
    if any(o is None for o in outcomes):
        return None
    return True


def number(value: float, spec: str = ".3f") -> str:
    """A statistic as the evidence writes it: ``value`` formatted with ``spec``, or
    'undefined' where it is NaN (a constant series' r, one seed's sd)."""
    return "undefined" if value is None or pd.isna(value) else format(value, spec)


def paper_r(*values: float) -> str:
    """The paper's r of a setting: 'paper r 0.830' (several: 'paper r 0.690 vs 0.780'), or
    'the paper gives no r for this setting' where it gives none (NaN)."""
    if all(pd.isna(value) for value in values):
        return "the paper gives no r for this setting"
    return "paper r " + " vs ".join("none given" if pd.isna(value) else f"{value:.3f}" for value in values)


def epoch_span(first: int, last: int) -> str:
    """'epochs 1-10', or 'epoch 10' for one epoch."""
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


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


# --- seed statistics ---------------------------------------------------------------------------


def seed_profile(rows: pd.DataFrame, metric: str, depth: int) -> pd.DataFrame:
    """(seed x layer) values of ``metric`` in the rows of one run at one epoch, with every
    layer 0..``depth`` present once for every seed and no value undefined; otherwise
    :class:`NotMeasured` naming what is missing (a mean over fewer layers or seeds would
    quietly be another statistic)."""
    selected = rows[rows["metric"] == metric]
    if selected.empty:
        raise NotMeasured(f"no '{metric}' rows")
    if selected.duplicated(["seed", "layer"]).any():
        raise NotMeasured(f"'{metric}' rows repeat a (seed, layer)")
    values = selected.pivot(index="seed", columns="layer", values="value")
    missing = sorted(set(range(depth + 1)) - set(values.columns))
    if missing:
        raise NotMeasured(f"'{metric}' lacks layers {missing} of 0-{depth}")
    values = values[list(range(depth + 1))]
    holes = values.isna()
    if holes.any().any():
        cells = [(int(s), int(layer)) for s, layer in holes.stack()[holes.stack()].index]
        raise NotMeasured(f"'{metric}' is undefined (NaN) or missing at (seed, layer) {cells[:5]}")
    return values


@dataclass(frozen=True)
class SeedStats:
    """Per-seed values, their mean and standard deviation (ddof=1; NaN, undefined, for one
    seed: a difference cannot be told from the seed noise without two)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, per_seed: pd.Series | Sequence[float]) -> SeedStats:
        return cls(tuple(float(v) for v in np.asarray(per_seed, dtype=np.float64)))

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def exceeds(self, other: SeedStats) -> Outcome:
        """Whether this mean is above ``other``'s by more than the larger seed sd (undefined
        with fewer than two seeds)."""
        return decide(self.mean - other.mean > max(self.sd, other.sd), self.sd, other.sd, self.mean, other.mean)

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{number(self.mean)} (one seed: no sd)"
        return f"{number(self.mean)}±{number(self.sd)}"


def per_seed_mean(profile: pd.DataFrame, layers: Sequence[int]) -> pd.Series:
    """Per seed: the mean of a :func:`seed_profile` over ``layers``."""
    return profile[list(layers)].mean(axis=1)


def seed_stats(profile: pd.DataFrame, layers: Sequence[int]) -> SeedStats:
    return SeedStats.of(per_seed_mean(profile, layers))


def layer_stats(profile: pd.DataFrame) -> pd.DataFrame:
    """Per layer of a :func:`seed_profile`: seed mean and seed sd (ddof=1; NaN for one seed)."""
    return pd.DataFrame(
        {"mean": profile.mean(axis=0), "sd": profile.std(axis=0, ddof=1) if len(profile) > 1 else np.nan}
    ).rename_axis("layer")


def at_layer(profile: pd.DataFrame, layer: int) -> SeedStats:
    return SeedStats.of(profile[layer])


def compared_layers(higher_depth: int, lower_depth: int) -> list[tuple[str, int, int]]:
    """(name, layer of the first model, layer of the second) at which two models are
    compared layer by layer: every layer where their depths agree, else every paper layer
    0..12 mapped onto each depth (:func:`..paper.scaled_layer`)."""
    if higher_depth == lower_depth:
        return [(str(layer), layer, layer) for layer in range(higher_depth + 1)]
    return [
        (f"paper {layer}", scaled_layer(layer, higher_depth), scaled_layer(layer, lower_depth))
        for layer in range(PAPER_DEPTH + 1)
    ]


def exceeds_at_every_layer(higher: pd.DataFrame, lower: pd.DataFrame) -> tuple[Outcome, str]:
    """Whether ``higher``'s seed mean exceeds ``lower``'s by more than the larger seed sd at
    every layer of two complete :func:`seed_profile` tables (models of different depths at
    every paper layer); and the tightest layer's numbers."""
    pairs = compared_layers(int(higher.columns.max()), int(lower.columns.max()))
    outcomes, slack = [], []
    for name, i, j in pairs:
        a, b = at_layer(higher, i), at_layer(lower, j)
        outcomes.append(a.exceeds(b))
        slack.append((a.mean - b.mean - max(a.sd, b.sd), name, a.mean - b.mean, max(a.sd, b.sd)))
    resolved = sum(o is True for o in outcomes)
    _, name, margin, spread = min(slack, key=lambda item: (math.isnan(item[0]), item[0]))
    return all_of(outcomes), (
        f"{resolved}/{len(pairs)} layers resolved, tightest layer {name}: {margin:+.3f} vs seed sd {number(spread)}"
    )


def comparison(higher: SeedStats, lower: SeedStats, names: tuple[str, str]) -> tuple[Outcome, str]:
    return higher.exceeds(lower), f"{names[0]} {higher} vs {names[1]} {lower}"


# --- the paper's layer numbers ------------------------------------------------------------------


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
ALL_LAYERS = PaperLayers(0, 12)
