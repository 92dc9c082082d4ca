"""The robustness hypotheses of Section 4.4 / Appendix E.1 and their correlation analyses.

A *hypothesis* is a candidate robustness indicator: at every epoch, the aggregate (mean,
std, min or max) across a selection of layers of a per-layer combination of the metrics
(learning + forgetting, learning - forgetting, learning, forgetting; or CKA divergence).
It is correlated (Pearson r, :mod:`.statistics`) across epochs with the mean corrupted
accuracy (:func:`.robust_accuracy.mean_corrupted_accuracy`).

The family (docs/method.md): layer selections x 4 combinations x 4 aggregates for the STIR
metrics, x 4 aggregates for CKA divergence: 352 + 88 hypotheses for the paper's 13 layers.
Which 22 selections the paper used is not listed; :func:`layer_selections` implements two
readings (config ``robustness.layer_selections``):

- ``paper`` (default): first k and last k of layers 1..D (layer 0 left out), k = 1..D-1.
  It has single layers ("only one layer"), "layers 1-8" (first 8) and "layers 2-12"
  (last 11), the two selections the paper names.
- ``all_layers``: first k and last k of layers 0..D, k = 2..D (the reading of earlier
  versions of this study; no single layers, no "layers 1-8").

Bonferroni correction is per family (352 STIR, 88 CKA), with the family's full size even
where a member's r is undefined (the std of one layer is constant).

Beyond the paper, every r also gets the permutation test that respects time series
(:func:`.statistics.surrogate_p_values`: the accuracy series shifted along a circle and
reversed, 2n surrogates over n epochs), uncorrected and family-wise (Westfall-Young's
single-step max-T over the same families), beside the paper's parametric p and Bonferroni
(config ``robustness.inference`` says which of the two the claims' verdicts read).

Conventions: the metrics are averaged over STIR seeds before anything else, and epochs
from 1 on are correlated: epoch 0 is the starting checkpoint, where the finetuned and the
pretrained model coincide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import tables
from .paper import HEADLINE, NAMED_HYPOTHESES, NamedHypothesis, named_hypothesis_values, scaled_count
from .robust_accuracy import mean_corrupted_accuracy
from .statistics import bonferroni, pearson, pearson_columns, surrogate_p_values
from ..finetuning_metrics import summarize_over_seeds
from .vocabulary import METRICS, RUN_KEYS, Run, runs_in, with_context

STIR_COMBINATIONS: dict[str, Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame]] = {
    "learning+forgetting": lambda m: m["learning"] + m["forgetting"],
    "learning-forgetting": lambda m: m["learning"] - m["forgetting"],
    "learning": lambda m: m["learning"],
    "forgetting": lambda m: m["forgetting"],
}
CKA_COMBINATIONS: dict[str, Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame]] = {
    "cka_divergence": lambda m: m["cka_divergence"],
}
FAMILY_COMBINATIONS = {"stir": STIR_COMBINATIONS, "cka": CKA_COMBINATIONS}
#: The per-layer metrics each combination reads.
COMBINATION_METRICS = {
    "learning+forgetting": ("learning", "forgetting"),
    "learning-forgetting": ("learning", "forgetting"),
    "learning": ("learning",),
    "forgetting": ("forgetting",),
    "cka_divergence": ("cka_divergence",),
}

# Population std (ddof=0): the spread of the selected layers themselves. The choice does
# not change r, since it rescales every epoch's value by the same constant.
AGGREGATES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "mean": lambda f: f.mean(axis=1),
    "std": lambda f: f.std(axis=1, ddof=0),
    "min": lambda f: f.min(axis=1),
    "max": lambda f: f.max(axis=1),
}

SELECTION_READINGS = ("paper", "all_layers")

#: Roles of the hypotheses reported for every dynamics run (``named_hypotheses`` table).
BEST_STIR, BEST_CKA = "best_stir", "best_cka"


# --- layer selections and hypotheses ---------------------------------------------------


@dataclass(frozen=True, order=True)
class LayerSelection:
    """The contiguous layers ``first``..``last`` (inclusive)."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.last:
            raise ValueError(f"a layer selection needs 0 <= first <= last, got {self.first}..{self.last}")

    @property
    def name(self) -> str:
        """'layer_3' for one layer, 'layers_2-12' for a range (the paper's layer numbers)."""
        return f"layer_{self.first}" if self.first == self.last else f"layers_{self.first}-{self.last}"

    @classmethod
    def parse(cls, name: str) -> LayerSelection:
        kind, _, span = name.partition("_")
        first, _, last = span.partition("-")
        if (kind, bool(last)) not in (("layer", False), ("layers", True)) or not (first + last).isdigit():
            raise ValueError(f"layer selection must look like 'layer_<l>' or 'layers_<first>-<last>', got {name!r}")
        return cls(int(first), int(last or first))

    def layers(self, available: Sequence[int]) -> list[int]:
        """The selected layers; every one must be among ``available``."""
        selected = list(range(self.first, self.last + 1))
        missing = sorted(set(selected) - set(available))
        if missing:
            raise ValueError(f"layer selection '{self.name}' needs layers {missing}, the table has {list(available)}")
        return selected


