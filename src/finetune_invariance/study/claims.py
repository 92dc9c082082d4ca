"""The paper's findings (Sections 4.1-4.4, Appendix C.1) checked on the study's own tables.

Each :class:`Claim` states the paper's sentence, the statistic computed from the tables,
the threshold it must pass and the paper's value; :func:`evaluate_claims` gives one
verdict per claim with the numbers behind it. Conventions shared by every claim:

- **Rows.** Sections 4.1-4.3 read each run's analysed checkpoint (its epoch in the
  ``table1_accuracy`` table) of the default variant; Sections 4.1 and 4.3 the runs of the
  source that plays the paper's ImageNet (``imagenet_source``), whose runs those sections
  of the paper show, Section 4.2 the classification runs of every finetune dataset. Section
  4.4 reads the dynamics runs (metrics at :data:`MIN_DYNAMICS_EPOCHS` or more epochs; the
  robustness tables hold exactly those), of the default variant except for the variant
  claims (Figs. 6, 15).
- **Layers.** Claims use the paper's layer numbers 0..12, mapped onto a model of depth D
  with :func:`.paper.scaled_layer` (a range maps its two ends); each evidence says how,
  e.g. "paper layers 7-12 = layers 2-4 here".
- **Seed spread.** Values are compared as seed means. A per-seed aggregate (e.g. the mean
  over some layers) is formed within each seed first; a difference counts only where the
  difference of the seed means exceeds the larger of the two seed standard deviations
  (ddof=1; 0 with one seed), see :class:`SeedStats`. Correlations (r of seed-mean
  profiles) and accuracies have no seed spread; their thresholds are stated per claim.
- **Settings.** A claim evaluated in several settings (datasets, sources, runs) holds
  only if it holds in every one; the evidence lists failing settings first.
- **Absent rows.** A claim whose rows are absent is 'not measured by this config' with
  the reason, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .hypotheses import Hypothesis
from .paper import CKA_HYPOTHESIS, HEADLINE, scaled_layer
from .robust_accuracy import severity_accuracy
from .tables import STUDY_TABLES, conform, markdown_table
from .vocabulary import CLASSIFICATION, DEFAULT_VARIANT, RECONSTRUCTION, SCRATCH, Run, analysed_rows, runs_in

HOLDS = "holds"
FAILS = "does not hold"
NOT_MEASURED = "not measured by this config"
VERDICTS = (HOLDS, FAILS, NOT_MEASURED)

ALPHA = 0.05  # significance level; after the per-family Bonferroni correction where the paper applies one
MIN_FLOW = 0.01  # smallest invariance flow counted as positive: 1% of STIR's [0, 1] range
MIN_FLOW_SHARE = 1 / 3  # "substantial": this share of the pretrained layers shows the flow
SIMILAR_FRACTION = 0.5  # "similarly to": at least this fraction of the later layers' value
MIN_DYNAMICS_EPOCHS = 3  # a run with fewer finetuned epochs cannot rise and fall
MIN_WINDOW_EPOCHS = 10  # shortest epoch window whose correlation a claim reads (p < 0.05 needs r > 0.63)
HIGH_SEVERITIES = (3, 4, 5)  # "in particular ... severity 3, 4, 5" (Section 4.4)
TREND_OPTIMIZER, NO_TREND_OPTIMIZER = "sgd", "adam"  # Fig. 6 (SGD variants) vs Fig. 15 (Adam)
MAX_EVIDENCE_SETTINGS = 4  # settings spelled out in one evidence string

COLUMNS = ["claim", "section", "statement", "statistic", "threshold", "paper_value", "verdict", "evidence"]


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
    def of(cls, per_seed: pd.Series) -> SeedStats:
        return cls(float(per_seed.mean()), float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0)

    def exceeds(self, other: SeedStats) -> bool:
        """Whether this mean is above ``other``'s by more than the larger seed sd."""
        return self.mean - other.mean > max(self.sd, other.sd)

    def scaled(self, factor: float) -> SeedStats:
        return SeedStats(self.mean * factor, self.sd * abs(factor))

    def __str__(self) -> str:
        return f"{self.mean:.3f}±{self.sd:.3f}"


ZERO = SeedStats(0.0, 0.0)


@dataclass(frozen=True)
class PaperLayers:
    """A range of the paper's layer numbers (0..12), mapped onto a model of another depth."""

    first: int
    last: int

    def layers(self, depth: int) -> list[int]:
        return list(range(scaled_layer(self.first, depth), scaled_layer(self.last, depth) + 1))

    def describe(self, depth: int) -> str:
        """E.g. 'paper layers 7-12 = layers 2-4 here'."""
        return f"paper layers {self.first}-{self.last} = {_layer_span(self.layers(depth))} here"


INITIAL_LAYERS = PaperLayers(0, 1)  # "the initial layers (0,1)" (Section 4.1)
EARLY_LAYERS = PaperLayers(1, 6)  # "the early layers (1-6)" (Section 4.2)
LATER_LAYERS = PaperLayers(7, 12)  # "later layers (i.e. 7-12)" (Section 4.2)
RECONSTRUCTION_TREND_START, CLASSIFICATION_TREND_START = 3, 5  # Section 4.1


def _layer_span(layers: list[int]) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    statement: str  # the paper's sentence, paraphrased tightly
    statistic: str
    threshold: str
    paper_value: str
    evaluate: Callable[[StudyTables], list[Finding]]


