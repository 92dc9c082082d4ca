"""Section 4.4, forgetting and learning dynamics: the dynamics runs (the metrics and the
robust accuracy at every epoch), the robustness hypotheses and the hyperparameter
variants (Figs. 5, 6, 14, 15); and, beyond the paper, whether the headline correlation's
significance survives the permutation test that respects time series.

Every default-variant dynamics run of the study (:attr:`.evidence.StudyTables.dynamics_roster`)
is a setting of each claim of the dynamics runs: one whose rows a claim needs are missing
is unmeasured, never skipped. A correlation across epochs is judged by the p-value config
``robustness.inference`` names (the paper's parametric one by default, or the permutation
test of :func:`..statistics.surrogate_p_values`); the evidence shows both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..hypotheses import Hypothesis, headline_hypothesis, seed_mean_tables
from ..paper import CKA_HYPOTHESIS, HEADLINE, named_hypothesis_values
from ..robust_accuracy import mean_corrupted_accuracy, severity_accuracy
from ..statistics import smallest_surrogate_p
from ..vocabulary import CLEAN_SEVERITY, DEFAULT_VARIANT, Run
from .evidence import (
    ALPHA,
    LATER_LAYERS,
    MIN_DYNAMICS_EPOCHS,
    PERMUTATION,
    STRONG_R,
    NotMeasured,
    Outcome,
    SeedStats,
    StudyTables,
    all_of,
    collect,
    combine,
    decide,
    epoch_span,
    measure,
    number,
    paper_r,
    seed_profile,
)
from .inference import correlation_gap, drift, leave_one_out_r, mcnemar_p_bound, mcnemar_text, r_interval, spearman
from .registry import BEYOND, Finding, claim

HIGH_SEVERITIES = (3, 4, 5)  # "in particular ... severity 3, 4, 5"
MIN_WINDOW_EPOCHS = 10  # shortest epoch window whose correlation a claim reads (p < 0.05 needs r > 0.63)
FINAL_SHARE = 0.25  # "towards the end of training": the last quarter of the epochs
STABLE_SHARE = 0.1  # "constant values": over the final epochs the fitted line moves under a tenth of the range
MIN_STABLE_EPOCHS = math.ceil(MIN_DYNAMICS_EPOCHS / FINAL_SHARE)  # the last quarter has MIN_DYNAMICS_EPOCHS epochs
TREND_OPTIMIZER, NO_TREND_OPTIMIZER = "sgd", "adam"  # Fig. 6 (SGD variants) vs Fig. 15 (Adam)
CLEAR_TREND = STRONG_R  # "a clear trend": a strong correlation; "no clear trend": |r| >= 0.7 excluded (TOST)
CKA_FAMILY = "cka"

_SEED_RULE = "by more than the larger seed sd"
_STRONG = f"r >= {STRONG_R}"
_WEAKER = "Fisher's z of the headline's r above the best CKA r's by more than one standard error, sqrt(2 / (n - 3))"
_INFERENCE = (
    "the p-value config robustness.inference names: the paper's parametric one (default) or the permutation test "
    "over the 2n circular shifts and reversals of the accuracy series"
)


def _dynamics_findings(study: StudyTables, evaluate) -> list[Finding]:
    """One finding per default-variant dynamics run: ``evaluate(run)``, unmeasured where its rows lack."""
    return [measure(run.label, (run,), lambda run=run: evaluate(run)) for run in study.dynamics_roster]


def _p_text(row: Mapping[str, float], familywise: bool) -> str:
    """Both p-values of a correlation: the parametric and the permutation one."""
    if familywise:
        return (
            f"Bonferroni p = {number(row['p_bonferroni'], '.2g')}, "
            f"family-wise permutation p = {number(row['p_permutation_fwer'], '.2g')}"
        )
    return f"p = {number(row['p_value'], '.2g')}, permutation p = {number(row['p_permutation'], '.2g')}"


def _p(study: StudyTables, row: Mapping[str, float], n: int, familywise: bool) -> float:
    """The p-value the verdict reads; :class:`NotMeasured` where the permutation test
    cannot reach the level with n epochs (its smallest p is 1 / (2n))."""
    if study.inference == PERMUTATION and smallest_surrogate_p(n) >= ALPHA:
        raise NotMeasured(
            f"over {n} epochs the permutation test's smallest p is {smallest_surrogate_p(n):.3g}, not below {ALPHA} "
            f"({_p_text(row, familywise)})"
        )
    return float(row[study.p_column(familywise)])


# --- per-epoch statistics ------------------------------------------------------------------


def _metrics_by_epoch(study: StudyTables, run: Run) -> dict[int, pd.DataFrame]:
    """A dynamics run's layer metrics by epoch >= 1; MIN_DYNAMICS_EPOCHS or more needed."""
    rows = study.run_rows("layer_metrics", run)
    by_epoch = {int(epoch): part for epoch, part in rows[rows["epoch"] >= 1].groupby("epoch")}
    if len(by_epoch) < MIN_DYNAMICS_EPOCHS:
        raise NotMeasured(f"layer metrics at {len(by_epoch)} epochs, fewer than {MIN_DYNAMICS_EPOCHS}")
    return by_epoch


