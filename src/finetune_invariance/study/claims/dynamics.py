"""Section 4.4, forgetting and learning dynamics: the dynamics runs (the metrics and the
robust accuracy at every epoch), the robustness hypotheses and the hyperparameter
variants (Figs. 5, 6, 14, 15); and, beyond the paper, whether the headline correlation's
significance survives a permutation test (it reads the same tables)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..hypotheses import Hypothesis, headline_hypothesis
from ..paper import CKA_HYPOTHESIS, HEADLINE, named_hypothesis_values
from ..robust_accuracy import mean_corrupted_accuracy, severity_accuracy
from ..statistics import bonferroni
from ..vocabulary import CLEAN_SEVERITY, Run
from .evidence import (
    ALPHA,
    LATER_LAYERS,
    MIN_DYNAMICS_EPOCHS,
    STRONG_R,
    NotMeasured,
    SeedStats,
    StudyTables,
    by_run,
    collect,
    depth_of,
)
from .inference import drift, leave_one_out_r, mcnemar_p_bound, permutation_p_value, spearman
from .registry import BEYOND, Finding, claim

HIGH_SEVERITIES = (3, 4, 5)  # "in particular ... severity 3, 4, 5"
MIN_WINDOW_EPOCHS = 10  # shortest epoch window whose correlation a claim reads (p < 0.05 needs r > 0.63)
FINAL_SHARE = 0.25  # "towards the end of training": the last quarter of the epochs
STABLE_SHARE = 0.1  # "constant values": over the final epochs the fitted line moves under a tenth of the range
MIN_STABLE_EPOCHS = math.ceil(MIN_DYNAMICS_EPOCHS / FINAL_SHARE)  # the last quarter has MIN_DYNAMICS_EPOCHS epochs
TREND_OPTIMIZER, NO_TREND_OPTIMIZER = "sgd", "adam"  # Fig. 6 (SGD variants) vs Fig. 15 (Adam)
# Shuffles of the permutation test: a Bonferroni p < 0.05 over 352 hypotheses needs p < 1.4e-4, and 1 / 20001 resolves it.
PERMUTATIONS = 20_000

_SEED_RULE = "by more than the larger seed sd"
_STRONG = f"r >= {STRONG_R}"


# --- per-epoch statistics ------------------------------------------------------------------


def _later_layers_by_epoch(rows: pd.DataFrame, metrics: tuple[str, ...]) -> dict[int, SeedStats]:
    """Per epoch: seed statistics of the per-seed mean over the paper's later layers
    (7-12) of the given metrics' values."""
    layers = LATER_LAYERS.layers(depth_of(rows))
    selected = rows[rows["metric"].isin(metrics) & rows["layer"].isin(layers)]
    if selected["metric"].nunique() != len(metrics):
        raise NotMeasured(f"the dynamics runs lack some of the metrics {list(metrics)}")
    per_seed = selected.groupby(["epoch", "seed"])["value"].mean().groupby("epoch")
    return {int(epoch): SeedStats.of(values) for epoch, values in per_seed}


def _peak_epoch(series: Mapping[int, SeedStats]) -> int:
    return max(series, key=lambda epoch: series[epoch].mean)


def _peaks_early(study: StudyTables, metrics: tuple[str, ...]) -> list[Finding]:
    """Per default-variant dynamics run: whether each metric's later-layer series peaks in
    the first half of the epochs and falls from the peak to the last epoch."""
    findings = []
    for run, rows in study.dynamics_metrics().items():
        holds, parts = True, []
        for metric in metrics:
            series = _later_layers_by_epoch(rows, (metric,))
            peak, last = _peak_epoch(series), max(series)
            holds &= peak <= last / 2 and series[peak].exceeds(series[last])
            parts.append(f"{metric} peaks {series[peak]} at epoch {peak}, ends {series[last]} at epoch {last}")
        findings.append(
            Finding(holds, f"{run.label} ({LATER_LAYERS.describe(depth_of(rows))}): " + "; ".join(parts), (run,))
        )
    return findings


