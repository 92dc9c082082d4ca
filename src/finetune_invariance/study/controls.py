"""Planted-effect controls (beyond the paper): would the study find the paper's effects if
they were there, and does it stay quiet where they are not?

Each control is a (pretrained, finetuned) pair or an epoch series whose answer is known by
construction, measured by the same inversion, STIR and analysis code as the study's runs:

- ``identical_copy`` (negative control): f = p. Learning and forgetting sit at the
  identical-copy *floor* 1 - STIR(p_l | p_l) and CKA divergence at 0. The floor is not 0:
  the inversion stops after a finite number of steps with a residual loss, so p_l(X') is
  close to p_l(X), not equal, and their CKA over the n images is below 1. It is the
  value an unchanged layer gets, the zero of the two metrics.
- ``reinitialised`` (a localised change): blocks k..D-1 re-initialised. Layers 0..k-1
  are p's, so their learning and forgetting must equal the floor; from layer k on they
  must be clearly above it (:data:`MIN_EFFECT` and the seed spread).
- ``compressed`` / ``expanded``: f computes in layer j what p computed in layer j + 1 /
  j - 1 (:mod:`finetune_invariance.controls`). The claims' own test of Section 4.3
  (:mod:`.flow_statistics`) must find compression below / expansion above the diagonal,
  and must not find it in the identical copy, the twin of both.
- ``planted_robustness``: the mean corrupted accuracy of the default dynamics run replaced
  by a series built to correlate with the headline hypothesis; the 352-member family with
  Bonferroni (:func:`.hypotheses.correlate_hypotheses`) must find it strong and significant.
  Its twin, the same series shuffled across epochs (:data:`SHUFFLES` times), must pass the
  same test of the same hypothesis no more often than the correction allows (5%). The
  twin's evidence also gives the family-wise error of the paper's test over the shuffles:
  the share in which any member of a family passes its family's Bonferroni. That is a
  finding about the paper's parametric p-values, not a check of the pipeline: an epoch
  series with one outlying epoch (the first, in a finetuning run) correlates with every
  hypothesis that has its outlier at the same epoch (the beyond-the-paper claim
  ``headline_survives_permutation`` reads the same effect on the runs' own series).

Every check gives one row of the ``controls`` table: the control, the planted effect, the
statistic and threshold, whether the effect was found, whether it should have been, and
whether the study behaved as it should (``as_expected``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import tables
from .claims import ReportSection
from .control_plan import (
    COMPRESSED,
    EXPANDED,
    IDENTICAL,
    PLANTED_ROBUSTNESS,
    REINITIALISED,
    SHUFFLED_ROBUSTNESS,
    ControlSpec,
)
from .tables import CONTROLS
from .flow_statistics import ABOVE, BELOW, MIN_FLOW_SHARE, POSITIVE_CELL, flow_cells, flow_share
from .hypotheses import (
    HypothesisValues,
    correlate_hypotheses,
    headline_hypothesis,
    hypothesis_values,
    seed_mean_tables,
)
from .statistics import pearson_columns, shuffled_columns
from .vocabulary import CLEAN, CLEAN_SEVERITY, Run

EXACT = 1e-6  # "equal": float32 representations, CKA accumulated in float64
MIN_EFFECT = 0.02  # smallest rise above the floor counted as a change: 2% of STIR's [0, 1] range
STRONG_R = 0.7  # a "strong" correlation (the claims' convention)
ALPHA = 0.05  # significance after Bonferroni
PLANTED_NOISE = 0.3  # noise sd of the planted series, in units of the headline's sd: expected r = 1/sqrt(1.09) = 0.96
SHUFFLES = 1000  # shuffles of the planted series; the twin's pass rate is read over them (s.e. 0.007 at 0.05)


def measure_control(spec: ControlSpec, source, stored, seed: int, invert_settings: dict) -> pd.DataFrame:
    """One control pair built from ``source`` (an :class:`~.models.ImageModel`, the
    controls' source) measured like a run's checkpoint: both sides inverted from the
    images and starting noise of ``stored`` (the source's inversions of one seed, reused
    where a side is the source itself), then STIR both ways and plain CKA. Returns the
    ``CONTROL_PAIR_SIMILARITY`` table. ``stored``: :class:`~finetune_invariance.inversion.Inversions`;
    ``invert_settings``: :func:`~finetune_invariance.inversion.invert` keywords (iterations,
    step_size, memory_budget, precision)."""
    import copy

    from .. import stir
    from ..inversion import invert

    images = stored.targets.to(next(source.parameters()).device)
    pair = spec.build(source.backbone, seed=seed)

    def side(backbone):
        if backbone is source.backbone:  # the source itself: its stored inversions
            return source, stored
        model = copy.deepcopy(source)
        model.backbone = backbone
        return model, invert(model, images, seed=seed, progress=False, **invert_settings)

    (pretrained, inversions_p), (finetuned, inversions_f) = side(pair.pretrained), side(pair.finetuned)
    similarity = stir.pair_similarity(
        pretrained, finetuned, images, inversions_p, inversions_f, names=("pretrained", "finetuned")
    )
    return tables.conform(
        similarity.assign(control=spec.name)[list(tables.CONTROL_PAIR_SIMILARITY.columns)],
        tables.CONTROL_PAIR_SIMILARITY,
    )


# --- tables ---------------------------------------------------------------------------


def _row(
    control: str, check: str, statistic: str, threshold: str, value: float, found: bool, expected: bool, evidence: str
) -> dict:
    return dict(
        control=control,
        check=check,
        statistic=statistic,
        threshold=threshold,
        value=float(value),
        found=bool(found),
        expected=bool(expected),
        as_expected=bool(found) == bool(expected),
        evidence=evidence,
    )


# --- per-layer controls ---------------------------------------------------------------


def _per_layer(metrics: pd.DataFrame, control: str, metric: str) -> pd.DataFrame:
    """(seed x layer) values of one metric of one control."""
    rows = metrics[(metrics["control"] == control) & (metrics["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"no '{metric}' rows of control '{control}' in the control layer metrics")
    return rows.pivot(index="seed", columns="layer", values="value").sort_index()


def _span(layers: list[int]) -> str:
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"


def identical_copy_checks(metrics: pd.DataFrame) -> list[dict]:
    """The negative control: learning = forgetting (one model, one set of inversions) and
    CKA divergence 0 at every layer and seed; the floor's size is the evidence."""
    learning, forgetting = _per_layer(metrics, IDENTICAL, "learning"), _per_layer(metrics, IDENTICAL, "forgetting")
    cka = _per_layer(metrics, IDENTICAL, "cka_divergence")
    gap = float((learning - forgetting).abs().to_numpy().max())
    largest_cka = float(cka.abs().to_numpy().max())
    floor = forgetting.mean()
    return [
        _row(
            IDENTICAL,
            "any change (negative control)",
            "max over layers and seeds of |learning - forgetting| and of CKA divergence",
            f"> {EXACT}",
            max(gap, largest_cka),
            max(gap, largest_cka) > EXACT,
            False,
            f"|learning - forgetting| <= {gap:.1e}, CKA divergence <= {largest_cka:.1e}; the floor "
            f"1 - STIR(p_l|p_l) (the inversion's residual) is {floor.min():.3f}-{floor.max():.3f} across layers "
            f"(largest at layer {int(floor.idxmax())})",
        )
    ]


def _rise(metrics: pd.DataFrame, control: str, metric: str) -> pd.DataFrame:
    """(seed x layer) of a control's metric minus the identical copy's, the floor, seed by seed."""
    return _per_layer(metrics, control, metric) - _per_layer(metrics, IDENTICAL, metric)


def localised_change_checks(metrics: pd.DataFrame, spec: ControlSpec) -> list[dict]:
    """Blocks from k rewritten: exactly at the floor before layer k, and clearly above it
    from layer k on; the identical copy, the twin, is above it nowhere. "From layer k on"
    is read as "at some layer >= k": the change a block makes joins a residual stream that
    carries everything before it, so it may show only some layers later (the evidence
    names the first layer where it is resolved)."""
    rows = []
    for metric in ("forgetting", "learning"):
        rise = _rise(metrics, spec.name, metric)
        before = [layer for layer in rise.columns if layer < spec.block]
        after = [layer for layer in rise.columns if layer >= spec.block]
        unchanged = float(rise[before].abs().to_numpy().max())
        rows.append(
            _row(
                spec.name,
                f"{metric}: any change before layer {spec.block}",
                f"max over {_span(before)} and seeds of |{metric} - floor|",
                f"> {EXACT}",
                unchanged,
                unchanged > EXACT,
                False,
                f"{_span(before)} unchanged by construction: largest |{metric} - floor| {unchanged:.1e}",
            )
        )
        for control, expected in ((spec.name, True), (IDENTICAL, False)):
            rise = _rise(metrics, control, metric)[after]
            margin = rise.mean() - np.maximum(rise.std(ddof=1).fillna(0.0), MIN_EFFECT)
            resolved = [int(layer) for layer in margin.index if margin[layer] > 0]
            rows.append(
                _row(
                    control,
                    f"{metric}: a change from layer {spec.block} on",
                    f"max over {_span(after)} of seed-mean ({metric} - floor) - max({MIN_EFFECT}, seed sd)",
                    "> 0 (clearly above the floor at some layer from the block on)",
                    float(margin.max()),
                    bool(resolved),
                    expected,
                    f"{metric} - floor at {_span(after)}: "
                    + ", ".join(f"{value:+.3f}" for value in rise.mean())
                    + (
                        f"; resolved from layer {resolved[0]} ({len(resolved)} layers)"
                        if resolved
                        else "; resolved nowhere"
                    ),
                )
            )
    return rows


def flow_checks(flows: pd.DataFrame, spec: ControlSpec) -> list[dict]:
    """Compression (below the diagonal) or expansion (above it), read by the claims'
    test of Section 4.3, in the control and in the identical copy (the twin)."""
    triangle = BELOW if spec.kind == COMPRESSED else ABOVE
    effect = "compression" if spec.kind == COMPRESSED else "expansion"
    rows = []
    for control, expected in ((spec.name, True), (IDENTICAL, False)):
        cells = flow_cells(flows[flows["control"] == control])
        share = flow_share(cells, triangle)
        rows.append(
            _row(
                control,
                f"{effect} ({triangle} the diagonal)",
                f"share of pretrained layers with a positive cell {triangle} the diagonal ({POSITIVE_CELL}), "
                "the claims' test of Section 4.3",
                f">= {MIN_FLOW_SHARE:.2f}",
                share.share,
                share.shows_flow,
                expected,
                str(share),
            )
        )
    return rows


def model_control_checks(metrics: pd.DataFrame, flows: pd.DataFrame, specs: list[ControlSpec]) -> list[dict]:
    """Every check of the four model controls (:func:`control_specs`)."""
    specs = {spec.kind: spec for spec in specs}
    return [
        *identical_copy_checks(metrics),
        *localised_change_checks(metrics, specs[REINITIALISED]),
        *flow_checks(flows, specs[COMPRESSED]),
        *flow_checks(flows, specs[EXPANDED]),
    ]


# --- the robustness control -----------------------------------------------------------


def planted_accuracy(layer_metrics: pd.DataFrame, seed: int = 0) -> pd.Series:
    """Per epoch >= 1 of one run: a mean corrupted accuracy built to follow the headline
    hypothesis, 0.5 + 0.05 (z + noise), z the standardised headline and the noise normal
    with sd :data:`PLANTED_NOISE` (expected r = 0.96)."""
    metric_tables = seed_mean_tables(layer_metrics)
    num_layers = len(next(iter(metric_tables.values())).columns)
    headline = headline_hypothesis(num_layers).evaluate(metric_tables)
    headline = headline[headline.index >= 1]
    if headline.std(ddof=0) == 0:
        raise ValueError("the headline hypothesis is constant across epochs: nothing to plant a correlation on")
    z = (headline - headline.mean()) / headline.std(ddof=0)
    noise = np.random.default_rng(seed).normal(0.0, PLANTED_NOISE, len(z))
    return (0.5 + 0.05 * (z + noise)).rename("mean_corrupted_accuracy")


def accuracy_table(accuracy: pd.Series, run: Run) -> pd.DataFrame:
    """A ``ROBUST_ACCURACY`` table whose mean corrupted accuracy is ``accuracy`` (one
    synthetic corruption, every severity at that accuracy; clean at the same value)."""
    rows = [
        {**run.context, "epoch": int(epoch), "corruption": name, "severity": severity, "accuracy": value, "n_images": 1}
        for epoch, value in accuracy.items()
        for name, severity in [(CLEAN, CLEAN_SEVERITY), *(("planted", s) for s in range(1, 6))]
    ]
    return tables.conform(pd.DataFrame(rows), tables.ROBUST_ACCURACY)


def family_wise_error(values: HypothesisValues, shuffled: np.ndarray) -> dict[str, float]:
    """Per family of ``values``: the share of the shuffled accuracy series (the columns of
    ``shuffled``, one value per correlated epoch) in which some member passes its family's
    Bonferroni correction at :data:`ALPHA` (which promises at most ALPHA when the
    parametric p-values are valid)."""
    families = {h.id: h.family for h in values.members}
    false_alarms = dict.fromkeys(values.family_sizes, 0)
    for column in shuffled.T:
        for family in {families[h] for h in values.passing_bonferroni(pd.Series(column), ALPHA)}:
            false_alarms[family] += 1
    return {family: count / shuffled.shape[1] for family, count in false_alarms.items()}


def headline_pass_rate(headline: pd.Series, shuffled: np.ndarray, family_size: int) -> float:
    """The share of the shuffled accuracy series (the columns of ``shuffled``, aligned with
    ``headline``) that pass the planted check's test against the headline series: r >=
    :data:`STRONG_R` and Bonferroni p (over ``family_size``) < :data:`ALPHA`."""
    r, p = pearson_columns(shuffled, headline.to_numpy())
    return float(np.mean((r >= STRONG_R) & (p * family_size < ALPHA)))


def robustness_checks(layer_metrics: pd.DataFrame, reading: str = "paper", seed: int = 0) -> list[dict]:
    """The planted series found (the headline strong and Bonferroni-significant in its
    family), and its shuffles passing the same test no more often than the correction allows."""
    run = Run.from_row(layer_metrics.iloc[0])
    accuracy = planted_accuracy(layer_metrics, seed)
    family = correlate_hypotheses(layer_metrics, accuracy_table(accuracy, run), reading)
    headline = family[family["hypothesis"] == headline_hypothesis(int(layer_metrics["layer"].max()) + 1).id].iloc[0]
    best = family.loc[family[family["in_family"]]["r"].idxmax()]
    planted_found = bool(headline["r"] >= STRONG_R and headline["p_bonferroni"] < ALPHA)
    # The shuffles are correlated with the same evaluated family (its values do not depend on the series).
    metric_tables = {metric: table.loc[accuracy.index] for metric, table in seed_mean_tables(layer_metrics).items()}
    values = hypothesis_values(run, metric_tables, reading)
    family_size = int(headline["family_size"])
    shuffled = shuffled_columns(accuracy, SHUFFLES, seed + 1)
    rate = headline_pass_rate(values.values[headline["hypothesis"]], shuffled, family_size)
    errors = family_wise_error(values, shuffled)
    allowed = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / SHUFFLES)
    n_epochs = int(headline["n_epochs"])
    test = f"r >= {STRONG_R} and p_bonferroni < {ALPHA}"
    return [
        _row(
            PLANTED_ROBUSTNESS,
            "a planted correlation with the headline hypothesis",
            f"r and Bonferroni p of the headline over the family of {family_size}, against a series built to follow it",
            test,
            float(headline["r"]),
            planted_found,
            True,
            f"{run.label}, {n_epochs} epochs: headline r = {headline['r']:.3f}, Bonferroni p = "
            f"{headline['p_bonferroni']:.2g}; the family's largest r is {best['hypothesis']} ({best['r']:.3f})",
        ),
        _row(
            SHUFFLED_ROBUSTNESS,
            "the planted correlation in the shuffled series",
            f"share of {SHUFFLES} shuffles of the planted series across epochs in which the headline passes the "
            f"planted check's test ({test})",
            f"> {allowed:.3f} (the {ALPHA} the correction allows, plus two binomial standard errors)",
            rate,
            rate > allowed,
            False,
            f"{round(rate * SHUFFLES)} of {SHUFFLES} shuffles passed. Family-wise error of the paper's test over the "
            "same shuffles (some member passing its family's Bonferroni; the correction promises at most "
            f"{ALPHA}): "
            + ", ".join(f"{name} {share:.3f}" for name, share in errors.items())
            + " (a finding about the parametric p-values: see the claim headline_survives_permutation)",
        ),
    ]