def _later_layers_by_epoch(study: StudyTables, run: Run, metrics: tuple[str, ...]) -> dict[int, SeedStats]:
    """Per epoch: seed statistics of the per-seed mean over the paper's later layers (7-12)
    of the given metrics' values, each epoch complete (every layer, seed and metric)."""
    depth = study.depth(run.source)
    layers = LATER_LAYERS.layers(depth)
    series, seeds = {}, set()
    for epoch, rows in _metrics_by_epoch(study, run).items():
        try:
            profiles = [seed_profile(rows, metric, depth)[layers] for metric in metrics]
        except NotMeasured as missing:
            raise NotMeasured(f"epoch {epoch}: {missing}") from None
        per_seed = pd.concat(profiles, axis=1).mean(axis=1)
        seeds.add(tuple(per_seed.index))
        series[epoch] = SeedStats.of(per_seed)
    if len(seeds) > 1:
        raise NotMeasured(f"the epochs have different seeds: {sorted(seeds)}")
    return series


def _peak_epoch(series: Mapping[int, SeedStats]) -> int:
    return max(series, key=lambda epoch: series[epoch].mean)


def _peaks_early(study: StudyTables, metrics: tuple[str, ...]) -> list[Finding]:
    """Per dynamics run: whether each metric's later-layer series peaks in the first half
    of the epochs and falls from the peak to the last epoch."""

    def peaks(run: Run, metric: str) -> tuple[Outcome, str]:
        series = _later_layers_by_epoch(study, run, (metric,))
        peak, last = _peak_epoch(series), max(series)
        return all_of([peak <= last / 2, series[peak].exceeds(series[last])]), (
            f"{metric} peaks {series[peak]} at epoch {peak}, ends {series[last]} at epoch {last}"
        )

    def evaluate(run: Run) -> tuple[Outcome, str]:
        holds, text = combine(lambda m=m: peaks(run, m) for m in metrics)
        return holds, f"({LATER_LAYERS.describe(study.depth(run.source))}) {text}"

    return _dynamics_findings(study, evaluate)


def _headline_by_epoch(study: StudyTables, run: Run) -> pd.Series:
    """The headline statistic per epoch >= 1 of one run: the std across the paper's layers
    2-12 of the seed-mean forgetting, as the correlation analyses evaluate it."""
    rows = study.run_rows("layer_metrics", run)
    try:
        tables = seed_mean_tables(rows[rows["metric"] == "forgetting"])
    except ValueError as incomplete:
        raise NotMeasured(f"forgetting of {run.label}: {incomplete}") from None
    forgetting = tables["forgetting"]
    values = headline_hypothesis(len(forgetting.columns)).evaluate({"forgetting": forgetting})
    return values[values.index >= 1]


def robust_rows(study: StudyTables, run: Run, clean: bool = False) -> pd.DataFrame:
    """A run's robust accuracy rows (its clean rows alone if ``clean``), every accuracy
    defined (a NaN would be pooled as wrong answers or dropped from a mean); NotMeasured
    otherwise."""
    rows = study.run_rows("robust_accuracy", run)
    if clean:
        rows = rows[rows["severity"] == CLEAN_SEVERITY]
    undefined = rows["accuracy"].isna()
    if undefined.any():
        cells = rows.loc[undefined, ["epoch", "corruption", "severity"]].values[:3].tolist()
        raise NotMeasured(f"robust accuracy undefined (NaN) at (epoch, corruption, severity) {cells}")
    return rows