def _headline_by_epoch(rows: pd.DataFrame) -> pd.Series:
    """The headline statistic per epoch of one run: the std across the paper's layers 2-12
    of the seed-mean forgetting, as the correlation analyses evaluate it."""
    forgetting = rows[rows["metric"] == "forgetting"].groupby(["epoch", "layer"])["value"].mean().unstack("layer")
    return headline_hypothesis(len(forgetting.columns)).evaluate({"forgetting": forgetting})


def _robust_rows(study: StudyTables) -> dict[Run, pd.DataFrame]:
    return by_run(study.table("robust_accuracy"))


@claim(
    "4.4",
    statement="During training the accuracy on the clean test set increases gradually.",
    statistic="Spearman rank correlation between the epoch and the clean test accuracy over epochs 1..E, "
    "default-variant dynamics runs",
    threshold=f"ρ >= {STRONG_R} (a clear monotone rise), every run; undefined (a constant accuracy) does not hold",
    paper_value="a gradual increase (dotted line of Fig. 5(c))",
)
def clean_accuracy_increases_gradually(study: StudyTables) -> list[Finding]:
    findings = []
    for run, rows in _robust_rows(study).items():
        per_severity = severity_accuracy(rows)
        clean = per_severity[(per_severity["severity"] == CLEAN_SEVERITY) & (per_severity["epoch"] >= 1)]
        clean = clean.set_index("epoch")["accuracy"].sort_index()
        if len(clean) < MIN_DYNAMICS_EPOCHS:
            continue
        rho = spearman(clean.index, clean.to_numpy())
        first, last = int(clean.index[0]), int(clean.index[-1])
        findings.append(
            Finding(
                rho >= STRONG_R,
                f"{run.label}: ρ = {rho:.3f} over epochs {first}..{last}; clean accuracy {clean.iloc[0]:.3f} at "
                f"epoch {first}, {clean.iloc[-1]:.3f} at epoch {last}",
                (run,),
            )
        )
    return collect(findings, f"dynamics run with clean accuracy at {MIN_DYNAMICS_EPOCHS} or more epochs")


@claim(
    "4.4",
    statement="Learning and forgetting do not increase monotonically during finetuning: later layers peak in "
    "earlier epochs.",
    statistic="per epoch, per-seed mean over paper layers 7-12 of learning and of forgetting; the epoch of the "
    "largest seed mean (peak) and the last epoch E, default-variant dynamics runs",
    threshold=f"for both metrics, peak epoch <= E / 2 and the peak exceeds the last epoch's value {_SEED_RULE}",
    paper_value="a peak in early epochs, then lower (Figs. 5(a), 5(b))",
)
def dynamics_peak_early(study: StudyTables) -> list[Finding]:
    return _peaks_early(study, ("learning", "forgetting"))


@claim(
    "4.4",
    statement="The early peak of the later layers is confirmed by the CKA divergence.",
    statistic="per epoch, per-seed mean over paper layers 7-12 of CKA divergence; its peak epoch and the last "
    "epoch E, default-variant dynamics runs",
    threshold=f"peak epoch <= E / 2 and the peak exceeds the last epoch's value {_SEED_RULE}",
    paper_value="the same early peak in CKA divergence (Figs. 11(a), 11(b))",
)
def cka_divergence_peaks_early(study: StudyTables) -> list[Finding]:
    return _peaks_early(study, ("cka_divergence",))