def layer_selections(num_layers: int, reading: str = "paper") -> list[LayerSelection]:
    """The family's layer selections for a model with layers 0..num_layers - 1 (see the
    module docstring): 2 (D - 1) selections for depth D = num_layers - 1, 22 for D = 12."""
    depth = num_layers - 1
    if depth < 2:
        raise ValueError(f"the hypothesis family needs a model of depth >= 2 (3 layers), got {num_layers} layers")
    if reading == "paper":
        sizes, lowest = range(1, depth), 1
    elif reading == "all_layers":
        sizes, lowest = range(2, depth + 1), 0
    else:
        raise ValueError(f"layer selection reading must be one of {SELECTION_READINGS}, got {reading!r}")
    first = [LayerSelection(lowest, lowest + k - 1) for k in sizes]
    last = [LayerSelection(depth - k + 1, depth) for k in sizes]
    return first + last


@dataclass(frozen=True)
class Hypothesis:
    """aggregate(combination(metrics)[selected layers]), one value per epoch.

    The combination is taken per layer (e.g. learning_l - forgetting_l), then aggregated
    across the selected layers.
    """

    family: str  # 'stir' or 'cka'
    selection: LayerSelection
    combination: str
    aggregate: str

    def __post_init__(self) -> None:
        if self.family not in FAMILY_COMBINATIONS:
            raise ValueError(f"hypothesis family must be one of {list(FAMILY_COMBINATIONS)}, got {self.family!r}")
        if self.combination not in FAMILY_COMBINATIONS[self.family]:
            raise ValueError(
                f"combination of a '{self.family}' hypothesis must be one of "
                f"{list(FAMILY_COMBINATIONS[self.family])}, got {self.combination!r}"
            )
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {list(AGGREGATES)}, got {self.aggregate!r}")

    @property
    def id(self) -> str:
        return f"{self.family}:{self.selection.name}:{self.combination}:{self.aggregate}"

    @classmethod
    def from_id(cls, hypothesis_id: str) -> Hypothesis:
        """Parse '<family>:<selection>:<combination>:<aggregate>', e.g. 'stir:layers_2-12:forgetting:std'."""
        parts = hypothesis_id.split(":")
        if len(parts) != 4:
            raise ValueError(
                f"hypothesis id must be '<family>:<selection>:<combination>:<aggregate>', got {hypothesis_id!r}"
            )
        family, selection, combination, aggregate = parts
        return cls(family, LayerSelection.parse(selection), combination, aggregate)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The per-layer metrics the hypothesis combines."""
        return COMBINATION_METRICS[self.combination]

    def evaluate(self, metric_tables: Mapping[str, pd.DataFrame]) -> pd.Series:
        """The hypothesis's value per epoch from (epoch x layer) tables keyed by metric name."""
        missing = [metric for metric in self.metrics if metric not in metric_tables]
        if missing:
            raise ValueError(
                f"hypothesis '{self.id}' needs the metric(s) {missing}; the table has {sorted(metric_tables)}"
            )
        per_layer = FAMILY_COMBINATIONS[self.family][self.combination](metric_tables)
        selected = per_layer[self.selection.layers(sorted(per_layer.columns))]
        return AGGREGATES[self.aggregate](selected)