# --- the tables as the claims read them ------------------------------------------------


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
        runs = {run: rows for run, rows in _by_run(df).items() if rows["epoch"].nunique() >= MIN_DYNAMICS_EPOCHS}
        if not runs:
            raise NotMeasured(f"no run has layer metrics at {MIN_DYNAMICS_EPOCHS} or more epochs")
        return runs


def _by_run(df: pd.DataFrame) -> dict[Run, pd.DataFrame]:
    return {run: run.rows(df) for run in runs_in(df)}


def _collect(findings: Iterable[Finding], needs: str) -> list[Finding]:
    """The findings, or :class:`NotMeasured` saying what setting the tables lack."""
    collected = list(findings)
    if not collected:
        raise NotMeasured(f"no {needs}")
    return collected


# --- per-layer statistics ----------------------------------------------------------------


def _depth(rows: pd.DataFrame) -> int:
    return int(rows["layer"].max())


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


def _exceeds_at_every_layer(higher: pd.DataFrame, lower: pd.DataFrame) -> tuple[bool, str]:
    """Whether ``higher``'s seed mean exceeds ``lower``'s by more than the seed spread at
    every layer (:func:`_layer_stats` tables); and the tightest layer's numbers."""
    margin = (higher["mean"] - lower["mean"]).dropna()
    spread = np.maximum(higher["sd"], lower["sd"]).loc[margin.index]
    resolved = margin > spread
    tightest = int((margin - spread).idxmin())
    return bool(resolved.all()), (
        f"{int(resolved.sum())}/{len(margin)} layers resolved, tightest layer {tightest}: "
        f"{margin[tightest]:+.3f} vs seed sd {spread[tightest]:.3f}"
    )


def _comparison(higher: SeedStats, lower: SeedStats, names: tuple[str, str]) -> tuple[bool, str]:
    return higher.exceeds(lower), f"{names[0]} {higher} vs {names[1]} {lower}"


# --- Section 4.1: the finetuning task (ImageNet source) --------------------------------


def _imagenet_task_runs(study: StudyTables, task: str) -> Iterator[tuple[str, pd.DataFrame]]:
    """(dataset, analysed-checkpoint layer metrics) of the ImageNet source's runs of ``task``."""
    df = study.analysed("layer_metrics")
    df = df[(df["source"] == study.imagenet_source) & (df["task"] == task)]
    for dataset, rows in df.groupby("dataset"):
        yield str(dataset), rows


def _task_pairs(study: StudyTables) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """(dataset, classification rows, reconstruction rows) of the ImageNet source."""
    reconstruction = dict(_imagenet_task_runs(study, RECONSTRUCTION))
    for dataset, classification in _imagenet_task_runs(study, CLASSIFICATION):
        if dataset in reconstruction:
            yield dataset, classification, reconstruction[dataset]


def _needs_both_tasks(study: StudyTables) -> str:
    return (
        f"finetune dataset with classification and reconstruction runs of the ImageNet source '{study.imagenet_source}'"
    )


def _needs_imagenet_classification(study: StudyTables) -> str:
    return f"classification run of the ImageNet source '{study.imagenet_source}'"


def _reconstruction_learns_more(study: StudyTables) -> list[Finding]:
    def finding(dataset: str, classification: pd.DataFrame, reconstruction: pd.DataFrame) -> Finding:
        holds, text = _exceeds_at_every_layer(
            _layer_stats(reconstruction, "learning"), _layer_stats(classification, "learning")
        )
        return Finding(holds, f"{study.imagenet_source} → {dataset}: reconstruction − classification learning, {text}")

    return _collect((finding(*pair) for pair in _task_pairs(study)), _needs_both_tasks(study))


def trend_start(stats: pd.DataFrame) -> int:
    """Where the rising trend of a per-layer profile (:func:`_layer_stats`) starts: the
    last layer whose seed mean is within the seed spread of the lowest seed mean. Every
    later layer is above the minimum by more than the spread; the last layer means the
    profile has no rising trend."""
    lowest = stats["mean"].idxmin()
    at_minimum = stats["mean"] - stats.loc[lowest, "mean"] <= np.maximum(stats["sd"], stats.loc[lowest, "sd"])
    return int(stats.index[at_minimum].max())


def _reconstruction_forgetting_rises_earlier(study: StudyTables) -> list[Finding]:
    def finding(dataset: str, classification: pd.DataFrame, reconstruction: pd.DataFrame) -> Finding:
        depth = _depth(classification)
        starts = {
            task: trend_start(_layer_stats(rows, "forgetting"))
            for task, rows in ((RECONSTRUCTION, reconstruction), (CLASSIFICATION, classification))
        }
        rises = all(start < depth for start in starts.values())
        paper = (scaled_layer(RECONSTRUCTION_TREND_START, depth), scaled_layer(CLASSIFICATION_TREND_START, depth))
        return Finding(
            rises and starts[RECONSTRUCTION] < starts[CLASSIFICATION],
            f"{study.imagenet_source} → {dataset}: forgetting rises from layer {starts[RECONSTRUCTION]} "
            f"(reconstruction) and layer {starts[CLASSIFICATION]} (classification) of 0-{depth}; "
            f"paper layers {RECONSTRUCTION_TREND_START} and {CLASSIFICATION_TREND_START} = layers "
            f"{paper[0]} and {paper[1]} here",
        )

    return _collect((finding(*pair) for pair in _task_pairs(study)), _needs_both_tasks(study))


