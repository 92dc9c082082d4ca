"""Robust accuracy and its correlation with learning, forgetting and CKA divergence.

Implements METHOD.md "Dynamics and robustness" (paper Section 4.4 and Appendix E.1):

- :func:`robust_accuracy`: top-1 accuracy on every corrupted set and the clean sample.
- The hypothesis family: an aggregate across a selection of layers of a per-layer
  combination of the metrics, evaluated at every epoch (:func:`hypothesis_family`).
- :func:`correlate_hypotheses`: Pearson r across epochs between each hypothesis and the
  mean corrupted accuracy, Bonferroni-corrected over the family.
- :func:`early_epoch_correlation`: the same on epochs 1..e for each e (paper Fig. 14).
- :func:`learning_forgetting_correlation`: r across layers between learning and
  forgetting (Appendix C.1).
- :func:`strongest_hypotheses`: the top hypotheses with the paper's numbers beside them.

Conventions: the metrics are averaged over STIR seeds before anything else; epochs from
``first_epoch`` (default 1) on are correlated, because epoch 0 is the starting checkpoint,
where the finetuned and pretrained models coincide: its learning and forgetting only
measure how well the inversion converged, nothing about finetuning. A series that is
constant across the correlated points has no defined Pearson r: its r is NaN and its
p-value 1 (never significant), without SciPy's ConstantInputWarning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from . import tables
from .cifar_c import CorruptedSet
from .corruptions import SEVERITIES
from .paper import PAPER_CORRELATIONS

CLEAN = "clean"
RUN_KEYS = ("source", "dataset", "task", "variant")

# --- robust accuracy ------------------------------------------------------------------

AccuracyFn = Callable[[np.ndarray, np.ndarray], float]
"""accuracy_fn(images uint8 (N, H, W, 3), labels int (N,)) -> top-1 accuracy in [0, 1]."""


def _accuracy_row(
    accuracy_fn: AccuracyFn, corruption: str, severity: int, images: np.ndarray, labels: np.ndarray
) -> dict[str, object]:
    accuracy = float(accuracy_fn(images, labels))
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(
            f"accuracy_fn returned {accuracy} for '{corruption}' severity {severity}; expected a value in [0, 1]"
        )
    return {"corruption": corruption, "severity": severity, "accuracy": accuracy, "n_images": len(labels)}


def robust_accuracy(
    accuracy_fn: AccuracyFn,
    corrupted_sets: Iterable[CorruptedSet],
    clean_set: tuple[np.ndarray, np.ndarray],
) -> pd.DataFrame:
    """Accuracy on the clean sample (corruption 'clean', severity 0) and every corrupted set.

    ``clean_set`` is (images, labels) of the uncorrupted test sample. Returns one row per
    set with columns corruption, severity, accuracy, n_images; :func:`.study.with_context`
    turns it into a ``tables.ROBUST_ACCURACY`` table.
    """
    rows = [_accuracy_row(accuracy_fn, CLEAN, 0, *clean_set)]
    rows += [_accuracy_row(accuracy_fn, s.corruption, s.severity, s.images, s.labels) for s in corrupted_sets]
    return pd.DataFrame(rows, columns=["corruption", "severity", "accuracy", "n_images"])


def mean_corrupted_accuracy(robust_df: pd.DataFrame) -> pd.Series:
    """Per epoch, the mean accuracy over all corruptions and severities 1..5 (clean excluded)."""
    duplicated = robust_df.duplicated(["epoch", "corruption", "severity"], keep=False)
    if duplicated.any():
        raise ValueError(
            "robust accuracy table has several rows for (epoch, corruption, severity) "
            f"{robust_df.loc[duplicated, ['epoch', 'corruption', 'severity']].drop_duplicates().values.tolist()}"
        )
    corrupted = robust_df[robust_df["corruption"] != CLEAN]
    bad = sorted(set(corrupted["severity"]) - set(SEVERITIES))
    if bad:
        raise ValueError(f"robust accuracy table has corrupted rows with severities {bad}; expected {SEVERITIES}")
    missing = sorted(set(robust_df["epoch"]) - set(corrupted["epoch"]))
    if missing:
        raise ValueError(f"robust accuracy table has no corrupted rows for epochs {missing}")
    return corrupted.groupby("epoch")["accuracy"].mean()


# --- the hypothesis family ------------------------------------------------------------

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
METRICS = ("forgetting", "learning", "cka_divergence")

# Population std (ddof=0): the spread of the selected layers themselves. The choice does
# not change r, since it rescales every epoch's value by the same constant.
AGGREGATES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "mean": lambda f: f.mean(axis=1),
    "std": lambda f: f.std(axis=1, ddof=0),
    "min": lambda f: f.min(axis=1),
    "max": lambda f: f.max(axis=1),
}


@dataclass(frozen=True)
class LayerSelection:
    """The first k or the last k layers of the model (layers numbered 0..L-1)."""

    side: str  # 'first' or 'last'
    k: int

    def __post_init__(self) -> None:
        if self.side not in ("first", "last") or self.k < 1:
            raise ValueError(
                f"layer selection must be 'first' or 'last' with k >= 1, got side={self.side!r}, k={self.k}"
            )

    @property
    def name(self) -> str:
        return f"{self.side}_{self.k}"

    @classmethod
    def parse(cls, name: str) -> "LayerSelection":
        side, _, k = name.partition("_")
        if not k.isdigit():
            raise ValueError(f"layer selection must look like 'first_<k>' or 'last_<k>', got {name!r}")
        return cls(side, int(k))

    def layers(self, available: Sequence[int]) -> list[int]:
        """The selected layers out of ``available`` (sorted layer indices)."""
        if self.k > len(available):
            raise ValueError(f"layer selection '{self.name}' needs {self.k} layers, the table has {len(available)}")
        return list(available[: self.k] if self.side == "first" else available[-self.k :])


@dataclass(frozen=True)
class Hypothesis:
    """One candidate robustness indicator: aggregate(combination(metrics)[selected layers]).

    The combination is taken per layer (e.g. learning_l - forgetting_l), then aggregated
    across the selected layers, giving one value per epoch.
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
    def from_id(cls, hypothesis_id: str) -> "Hypothesis":
        """Parse '<family>:<selection>:<combination>:<aggregate>', e.g. 'stir:last_11:forgetting:std'."""
        parts = hypothesis_id.split(":")
        if len(parts) != 4:
            raise ValueError(
                f"hypothesis id must be '<family>:<selection>:<combination>:<aggregate>', got {hypothesis_id!r}"
            )
        family, selection, combination, aggregate = parts
        return cls(family, LayerSelection.parse(selection), combination, aggregate)

    def evaluate(self, metric_tables: Mapping[str, pd.DataFrame]) -> pd.Series:
        """The hypothesis's value per epoch from (epoch x layer) tables keyed by metric name."""
        per_layer = FAMILY_COMBINATIONS[self.family][self.combination](metric_tables)
        selected = per_layer[self.selection.layers(sorted(per_layer.columns))]
        return AGGREGATES[self.aggregate](selected)