def hypothesis_family(num_layers: int, reading: str = "paper") -> list[Hypothesis]:
    """The whole family: 32 (D - 1) STIR and 8 (D - 1) CKA-divergence hypotheses for depth D."""
    return [
        Hypothesis(family, selection, combination, aggregate)
        for family, combinations in FAMILY_COMBINATIONS.items()
        for selection in layer_selections(num_layers, reading)
        for combination in combinations
        for aggregate in AGGREGATES
    ]


def named_hypothesis(named: NamedHypothesis, num_layers: int) -> Hypothesis:
    """A hypothesis the paper names, for a model with ``num_layers`` layers: its ``k`` first
    or last of layers 1..12 scaled to layers 1..D (:func:`.paper.scaled_count`)."""
    depth = num_layers - 1
    k = scaled_count(named.k, depth)
    selection = LayerSelection(1, k) if named.side == "first" else LayerSelection(depth - k + 1, depth)
    return Hypothesis(named.family, selection, named.combination, named.aggregate)


def headline_hypothesis(num_layers: int) -> Hypothesis:
    """The paper's headline, std of forgetting across layers 2-12 (:data:`.paper.HEADLINE`)."""
    return named_hypothesis(HEADLINE, num_layers)


# --- one run's metrics as (epoch x layer) tables ----------------------------------------


def _single_run(df: pd.DataFrame, what: str) -> Run:
    runs = runs_in(df)
    if len(runs) != 1:
        raise ValueError(f"{what} must hold exactly one run ({', '.join(RUN_KEYS)}), found {len(runs)}: {runs}")
    return runs[0]