def control_metrics(pairs: Iterable[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Layer metrics and invariance flow of the controls' ``CONTROL_PAIR_SIMILARITY`` tables
    (the library's :func:`~finetune_invariance.finetuning_metrics.layer_metrics` and
    :func:`~finetune_invariance.finetuning_metrics.invariance_flow`, as for a run)."""
    from ..finetuning_metrics import invariance_flow, layer_metrics

    metrics, flows = [], []
    for pair in pairs:
        similarity, name = pair[list(tables.PAIR_SIMILARITY.columns)], pair["control"].iloc[0]
        metrics.append(layer_metrics(similarity, "pretrained", "finetuned").assign(control=name))
        flows.append(invariance_flow(similarity, "pretrained", "finetuned").assign(control=name))
    return (
        tables.concat([m[list(tables.CONTROL_LAYER_METRICS.columns)] for m in metrics], tables.CONTROL_LAYER_METRICS),
        tables.concat([f[list(tables.CONTROL_INVARIANCE_FLOW.columns)] for f in flows], tables.CONTROL_INVARIANCE_FLOW),
    )


def evaluate_controls(
    metrics: pd.DataFrame,
    flows: pd.DataFrame,
    specs: list[ControlSpec],
    run_metrics: pd.DataFrame | None = None,
    reading: str = "paper",
) -> pd.DataFrame:
    """The ``controls`` table: every check of the model controls (their layer metrics and
    flow, :func:`control_metrics`; ``specs`` from :func:`control_specs`) and, given a
    dynamics run's layer metrics, of the planted robustness correlation and its shuffles."""
    rows = model_control_checks(metrics, flows, specs)
    if run_metrics is not None:
        rows += robustness_checks(run_metrics[run_metrics["epoch"] >= 1], reading)
    return controls_table(rows)


TITLE = "Planted-effect controls (beyond the paper)"


def report_section(checks: pd.DataFrame) -> ReportSection:
    """The controls table as the claims report's last section, its verdicts coloured."""
    return ReportSection(TITLE, checks, summary(checks), status_column="as_expected")


def summary(checks: pd.DataFrame) -> str:
    """One sentence for the report: how many checks came out as constructed."""
    wrong = checks[~checks["as_expected"]]
    verdict = (
        "every control behaved as constructed"
        if wrong.empty
        else ("NOT as constructed: " + "; ".join(f"{row.control}: {row.check}" for row in wrong.itertuples()))
    )
    return (
        f"{int(checks['as_expected'].sum())} of {len(checks)} checks as expected: each planted effect found, "
        f"none in its negative twin ({verdict})."
    )


def controls_table(rows: Iterable[dict]) -> pd.DataFrame:
    """The ``controls`` table of check rows."""
    return tables.conform(pd.DataFrame(list(rows), columns=list(CONTROLS.columns)), CONTROLS)