def _initial_layers_change_like_later(study: StudyTables) -> list[Finding]:
    def finding(dataset: str, rows: pd.DataFrame) -> Finding:
        depth = _depth(rows)
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            initial = _seed_stats(rows, metric, INITIAL_LAYERS.layers(depth))
            later = _seed_stats(rows, metric, LATER_LAYERS.layers(depth))
            similar = not later.scaled(SIMILAR_FRACTION).exceeds(initial)
            holds &= similar
            ratio = initial.mean / later.mean if later.mean else float("nan")
            parts.append(f"{metric} initial {initial} vs later {later} (ratio {ratio:.2f})")
        return Finding(
            holds,
            f"{study.imagenet_source} → {dataset} ({INITIAL_LAYERS.describe(depth)}; {LATER_LAYERS.describe(depth)}): "
            + ", ".join(parts),
        )

    runs = _imagenet_task_runs(study, CLASSIFICATION)
    return _collect((finding(*run) for run in runs), _needs_imagenet_classification(study))


def _cka_misses_early_invariance_change(study: StudyTables) -> list[Finding]:
    def finding(dataset: str, rows: pd.DataFrame) -> Finding:
        depth = _depth(rows)
        layers = EARLY_LAYERS.layers(depth)
        cka = _seed_stats(rows, "cka_divergence", layers)
        outcomes = [
            _comparison(_seed_stats(rows, m, layers), cka, (m, "CKA divergence")) for m in ("learning", "forgetting")
        ]
        return Finding(
            all(h for h, _ in outcomes),
            f"{study.imagenet_source} → {dataset} ({EARLY_LAYERS.describe(depth)}): "
            + "; ".join(t for _, t in outcomes),
        )

    runs = _imagenet_task_runs(study, CLASSIFICATION)
    return _collect((finding(*run) for run in runs), _needs_imagenet_classification(study))


# --- Section 4.2: the pretraining source (classification) ------------------------------


def _classification_by_dataset(study: StudyTables) -> Iterator[tuple[str, dict[str, pd.DataFrame]]]:
    """(dataset, {source: analysed-checkpoint classification layer metrics})."""
    df = study.analysed("layer_metrics")
    for dataset, rows in df[df["task"] == CLASSIFICATION].groupby("dataset"):
        yield str(dataset), {str(source): part for source, part in rows.groupby("source")}