def _correct_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (epoch, severity 1..5): inputs answered correctly and inputs, over the corruptions."""
    corrupted = rows[rows["severity"] != CLEAN_SEVERITY]
    counts = corrupted.assign(correct=(corrupted["accuracy"] * corrupted["n_images"]).round().astype("int64"))
    return counts.groupby(["epoch", "severity"])[["correct", "n_images"]].sum()


@claim(
    "4.4",
    statement="In correspondence with the peak of learning and forgetting the model is more robust, in "
    "particular on the higher corruption severities 3, 4, 5.",
    statistic="accuracy at each of severities 3-5 at the peak epoch of learning and forgetting (per-seed mean "
    "over paper layers 7-12 of both) vs at the last epoch, on the same inputs: McNemar's exact one-sided test, "
    "its p bounded from the two accuracies (the pairing least favourable to the claim; per-input outcomes are "
    "not recorded)",
    threshold=f"McNemar p bound < {ALPHA} at each of severities 3, 4, 5 (all three must pass), peak before the "
    "last epoch, every run",
    paper_value="higher robustness at the peak, especially at severities 3-5 (Fig. 5(c))",
)
def robustness_high_at_peak(study: StudyTables) -> list[Finding]:
    robust = _robust_rows(study)
    findings = []
    for run, rows in study.dynamics_metrics().items():
        if run not in robust:
            continue
        series = _later_layers_by_epoch(rows, ("learning", "forgetting"))
        peak, last = _peak_epoch(series), max(series)
        counts = _correct_counts(robust[run])
        needed = [(e, s) for e in (peak, last) for s in HIGH_SEVERITIES]
        if any(key not in counts.index for key in needed):
            raise NotMeasured(f"robust accuracy of {run.label} lacks some of (epoch, severity) {needed}")
        holds, parts = peak < last, []
        for severity in HIGH_SEVERITIES:
            (at_peak, n), (at_last, m) = counts.loc[(peak, severity)], counts.loc[(last, severity)]
            if n != m:
                raise ValueError(
                    f"robust accuracy of {run.label}, severity {severity}: {n} inputs at epoch {peak} but {m} at "
                    f"epoch {last}; the paired test needs the same inputs at every epoch"
                )
            p = mcnemar_p_bound(int(at_peak), int(at_last), int(n))
            holds &= p < ALPHA
            parts.append(
                f"severity {severity}: {at_peak / n:.3f} vs {at_last / n:.3f} ({(at_peak - at_last) / n:+.3f} of "
                f"{n} inputs, McNemar p <= {p:.2g})"
            )
        findings.append(
            Finding(
                holds,
                f"{run.label}: learning and forgetting ({LATER_LAYERS.describe(depth_of(rows))}) peak at epoch "
                f"{peak}, accuracy at epoch {peak} vs last epoch {last}: " + "; ".join(parts),
                (run,),
            )
        )
    return collect(findings, "dynamics run with robust accuracy")


# --- the robustness hypotheses (named_hypotheses, hypotheses) ------------------------------


def _named(study: StudyTables, role: str) -> dict[Run, pd.Series]:
    """Per default-variant dynamics run: its ``named_hypotheses`` row of ``role``."""
    df = study.table("named_hypotheses")
    rows = {run: part.iloc[0] for run, part in by_run(df[df["role"] == role]).items()}
    if not rows:
        raise NotMeasured(f"no '{role}' rows in named_hypotheses")
    return rows


def _selection_text(row: pd.Series, paper: str) -> str:
    selection = Hypothesis.from_id(row["hypothesis"]).selection
    return f"{row['hypothesis']} (paper {paper} = layers {selection.first}-{selection.last} here)"


def _paper_r(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:.3f}"


def _strong_and_significant(row: pd.Series) -> bool:
    """The headline's test: a strong positive r that passes the Bonferroni correction."""
    return bool(row["r"] >= STRONG_R and row["p_bonferroni"] < ALPHA)


def _headline_text(run: Run, row: pd.Series) -> str:
    return (
        f"{run.label}: {_selection_text(row, 'layers 2-12')} r = {row['r']:.3f}, Bonferroni p = "
        f"{row['p_bonferroni']:.2g} over {row['n_epochs']} epochs (paper r {_paper_r(row['paper_r'])})"
    )