def layer_selections(num_layers: int) -> list[LayerSelection]:
    """first_k and last_k for k = 2..L-1: 2(L-2) selections, 22 for L = 13.

    METHOD.md's reading of the paper's count (the paper does not list them): k = 1 is
    left out because the std of one layer is identically 0, and k = L because the first
    L and the last L layers are the same selection (all layers).
    """
    if num_layers < 3:
        raise ValueError(f"num_layers must be at least 3 for first/last k-layer selections, got {num_layers}")
    return [LayerSelection(side, k) for side in ("first", "last") for k in range(2, num_layers)]


def hypothesis_family(num_layers: int) -> list[Hypothesis]:
    """The whole hypothesis family for a model with ``num_layers`` layers.

    STIR: selections x 4 combinations x 4 aggregates = 32 (L - 2) hypotheses (352 for
    L = 13); CKA divergence: selections x 4 aggregates = 8 (L - 2) (88). Total 40 (L - 2).
    """
    return [
        Hypothesis(family, selection, combination, aggregate)
        for family, combinations in FAMILY_COMBINATIONS.items()
        for selection in layer_selections(num_layers)
        for combination in combinations
        for aggregate in AGGREGATES
    ]


# --- preparing one run's tables -------------------------------------------------------


def _single_run(df: pd.DataFrame, what: str) -> dict[str, str]:
    runs = df[list(RUN_KEYS)].drop_duplicates()
    if len(runs) != 1:
        raise ValueError(
            f"{what} must hold exactly one run ({', '.join(RUN_KEYS)}), found {len(runs)}: "
            f"{runs.to_dict('records')}"
        )
    return runs.iloc[0].to_dict()