def _scratch_pairs(study: StudyTables) -> Iterator[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """(dataset, pretrained source, its rows, scratch rows)."""
    for dataset, by_source in _classification_by_dataset(study):
        if SCRATCH in by_source:
            for source in sorted(set(by_source) - {SCRATCH}):
                yield dataset, source, by_source[source], by_source[SCRATCH]


NEEDS_SCRATCH_PAIR = "finetune dataset with classification runs from scratch and from a pretrained source"


def _metrics_exceed(
    higher: pd.DataFrame, lower: pd.DataFrame, layers: list[int], names: tuple[str, str], metrics: Iterable[str]
) -> tuple[bool, list[str]]:
    """Whether, for every metric, the per-seed mean over ``layers`` of ``higher`` exceeds that of ``lower``."""
    outcomes = [
        _comparison(_seed_stats(higher, m, layers), _seed_stats(lower, m, layers), (f"{m} {names[0]}", names[1]))
        for m in metrics
    ]
    return all(h for h, _ in outcomes), [t for _, t in outcomes]


def _pretrained_below_scratch_early(study: StudyTables) -> list[Finding]:
    def finding(dataset: str, source: str, pretrained: pd.DataFrame, scratch: pd.DataFrame) -> Finding:
        depth = _depth(pretrained)
        holds, parts = _metrics_exceed(
            scratch, pretrained, EARLY_LAYERS.layers(depth), (SCRATCH, source), ("learning", "forgetting")
        )
        return Finding(holds, f"finetune {dataset} ({EARLY_LAYERS.describe(depth)}): " + "; ".join(parts))

    return _collect((finding(*pair) for pair in _scratch_pairs(study)), NEEDS_SCRATCH_PAIR)


def _imagenet_lower_in_later_layers(study: StudyTables) -> list[Finding]:
    findings = []
    for dataset, by_source in _classification_by_dataset(study):
        imagenet = by_source.get(study.imagenet_source)
        if imagenet is None:
            continue
        depth = _depth(imagenet)
        for other in sorted(set(by_source) - {study.imagenet_source}):
            holds, parts = _metrics_exceed(
                by_source[other],
                imagenet,
                LATER_LAYERS.layers(depth),
                (other, study.imagenet_source),
                ("learning", "forgetting"),
            )
            findings.append(Finding(holds, f"finetune {dataset} ({LATER_LAYERS.describe(depth)}): " + "; ".join(parts)))
    return _collect(
        findings, f"finetune dataset with classification runs from '{study.imagenet_source}' and another source"
    )


def _scratch_higher_at_every_layer(study: StudyTables) -> list[Finding]:
    def finding(dataset: str, source: str, pretrained: pd.DataFrame, scratch: pd.DataFrame) -> Finding:
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            metric_holds, text = _exceeds_at_every_layer(
                _layer_stats(scratch, metric), _layer_stats(pretrained, metric)
            )
            holds &= metric_holds
            parts.append(f"{metric}: {text}")
        return Finding(holds, f"finetune {dataset}, {SCRATCH} − {source}: " + "; ".join(parts))

    return _collect((finding(*pair) for pair in _scratch_pairs(study)), NEEDS_SCRATCH_PAIR)


def _cka_orders_sources_oppositely(study: StudyTables) -> list[Finding]:
    findings = []
    for dataset, by_source in _classification_by_dataset(study):
        imagenet = by_source.get(study.imagenet_source)
        if imagenet is None:
            continue
        layers = list(range(_depth(imagenet) + 1))
        for other in sorted(set(by_source) - {study.imagenet_source, SCRATCH}):
            names = (other, study.imagenet_source)
            lower, lower_parts = _metrics_exceed(by_source[other], imagenet, layers, names, ("learning", "forgetting"))
            higher, higher_parts = _metrics_exceed(imagenet, by_source[other], layers, names[::-1], ("cka_divergence",))
            findings.append(
                Finding(lower and higher, f"finetune {dataset} (all layers): " + "; ".join(lower_parts + higher_parts))
            )
    return _collect(
        findings, f"finetune dataset with classification runs from '{study.imagenet_source}' and a pretrained source"
    )


# --- Section 4.3: invariance flow (ImageNet source) ------------------------------------


def _flow_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (i, j): seed mean and seed sd (ddof=1; 0 for one seed) of the flow."""
    cells = rows.groupby(["pretrained_layer", "finetuned_layer"])["flow"]
    return pd.DataFrame({"mean": cells.mean(), "sd": cells.std(ddof=1).fillna(0.0)})


def _flow_share(cells: pd.DataFrame, triangle: str) -> tuple[float, str]:
    """Share of the pretrained layers i with a finetuned layer j on the triangle's side
    ('below': j < i, compression; 'above': j > i, expansion) whose seed-mean flow exceeds
    both MIN_FLOW and its seed sd; and a description with the largest such cell."""
    i = cells.index.get_level_values("pretrained_layer")
    j = cells.index.get_level_values("finetuned_layer")
    depth = int(i.max())
    part = cells[(j < i) if triangle == "below" else (j > i)]
    positive = part[part["mean"] > np.maximum(part["sd"], MIN_FLOW)]
    rows_with_flow = positive.index.get_level_values("pretrained_layer").nunique()
    share = rows_with_flow / depth  # depth of the depth + 1 pretrained layers have cells on each side
    if positive.empty:
        largest = "none"
    else:
        top = positive["mean"].idxmax()
        largest = (
            f"largest {positive.loc[top, 'mean']:+.3f}±{positive.loc[top, 'sd']:.3f} at (i, j) = {tuple(map(int, top))}"
        )
    return share, f"{rows_with_flow}/{depth} pretrained layers ({share:.2f}) {triangle} the diagonal, {largest}"


def _imagenet_flows(study: StudyTables) -> dict[Run, pd.DataFrame]:
    df = study.analysed("invariance_flow")
    return {run: _flow_cells(rows) for run, rows in _by_run(df[df["source"] == study.imagenet_source]).items()}


def _compression_below_diagonal(study: StudyTables) -> list[Finding]:
    findings = []
    for run, cells in _imagenet_flows(study).items():
        share, text = _flow_share(cells, "below")
        findings.append(Finding(share >= MIN_FLOW_SHARE, f"{run.label}: {text}"))
    return _collect(findings, f"invariance-flow matrix of the ImageNet source '{study.imagenet_source}'")


def _expansion_for_reconstruction_only(study: StudyTables) -> list[Finding]:
    flows = _imagenet_flows(study)
    findings = []
    for run in flows:
        other = Run(run.source, run.dataset, CLASSIFICATION, run.variant)
        if run.task != RECONSTRUCTION or other not in flows:
            continue
        reconstruction, reconstruction_text = _flow_share(flows[run], "above")
        classification, classification_text = _flow_share(flows[other], "above")
        findings.append(
            Finding(
                reconstruction >= MIN_FLOW_SHARE > classification,
                f"{run.source} → {run.dataset}: reconstruction {reconstruction_text}; "
                f"classification {classification_text}",
            )
        )
    return _collect(findings, f"flow matrices of both tasks from the ImageNet source '{study.imagenet_source}'")


# --- Section 4.4: dynamics and robustness ----------------------------------------------


def _later_layers_by_epoch(rows: pd.DataFrame, metrics: tuple[str, ...]) -> dict[int, SeedStats]:
    """Per epoch: seed statistics of the per-seed mean over the paper's later layers
    (7-12) of the given metrics' values."""
    layers = LATER_LAYERS.layers(_depth(rows))
    selected = rows[rows["metric"].isin(metrics) & rows["layer"].isin(layers)]
    if selected["metric"].nunique() != len(metrics):
        raise NotMeasured(f"the dynamics runs lack some of the metrics {list(metrics)}")
    per_seed = selected.groupby(["epoch", "seed"])["value"].mean().groupby("epoch")
    return {int(epoch): SeedStats.of(values) for epoch, values in per_seed}


def _peak_epoch(series: Mapping[int, SeedStats]) -> int:
    return max(series, key=lambda epoch: series[epoch].mean)


def _dynamics_peak_early(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in study.dynamics_metrics().items():
        holds, parts = True, []
        for metric in ("learning", "forgetting"):
            series = _later_layers_by_epoch(rows, (metric,))
            peak, last = _peak_epoch(series), max(series)
            holds &= peak <= last / 2 and series[peak].exceeds(series[last])
            parts.append(f"{metric} peaks {series[peak]} at epoch {peak}, ends {series[last]} at epoch {last}")
        depth = _depth(rows)
        findings.append(Finding(holds, f"{run.label} ({LATER_LAYERS.describe(depth)}): " + "; ".join(parts)))
    return findings


def _accuracy_gain(peak: tuple[float, int], end: tuple[float, int]) -> tuple[float, float]:
    """Accuracy difference and its binomial standard error (independent samples)."""
    (a, n), (b, m) = peak, end
    return a - b, float(np.sqrt(a * (1 - a) / n + b * (1 - b) / m))


def _robustness_high_at_peak(study: StudyTables) -> list[Finding]:
    robust = study.table("robust_accuracy")
    findings = []
    for run, rows in study.dynamics_metrics().items():
        run_robust = run.rows(robust)
        if run_robust.empty:
            continue
        series = _later_layers_by_epoch(rows, ("learning", "forgetting"))
        peak, last = _peak_epoch(series), max(series)
        accuracy = severity_accuracy(run_robust).set_index(["epoch", "severity"])["accuracy"]
        sizes = run_robust.groupby(["epoch", "severity"])["n_images"].sum()
        needed = [(e, s) for e in (peak, last) for s in HIGH_SEVERITIES]
        if any(key not in accuracy.index for key in needed):
            raise NotMeasured(f"robust accuracy of {run.label} lacks some of (epoch, severity) {needed}")
        holds, parts = bool(peak < last), []
        for severity in HIGH_SEVERITIES:
            gain, error = _accuracy_gain(
                (accuracy[peak, severity], sizes[peak, severity]), (accuracy[last, severity], sizes[last, severity])
            )
            holds &= bool(gain > error)
            parts.append(
                f"severity {severity}: {accuracy[peak, severity]:.3f} vs {accuracy[last, severity]:.3f} "
                f"({gain:+.3f}, s.e. {error:.3f})"
            )
        findings.append(
            Finding(
                holds,
                f"{run.label}: learning and forgetting ({LATER_LAYERS.describe(_depth(rows))}) peak at epoch {peak}, "
                f"accuracy at epoch {peak} vs last epoch {last}: " + "; ".join(parts),
            )
        )
    return _collect(findings, "dynamics run with robust accuracy")


def _named(study: StudyTables, role: str) -> dict[Run, pd.Series]:
    """Per default-variant dynamics run: its ``named_hypotheses`` row of ``role``."""
    df = study.table("named_hypotheses")
    rows = {run: part.iloc[0] for run, part in _by_run(df[df["role"] == role]).items()}
    if not rows:
        raise NotMeasured(f"no '{role}' rows in named_hypotheses")
    return rows


def _selection_text(row: pd.Series, paper: str) -> str:
    selection = Hypothesis.from_id(row["hypothesis"]).selection
    return f"{row['hypothesis']} (paper {paper} = layers {selection.first}-{selection.last} here)"


def _paper_r(row: pd.Series) -> str:
    return "–" if pd.isna(row["paper_r"]) else f"{row['paper_r']:.3f}"


def _std_forgetting_predicts_robustness(study: StudyTables) -> list[Finding]:
    findings = []
    for run, row in _named(study, HEADLINE.role).items():
        holds = bool(row["r"] > 0 and row["p_bonferroni"] < ALPHA)
        findings.append(
            Finding(
                holds,
                f"{run.label}: {_selection_text(row, 'layers 2-12')} r = {row['r']:.3f}, "
                f"Bonferroni p = {row['p_bonferroni']:.2g} over {row['n_epochs']} epochs (paper r {_paper_r(row)})",
            )
        )
    return findings


def _cka_weaker_than_headline(study: StudyTables) -> list[Finding]:
    headline = _named(study, HEADLINE.role)
    findings = []
    for run, cka in _named(study, CKA_HYPOTHESIS.role).items():
        if run not in headline:
            continue
        forgetting = headline[run]
        findings.append(
            Finding(
                bool(cka["r"] < forgetting["r"]),
                f"{run.label}: CKA {_selection_text(cka, 'layers 1-8')} r = {cka['r']:.3f} vs std of forgetting "
                f"r = {forgetting['r']:.3f} (paper r {_paper_r(cka)} vs {_paper_r(forgetting)})",
            )
        )
    return _collect(findings, "dynamics run with both the 'headline' and the 'cka' hypotheses")


def _window_correlations(early: pd.DataFrame, run: Run, hypothesis: str) -> pd.DataFrame:
    """r and p over epochs 1..e of one run's hypothesis, indexed by e."""
    rows = run.rows(early)
    return rows[rows["hypothesis"] == hypothesis].set_index("last_epoch")[["r", "p_value"]].sort_index()


def _early_epochs_correlate(study: StudyTables) -> list[Finding]:
    early = study.table("early_epoch_correlation")
    findings, lengths = [], []
    for run, headline in _named(study, HEADLINE.role).items():
        windows = _window_correlations(early, run, headline["hypothesis"])["r"]
        if windows.empty:
            continue
        last = int(windows.index.max())
        lengths.append(last)
        early_windows = windows[(windows.index >= MIN_WINDOW_EPOCHS) & (windows.index <= last / 2)].dropna()
        if early_windows.empty:
            continue
        median, full = float(early_windows.median()), float(windows[last])
        findings.append(
            Finding(
                bool(median >= full),
                f"{run.label} {headline['hypothesis']}: median r over epochs 1..e for e = "
                f"{int(early_windows.index.min())}..{int(early_windows.index.max())} is {median:.3f} "
                f"(range {early_windows.min():.3f} to {early_windows.max():.3f}) vs r over 1..{last} {full:.3f}",
            )
        )
    return _collect(
        findings,
        f"dynamics run with windows of {MIN_WINDOW_EPOCHS} or more epochs within its first half "
        f"(the early-epoch rows of the headline reach epochs {sorted(set(lengths))})",
    )


def _variant_trends(study: StudyTables, optimizer: str) -> list[tuple[Run, bool, str]]:
    """Per dynamics run with ``optimizer`` in a setting with several variants: whether the
    headline's r over the setting's common first W epochs is positive with p < ALPHA, and
    the numbers. W, the fewest epochs of the setting's runs, must be MIN_WINDOW_EPOCHS or more."""
    named = study.all_variants("named_hypotheses")
    named = named[named["role"] == HEADLINE.role]
    early = study.all_variants("early_epoch_correlation")
    if study.variant_optimizers is None:
        raise NotMeasured("the variants' optimizers were not given (variant_optimizers)")
    outcomes, windows = [], []
    for _, setting in named.groupby(["source", "dataset", "task"]):
        runs = {Run.from_row(row): row["hypothesis"] for _, row in setting.iterrows()}
        if len(runs) < 2:
            continue
        correlations = {run: _window_correlations(early, run, hypothesis) for run, hypothesis in runs.items()}
        if any(series.empty for series in correlations.values()):
            continue
        window = min(int(series.index.max()) for series in correlations.values())
        windows.append(window)
        if window < MIN_WINDOW_EPOCHS:
            continue
        for run, series in correlations.items():
            if study.variant_optimizers[run.variant] != optimizer or window not in series.index:
                continue
            row = series.loc[window]
            trend = bool(row["r"] > 0 and row["p_value"] < ALPHA)
            outcomes.append(
                (
                    run,
                    trend,
                    f"{run.label} [{optimizer}]: r = {row['r']:.3f}, p = {row['p_value']:.2g} over epochs 1..{window}",
                )
            )
    if not outcomes:
        raise NotMeasured(
            f"no '{optimizer}' run among dynamics settings with several variants and a common window of "
            f"{MIN_WINDOW_EPOCHS} or more epochs (common windows: {windows})"
        )
    return outcomes


def _sgd_variants_show_trend(study: StudyTables) -> list[Finding]:
    return [Finding(trend, text) for _, trend, text in _variant_trends(study, TREND_OPTIMIZER)]


def _adam_shows_no_trend(study: StudyTables) -> list[Finding]:
    return [Finding(not trend, text) for _, trend, text in _variant_trends(study, NO_TREND_OPTIMIZER)]


# --- Appendix C.1: learning vs forgetting ----------------------------------------------


def _learning_forgetting_correlated(study: StudyTables) -> list[Finding]:
    return [
        Finding(
            bool(row["r"] > 0 and row["p_value"] < ALPHA),
            f"{run.label}: r = {row['r']:.3f}, p = {row['p_value']:.2g} over {row['n_layers']} layers "
            f"(paper r {_paper_r(row)})",
        )
        for run, rows in _by_run(study.table("learning_forgetting_correlation")).items()
        for _, row in rows.iterrows()
    ]


# --- Beyond the paper: the spread of forgetting as an early-stopping indicator ---------


def _spread_pick_beats_clean_pick(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in _by_run(study.table("checkpoint_picks")).items():
        picks = rows.set_index("rule")
        spread, clean = picks.loc["max_forgetting_spread"], picks.loc["best_clean_accuracy"]
        gain = spread["mean_corrupted_accuracy"] - clean["mean_corrupted_accuracy"]
        findings.append(
            Finding(
                bool(gain > 0),
                f"{run.label}: largest spread at epoch {spread['epoch']} "
                f"(corrupted {spread['mean_corrupted_accuracy']:.3f}), best clean accuracy at epoch "
                f"{clean['epoch']} (corrupted {clean['mean_corrupted_accuracy']:.3f}): {gain:+.3f}",
            )
        )
    return findings


_SEED_RULE = "by more than the larger seed sd"

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "reconstruction_learns_more",
        "4.1",
        "For the reconstruction task, the learning metric is higher in every layer than for classification.",
        "per layer: seed-mean learning, ImageNet source's reconstruction run − its classification run, per dataset",
        f"> 0 {_SEED_RULE}, at every layer, for every dataset",
        "higher in every layer",
        _reconstruction_learns_more,
    ),
    Claim(
        "reconstruction_forgetting_rises_earlier",
        "4.1",
        "Reconstruction starts the increasing trend of forgetting from layer 3, classification from layer 5: "
        "forgetting grows at earlier layers for the lower-level task.",
        "trend start of seed-mean forgetting across layers: the last layer within the seed sd of the lowest one "
        "(every later layer is above that minimum by more than the seed sd)",
        "reconstruction's start < classification's start, and both < the last layer (a rising trend exists), "
        "for every dataset",
        "reconstruction from layer 3, classification from layer 5",
        _reconstruction_forgetting_rises_earlier,
    ),
    Claim(
        "initial_layers_change_like_later",
        "4.1",
        "The initial layers (0,1) also learn and forget invariances similarly to the later layers (classification).",
        "per-seed mean of learning and of forgetting over paper layers 0-1 and over paper layers 7-12, "
        "ImageNet source's classification runs",
        f"for both metrics, {SIMILAR_FRACTION} × the later layers' value does not exceed the initial layers' "
        f"{_SEED_RULE}",
        "moderate values at layers 0-1; later layers slightly above them",
        _initial_layers_change_like_later,
    ),
    Claim(
        "cka_misses_early_invariance_change",
        "4.1",
        "In the early layers CKA divergence is almost 0 while learning and forgetting are moderate: "
        "representational similarity does not imply shared invariance.",
        "per-seed mean over paper layers 1-6 of learning, forgetting and CKA divergence, "
        "ImageNet source's classification runs",
        f"learning and forgetting each exceed CKA divergence {_SEED_RULE}",
        "CKA divergence almost 0 in early layers, learning and forgetting moderate",
        _cka_misses_early_invariance_change,
    ),
    Claim(
        "pretrained_below_scratch_early",
        "4.2",
        "Models finetuned from pretrained sources have substantially lower learning and forgetting in the early "
        "layers (1-6) than the model trained from scratch.",
        "per-seed mean over paper layers 1-6 of learning and of forgetting, per dataset and pretrained source",
        f"scratch exceeds the pretrained source {_SEED_RULE}, both metrics, every pair",
        "substantially lower for pretrained sources",
        _pretrained_below_scratch_early,
    ),
    Claim(
        "imagenet_lower_in_later_layers",
        "4.2",
        "Even in later layers (7-12), learning and forgetting of the ImageNet-pretrained model are lower than "
        "those of CIFAR pretraining or training from scratch.",
        "per-seed mean over paper layers 7-12 of learning and of forgetting, per dataset: ImageNet source vs "
        "every other source (CIFAR-pretrained and scratch)",
        f"every other source exceeds the ImageNet source {_SEED_RULE}, both metrics",
        "significantly lower for ImageNet",
        _imagenet_lower_in_later_layers,
    ),
    Claim(
        "scratch_higher_at_every_layer",
        "4.2",
        "Training from scratch gives higher learning and forgetting than pretrained models across all layers.",
        "per layer: seed-mean learning and forgetting, scratch − pretrained source, per dataset",
        f"> 0 {_SEED_RULE}, at every layer, both metrics, every pair",
        "higher across all layers",
        _scratch_higher_at_every_layer,
    ),
    Claim(
        "cka_orders_sources_oppositely",
        "4.2",
        "Contrary to learning and forgetting, CKA divergence is higher with ImageNet pretrained weights than with "
        "the corresponding CIFAR pretrained weights.",
        "per-seed mean over all layers of learning, forgetting and CKA divergence, per dataset: ImageNet source "
        "vs each CIFAR-pretrained source (not scratch)",
        f"the CIFAR source exceeds ImageNet in learning and in forgetting, and ImageNet exceeds the CIFAR source "
        f"in CKA divergence, each {_SEED_RULE}",
        "ImageNet: lower learning and forgetting, higher CKA divergence",
        _cka_orders_sources_oppositely,
    ),
    Claim(
        "compression_below_diagonal",
        "4.3",
        "Finetuning compresses pretrained invariances into earlier layers, visible in the lower left of the "
        "Invariance Flow matrix, for classification and reconstruction.",
        "share of the pretrained layers i = 1..D that have a finetuned layer j < i with positive flow "
        f"(seed mean > max({MIN_FLOW}, seed sd)), ImageNet source's runs",
        f">= {MIN_FLOW_SHARE:.2f} of the pretrained layers (a substantial part of the lower triangle, "
        "not a single cell), every run",
        "compression for both tasks (Figs. 3(a), 3(b), 9)",
        _compression_below_diagonal,
    ),
    Claim(
        "expansion_for_reconstruction_only",
        "4.3",
        "Expansion (flow above the diagonal) is observable only when finetuning for reconstruction.",
        "share of the pretrained layers i = 0..D-1 that have a finetuned layer j > i with positive flow "
        f"(seed mean > max({MIN_FLOW}, seed sd)), ImageNet source's runs",
        f"reconstruction >= {MIN_FLOW_SHARE:.2f} and classification < {MIN_FLOW_SHARE:.2f}, every dataset",
        "expansion for reconstruction only (Figs. 3(a), 3(b), 9)",
        _expansion_for_reconstruction_only,
    ),
    Claim(
        "dynamics_peak_early",
        "4.4",
        "Learning and forgetting do not increase monotonically during finetuning: later layers peak in earlier "
        "epochs.",
        "per epoch, per-seed mean over paper layers 7-12 of learning and of forgetting; the epoch of the largest "
        "seed mean (peak) and the last epoch E, default-variant dynamics runs",
        f"for both metrics, peak epoch <= E / 2 and the peak exceeds the last epoch's value {_SEED_RULE}",
        "a peak in early epochs, then lower (Figs. 4(a), 4(b))",
        _dynamics_peak_early,
    ),
    Claim(
        "robustness_high_at_peak",
        "4.4",
        "In correspondence with the peak of learning and forgetting the model is more robust, in particular on "
        "the higher corruption severities 3, 4, 5.",
        "accuracy at each of severities 3-5 at the peak epoch of learning and forgetting (per-seed mean over paper "
        "layers 7-12 of both) minus at the last epoch",
        "> its binomial standard error sqrt(a(1-a)/n + b(1-b)/m), at each of severities 3, 4, 5, peak before "
        "the last epoch, every run",
        "higher robustness at the peak, especially at severities 3-5 (Fig. 4(c))",
        _robustness_high_at_peak,
    ),
    Claim(
        "std_forgetting_predicts_robustness",
        "4.4",
        "The standard deviation of forgetting across layers 2-12 correlates strongly with the mean corrupted "
        "accuracy across epochs, passing the Bonferroni correction.",
        "Pearson r across epochs of the 'headline' named hypothesis (std of forgetting over paper layers 2-12) "
        "with the mean corrupted accuracy, and its Bonferroni p (per family: STIR hypotheses)",
        f"r > 0 and Bonferroni p < {ALPHA}, every default-variant dynamics run",
        "r = 0.78 (p = 3.52e-18) on CIFAR10-C, r = 0.877 (p = 2.51e-16) on CIFAR100-C",
        _std_forgetting_predicts_robustness,
    ),
    Claim(
        "cka_weaker_than_headline",
        "4.4",
        "The correlation of CKA divergence with robustness (std over layers 1-8) is weaker than that of the std "
        "of forgetting.",
        "Pearson r of the 'cka' named hypothesis (std of CKA divergence over paper layers 1-8) and of the "
        "'headline' one, same run and epochs",
        "r(cka) < r(headline), every default-variant dynamics run",
        "0.69 vs 0.78 (CIFAR10-C), 0.63 vs 0.877 (CIFAR100-C)",
        _cka_weaker_than_headline,
    ),
    Claim(
        "early_epochs_correlate",
        "4.4",
        "The correlation of the std of forgetting with robustness up to early epochs is comparable to, even "
        "higher than, up to the end of training (Fig. 14).",
        f"median r of the headline over windows 1..e with {MIN_WINDOW_EPOCHS} <= e <= E / 2 vs r over 1..E "
        "(E the run's last epoch)",
        f"median early-window r >= r over all epochs; windows shorter than {MIN_WINDOW_EPOCHS} epochs are not read",
        "early-window r comparable or higher than the full-run r (Fig. 14)",
        _early_epochs_correlate,
    ),
    Claim(
        "sgd_variants_show_trend",
        "4.4",
        "With SGD, models with different learning rates and with or without augmentation show the same trend: "
        "higher std of forgetting coincides with higher corrupted accuracy (Fig. 6).",
        "Pearson r of the headline hypothesis with the mean corrupted accuracy over the first W epochs "
        "(W: fewest epochs among the setting's variants), for every SGD run of a dynamics setting with several variants",
        f"r > 0 and p < {ALPHA} (one pre-named hypothesis per run, uncorrected); W >= {MIN_WINDOW_EPOCHS}",
        "similar trends over the first 20 epochs (Fig. 6)",
        _sgd_variants_show_trend,
    ),
    Claim(
        "adam_shows_no_trend",
        "4.4",
        "With Adam there is no clear trend: higher std of forgetting does not coincide with higher corrupted "
        "accuracy (Fig. 15).",
        "as sgd_variants_show_trend, for every Adam run of a dynamics setting with several variants",
        f"not (r > 0 and p < {ALPHA}); W >= {MIN_WINDOW_EPOCHS}",
        "no clear trend over the first 20 epochs (Fig. 15)",
        _adam_shows_no_trend,
    ),
    Claim(
        "learning_forgetting_correlated",
        "C.1",
        "Learning and forgetting are significantly correlated across layers in every setting.",
        "Pearson r across layers of seed-mean learning and seed-mean forgetting at the analysed checkpoint, "
        "every default-variant run",
        f"r > 0 and p < {ALPHA}, every run",
        "r = 0.83-0.99 (lower for reconstruction and scratch)",
        _learning_forgetting_correlated,
    ),
    Claim(
        "spread_pick_beats_clean_pick",
        "beyond",
        "The paper suggests the spread of forgetting as an early-stopping indicator for robustness: the checkpoint "
        "with the largest spread, measured during training by the forgetting monitor, is more robust than the "
        "checkpoint of best clean accuracy.",
        "mean corrupted accuracy at the epoch of largest spread (std of forgetting, paper layers 2-12) − at the "
        "epoch of best clean accuracy, per monitored dynamics run (default variant)",
        "> 0 for every run",
        "not measured by the paper (its suggestion)",
        _spread_pick_beats_clean_pick,
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


def evaluate_claims(
    tables: Mapping[str, pd.DataFrame],
    imagenet_source: str,
    variant_optimizers: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Evaluate every claim of :data:`CLAIMS` on the study's tables.

    ``tables`` maps :data:`.tables.STUDY_TABLES` stems to tables; any may be absent.
    ``imagenet_source`` is the source that plays the paper's ImageNet; ``variant_optimizers``
    maps each dynamics variant to its optimizer ('sgd' or 'adam'), which the variant claims
    (Figs. 6, 15) need. Returns one row per claim with columns :data:`COLUMNS`; verdict is
    'holds', 'does not hold' or 'not measured by this config'.
    """
    study = StudyTables(tables, imagenet_source, variant_optimizers)
    records = []
    for claim in CLAIMS:
        try:
            findings = claim.evaluate(study)
            if not findings:
                raise NotMeasured("no setting to evaluate")
            verdict, evidence = _summarise(findings)
        except NotMeasured as missing:
            verdict, evidence = NOT_MEASURED, str(missing)
        records.append(
            dict(
                claim=claim.id,
                section=claim.section,
                statement=claim.statement,
                statistic=claim.statistic,
                threshold=claim.threshold,
                paper_value=claim.paper_value,
                verdict=verdict,
                evidence=evidence,
            )
        )
    return pd.DataFrame(records, columns=COLUMNS)


def claims_markdown(df: pd.DataFrame) -> str:
    """The claims table as Markdown, preceded by a one-line count of the verdicts."""
    counts = df["verdict"].value_counts()
    summary = ", ".join(f"{verdict}: {int(counts.get(verdict, 0))}" for verdict in VERDICTS)
    return f"{len(df)} claims of the paper: {summary}.\n\n" + markdown_table(df)