@claim(
    "4.4",
    statement="The standard deviation of forgetting across layers 2-12 correlates strongly with the mean corrupted "
    "accuracy across epochs, passing the Bonferroni correction.",
    statistic="Pearson r across epochs of the 'headline' named hypothesis (std of forgetting over paper layers "
    "2-12) with the mean corrupted accuracy, and its Bonferroni p (per family: STIR hypotheses)",
    threshold=f"{_STRONG} (strong) and Bonferroni p < {ALPHA}, every default-variant dynamics run",
    paper_value="r = 0.78 (p = 3.52e-18) on CIFAR10-C, r = 0.877 (p = 2.51e-16) on CIFAR100-C",
)
def std_forgetting_predicts_robustness(study: StudyTables) -> list[Finding]:
    return [
        Finding(_strong_and_significant(row), _headline_text(run, row), (run,))
        for run, row in _named(study, HEADLINE.role).items()
    ]


@claim(
    BEYOND,
    statement="The headline correlation does not rest on the parametric p-value's assumption of normal series: "
    "with the mean corrupted accuracies shuffled across epochs (a permutation test), Bonferroni-corrected over the "
    "same family, the std of forgetting across layers 2-12 is still significant.",
    statistic=f"two-sided permutation p of the headline's r with the mean corrupted accuracy ({PERMUTATIONS} shuffles, "
    "same epochs as the headline's test) times its family size (352 for 13 layers); beside it, r without the "
    "epoch it rests on most (leave-one-epoch-out)",
    threshold=f"permutation p × family size < {ALPHA}, every default-variant dynamics run",
    paper_value="not measured by the paper (its p-values are parametric: 3.52e-18 on CIFAR10-C, 2.51e-16 on CIFAR100-C)",
)
def headline_survives_permutation(study: StudyTables) -> list[Finding]:
    robust, metrics = _robust_rows(study), study.dynamics_metrics()
    hypotheses = study.table("hypotheses")
    findings = []
    for run, named in _named(study, HEADLINE.role).items():
        if run not in robust or run not in metrics:
            continue
        headline, accuracy = _headline_by_epoch(metrics[run]), mean_corrupted_accuracy(robust[run])
        epochs = sorted(set(headline.index) & set(accuracy.index))[: int(named["n_epochs"])]
        x, y = headline.loc[epochs].to_numpy(), accuracy.loc[epochs].to_numpy()
        family = run.rows(hypotheses)
        family_size = int(family.loc[family["hypothesis"] == named["hypothesis"], "family_size"].iloc[0])
        p = permutation_p_value(x, y, PERMUTATIONS)
        corrected = bonferroni(p, family_size)
        evidence = (
            f"{run.label}: r = {named['r']:.3f} over {len(epochs)} epochs, parametric Bonferroni p = "
            f"{named['p_bonferroni']:.2g}; permutation p = {p:.2g} × {family_size} = {corrected:.2g}"
        )
        if len(epochs) >= 4:  # without one of 3 epochs, r of 2 points is always +-1
            without = leave_one_out_r(x, y)
            weakest = int(np.nanargmin(without))
            evidence += f"; without epoch {epochs[weakest]}: r = {without[weakest]:.3f}"
        findings.append(Finding(corrected < ALPHA, evidence, (run,)))
    return collect(findings, "dynamics run with both the headline's test and robust accuracy")


@claim(
    "4.4",
    statement="Choosing the best aggregate of CKA divergence (std over layers 1-8), its correlation with "
    "robustness is weaker than that of the std of forgetting, which itself correlates strongly.",
    statistic="the largest Pearson r among the CKA-divergence hypotheses of the family (88 for 13 layers) and "
    "the headline's r and Bonferroni p, same run and epochs",
    threshold=f"the headline holds ({_STRONG}, Bonferroni p < {ALPHA}) and best CKA r < headline r, every "
    "default-variant dynamics run; undefined CKA r's do not hold",
    paper_value="0.69 vs 0.78 (CIFAR10-C), 0.63 vs 0.877 (CIFAR100-C)",
)
def cka_weaker_than_headline(study: StudyTables) -> list[Finding]:
    hypotheses = study.table("hypotheses")
    family = hypotheses[(hypotheses["family"] == "cka") & hypotheses["in_family"]]
    findings = []
    for run, headline in _named(study, HEADLINE.role).items():
        candidates = run.rows(family)
        if candidates.empty:
            continue
        defined = candidates.dropna(subset=["r"])
        paper_cka, _ = named_hypothesis_values(CKA_HYPOTHESIS, run)
        headline_holds = _strong_and_significant(headline)
        if defined.empty:
            best, holds = f"every one of the {len(candidates)} CKA hypotheses has an undefined r", False
        else:
            top = defined.loc[defined["r"].idxmax()]
            best = f"best of the {len(candidates)} CKA hypotheses {top['hypothesis']} r = {top['r']:.3f}"
            holds = headline_holds and top["r"] < headline["r"]
        findings.append(
            Finding(
                holds,
                f"{run.label}: {best} vs std of forgetting r = {headline['r']:.3f}, Bonferroni p = "
                f"{headline['p_bonferroni']:.2g} ({'holds' if headline_holds else 'fails'} the headline's test) "
                f"(paper r {_paper_r(paper_cka)} vs {_paper_r(headline['paper_r'])})",
                (run,),
            )
        )
    return collect(findings, "dynamics run with both the headline and the CKA-divergence hypotheses")


