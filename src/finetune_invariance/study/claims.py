"""The paper's findings (Sections 4.1-4.4, Appendix C.1) as testable comparisons.

Each :class:`Claim` names the paper section, states the finding, and evaluates it on this
study's tables. The evaluating function's docstring is the claim's exact definition:
which rows, which layers, which threshold. Conventions shared by every claim:

- Only rows of the *main variant* are read (the paper's default hyperparameters; see
  :func:`evaluate_claims`), and for the comparisons of Sections 4.1-4.3 only each run's
  final epoch. A run is one (source, dataset, task, variant).
- With L layers (0..L-1, METHOD.md), the *early* layers are the first ``L // 2`` and the
  *late* layers the last ``L // 2``; for odd L the middle layer belongs to neither.
- Values are compared as seed means. A per-seed aggregate (e.g. the mean over the early
  layers) is formed within each seed first, so its spread over seeds is known. A
  difference *exceeds the seed spread* when the difference of the seed means is larger
  than the larger of the two seed standard deviations (ddof=1; 0 with one seed).
- A claim evaluated in several settings (datasets, sources, runs) holds only if it holds
  in every one; the evidence lists failing settings first.
- A claim whose rows are absent is 'not measured by this config', never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from .tables import markdown_table
from .tables import (
    EARLY_EPOCH_CORRELATION,
    HYPOTHESES,
    LEARNING_FORGETTING_CORRELATION,
    SCHEMAS,
    STUDY_INVARIANCE_FLOW,
    STUDY_LAYER_METRICS,
    TableSchema,
    conform,
)

HOLDS = "holds"
FAILS = "does not hold"
NOT_MEASURED = "not measured by this config"

SCRATCH = "scratch"
CLASSIFICATION, RECONSTRUCTION = "classification", "reconstruction"
RUN = ["source", "dataset", "task"]  # a run within the main variant

FIRST_LAYERS = (0, 1)  # "the initial layers (0,1)" of Section 4.1
EARLY_CHANGE_FRACTION = 0.25  # "clearly > 0": at least this share of the run's largest forgetting
MIN_FLOW = 0.01  # smallest flow counted as positive: 1% of STIR's [0, 1] range
ALPHA = 0.05  # significance level, after Bonferroni correction where the table has one
MIN_DYNAMICS_EPOCHS = 3  # a run with fewer finetuned epochs cannot show a rise and a fall
MAX_EVIDENCE_SETTINGS = 4  # settings spelled out in one evidence string

_READ = (
    STUDY_LAYER_METRICS,
    STUDY_INVARIANCE_FLOW,
    HYPOTHESES,
    EARLY_EPOCH_CORRELATION,
    LEARNING_FORGETTING_CORRELATION,
)


class NotMeasured(Exception):
    """The tables lack the rows a claim needs; the message says which."""


@dataclass(frozen=True)
class Finding:
    """A claim's outcome in one setting (one dataset, source pair or run)."""

    holds: bool
    evidence: str


@dataclass(frozen=True)
class SeedStats:
    """Mean and standard deviation (ddof=1; 0 for one seed) of per-seed values."""

    mean: float
    sd: float

    @classmethod
    def of(cls, per_seed: pd.Series) -> "SeedStats":
        return cls(float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0)

    def exceeds(self, other: "SeedStats") -> bool:
        """Whether this mean is above ``other``'s by more than the larger seed sd."""
        return self.mean - other.mean > max(self.sd, other.sd)

    def __str__(self) -> str:
        return f"{self.mean:.3f}±{self.sd:.3f}"


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    statement: str
    evaluate: Callable[["StudyTables"], list[Finding]]

    @property
    def definition(self) -> str:
        """The exact comparison: the evaluating function's docstring."""
        return self.evaluate.__doc__ or ""


# --- the tables, restricted to the main variant ----------------------------------------