def seed_mean_tables(layer_metrics_df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One run's metrics averaged over seeds: metric name -> (epoch x layer) table.

    Every metric of :data:`METRICS` must be present for every epoch and layer 0..L-1.
    """
    _single_run(layer_metrics_df, "layer metrics table")
    if layer_metrics_df["value"].isna().any():
        raise ValueError("layer metrics table has NaN values")
    means = layer_metrics_df.groupby(["metric", "epoch", "layer"])["value"].mean()
    epochs = sorted(layer_metrics_df["epoch"].unique())
    layers = sorted(layer_metrics_df["layer"].unique())
    if layers != list(range(len(layers))):
        raise ValueError(f"layer metrics table must have layers 0..L-1, found {layers}")
    out = {}
    for metric in METRICS:
        if metric not in means.index.get_level_values("metric"):
            raise ValueError(f"layer metrics table has no rows for metric '{metric}'; needed: {list(METRICS)}")
        table = means.loc[metric].unstack("layer").reindex(index=epochs, columns=layers)
        holes = table.isna().stack()
        if holes.any():
            raise ValueError(f"metric '{metric}' is missing (epoch, layer) cells {holes[holes].index.tolist()}")
        out[metric] = table
    return out


def _aligned_run(
    layer_metrics_df: pd.DataFrame, robust_df: pd.DataFrame, first_epoch: int
) -> tuple[dict[str, str], dict[str, pd.DataFrame], pd.Series]:
    """Run key, seed-mean metric tables and mean corrupted accuracy on the same epochs."""
    run = _single_run(layer_metrics_df, "layer metrics table")
    robust_run = _single_run(robust_df, "robust accuracy table")
    if robust_run != run:
        raise ValueError(f"layer metrics are of run {run} but robust accuracy is of run {robust_run}")
    metric_tables = seed_mean_tables(layer_metrics_df)
    target = mean_corrupted_accuracy(robust_df)
    metric_epochs = {e for e in metric_tables["forgetting"].index if e >= first_epoch}
    target_epochs = {e for e in target.index if e >= first_epoch}
    if metric_epochs != target_epochs:
        raise ValueError(
            f"epochs >= {first_epoch} differ: only in layer metrics {sorted(metric_epochs - target_epochs)}, "
            f"only in robust accuracy {sorted(target_epochs - metric_epochs)}"
        )
    epochs = sorted(metric_epochs)
    if len(epochs) < 3:
        raise ValueError(f"need at least 3 epochs >= {first_epoch} to correlate, found {epochs}")
    return run, {m: t.loc[epochs] for m, t in metric_tables.items()}, target.loc[epochs]


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Pearson r and two-sided p-value (scipy.stats.pearsonr); (NaN, 1.0) if either is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), 1.0
    result = stats.pearsonr(x, y)
    return float(result.statistic), float(result.pvalue)


# --- the correlation analyses ---------------------------------------------------------


def correlate_hypotheses(layer_metrics_df: pd.DataFrame, robust_df: pd.DataFrame, first_epoch: int = 1) -> pd.DataFrame:
    """Every hypothesis of the family vs the mean corrupted accuracy, across epochs.

    ``layer_metrics_df`` (``tables.STUDY_LAYER_METRICS``) and ``robust_df``
    (``tables.ROBUST_ACCURACY``) hold one dynamics run. The Bonferroni family is the whole
    family, STIR and CKA together (40 (L - 2) hypotheses, 440 for L = 13), since all are
    candidate answers to the one question "what tracks robustness":
    p_bonferroni = min(1, p * family size). Returns ``tables.HYPOTHESES``.
    """
    run, metric_tables, target = _aligned_run(layer_metrics_df, robust_df, first_epoch)
    family = hypothesis_family(len(metric_tables["forgetting"].columns))
    rows = []
    for hypothesis in family:
        r, p = pearson(hypothesis.evaluate(metric_tables), target)
        rows.append(
            {
                **run,
                "hypothesis": hypothesis.id,
                "family": hypothesis.family,
                "layer_selection": hypothesis.selection.name,
                "combination": hypothesis.combination,
                "aggregate": hypothesis.aggregate,
                "r": r,
                "p_value": p,
                "p_bonferroni": min(1.0, p * len(family)),
                "family_size": len(family),
                "n_epochs": len(target),
            }
        )
    return tables.conform(pd.DataFrame(rows), tables.HYPOTHESES)


def early_epoch_correlation(
    layer_metrics_df: pd.DataFrame,
    robust_df: pd.DataFrame,
    hypotheses: Iterable[Hypothesis | str],
    min_epochs: int = 3,
    first_epoch: int = 1,
) -> pd.DataFrame:
    """r and p of each hypothesis over the epochs up to e, for every e (paper Fig. 14).

    ``hypotheses`` are :class:`Hypothesis` objects or ids; selections outside the family
    are allowed (e.g. 'stir:first_13:forgetting:std', all 13 layers). ``last_epoch`` runs
    over the correlated epochs from the ``min_epochs``-th on. Returns
    ``tables.EARLY_EPOCH_CORRELATION``.
    """
    if min_epochs < 3:
        raise ValueError(f"min_epochs must be at least 3 (r of 2 points is always +-1), got {min_epochs}")
    run, metric_tables, target = _aligned_run(layer_metrics_df, robust_df, first_epoch)
    rows = []
    for hypothesis in hypotheses:
        hypothesis = Hypothesis.from_id(hypothesis) if isinstance(hypothesis, str) else hypothesis
        values = hypothesis.evaluate(metric_tables)
        for n in range(min_epochs, len(target) + 1):
            r, p = pearson(values.iloc[:n], target.iloc[:n])
            rows.append({**run, "hypothesis": hypothesis.id, "last_epoch": target.index[n - 1], "r": r, "p_value": p})
    return tables.conform(
        pd.DataFrame(rows, columns=list(tables.EARLY_EPOCH_CORRELATION.columns)), tables.EARLY_EPOCH_CORRELATION
    )


def learning_forgetting_correlation(layer_metrics_df: pd.DataFrame) -> pd.DataFrame:
    """Per (source, dataset, task, variant, epoch): r across layers of learning vs forgetting.

    Both metrics are averaged over seeds per layer first (Appendix C.1 reports 0.83-0.99).
    Accepts any number of runs. Returns ``tables.LEARNING_FORGETTING_CORRELATION``.
    """
    setting_keys = [*RUN_KEYS, "epoch"]
    stir = layer_metrics_df[layer_metrics_df["metric"].isin(["learning", "forgetting"])]
    means = stir.groupby([*setting_keys, "layer", "metric"])["value"].mean().unstack("metric")
    if set(means.columns) != {"learning", "forgetting"} or means.isna().any().any():
        incomplete = means.index[means.reindex(columns=["learning", "forgetting"]).isna().any(axis=1)]
        raise ValueError(
            f"learning and forgetting must both be present for every layer; missing at {incomplete.tolist()}"
        )
    rows = []
    for setting, per_layer in means.groupby(level=setting_keys):
        r, p = pearson(per_layer["learning"], per_layer["forgetting"])
        rows.append({**dict(zip(setting_keys, setting)), "r": r, "p_value": p, "n_layers": len(per_layer)})
    return tables.conform(
        pd.DataFrame(rows, columns=list(tables.LEARNING_FORGETTING_CORRELATION.columns)),
        tables.LEARNING_FORGETTING_CORRELATION,
    )


# --- the paper's numbers --------------------------------------------------------------


def _paper_reference(combination: str, aggregate: str, dataset: str) -> tuple[str | None, float, float]:
    for claim in PAPER_CORRELATIONS:
        if (claim.combination, claim.aggregate) == (combination, aggregate) and dataset.lower() in claim.r:
            key = dataset.lower()
            return claim.claim, claim.r[key], claim.p_value.get(key, float("nan"))
    return None, float("nan"), float("nan")


def strongest_hypotheses(hypotheses_df: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k hypotheses of largest |r| per run, with the paper's number where it has one.

    Adds ``paper_claim`` (string or missing), ``paper_r`` and ``paper_p_value`` (NaN where the
    paper reports nothing for that combination, aggregate and dataset). Hypotheses with an
    undefined r (constant series) rank last.
    """
    ranked = hypotheses_df.assign(_strength=hypotheses_df["r"].abs()).sort_values(
        [*RUN_KEYS, "_strength"], ascending=[True] * len(RUN_KEYS) + [False], na_position="last", kind="stable"
    )
    top = ranked.groupby(list(RUN_KEYS), sort=False).head(k).drop(columns="_strength").reset_index(drop=True)
    references = [_paper_reference(c, a, d) for c, a, d in zip(top["combination"], top["aggregate"], top["dataset"])]
    claims, rs, ps = zip(*references) if references else ((), (), ())
    return top.assign(
        paper_claim=pd.array(claims, dtype="string"),
        paper_r=np.asarray(rs, dtype=np.float64),
        paper_p_value=np.asarray(ps, dtype=np.float64),
    )