@claim(
    "4.4",
    statement="Both the standard deviation of forgetting across layers and the mean corrupted accuracy stabilize "
    "to constant values towards the end of training.",
    statistic=f"per default-variant dynamics run with E >= {MIN_STABLE_EPOCHS} epochs: the change of the "
    f"least-squares line over the last {FINAL_SHARE:.0%} of the epochs (at least {MIN_DYNAMICS_EPOCHS}), of the "
    "headline statistic (std of seed-mean forgetting over paper layers 2-12) and of the mean corrupted accuracy",
    threshold=f"|change| <= {STABLE_SHARE} × the series' range over epochs 1..E, both series, every run",
    paper_value="both constant towards the end of training (Figs. 5(b), 5(c))",
)
def headline_and_accuracy_stabilize(study: StudyTables) -> list[Finding]:
    robust = _robust_rows(study)
    findings, lengths = [], []
    for run, rows in study.dynamics_metrics().items():
        if run not in robust:
            continue
        series = {
            "std of forgetting": _headline_by_epoch(rows),
            "mean corrupted accuracy": mean_corrupted_accuracy(robust[run]),
        }
        epochs = sorted(set(series["std of forgetting"].index) & set(series["mean corrupted accuracy"].index))
        lengths.append(len(epochs))
        if len(epochs) < MIN_STABLE_EPOCHS:
            continue
        final = epochs[-max(MIN_DYNAMICS_EPOCHS, math.ceil(FINAL_SHARE * len(epochs))) :]
        holds, parts = True, []
        for name, values in series.items():
            values = values.loc[epochs]
            moved, span = drift(values.loc[final]), float(values.max() - values.min())
            holds &= abs(moved) <= STABLE_SHARE * span
            parts.append(f"{name} moves {moved:+.4f} over epochs {final[0]}..{final[-1]} vs range {span:.4f}")
        findings.append(Finding(holds, f"{run.label}: " + "; ".join(parts), (run,)))
    return collect(
        findings,
        f"dynamics run with robust accuracy at {MIN_STABLE_EPOCHS} or more epochs (the runs have {sorted(set(lengths))})",
    )


def _window_correlations(early: pd.DataFrame, run: Run, hypothesis: str) -> pd.DataFrame:
    """r and p over epochs 1..e of one run's hypothesis, indexed by e."""
    rows = run.rows(early)
    return rows[rows["hypothesis"] == hypothesis].set_index("last_epoch")[["r", "p_value"]].sort_index()