def _accuracy(study: StudyTables, run: Run) -> pd.Series:
    """The run's mean corrupted accuracy per epoch (every severity of every epoch needed)."""
    try:
        return mean_corrupted_accuracy(robust_rows(study, run))
    except ValueError as incomplete:
        raise NotMeasured(str(incomplete)) from None


@claim(
    "4.4",
    statement="During training the accuracy on the clean test set increases gradually.",
    statistic="Spearman rank correlation between the epoch and the clean test accuracy over epochs 1..E, "
    "every default-variant dynamics run",
    threshold=f"ρ >= {STRONG_R} (a clear monotone rise), every run; not measured where it is undefined (a constant "
    "accuracy)",
    paper_value="a gradual increase (dotted line of Fig. 5(c))",
)
def clean_accuracy_increases_gradually(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        try:
            per_severity = severity_accuracy(robust_rows(study, run, clean=True))
        except ValueError as malformed:
            raise NotMeasured(str(malformed)) from None
        clean = per_severity[per_severity["epoch"] >= 1]  # robust_rows(clean=True): the clean severity alone
        clean = clean.set_index("epoch")["accuracy"].sort_index()
        if len(clean) < MIN_DYNAMICS_EPOCHS:
            raise NotMeasured(f"clean accuracy at {len(clean)} epochs, fewer than {MIN_DYNAMICS_EPOCHS}")
        rho = spearman(clean.index, clean.to_numpy())
        first, last = int(clean.index[0]), int(clean.index[-1])
        return decide(rho >= STRONG_R, rho), (
            f"ρ = {number(rho)} over {epoch_span(first, last)}; clean accuracy {clean.iloc[0]:.3f} at "
            f"epoch {first}, {clean.iloc[-1]:.3f} at epoch {last}"
        )

    return _dynamics_findings(study, evaluate)


@claim(
    "4.4",
    statement="Learning and forgetting do not increase monotonically during finetuning: later layers peak in "
    "earlier epochs.",
    statistic="per epoch, per-seed mean over paper layers 7-12 of learning and of forgetting; the epoch of the "
    "largest seed mean (peak) and the last epoch E, every default-variant dynamics run",
    threshold=f"for both metrics, peak epoch <= E / 2 and the peak exceeds the last epoch's value {_SEED_RULE}",
    paper_value="a peak in early epochs, then lower (Figs. 5(a), 5(b))",
)
def dynamics_peak_early(study: StudyTables) -> list[Finding]:
    return _peaks_early(study, ("learning", "forgetting"))


@claim(
    "4.4",
    statement="The early peak of the later layers is confirmed by the CKA divergence.",
    statistic="per epoch, per-seed mean over paper layers 7-12 of CKA divergence; its peak epoch and the last "
    "epoch E, every default-variant dynamics run",
    threshold=f"peak epoch <= E / 2 and the peak exceeds the last epoch's value {_SEED_RULE}",
    paper_value="the same early peak in CKA divergence (Figs. 11(a), 11(b))",
)
def cka_divergence_peaks_early(study: StudyTables) -> list[Finding]:
    return _peaks_early(study, ("cka_divergence",))


def correct_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (epoch, severity 1..5): inputs answered correctly and inputs, over the corruptions."""
    corrupted = rows[rows["severity"] != CLEAN_SEVERITY]
    counts = corrupted.assign(correct=(corrupted["accuracy"] * corrupted["n_images"]).round().astype("int64"))
    return counts.groupby(["epoch", "severity"])[["correct", "n_images"]].sum()


def paired_counts(counts: pd.DataFrame, first: int, second: int, severities, what: str) -> list[tuple[int, int, int]]:
    """(correct at ``first``, correct at ``second``, inputs) per severity group, the same
    inputs at both epochs; NotMeasured where rows lack or the input counts differ."""
    out = []
    for group in severities:
        keys = [(e, s) for e in (first, second) for s in group]
        if any(key not in counts.index for key in keys):
            raise NotMeasured(f"robust accuracy lacks (epoch, severity) among {keys}")
        a = counts.loc[[(first, s) for s in group]].sum()
        b = counts.loc[[(second, s) for s in group]].sum()
        if a["n_images"] != b["n_images"]:
            raise NotMeasured(
                f"{what}: {a['n_images']} inputs at epoch {first} but {b['n_images']} at epoch {second}; the paired "
                "test needs the same inputs"
            )
        out.append((int(a["correct"]), int(b["correct"]), int(a["n_images"])))
    return out


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
    def evaluate(run: Run) -> tuple[Outcome, str]:
        series = _later_layers_by_epoch(study, run, ("learning", "forgetting"))
        peak, last = _peak_epoch(series), max(series)
        counts = correct_counts(robust_rows(study, run))
        paired = paired_counts(counts, peak, last, [(s,) for s in HIGH_SEVERITIES], run.label)
        outcomes, parts = [peak < last], []
        for severity, (at_peak, at_last, n) in zip(HIGH_SEVERITIES, paired):
            p = mcnemar_p_bound(at_peak, at_last, n)
            outcomes.append(p < ALPHA)
            parts.append(
                f"severity {severity}: {at_peak / n:.3f} vs {at_last / n:.3f} ({(at_peak - at_last) / n:+.3f} of "
                f"{n} inputs, {mcnemar_text(at_peak, at_last, n, p)})"
            )
        return all_of(outcomes), (
            f"learning and forgetting ({LATER_LAYERS.describe(study.depth(run.source))}) peak at epoch {peak}, "
            f"accuracy at epoch {peak} vs last epoch {last}: " + "; ".join(parts)
        )

    return _dynamics_findings(study, evaluate)


# --- the robustness hypotheses (named_hypotheses, hypotheses) ------------------------------


def _named_row(study: StudyTables, run: Run, role: str) -> pd.Series:
    """A run's ``named_hypotheses`` row of ``role``."""
    rows = study.run_rows("named_hypotheses", run)
    rows = rows[rows["role"] == role]
    if rows.empty:
        raise NotMeasured(f"no '{role}' row of {run.label} in named_hypotheses")
    return rows.iloc[0]


def _selection_text(row: pd.Series, paper: str) -> str:
    selection = Hypothesis.from_id(row["hypothesis"]).selection
    return f"{row['hypothesis']} (paper {paper} = layers {selection.first}-{selection.last} here)"


def _headline_text(row: pd.Series) -> str:
    return (
        f"{_selection_text(row, 'layers 2-12')} r = {number(row['r'])}, {_p_text(row, True)} over {row['n_epochs']} "
        f"epochs ({paper_r(row['paper_r'])})"
    )


@claim(
    "4.4",
    statement="The standard deviation of forgetting across layers 2-12 correlates strongly with the mean corrupted "
    "accuracy across epochs, passing the correction for the family of hypotheses.",
    statistic="Pearson r across epochs of the 'headline' named hypothesis (std of forgetting over paper layers "
    "2-12) with the mean corrupted accuracy, and its p corrected over the family of STIR hypotheses: Bonferroni "
    "(parametric) or family-wise permutation (Westfall-Young max-T), as config robustness.inference says",
    threshold=f"{_STRONG} (strong) and corrected p < {ALPHA}, every default-variant dynamics run",
    paper_value="r = 0.78 (p = 3.52e-18) on CIFAR10-C, r = 0.877 (p = 2.51e-16) on CIFAR100-C",
)
def std_forgetting_predicts_robustness(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        row = _named_row(study, run, HEADLINE.role)
        p = _p(study, row, int(row["n_epochs"]), familywise=True)
        return all_of([decide(row["r"] >= STRONG_R, row["r"]), decide(p < ALPHA, p)]), _headline_text(row)

    return _dynamics_findings(study, evaluate)


@claim(
    BEYOND,
    statement="The headline correlation does not rest on the parametric p-value's assumptions (independent, "
    "normal epochs): under a permutation test that keeps each series' autocorrelation, corrected family-wise over "
    "the same family, the std of forgetting across layers 2-12 is still significant.",
    statistic="family-wise permutation p of the headline's r with the mean corrupted accuracy: the share of the 2n "
    "circular shifts and reversals of the accuracy series whose largest |r| over the STIR family reaches the "
    "headline's (Westfall-Young single-step max-T); beside it, r without the epoch it rests on most",
    threshold=f"family-wise permutation p < {ALPHA}, every default-variant dynamics run; not measured where n "
    f"epochs cannot give a p below {ALPHA} (1 / (2n) >= {ALPHA})",
    paper_value="not measured by the paper (its p-values are parametric: 3.52e-18 on CIFAR10-C, 2.51e-16 on CIFAR100-C)",
)
def headline_survives_permutation(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        row = _named_row(study, run, HEADLINE.role)
        n = int(row["n_epochs"])
        if smallest_surrogate_p(n) >= ALPHA:
            raise NotMeasured(f"over {n} epochs the permutation test's smallest p is {smallest_surrogate_p(n):.3g}")
        p = float(row["p_permutation_fwer"])
        return decide(p < ALPHA, p), _headline_text(row) + _without_one_epoch(study, run, n)

    return _dynamics_findings(study, evaluate)


def _without_one_epoch(study: StudyTables, run: Run, n: int) -> str:
    """'; without epoch 1: r = 0.66': r without the epoch it rests on most, over the
    headline's first n epochs ('' where the series are not in the tables)."""
    try:
        headline, accuracy = _headline_by_epoch(study, run), _accuracy(study, run)
    except NotMeasured:
        return ""
    epochs = sorted(set(headline.index) & set(accuracy.index))[:n]
    if len(epochs) < 4:  # without one of 3 epochs, r of 2 points is always +-1
        return ""
    without = leave_one_out_r(headline.loc[epochs].to_numpy(), accuracy.loc[epochs].to_numpy())
    if np.isnan(without).all():
        return ""
    weakest = int(np.nanargmin(without))
    return f"; without epoch {epochs[weakest]}: r = {without[weakest]:.3f}"


@claim(
    "4.4",
    statement="Choosing the best aggregate of CKA divergence (std over layers 1-8), its correlation with "
    "robustness is weaker than that of the std of forgetting.",
    statistic="the largest Pearson r among the 88 CKA-divergence hypotheses of the family (8 (D - 1) for depth D; "
    "every member needed) and the headline's r, same run and epochs",
    threshold=f"weaker: {_WEAKER}, every default-variant dynamics run",
    paper_value="0.69 vs 0.78 (CIFAR10-C), 0.63 vs 0.877 (CIFAR100-C)",
)
def cka_weaker_than_headline(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        headline = _named_row(study, run, HEADLINE.role)
        members = study.run_rows("hypotheses", run)
        members = members[(members["family"] == CKA_FAMILY) & members["in_family"]]
        if members.empty:
            raise NotMeasured("no CKA-divergence hypotheses")
        size = int(members["family_size"].iloc[0])
        if members["hypothesis"].nunique() != size or len(members) != size:
            raise NotMeasured(f"{members['hypothesis'].nunique()} of the {size} CKA-divergence hypotheses")
        defined = members.dropna(subset=["r"])
        if defined.empty:
            raise NotMeasured(f"every one of the {size} CKA hypotheses has an undefined r")
        top = defined.loc[defined["r"].idxmax()]
        n = int(headline["n_epochs"])
        gap, error = correlation_gap(headline["r"], n, top["r"], int(top["n_epochs"]))
        paper_cka, _ = named_hypothesis_values(CKA_HYPOTHESIS, run)
        return decide(gap > error, gap, error), (
            f"best of the {size} CKA hypotheses {top['hypothesis']} r = {top['r']:.3f} vs std of forgetting "
            f"r = {number(headline['r'])} over {n} epochs: z gap {number(gap, '+.3f')} vs s.e. {number(error)} "
            f"({paper_r(paper_cka, headline['paper_r'])})"
        )

    return _dynamics_findings(study, evaluate)


@claim(
    "4.4",
    statement="Both the standard deviation of forgetting across layers and the mean corrupted accuracy stabilize "
    "to constant values towards the end of training.",
    statistic=f"per default-variant dynamics run: the change of the least-squares line over the last "
    f"{FINAL_SHARE:.0%} of the epochs (at least {MIN_DYNAMICS_EPOCHS}), of the headline statistic (std of "
    "seed-mean forgetting over paper layers 2-12) and of the mean corrupted accuracy",
    threshold=f"|change| <= {STABLE_SHARE} × the series' range over epochs 1..E, both series, every run; a run "
    f"with fewer than {MIN_STABLE_EPOCHS} epochs is not measured",
    paper_value="both constant towards the end of training (Figs. 5(b), 5(c))",
)
def headline_and_accuracy_stabilize(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        series = {"std of forgetting": _headline_by_epoch(study, run), "mean corrupted accuracy": _accuracy(study, run)}
        epochs = sorted(set(series["std of forgetting"].index) & set(series["mean corrupted accuracy"].index))
        if len(epochs) < MIN_STABLE_EPOCHS:
            raise NotMeasured(f"{len(epochs)} epochs with both series, fewer than {MIN_STABLE_EPOCHS}")
        final = epochs[-max(MIN_DYNAMICS_EPOCHS, math.ceil(FINAL_SHARE * len(epochs))) :]
        outcomes, parts = [], []
        for name, values in series.items():
            values = values.loc[epochs]
            moved, span = drift(values.loc[final]), float(values.max() - values.min())
            outcomes.append(decide(abs(moved) <= STABLE_SHARE * span, moved, span))
            parts.append(f"{name} moves {moved:+.4f} over {epoch_span(final[0], final[-1])} vs range {span:.4f}")
        return all_of(outcomes), "; ".join(parts)

    return _dynamics_findings(study, evaluate)


def _windows_text(early: pd.Series) -> str:
    """The r of the early windows (indexed by their last epoch e): their median and range,
    or the one window's r."""
    first, last = int(early.index.min()), int(early.index.max())
    if first == last:
        return f"r over the one early window, {epoch_span(1, first)}, is {early.iloc[0]:.3f}"
    return (
        f"median r over the {len(early)} early windows, epochs 1-e for e = {first} to {last}, is "
        f"{float(early.median()):.3f} (range {early.min():.3f} to {early.max():.3f})"
    )


def _windows(study: StudyTables, run: Run, hypothesis: str) -> pd.DataFrame:
    """r, p and permutation p over epochs 1..e of one run's hypothesis, indexed by e."""
    rows = study.run_rows("early_epoch_correlation", run)
    rows = rows[rows["hypothesis"] == hypothesis]
    if rows.empty:
        raise NotMeasured(f"no early-epoch rows of {hypothesis}")
    return rows.set_index("last_epoch")[["r", "p_value", "p_permutation"]].sort_index()


@claim(
    "4.4",
    statement="The correlation of the std of forgetting with robustness up to early epochs is not only "
    "comparable to, but even higher than, up to the end of training (Fig. 14).",
    statistic=f"median r of the headline over windows 1..e with {MIN_WINDOW_EPOCHS} <= e <= E / 2 vs r over 1..E "
    "(E the run's last epoch), every default-variant dynamics run",
    threshold=f"median early-window r >= {STRONG_R} (strong) and above r over all epochs (even higher: a tie is "
    "not); windows shorter than "
    f"{MIN_WINDOW_EPOCHS} epochs are not read; an undefined window r leaves the run unmeasured",
    paper_value="early-window r even higher than the full-run r (Fig. 14)",
)
def early_epochs_correlate(study: StudyTables) -> list[Finding]:
    def evaluate(run: Run) -> tuple[Outcome, str]:
        hypothesis = _named_row(study, run, HEADLINE.role)["hypothesis"]
        windows = _windows(study, run, hypothesis)
        last = int(windows.index.max())
        early = windows.loc[(windows.index >= MIN_WINDOW_EPOCHS) & (windows.index <= last / 2), "r"]
        if early.empty:
            raise NotMeasured(
                f"no window of {MIN_WINDOW_EPOCHS} or more epochs within the first half of {epoch_span(1, last)}"
            )
        if early.isna().any():
            raise NotMeasured(f"r undefined over epochs 1-e for e = {list(early.index[early.isna()])}")
        median, full = float(early.median()), windows.loc[last]
        return all_of([median >= STRONG_R, decide(median > full["r"], full["r"])]), (
            f"{hypothesis}: {_windows_text(early)} vs r over {epoch_span(1, last)} {number(full['r'])} "
            f"({_p_text(full, False)})"
        )

    return _dynamics_findings(study, evaluate)


# --- the hyperparameter variants (Figs. 6, 15) ----------------------------------------------


def _variant_findings(study: StudyTables, optimizer: str, judge, needs_default: bool = False) -> list[Finding]:
    """Per run with ``optimizer`` of a dynamics setting with several variants (the study's
    runs of every variant): ``judge(r, p, window)`` of the headline over the setting's
    common first W epochs (W: the fewest of its runs'), W >= MIN_WINDOW_EPOCHS. With
    ``needs_default``, a setting whose default run (the recipe the variants are compared
    with) has no rows is an unmeasured setting of its own."""
    if study.variant_optimizers is None:
        raise NotMeasured("the variants' optimizers were not given (variant_optimizers)")
    settings: dict[tuple[str, str, str], list[Run]] = {}
    for run in study.all_runs:
        settings.setdefault((run.source, run.dataset, run.task), []).append(run)
    findings = []
    for runs in settings.values():
        runs = sorted(r for r in runs if r.variant in study.variant_optimizers)
        if len(runs) < 2 or not any(r.variant != DEFAULT_VARIANT for r in runs):
            continue
        if needs_default and not any(r.variant == DEFAULT_VARIANT for r in runs):
            label = Run(runs[0].source, runs[0].dataset, runs[0].task).label
            findings.append(
                Finding(None, f"{label}: the default run, which the variants are compared with, has no rows")
            )
        windows = {}
        for run in runs:
            try:
                windows[run] = _windows(study, run, _named_row(study, run, HEADLINE.role)["hypothesis"])
            except NotMeasured as missing:
                windows[run] = missing
        reached = [int(w.index.max()) for w in windows.values() if isinstance(w, pd.DataFrame)]
        window = min(reached) if reached else 0
        for run in runs:
            if study.variant_optimizers[run.variant] != optimizer:
                continue
            label = f"{run.label}, trained with {optimizer}"

            def evaluate(run: Run = run) -> tuple[Outcome, str]:
                found = windows[run]
                if isinstance(found, NotMeasured):
                    raise found
                if window < MIN_WINDOW_EPOCHS:
                    raise NotMeasured(f"the setting's common window is {window} epochs, fewer than {MIN_WINDOW_EPOCHS}")
                if window not in found.index:
                    raise NotMeasured(f"no window of {epoch_span(1, window)}")
                row = found.loc[window]
                outcome, text = judge(float(row["r"]), row, window)
                return outcome, f"r = {number(row['r'])}, {_p_text(row, False)} over {epoch_span(1, window)}{text}"

            findings.append(measure(label, (run,), evaluate))
    return collect(findings, f"'{optimizer}' run of a dynamics setting with several variants")


_VARIANT_STATISTIC = (
    "Pearson r of the headline hypothesis with the mean corrupted accuracy over the first W epochs (W: fewest "
    "epochs among the setting's variants), for every {} run of a dynamics setting with several variants"
)


@claim(
    "4.4",
    statement="With SGD, models with different learning rates and with or without augmentation show the same "
    "trend: higher std of forgetting coincides with higher corrupted accuracy (Fig. 6).",
    statistic=_VARIANT_STATISTIC.format("SGD") + f"; its p is {_INFERENCE}",
    threshold=f"r > 0 and p < {ALPHA} (one pre-named hypothesis per run, uncorrected); W >= {MIN_WINDOW_EPOCHS}",
    paper_value="similar trends over the first 20 epochs (Fig. 6)",
)
def sgd_variants_show_trend(study: StudyTables) -> list[Finding]:
    def judge(r: float, row: pd.Series, window: int) -> tuple[Outcome, str]:
        p = _p(study, row, window, familywise=False)
        return all_of([decide(r > 0, r), decide(p < ALPHA, p)]), ""

    return _variant_findings(study, TREND_OPTIMIZER, judge, needs_default=True)


@claim(
    "4.4",
    statement="With Adam there is no clear trend: higher std of forgetting does not coincide with higher "
    "corrupted accuracy (Fig. 15).",
    statistic=_VARIANT_STATISTIC.format("Adam") + f"; the {100 * (1 - 2 * ALPHA):.0f}% interval of r by Fisher's z "
    "over the W epochs",
    threshold=f"no clear trend, shown: the interval inside (-{CLEAR_TREND}, {CLEAR_TREND}) (TOST at {ALPHA}: a "
    f"strong correlation of either sign excluded); W >= {MIN_WINDOW_EPOCHS}",
    paper_value="no clear trend over the first 20 epochs (Fig. 15)",
)
def adam_shows_no_trend(study: StudyTables) -> list[Finding]:
    def judge(r: float, row: pd.Series, window: int) -> tuple[Outcome, str]:
        low, high = r_interval(r, window, ALPHA)
        return (
            decide(-CLEAR_TREND < low and high < CLEAR_TREND, low, high),
            f"; interval [{number(low, '+.3f')}, {number(high, '+.3f')}]",
        )

    return _variant_findings(study, NO_TREND_OPTIMIZER, judge)