class StudyTables:
    """The study's tables as the claims read them: main-variant rows only.

    ``tables`` maps schema names (:data:`.tables.SCHEMAS`) to DataFrames; tables no claim
    reads are ignored, unknown names are an error.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame], main_variant: str | None = None) -> None:
        unknown = sorted(set(tables) - set(SCHEMAS))
        if unknown:
            raise ValueError(f"unknown table name(s) {unknown}; expected schema names among {sorted(SCHEMAS)}")
        self._tables = {s.name: conform(tables[s.name], s) for s in _READ if s.name in tables}
        self.main_variant = main_variant if main_variant is not None else self._only_variant()

    def _only_variant(self) -> str | None:
        variants = sorted(set().union(*(set(df["variant"]) for df in self._tables.values())))
        if len(variants) > 1:
            raise ValueError(f"the tables hold variants {variants}: pass main_variant to say which is the default")
        return variants[0] if variants else None

    def rows(self, schema: TableSchema) -> pd.DataFrame:
        """The main variant's rows of ``schema``'s table; :class:`NotMeasured` if there are none."""
        if schema.name not in self._tables:
            raise NotMeasured(f"no '{schema.name}' table")
        df = self._tables[schema.name]
        df = df[df["variant"] == self.main_variant]
        if df.empty:
            raise NotMeasured(f"'{schema.name}' has no rows of variant '{self.main_variant}'")
        return df

    def final(self, schema: TableSchema) -> pd.DataFrame:
        """Rows at each run's last epoch (the finetuned model the paper's Figs. 1-4 show)."""
        df = self.rows(schema)
        return df[df["epoch"] == df.groupby(RUN)["epoch"].transform("max")]


# --- shared comparisons ----------------------------------------------------------------


def _n_layers(rows: pd.DataFrame) -> int:
    return int(rows["layer"].max()) + 1


def early_layers(n_layers: int) -> list[int]:
    """The first ``n_layers // 2`` layers."""
    return list(range(n_layers // 2))


def late_layers(n_layers: int) -> list[int]:
    """The last ``n_layers // 2`` layers."""
    return list(range(n_layers - n_layers // 2, n_layers))


def _seed_stats(rows: pd.DataFrame, metric: str, layers: list[int]) -> SeedStats:
    """Seed statistics of the per-seed mean of ``metric`` over ``layers``."""
    selected = rows[(rows["metric"] == metric) & rows["layer"].isin(layers)]
    if selected.empty:
        raise NotMeasured(f"no '{metric}' rows on layers {layers}")
    return SeedStats.of(selected.groupby("seed")["value"].mean())


def _layer_stats(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per layer: seed mean and seed sd (ddof=1; 0 for one seed) of ``metric``."""
    values = rows[rows["metric"] == metric].groupby("layer")["value"]
    if values.ngroups == 0:
        raise NotMeasured(f"no '{metric}' rows")
    return pd.DataFrame({"mean": values.mean(), "sd": values.std(ddof=1).fillna(0.0)})


def _run_name(source: str, dataset: str, task: str | None = None) -> str:
    return f"{source}→{dataset}" + (f" {task}" if task else "")


def _task_pairs(study: StudyTables) -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """(source, dataset, classification rows, reconstruction rows), pretrained sources only."""
    df = study.final(STUDY_LAYER_METRICS)
    for (source, dataset), rows in df[df["source"] != SCRATCH].groupby(["source", "dataset"]):
        by_task = dict(tuple(rows.groupby("task")))
        if CLASSIFICATION in by_task and RECONSTRUCTION in by_task:
            yield source, dataset, by_task[CLASSIFICATION], by_task[RECONSTRUCTION]


def _classification_by_dataset(study: StudyTables) -> Iterator[tuple[str, dict[str, pd.DataFrame]]]:
    """(dataset, {source: final-epoch classification rows})."""
    df = study.final(STUDY_LAYER_METRICS)
    for dataset, rows in df[df["task"] == CLASSIFICATION].groupby("dataset"):
        yield dataset, dict(tuple(rows.groupby("source")))


def _scratch_pairs(study: StudyTables) -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """(dataset, pretrained source, its rows, scratch rows) for classification."""
    for dataset, by_source in _classification_by_dataset(study):
        if SCRATCH in by_source:
            for source in sorted(set(by_source) - {SCRATCH}):
                yield dataset, source, by_source[source], by_source[SCRATCH]


def _collect(findings: Iterable[Finding], needs: str) -> list[Finding]:
    """The findings, or :class:`NotMeasured` saying what setting the tables lack."""
    collected = list(findings)
    if not collected:
        raise NotMeasured(f"no {needs}")
    return collected


# --- Section 4.1: the finetuning task --------------------------------------------------


def _reconstruction_learns_more(study: StudyTables) -> list[Finding]:
    """For every pretrained source and dataset finetuned for both tasks, at every layer,
    the seed-mean learning of the reconstruction run exceeds that of the classification run
    by more than the seed spread."""

    def finding(source: str, dataset: str, cls: pd.DataFrame, rec: pd.DataFrame) -> Finding:
        c, r = _layer_stats(cls, "learning"), _layer_stats(rec, "learning")
        margin = (r["mean"] - c["mean"]).dropna()
        spread = np.maximum(r["sd"], c["sd"]).loc[margin.index]
        worst = int((margin - spread).idxmin())
        return Finding(
            bool((margin > spread).all()),
            f"{_run_name(source, dataset)}: smallest reconstruction − classification learning "
            f"{margin[worst]:+.3f} at layer {worst} (seed spread {spread[worst]:.3f})",
        )

    return _collect((finding(*pair) for pair in _task_pairs(study)), "pretrained source finetuned for both tasks")


def _reconstruction_forgets_more_early(study: StudyTables) -> list[Finding]:
    """For every pretrained source and dataset finetuned for both tasks, the mean forgetting
    over the early layers (first L // 2) of the reconstruction run exceeds that of the
    classification run by more than the seed spread."""

    def finding(source: str, dataset: str, cls: pd.DataFrame, rec: pd.DataFrame) -> Finding:
        layers = early_layers(_n_layers(cls))
        c, r = _seed_stats(cls, "forgetting", layers), _seed_stats(rec, "forgetting", layers)
        return Finding(
            r.exceeds(c),
            f"{_run_name(source, dataset)}: forgetting on layers 0-{layers[-1]} reconstruction {r} vs classification {c}",
        )

    return _collect((finding(*pair) for pair in _task_pairs(study)), "pretrained source finetuned for both tasks")


def _pretrained_classification_runs(study: StudyTables) -> Iterator[tuple[str, str, pd.DataFrame]]:
    df = study.final(STUDY_LAYER_METRICS)
    selected = df[(df["source"] != SCRATCH) & (df["task"] == CLASSIFICATION)]
    for (source, dataset), rows in selected.groupby(["source", "dataset"]):
        yield source, dataset, rows


def _early_layers_change_in_classification(study: StudyTables) -> list[Finding]:
    """For every classification run from a pretrained source, the per-seed mean forgetting
    over layers 0 and 1 is clearly above 0: its seed mean exceeds both its seed sd and
    EARLY_CHANGE_FRACTION (0.25) times the run's largest seed-mean forgetting over layers."""

    def finding(source: str, dataset: str, rows: pd.DataFrame) -> Finding:
        first = _seed_stats(rows, "forgetting", list(FIRST_LAYERS))
        peak = float(_layer_stats(rows, "forgetting")["mean"].max())
        threshold = max(first.sd, EARLY_CHANGE_FRACTION * peak)
        return Finding(
            first.mean > threshold,
            f"{_run_name(source, dataset)}: forgetting on layers 0-1 {first} vs threshold {threshold:.3f} "
            f"(largest layer {peak:.3f})",
        )

    runs = _pretrained_classification_runs(study)
    return _collect((finding(*run) for run in runs), "classification run from a pretrained source")


def _cka_misses_early_invariance_change(study: StudyTables) -> list[Finding]:
    """For every classification run from a pretrained source, the per-seed mean over the
    early layers (first L // 2) of forgetting exceeds that of CKA divergence by more than
    the seed spread: representations stay similar while invariances change."""

    def finding(source: str, dataset: str, rows: pd.DataFrame) -> Finding:
        layers = early_layers(_n_layers(rows))
        forgetting = _seed_stats(rows, "forgetting", layers)
        cka = _seed_stats(rows, "cka_divergence", layers)
        return Finding(
            forgetting.exceeds(cka),
            f"{_run_name(source, dataset)}: layers 0-{layers[-1]} forgetting {forgetting} vs CKA divergence {cka}",
        )

    runs = _pretrained_classification_runs(study)
    return _collect((finding(*run) for run in runs), "classification run from a pretrained source")


# --- Section 4.2: the pretraining source -----------------------------------------------


def _pretrained_below_scratch_early(study: StudyTables) -> list[Finding]:
    """For every dataset and pretrained source with a scratch run (classification), the
    per-seed mean over the early layers (first L // 2) of both learning and forgetting is
    higher for scratch than for the pretrained source by more than the seed spread."""

    def finding(dataset: str, source: str, pretrained: pd.DataFrame, scratch: pd.DataFrame) -> Finding:
        layers = early_layers(_n_layers(pretrained))
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            p, s = _seed_stats(pretrained, metric, layers), _seed_stats(scratch, metric, layers)
            holds &= s.exceeds(p)
            parts.append(f"{metric} {p} vs scratch {s}")
        return Finding(holds, f"{_run_name(source, dataset)}, layers 0-{layers[-1]}: " + ", ".join(parts))

    return _collect((finding(*pair) for pair in _scratch_pairs(study)), "dataset with scratch and pretrained runs")


def _scratch_higher_all_layers(study: StudyTables) -> list[Finding]:
    """For every dataset and pretrained source with a scratch run (classification), at every
    layer, the seed-mean learning and the seed-mean forgetting of scratch exceed those of the
    pretrained source by more than the seed spread."""

    def finding(dataset: str, source: str, pretrained: pd.DataFrame, scratch: pd.DataFrame) -> Finding:
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            p, s = _layer_stats(pretrained, metric), _layer_stats(scratch, metric)
            margin = (s["mean"] - p["mean"]).dropna()
            spread = np.maximum(s["sd"], p["sd"]).loc[margin.index]
            worst = int((margin - spread).idxmin())
            holds &= bool((margin > spread).all())
            parts.append(f"{metric} {margin[worst]:+.3f} at layer {worst} (spread {spread[worst]:.3f})")
        return Finding(holds, f"{_run_name(source, dataset)}: smallest scratch − pretrained " + ", ".join(parts))

    return _collect((finding(*pair) for pair in _scratch_pairs(study)), "dataset with scratch and pretrained runs")


def _order(a: SeedStats, b: SeedStats) -> int:
    """+1 if a is above b beyond the seed spread, -1 if below, 0 if not resolved."""
    return 1 if a.exceeds(b) else -1 if b.exceeds(a) else 0


def _cka_orders_sources_differently(study: StudyTables) -> list[Finding]:
    """For every dataset with at least two pretrained sources (classification), some pair of
    pretrained sources is ordered oppositely by the per-seed mean over all layers of
    forgetting and of CKA divergence, each ordering resolved beyond the seed spread."""

    def finding(dataset: str, by_source: dict[str, pd.DataFrame]) -> Finding:
        stats = {}
        for source, rows in by_source.items():
            layers = list(range(_n_layers(rows)))
            stats[source] = (_seed_stats(rows, "forgetting", layers), _seed_stats(rows, "cka_divergence", layers))
        reversed_pairs = [
            (a, b)
            for a, b in combinations(sorted(stats), 2)
            if _order(stats[a][0], stats[b][0]) * _order(stats[a][1], stats[b][1]) == -1
        ]
        listing = ", ".join(f"{s}: forgetting {f}, CKA div. {c}" for s, (f, c) in sorted(stats.items()))
        verdict = (
            f"reversed {' & '.join(f'{a}/{b}' for a, b in reversed_pairs)}" if reversed_pairs else "no pair reversed"
        )
        return Finding(bool(reversed_pairs), f"finetune {dataset}: {verdict} ({listing})")

    settings = (
        (dataset, {s: rows for s, rows in by_source.items() if s != SCRATCH})
        for dataset, by_source in _classification_by_dataset(study)
    )
    return _collect(
        (finding(d, sources) for d, sources in settings if len(sources) >= 2), "dataset with two pretrained sources"
    )


# --- Section 4.3: invariance flow ------------------------------------------------------


def _flow_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (i, j): seed mean and seed sd (ddof=1; 0 for one seed) of the flow."""
    cells = rows.groupby(["pretrained_layer", "finetuned_layer"])["flow"]
    return pd.DataFrame({"mean": cells.mean(), "sd": cells.std(ddof=1).fillna(0.0)})


def _positive_flow(cells: pd.DataFrame, triangle: str) -> tuple[bool, str]:
    """Whether some cell of the triangle ('below': j < i, 'above': j > i) has a seed-mean
    flow above both MIN_FLOW and its seed sd; and a description of the largest cell."""
    i = cells.index.get_level_values("pretrained_layer")
    j = cells.index.get_level_values("finetuned_layer")
    part = cells[(j < i) if triangle == "below" else (j > i)]
    positive = part["mean"] > np.maximum(part["sd"], MIN_FLOW)
    best = part.loc[positive].index if positive.any() else part.index
    top = part.loc[best, "mean"].idxmax()
    where = tuple(int(layer) for layer in top)
    return (
        bool(positive.any()),
        f"max {triangle} {part.loc[top, 'mean']:+.3f}±{part.loc[top, 'sd']:.3f} at (i, j) = {where}",
    )


def _final_flow_runs(study: StudyTables) -> dict[tuple[str, str, str], pd.DataFrame]:
    df = study.final(STUDY_INVARIANCE_FLOW)
    return {run: _flow_cells(rows) for run, rows in df[df["source"] != SCRATCH].groupby(RUN)}


def _compression_below_diagonal(study: StudyTables) -> list[Finding]:
    """For every pretrained source, dataset and task with an invariance-flow matrix, some
    cell below the diagonal (finetuned layer j < pretrained layer i) has a seed-mean flow
    above both MIN_FLOW (0.01) and its seed sd."""
    findings = []
    for (source, dataset, task), cells in sorted(_final_flow_runs(study).items()):
        holds, text = _positive_flow(cells, "below")
        findings.append(Finding(holds, f"{_run_name(source, dataset, task)}: {text}"))
    return _collect(findings, "invariance-flow matrix of a pretrained source")


def _expansion_reconstruction_only(study: StudyTables) -> list[Finding]:
    """For every pretrained source and dataset with flow matrices for both tasks, the
    reconstruction matrix has a cell above the diagonal (j > i) with seed-mean flow above
    both MIN_FLOW (0.01) and its seed sd, and the classification matrix has none."""
    runs = _final_flow_runs(study)
    findings = []
    for source, dataset in sorted({(s, d) for s, d, _ in runs}):
        cls, rec = runs.get((source, dataset, CLASSIFICATION)), runs.get((source, dataset, RECONSTRUCTION))
        if cls is None or rec is None:
            continue
        rec_expands, rec_text = _positive_flow(rec, "above")
        cls_expands, cls_text = _positive_flow(cls, "above")
        findings.append(
            Finding(
                rec_expands and not cls_expands,
                f"{_run_name(source, dataset)}: reconstruction {rec_text}; classification {cls_text}",
            )
        )
    return _collect(findings, "pretrained source with flow matrices for both tasks")


# --- Section 4.4: dynamics and robustness ----------------------------------------------


def _dynamics_runs(study: StudyTables) -> Iterator[tuple[tuple[str, str, str], pd.DataFrame]]:
    """Runs with layer metrics at MIN_DYNAMICS_EPOCHS or more finetuned epochs (epoch >= 1)."""
    df = study.rows(STUDY_LAYER_METRICS)
    df = df[df["epoch"] >= 1]
    for run, rows in df.groupby(RUN):
        if rows["epoch"].nunique() >= MIN_DYNAMICS_EPOCHS:
            yield run, rows


def _peak_then_drop(rows: pd.DataFrame, metric: str) -> tuple[bool, str]:
    """Whether the late-layer mean of ``metric`` peaks before the last epoch and ends lower
    by more than the seed spread at the peak and at the end."""
    layers = late_layers(_n_layers(rows))
    selected = rows[(rows["metric"] == metric) & rows["layer"].isin(layers)]
    if selected.empty:
        raise NotMeasured(f"no '{metric}' rows in the dynamics runs")
    per_seed = selected.groupby(["epoch", "seed"])["value"].mean().groupby("epoch")
    series = {int(epoch): SeedStats.of(values) for epoch, values in per_seed}
    peak_epoch = max(series, key=lambda e: series[e].mean)
    last_epoch = max(series)
    peak, last = series[peak_epoch], series[last_epoch]
    holds = peak_epoch < last_epoch and peak.exceeds(last)
    return holds, f"{metric} peaks {peak} at epoch {peak_epoch}, ends {last} at epoch {last_epoch}"


def _dynamics_not_monotonic(study: StudyTables) -> list[Finding]:
    """For every run with layer metrics at MIN_DYNAMICS_EPOCHS (3) or more finetuned epochs,
    both learning and forgetting, averaged per seed over the late layers (last L // 2),
    reach their seed-mean maximum before the last epoch and end lower than that maximum by
    more than the seed spread."""
    findings = []
    for (source, dataset, task), rows in _dynamics_runs(study):
        outcomes = [_peak_then_drop(rows, metric) for metric in ("learning", "forgetting")]
        findings.append(
            Finding(
                all(h for h, _ in outcomes),
                f"{_run_name(source, dataset, task)} late layers: " + "; ".join(t for _, t in outcomes),
            )
        )
    return _collect(findings, f"run with metrics at {MIN_DYNAMICS_EPOCHS} or more epochs")


def _headline_hypotheses(study: StudyTables) -> dict[tuple[str, str, str], pd.Series]:
    """Per run, the std-of-forgetting hypothesis (family 'stir') with the largest r over the
    layer selections; runs where every such r is undefined map to their first row."""
    df = study.rows(HYPOTHESES)
    df = df[(df["family"] == "stir") & (df["combination"] == "forgetting") & (df["aggregate"] == "std")]
    if df.empty:
        raise NotMeasured("no 'stir' std-of-forgetting hypotheses")
    return {run: rows.loc[rows["r"].fillna(-np.inf).idxmax()] for run, rows in df.groupby(RUN)}


def _std_forgetting_predicts_robustness(study: StudyTables) -> list[Finding]:
    """For every run in the hypotheses table, the std-of-forgetting-across-layers hypothesis
    with the largest r (over layer selections) has r > 0 and a Bonferroni-corrected
    p-value below ALPHA (0.05). The paper: r = 0.78 (CIFAR10-C), 0.877 (CIFAR100-C)."""
    findings = []
    for (source, dataset, task), best in sorted(_headline_hypotheses(study).items()):
        holds = bool(best["r"] > 0 and best["p_bonferroni"] < ALPHA)
        findings.append(
            Finding(
                holds,
                f"{_run_name(source, dataset, task)}: {best['hypothesis']} r = {best['r']:.3f}, "
                f"p_bonf = {best['p_bonferroni']:.2g} over {best['n_epochs']} epochs",
            )
        )
    return findings


def _early_epochs_correlate(study: StudyTables) -> list[Finding]:
    """For every run with a headline std-of-forgetting hypothesis (as in
    std_forgetting_predicts_robustness) and early-epoch rows for it, the largest r over the
    windows 1..e with e <= E // 2 is at least the r over all epochs 1..E (E the last
    window in the table)."""
    early = study.rows(EARLY_EPOCH_CORRELATION)
    findings = []
    for (source, dataset, task), best in sorted(_headline_hypotheses(study).items()):
        rows = early[
            (early["source"] == source)
            & (early["dataset"] == dataset)
            & (early["task"] == task)
            & (early["hypothesis"] == best["hypothesis"])
        ].set_index("last_epoch")["r"]
        last = int(rows.index.max()) if not rows.empty else 0
        first_half = rows[rows.index <= last // 2].dropna()
        if first_half.empty:
            continue
        e_best = int(first_half.idxmax())
        findings.append(
            Finding(
                bool(first_half.max() >= rows[last]),
                f"{_run_name(source, dataset, task)} {best['hypothesis']}: r over epochs 1..{e_best} "
                f"{first_half.max():.3f} vs 1..{last} {rows[last]:.3f}",
            )
        )
    return _collect(findings, "early-epoch correlation of a headline hypothesis with windows in the first half")


# --- Appendix C.1: learning vs forgetting ----------------------------------------------


def _learning_forgetting_correlated(study: StudyTables) -> list[Finding]:
    """For every run at its final epoch, the Pearson r across layers between seed-mean
    learning and seed-mean forgetting is positive with p-value below ALPHA (0.05). The
    paper reports r = 0.83-0.99."""
    df = study.final(LEARNING_FORGETTING_CORRELATION)
    return [
        Finding(
            bool(row.r > 0 and row.p_value < ALPHA),
            f"{_run_name(row.source, row.dataset, row.task)}: r = {row.r:.3f} (p = {row.p_value:.2g}, {row.n_layers} layers)",
        )
        for row in df.sort_values(RUN).itertuples(index=False)
    ]


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "reconstruction_learns_more",
        "4.1",
        "Finetuning for reconstruction learns more new invariances than for classification, in every layer.",
        _reconstruction_learns_more,
    ),
    Claim(
        "reconstruction_forgets_more_early",
        "4.1",
        "Reconstruction finetuning forgets more than classification in the early layers.",
        _reconstruction_forgets_more_early,
    ),
    Claim(
        "early_layers_change_in_classification",
        "4.1",
        "The first layers forget invariances even when the finetuning task (classification) matches pretraining.",
        _early_layers_change_in_classification,
    ),
    Claim(
        "cka_misses_early_invariance_change",
        "4.1",
        "In early layers CKA divergence stays lower than forgetting: representational similarity does not imply "
        "shared invariance.",
        _cka_misses_early_invariance_change,
    ),
    Claim(
        "pretrained_below_scratch_early",
        "4.2",
        "Pretrained sources show lower learning and forgetting than training from scratch in the early layers.",
        _pretrained_below_scratch_early,
    ),
    Claim(
        "scratch_higher_all_layers",
        "4.2",
        "Training from scratch needs higher learning and forgetting than pretrained sources across all layers.",
        _scratch_higher_all_layers,
    ),
    Claim(
        "cka_orders_sources_differently",
        "4.2",
        "CKA divergence does not order pretraining sources as forgetting does.",
        _cka_orders_sources_differently,
    ),
    Claim(
        "compression_below_diagonal",
        "4.3",
        "Finetuning compresses pretrained invariances into earlier layers: positive flow below the diagonal.",
        _compression_below_diagonal,
    ),
    Claim(
        "expansion_reconstruction_only",
        "4.3",
        "Expansion (positive flow above the diagonal) appears for reconstruction but not for classification.",
        _expansion_reconstruction_only,
    ),
    Claim(
        "dynamics_not_monotonic",
        "4.4",
        "Learning and forgetting do not increase monotonically during finetuning; later layers peak early.",
        _dynamics_not_monotonic,
    ),
    Claim(
        "std_forgetting_predicts_robustness",
        "4.4",
        "The std of forgetting across layers correlates positively and Bonferroni-significantly with the mean "
        "corrupted accuracy across epochs.",
        _std_forgetting_predicts_robustness,
    ),
    Claim(
        "early_epochs_correlate",
        "4.4",
        "The correlation with robustness is at least as strong over the early epochs as over all epochs (Fig. 14).",
        _early_epochs_correlate,
    ),
    Claim(
        "learning_forgetting_correlated",
        "C.1",
        "Learning and forgetting are significantly correlated across layers.",
        _learning_forgetting_correlated,
    ),
)


# --- evaluation and report -------------------------------------------------------------


def _summarise(findings: list[Finding]) -> tuple[str, str]:
    """Verdict (holds only if every setting holds) and evidence, failing settings first."""
    ordered = [f for f in findings if not f.holds] + [f for f in findings if f.holds]
    shown = [f.evidence for f in ordered[:MAX_EVIDENCE_SETTINGS]]
    if len(ordered) > MAX_EVIDENCE_SETTINGS:
        shown.append(f"+{len(ordered) - MAX_EVIDENCE_SETTINGS} more settings")
    n_hold = sum(f.holds for f in findings)
    verdict = HOLDS if n_hold == len(findings) else FAILS
    return verdict, f"holds in {n_hold}/{len(findings)}: " + "; ".join(shown)


def evaluate_claims(tables: Mapping[str, pd.DataFrame], main_variant: str | None = None) -> pd.DataFrame:
    """Evaluate every claim of :data:`CLAIMS` on the study's tables.

    ``tables`` maps schema names (e.g. ``STUDY_LAYER_METRICS.name``) to tables; any may be
    absent. ``main_variant`` is the variant of the main comparisons; it may be omitted
    when the tables hold a single variant. Returns one row per claim with columns claim,
    section, statement, verdict ('holds', 'does not hold' or 'not measured by this
    config') and evidence.
    """
    study = StudyTables(tables, main_variant)
    records = []
    for claim in CLAIMS:
        try:
            verdict, evidence = _summarise(claim.evaluate(study))
        except NotMeasured as missing:
            verdict, evidence = NOT_MEASURED, str(missing)
        records.append(
            dict(claim=claim.id, section=claim.section, statement=claim.statement, verdict=verdict, evidence=evidence)
        )
    return pd.DataFrame(records, columns=["claim", "section", "statement", "verdict", "evidence"])


def claims_markdown(df: pd.DataFrame) -> str:
    """The claims table as Markdown, preceded by a one-line count of the verdicts."""
    counts = df["verdict"].value_counts()
    summary = ", ".join(f"{v}: {int(counts.get(v, 0))}" for v in (HOLDS, FAILS, NOT_MEASURED))
    return f"{len(df)} claims of the paper: {summary}.\n\n" + markdown_table(df)