@claim(
    "4.4",
    statement="The correlation of the std of forgetting with robustness up to early epochs is not only "
    "comparable to, but even higher than, up to the end of training (Fig. 14).",
    statistic=f"median r of the headline over windows 1..e with {MIN_WINDOW_EPOCHS} <= e <= E / 2 (an undefined "
    "r counts as -1) vs r over 1..E (E the run's last epoch)",
    threshold=f"median early-window r >= {STRONG_R} (strong) and >= r over all epochs; windows shorter than "
    f"{MIN_WINDOW_EPOCHS} epochs are not read",
    paper_value="early-window r even higher than the full-run r (Fig. 14)",
)
def early_epochs_correlate(study: StudyTables) -> list[Finding]:
    early = study.table("early_epoch_correlation")
    findings, lengths = [], []
    for run, headline in _named(study, HEADLINE.role).items():
        windows = _window_correlations(early, run, headline["hypothesis"])["r"]
        if windows.empty:
            continue
        last = int(windows.index.max())
        lengths.append(last)
        early_windows = windows[(windows.index >= MIN_WINDOW_EPOCHS) & (windows.index <= last / 2)]
        if early_windows.empty:
            continue
        median, full = float(early_windows.fillna(-1.0).median()), float(windows[last])
        findings.append(
            Finding(
                median >= STRONG_R and median >= full,
                f"{run.label} {headline['hypothesis']}: median r over epochs 1..e for e = "
                f"{int(early_windows.index.min())}..{int(early_windows.index.max())} is {median:.3f} "
                f"(range {early_windows.min():.3f} to {early_windows.max():.3f}, "
                f"{int(early_windows.isna().sum())} undefined) vs r over 1..{last} {full:.3f}",
                (run,),
            )
        )
    return collect(
        findings,
        f"dynamics run with windows of {MIN_WINDOW_EPOCHS} or more epochs within its first half "
        f"(the early-epoch rows of the headline reach epochs {sorted(set(lengths))})",
    )


# --- the hyperparameter variants (Figs. 6, 15) ----------------------------------------------


def _variant_correlations(study: StudyTables, optimizer: str) -> list[tuple[Run, float, float, str]]:
    """Per dynamics run with ``optimizer`` in a setting with several variants: the
    headline's r and p over the setting's common first W epochs, and a description. W, the
    fewest epochs of the setting's runs, must be MIN_WINDOW_EPOCHS or more."""
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
            r, p = float(series.loc[window, "r"]), float(series.loc[window, "p_value"])
            outcomes.append((run, r, p, f"{run.label} [{optimizer}]: r = {r:.3f}, p = {p:.2g} over epochs 1..{window}"))
    if not outcomes:
        raise NotMeasured(
            f"no '{optimizer}' run among dynamics settings with several variants and a common window of "
            f"{MIN_WINDOW_EPOCHS} or more epochs (common windows: {windows})"
        )
    return outcomes


_VARIANT_STATISTIC = (
    "Pearson r of the headline hypothesis with the mean corrupted accuracy over the first W epochs (W: fewest "
    "epochs among the setting's variants), for every {} run of a dynamics setting with several variants"
)


@claim(
    "4.4",
    statement="With SGD, models with different learning rates and with or without augmentation show the same "
    "trend: higher std of forgetting coincides with higher corrupted accuracy (Fig. 6).",
    statistic=_VARIANT_STATISTIC.format("SGD"),
    threshold=f"r > 0 and p < {ALPHA} (one pre-named hypothesis per run, uncorrected); W >= {MIN_WINDOW_EPOCHS}",
    paper_value="similar trends over the first 20 epochs (Fig. 6)",
)
def sgd_variants_show_trend(study: StudyTables) -> list[Finding]:
    return [
        Finding(r > 0 and p < ALPHA, text, (run,)) for run, r, p, text in _variant_correlations(study, TREND_OPTIMIZER)
    ]


@claim(
    "4.4",
    statement="With Adam there is no clear trend: higher std of forgetting does not coincide with higher "
    "corrupted accuracy (Fig. 15).",
    statistic=_VARIANT_STATISTIC.format("Adam"),
    threshold=f"r defined, neither significant (p >= {ALPHA}, either sign) nor strong (|r| < {STRONG_R}); "
    f"W >= {MIN_WINDOW_EPOCHS}",
    paper_value="no clear trend over the first 20 epochs (Fig. 15)",
)
def adam_shows_no_trend(study: StudyTables) -> list[Finding]:
    return [
        Finding(p >= ALPHA and abs(r) < STRONG_R, text, (run,))
        for run, r, p, text in _variant_correlations(study, NO_TREND_OPTIMIZER)
    ]