def _metric_tables(layer_metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """metric -> (epoch x layer) table of the mean over the rows (seeds) of each cell, for
    every metric of :data:`.vocabulary.METRICS` the table holds (the dynamics variants
    measured by the forgetting monitor hold forgetting only)."""
    if layer_metrics["value"].isna().any():
        raise ValueError("layer metrics table has NaN values")
    means = layer_metrics.groupby(["metric", "epoch", "layer"])["value"].mean()
    epochs = sorted(layer_metrics["epoch"].unique())
    layers = sorted(layer_metrics["layer"].unique())
    if layers != list(range(len(layers))):
        raise ValueError(f"layer metrics table must have layers 0..L-1, found {layers}")
    out = {}
    for metric in (m for m in METRICS if m in means.index.get_level_values("metric")):
        table = means.loc[metric].unstack("layer").reindex(index=epochs, columns=layers)
        holes = table.isna().stack()
        if holes.any():
            raise ValueError(f"metric '{metric}' is missing (epoch, layer) cells {holes[holes].index.tolist()}")
        out[metric] = table
    if not out:
        raise ValueError(f"layer metrics table has none of the metrics {list(METRICS)}")
    return out


def seed_mean_tables(layer_metrics: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One run's metrics averaged over seeds: metric name -> (epoch x layer) table.

    Each metric present must be present for every epoch and layer.
    """
    _single_run(layer_metrics, "layer metrics table")
    return _metric_tables(layer_metrics)


def values_per_seed(hypothesis: Hypothesis, layer_metrics: pd.DataFrame) -> pd.DataFrame:
    """The hypothesis evaluated within each seed: columns epoch, seed, value (one run).

    The figures' bands show this spread; the correlations use the seed-mean profile
    (:func:`seed_mean_tables`), whose aggregate is not the mean of these.
    """
    _single_run(layer_metrics, "layer metrics table")
    parts = [
        hypothesis.evaluate(_metric_tables(rows)).rename("value").rename_axis("epoch").reset_index().assign(seed=seed)
        for seed, rows in layer_metrics.groupby("seed")
    ]
    return pd.concat(parts, ignore_index=True)[["epoch", "seed", "value"]]


def correlated_epochs(choice: str | int, analysed_epoch: int, trained_epochs: int) -> range | None:
    """The epochs of a run the hypotheses are correlated over (config
    ``robustness.correlation_epochs``): None for 'all' (every epoch >= 1 of the metrics),
    1..``analysed_epoch`` for 'through_best' (the run's analysed checkpoint), 1..n for an
    integer n >= 3, all ``trained_epochs`` of a run shorter than n (the variants of Figs.
    6, 15 train 20 epochs).

    The paper's p-values imply 83 (CIFAR10) and 48 (CIFAR100) epochs: 'through_best' gives
    the first with the authors' best checkpoint (epoch 83), only n = 48 the second (their
    best CIFAR100 checkpoint is epoch 78).
    """
    if choice == "all":
        return None
    if choice == "through_best":
        return range(1, analysed_epoch + 1)
    if isinstance(choice, int) and not isinstance(choice, bool) and choice >= 3:
        return range(1, min(choice, trained_epochs) + 1)
    raise ValueError(f"correlation_epochs must be 'all', 'through_best' or an integer >= 3, got {choice!r}")


def aligned_run(
    layer_metrics: pd.DataFrame, robust: pd.DataFrame, epochs: Sequence[int] | None
) -> tuple[Run, dict[str, pd.DataFrame], pd.Series]:
    """Run, seed-mean metric tables and mean corrupted accuracy on the correlated epochs:
    ``epochs`` (default: every epoch >= 1 of the metrics), all present in both tables."""
    run = _single_run(layer_metrics, "layer metrics table")
    robust_run = _single_run(robust, "robust accuracy table")
    if robust_run != run:
        raise ValueError(f"layer metrics are of run {run} but robust accuracy is of run {robust_run}")
    metric_tables = seed_mean_tables(layer_metrics)
    target = mean_corrupted_accuracy(robust)
    available = next(iter(metric_tables.values())).index
    epochs = sorted(e for e in available if e >= 1) if epochs is None else sorted(epochs)
    missing = {
        "layer metrics": sorted(set(epochs) - set(available)),
        "robust accuracy": sorted(set(epochs) - set(target.index)),
    }
    if any(missing.values()):
        raise ValueError(f"correlated epochs {epochs} are missing from: {missing}")
    if len(epochs) < 3:
        raise ValueError(f"need at least 3 epochs to correlate, got {epochs}")
    return run, {m: t.loc[epochs] for m, t in metric_tables.items()}, target.loc[epochs]


# --- the correlation analyses ---------------------------------------------------------


@dataclass(frozen=True)
class HypothesisValues:
    """The hypotheses of one run evaluated at the correlated epochs: ``values`` has one
    column per member of ``members`` (an epoch per row); ``family_sizes`` are the
    Bonferroni factors (the full families, whichever members were evaluated)."""

    run: Run
    members: tuple[Hypothesis, ...]
    in_family: frozenset[Hypothesis]
    family_sizes: dict[str, int]
    values: pd.DataFrame

    def correlate(self, target: pd.Series) -> pd.DataFrame:
        """Every member against ``target`` (indexed by the same epochs): ``tables.HYPOTHESES``."""
        if list(target.index) != list(self.values.index):
            raise ValueError(
                f"target epochs {list(target.index)} differ from the hypotheses' {list(self.values.index)}"
            )
        values = self.values.to_numpy()
        r, p = pearson_columns(values, target.to_numpy())
        p_permutation, p_fwer = self._permutation_p_values(values, target.to_numpy())
        rows = [
            {
                **self.run.context,
                "hypothesis": hypothesis.id,
                "family": hypothesis.family,
                "layer_selection": hypothesis.selection.name,
                "first_layer": hypothesis.selection.first,
                "last_layer": hypothesis.selection.last,
                "combination": hypothesis.combination,
                "aggregate": hypothesis.aggregate,
                "in_family": hypothesis in self.in_family,
                "r": r[k],
                "p_value": p[k],
                "p_bonferroni": bonferroni(p[k], self.family_sizes[hypothesis.family]),
                "family_size": self.family_sizes[hypothesis.family],
                "n_epochs": len(target),
                "p_permutation": p_permutation[k],
                "p_permutation_fwer": p_fwer[k],
            }
            for k, hypothesis in enumerate(self.members)
        ]
        return tables.conform(pd.DataFrame(rows), tables.HYPOTHESES)

    def _permutation_p_values(self, values: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per member: the surrogate test's p, and its family-wise p over the member's family
        (its in-family members, and the member itself where it lies outside the family);
        NaN family-wise where the whole family was not evaluated (``only``)."""
        p, _ = surrogate_p_values(values, target)
        p_fwer = np.full(len(self.members), np.nan)
        for family in FAMILY_COMBINATIONS:
            of_family = [k for k, h in enumerate(self.members) if h.family == family and h in self.in_family]
            if len(of_family) < self.family_sizes[family]:
                continue  # the maximum over a family needs every member
            outside = [k for k, h in enumerate(self.members) if h.family == family and h not in self.in_family]
            for extra in [None, *outside]:
                columns = of_family + ([extra] if extra is not None else [])
                _, family_p = surrogate_p_values(values[:, columns], target)
                if extra is None:
                    p_fwer[of_family] = family_p[: len(of_family)]
                else:
                    p_fwer[extra] = family_p[-1]
        return p, p_fwer

    def passing_bonferroni(self, target: pd.Series, alpha: float) -> list[str]:
        """The ids of the family members whose Bonferroni-corrected p against ``target`` is
        below ``alpha``: :meth:`correlate`'s ``p_bonferroni < alpha`` for the in-family
        rows, without building the table (the many shuffles of the robustness control)."""
        _, p = pearson_columns(self.values.to_numpy(), target.to_numpy())
        return [
            h.id
            for h, p_value in zip(self.members, p)
            if h in self.in_family and p_value * self.family_sizes[h.family] < alpha
        ]


def hypothesis_values(
    run: Run,
    metric_tables: Mapping[str, pd.DataFrame],
    reading: str = "paper",
    only: Sequence[NamedHypothesis] | None = None,
) -> HypothesisValues:
    """The family and the paper's named hypotheses (or just the named ones in ``only``)
    evaluated on one run's seed-mean (epoch x layer) metric tables."""
    num_layers = len(next(iter(metric_tables.values())).columns)
    family = hypothesis_family(num_layers, reading)
    sizes = {name: sum(h.family == name for h in family) for name in FAMILY_COMBINATIONS}
    in_family = frozenset(family)
    if only is None:
        named = [named_hypothesis(n, num_layers) for n in NAMED_HYPOTHESES]
        members = [*family, *(h for h in named if h not in in_family)]
    else:
        members = [named_hypothesis(n, num_layers) for n in only]
    values = pd.DataFrame({h.id: h.evaluate(metric_tables) for h in members})
    return HypothesisValues(run, tuple(members), in_family, sizes, values)


def correlate_hypotheses(
    layer_metrics: pd.DataFrame,
    robust: pd.DataFrame,
    reading: str = "paper",
    epochs: Sequence[int] | None = None,
    only: Sequence[NamedHypothesis] | None = None,
) -> pd.DataFrame:
    """Every hypothesis of the family, and the paper's named ones, vs the mean corrupted
    accuracy across ``epochs`` (default: all epochs >= 1) of one dynamics run.

    ``layer_metrics`` (``STUDY_LAYER_METRICS``) and ``robust`` (``ROBUST_ACCURACY``) hold
    the run. Each family is Bonferroni-corrected on its own, with its full size;
    a named hypothesis outside the family (``in_family`` False, possible with the
    'all_layers' reading) is corrected with its family's size. ``only`` correlates just
    these named hypotheses (the variants of Figs. 6, 15, whose forgetting alone the monitor
    measures), still corrected with their family's full size. Returns ``tables.HYPOTHESES``.
    """
    run, metric_tables, target = aligned_run(layer_metrics, robust, epochs)
    return hypothesis_values(run, metric_tables, reading, only).correlate(target)


def _strongest(rows: pd.DataFrame) -> pd.Series | None:
    """The in-family row of largest r (the paper looks for positive correlations with robustness)."""
    candidates = rows[rows["in_family"] & rows["r"].notna()]
    return None if candidates.empty else candidates.loc[candidates["r"].idxmax()]


def named_hypotheses(hypotheses: pd.DataFrame) -> pd.DataFrame:
    """Per run: the paper's headline and CKA hypotheses, and the strongest (largest r) of
    each family, with the paper's r and p beside the setting the paper measured.

    ``hypotheses`` is a ``tables.HYPOTHESES`` table (any number of runs). Returns
    ``tables.NAMED_HYPOTHESES``.
    """
    rows = []
    for run in runs_in(hypotheses):
        of_run = run.rows(hypotheses)
        num_layers = int(of_run["last_layer"].max()) + 1
        picks: list[tuple[str, str, pd.Series | None, tuple[float, float]]] = []
        for named in NAMED_HYPOTHESES:
            hypothesis_id = named_hypothesis(named, num_layers).id
            match = of_run[of_run["hypothesis"] == hypothesis_id]
            if not match.empty:
                picks.append((named.role, named.description, match.iloc[0], named_hypothesis_values(named, run)))
        for role, family in ((BEST_STIR, "stir"), (BEST_CKA, "cka")):
            members = of_run[of_run["family"] == family]
            if members["in_family"].sum() == members["family_size"].max():  # the whole family was correlated
                picks.append((role, f"largest r of the {family} family", _strongest(members), (np.nan, np.nan)))
        for role, description, row, (paper_r, paper_p) in picks:
            if row is None:
                continue
            rows.append(
                {
                    **run.context,
                    "role": role,
                    "description": description,
                    "hypothesis": row["hypothesis"],
                    "r": row["r"],
                    "p_value": row["p_value"],
                    "p_bonferroni": row["p_bonferroni"],
                    "n_epochs": row["n_epochs"],
                    "p_permutation": row["p_permutation"],
                    "p_permutation_fwer": row["p_permutation_fwer"],
                    "paper_r": paper_r,
                    "paper_p_value": paper_p,
                }
            )
    return tables.concat([pd.DataFrame(rows)] if rows else [], tables.NAMED_HYPOTHESES)


def early_epoch_correlation(
    layer_metrics: pd.DataFrame,
    robust: pd.DataFrame,
    hypotheses: Iterable[Hypothesis | str],
    min_epochs: int = 3,
) -> pd.DataFrame:
    """r, p and the surrogate test's p (:func:`.statistics.surrogate_p_values`) of each
    hypothesis over epochs 1..e, for every e (paper Fig. 14).

    ``last_epoch`` e runs from the ``min_epochs``-th epoch >= 1 to the last. Returns
    ``tables.EARLY_EPOCH_CORRELATION``.
    """
    if min_epochs < 3:
        raise ValueError(f"min_epochs must be at least 3 (r of 2 points is always +-1), got {min_epochs}")
    run, metric_tables, target = aligned_run(layer_metrics, robust, None)
    rows = []
    for hypothesis in hypotheses:
        hypothesis = Hypothesis.from_id(hypothesis) if isinstance(hypothesis, str) else hypothesis
        values = hypothesis.evaluate(metric_tables)
        for n in range(min_epochs, len(target) + 1):
            r, p = pearson(values.iloc[:n], target.iloc[:n])
            p_permutation, _ = surrogate_p_values(values.iloc[:n].to_numpy()[:, None], target.iloc[:n].to_numpy())
            rows.append(
                {
                    **run.context,
                    "hypothesis": hypothesis.id,
                    "last_epoch": target.index[n - 1],
                    "r": r,
                    "p_value": p,
                    "p_permutation": p_permutation[0],
                }
            )
    return tables.concat([pd.DataFrame(rows)] if rows else [], tables.EARLY_EPOCH_CORRELATION)


def seed_summary(hypothesis: Hypothesis, layer_metrics: pd.DataFrame) -> pd.DataFrame:
    """The hypothesis within each seed (:func:`values_per_seed`) of every run of
    ``layer_metrics``, summarised over seeds (:func:`..finetuning_metrics.summarize_over_seeds`):
    columns source, dataset, task, variant, epoch, mean, std (ddof=1), n_seeds.

    The lines and bands of the dynamics and variants figures (Figs. 5, 6, 15).
    """
    runs = runs_in(layer_metrics)
    if not runs:
        raise ValueError(f"layer metrics table is empty: no run to evaluate '{hypothesis.id}' on")
    per_seed = pd.concat(
        [with_context(values_per_seed(hypothesis, run.rows(layer_metrics)), run) for run in runs], ignore_index=True
    )
    return summarize_over_seeds(per_seed, keys=[*RUN_KEYS, "epoch"])
