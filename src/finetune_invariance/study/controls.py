"""Planted-effect controls (beyond the paper): would the study find the paper's effects if
they were there, does it stay quiet where they are not, and does it tell invariance from
similarity? docs/controls.md is the reference; in short:

Each model control is a (pretrained, finetuned) pair built from the controls' source q
(:mod:`finetune_invariance.controls`, :mod:`.control_plan`), measured for every STIR seed by
the inversion, STIR and metric code of the runs (:func:`measure_controls`,
:func:`control_metrics`). k is config ``controls.block`` (3 of 12), s ``controls.shift``
(4 of 12). "The floor" is the identical copy's learning and forgetting at the same layer
and seed, 1 - STIR(q_l | q_l): the inversion's residual, measured in the run. A metric
*changes* at a layer when its seed mean minus the floor exceeds max(:data:`MIN_EFFECT`,
its seed sd) (:func:`margin`; CKA divergence against 0, the identical copy's).

- ``identical_copy`` (q, q): learning = forgetting and CKA divergence 0 at every layer
  and seed (:data:`EXACT`).
- ``reinitialised`` (q, q with blocks k..D-1 rewritten): learning and forgetting equal the
  floor before layer k (:data:`EXACT`) and change at *every* layer from k on (the onset is
  k).
- ``compressed`` / ``expanded`` (identity blocks shift a rewritten model by s layers): the
  flow is positive (the claims' cell criterion of Section 4.3,
  :data:`.flow_statistics.POSITIVE_CELL`) at every planted cell
  (:meth:`.ControlSpec.planted_flow_cells`: (j + s, j) for j = k..D-1-s; (j - s, j) for
  j = k+s..D-1); the identical copy, the twin, must not show either under the claims' own
  test (:func:`.flow_statistics.flow_share`).
- ``linearly_mapped`` (q, A q from layer k on, A invertible and non-orthogonal): CKA
  divergence changes at every mapped layer, learning and forgetting at none: the same
  invariances with another similarity, the negative twin of the localised change and the
  control that fails when STIR is silently CKA.
- ``collapsed`` (q, P q before layer k, P a projection that keeps CKA): learning changes at
  every collapsed layer, forgetting and CKA divergence at none: other invariances with the
  same similarity.
- ``planted_robustness``: a series of models from the robustness run's source toward its
  last checkpoint (the backbone interpolated, in shuffled "epoch" order), measured by the monitor's
  forgetting (the run's own source inversions) and by the robustness code on the run's
  corrupted sample (:func:`measure_planted_series`): the paper's test of the headline
  hypothesis (r >= :data:`STRONG_R`, Bonferroni p < :data:`ALPHA` over its family) must
  find the planted relation. Its twin, ``shuffled_robustness``: over :data:`SHUFFLES`
  shuffles of the series' accuracy, (n - 1) times the mean of r^2 is 1 in expectation for
  any series (the exact permutation moment of Pearson's r), within four standard errors.
- ``family_wise_error`` (a finding, not a check): the share of shuffles of the robustness
  run's own mean corrupted accuracy in which some member of a family passes its family's
  Bonferroni correction, against the 5% the correction promises.

Every check gives one row of the ``controls`` table with the planted location it read,
the statistic and threshold, whether the effect was found, whether it should have been,
and whether the study behaved as it should (``as_expected``); ``kind`` tells checks from
findings. :mod:`.control_mutations` breaks real control measurements in known ways and
shows which checks catch each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from . import tables
from .claims import ReportSection
from .claims.evidence import number
from .control_plan import (
    COLLAPSED,
    COMPRESSED,
    EXPANDED,
    FAMILY_WISE_ERROR,
    IDENTICAL,
    LINEARLY_MAPPED,
    PLANTED_EPOCHS,
    PLANTED_ROBUSTNESS,
    REINITIALISED,
    SHUFFLED_ROBUSTNESS,
    ControlSpec,
)
from .flow_statistics import (
    BELOW,
    MIN_FLOW_SHARE,
    POSITIVE_CELL,
    IncompleteFlow,
    cell_thresholds,
    flow_cells,
    flow_floor,
    flow_share,
    positive_cells,
)
from .hypotheses import aligned_run, hypothesis_values
from .paper import HEADLINE
from .statistics import pearson_columns, shuffled_columns
from .tables import CONTROLS
from ..checkpoint_format import BACKBONE_PREFIX
from ..tables import require_unique
from .vocabulary import Run

EXACT = 1e-6  # "equal": float32 representations, CKA accumulated in float64
MIN_EFFECT = 0.02  # smallest rise above the floor counted as a change: 2% of STIR's [0, 1] range
STRONG_R = 0.7  # a "strong" correlation (the claims' convention)
ALPHA = 0.05  # significance after Bonferroni
SHUFFLES = 1000  # shuffles of an accuracy series (s.e. of a 5% rate: 0.007)
MOMENT_BAND = 4.0  # the twin's band, in standard errors: a correct pipeline leaves it in 6e-5 of runs
#: The planted series' backbones run from the robustness run's source (t = 0) toward its
#: last checkpoint (t = 1), t evenly spaced over [0, PLANTED_T_MAX] in a shuffled order: the
#: finetuning's own direction, which raises the forgetting spread and the corrupted
#: accuracy together. Both respond to t monotonically but with other curvature (forgetting
#: as 1 - CKA grows about as t^2, the accuracy saturates), so the planted Pearson r is
#: below 1. 0.4 was chosen on the earlier scale model, where it gave r = 0.85 (the paper's:
#: 0.78 and 0.88); on the matched scale model r is 0.93-0.96 for any reach from 0.2 to 1
#: (``benchmarks/planted_effect_size.py``): the check finds a stronger relation than the paper's.
PLANTED_T_MAX = 0.4
CHECK, FINDING = "check", "finding"

METRICS = ("forgetting", "learning")


# --- measuring the model controls -----------------------------------------------------


def measure_controls(specs: Sequence[ControlSpec], source, stored, seed: int, invert_settings: dict) -> pd.DataFrame:
    """Every control pair of ``specs`` built from ``source`` (an :class:`~.models.ImageModel`,
    the controls' source) and measured for one STIR seed like a run's checkpoint: both
    sides inverted from the images and starting noise of ``stored`` (the source's
    inversions of this seed), then STIR both ways and plain CKA
    (:func:`finetune_invariance.stir.pair_similarity`). A model inverted once serves every
    control it appears in (the same model computes the same inversions): the source
    itself (the identical copy, the maps' pretrained side) uses ``stored``, and the
    rewritten model and its shifted copy serve three controls. Returns the
    ``CONTROL_PAIR_SIMILARITY`` rows of all of them. ``stored``:
    :class:`~finetune_invariance.inversion.Inversions`; ``invert_settings``:
    :func:`~finetune_invariance.inversion.invert` keywords (iterations, step_size,
    memory_budget, precision)."""
    import copy

    from timm.models.vision_transformer import VisionTransformer

    from .. import stir
    from ..inversion import invert
    from ..inversion_cache import model_fingerprint

    images = stored.targets.to(next(source.parameters()).device)
    inverted = {model_fingerprint(source): stored}

    def measured(side):
        if isinstance(side, VisionTransformer):  # a surgery backbone: the source's model around it
            model = copy.deepcopy(source)
            model.backbone = side
            side = model
        key = model_fingerprint(side)
        if key not in inverted:
            inverted[key] = invert(side, images, seed=seed, progress=False, **invert_settings)
        return side, inverted[key]

    frames = []
    for spec in specs:
        pair = spec.build(source, images, seed=seed)
        (pretrained, inversions_p), (finetuned, inversions_f) = measured(pair.pretrained), measured(pair.finetuned)
        similarity = stir.pair_similarity(
            pretrained, finetuned, images, inversions_p, inversions_f, names=("pretrained", "finetuned")
        )
        frames.append(similarity.assign(control=spec.name)[list(tables.CONTROL_PAIR_SIMILARITY.columns)])
    return tables.concat(frames, tables.CONTROL_PAIR_SIMILARITY)


def control_metrics(pairs: Iterable[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Layer metrics and invariance flow of the controls' ``CONTROL_PAIR_SIMILARITY`` tables
    (the library's :func:`~finetune_invariance.finetuning_metrics.layer_metrics` and
    :func:`~finetune_invariance.finetuning_metrics.invariance_flow`, as for a run)."""
    from ..finetuning_metrics import invariance_flow, layer_metrics

    metrics, flows = [], []
    for name, similarity in pd.concat(list(pairs), ignore_index=True).groupby("control", sort=False):
        similarity = similarity[list(tables.PAIR_SIMILARITY.columns)]
        metrics.append(layer_metrics(similarity, "pretrained", "finetuned").assign(control=name))
        flows.append(invariance_flow(similarity, "pretrained", "finetuned").assign(control=name))
    return (
        tables.concat([m[list(tables.CONTROL_LAYER_METRICS.columns)] for m in metrics], tables.CONTROL_LAYER_METRICS),
        tables.concat([f[list(tables.CONTROL_INVARIANCE_FLOW.columns)] for f in flows], tables.CONTROL_INVARIANCE_FLOW),
    )


# --- rows -----------------------------------------------------------------------------


def _row(
    control: str,
    check: str,
    statistic: str,
    threshold: str,
    value: float,
    found: bool,
    expected: bool,
    evidence: str,
    kind: str = CHECK,
) -> dict:
    return dict(
        control=control,
        check=check,
        kind=kind,
        statistic=statistic,
        threshold=threshold,
        value=float(value),
        found=bool(found),
        expected=bool(expected),
        as_expected=bool(found) == bool(expected),
        evidence=evidence,
    )


def _span(layers: Sequence[int]) -> str:
    layers = [int(layer) for layer in layers]
    return f"layer {layers[0]}" if len(layers) == 1 else f"layers {layers[0]}-{layers[-1]}"


def _values(series: pd.Series) -> str:
    return ", ".join(f"{int(layer)}: {value:+.3f}" for layer, value in series.items())


# --- the layers a check reads -----------------------------------------------------------


def _per_layer(metrics: pd.DataFrame, control: str, metric: str) -> pd.DataFrame:
    """(seed x layer) values of one metric of one control, complete: every control holds
    the same seeds and layers 0..L-1, each once (a table that lacks some, or repeats some,
    is refused with the cells named)."""
    rows = metrics[(metrics["control"] == control) & (metrics["metric"] == metric)]
    if rows.empty:
        raise ValueError(f"no '{metric}' rows of control '{control}' in the control layer metrics")
    require_unique(rows, ["seed", "layer"], f"'{metric}' rows of control '{control}'")
    table = rows.pivot(index="seed", columns="layer", values="value").sort_index()
    layers = list(table.columns)
    if layers != list(range(len(layers))):
        raise ValueError(f"control '{control}' has '{metric}' at layers {layers}; expected 0..{len(layers) - 1}")
    holes = table.isna().stack()
    if holes.any():
        raise ValueError(f"control '{control}' lacks '{metric}' at (seed, layer) {holes[holes].index.tolist()[:5]}")
    return table


def _rise(metrics: pd.DataFrame, control: str, metric: str) -> pd.DataFrame:
    """(seed x layer) of a control's metric minus the floor (the identical copy's, seed by
    seed; 0 for CKA divergence, the identical copy's exactly)."""
    values = _per_layer(metrics, control, metric)
    floor = _per_layer(metrics, IDENTICAL, metric)
    if list(floor.index) != list(values.index) or list(floor.columns) != list(values.columns):
        raise ValueError(
            f"control '{control}' has '{metric}' for seeds {list(values.index)} and layers 0..{values.columns[-1]}, "
            f"the identical copy for seeds {list(floor.index)} and layers 0..{floor.columns[-1]}: "
            "every control is measured on the same seeds and layers"
        )
    return values - (0.0 if metric == "cka_divergence" else floor)


def margin(rise: pd.DataFrame) -> pd.Series:
    """Per layer: seed-mean rise minus max(:data:`MIN_EFFECT`, seed sd); the metric changes at
    a layer where this is positive (one seed: sd taken as 0)."""
    return rise.mean() - np.maximum(rise.std(ddof=1).fillna(0.0), MIN_EFFECT)


def _change_row(
    metrics: pd.DataFrame, control: str, metric: str, layers: Sequence[int], everywhere: bool, expected: bool
) -> dict:
    """A change of ``metric`` at every one (``everywhere``) or at some of ``layers``."""
    rise = _rise(metrics, control, metric)[list(layers)]
    margins = margin(rise)
    changed = [int(layer) for layer in margins.index if margins[layer] > 0]
    unchanged = [int(layer) for layer in margins.index if margins[layer] <= 0]
    reference = "0" if metric == "cka_divergence" else "floor"
    if everywhere:
        check = f"{metric}: a change at every layer of {_span(layers)}"
        statistic = f"min over {_span(layers)} of seed-mean ({metric} - {reference}) - max({MIN_EFFECT}, seed sd)"
        value, found = float(margins.min()), not unchanged
    else:
        check = f"{metric}: a change at any layer of {_span(layers)}"
        statistic = f"max over {_span(layers)} of seed-mean ({metric} - {reference}) - max({MIN_EFFECT}, seed sd)"
        value, found = float(margins.max()), bool(changed)
    evidence = (
        f"{metric} - {reference} (seed mean) at {_values(rise.mean())}; "
        + (f"changed at {changed}" if changed else "changed nowhere")
        + (f", unchanged at {unchanged}" if unchanged and changed else "")
    )
    return _row(control, check, statistic, "> 0", value, found, expected, evidence)


# --- the model controls' checks -----------------------------------------------------------


def identical_copy_checks(metrics: pd.DataFrame) -> list[dict]:
    """The negative control: learning = forgetting (one model, one set of inversions) and
    CKA divergence 0 at every layer and seed; the floor's size is the evidence."""
    learning, forgetting = _per_layer(metrics, IDENTICAL, "learning"), _per_layer(metrics, IDENTICAL, "forgetting")
    cka = _per_layer(metrics, IDENTICAL, "cka_divergence")
    gap = float((learning - forgetting).abs().to_numpy().max())
    largest_cka = float(cka.abs().to_numpy().max())
    floor = forgetting.mean()
    layers = list(forgetting.columns)
    return [
        _row(
            IDENTICAL,
            f"any change at {_span(layers)} (negative control)",
            "max over layers and seeds of |learning - forgetting| and of |CKA divergence|",
            f"> {EXACT}",
            max(gap, largest_cka),
            max(gap, largest_cka) > EXACT,
            False,
            f"|learning - forgetting| <= {gap:.1e}, |CKA divergence| <= {largest_cka:.1e}; the floor "
            f"1 - STIR(p_l|p_l) (the inversion's residual) is {floor.min():.3f}-{floor.max():.3f} across layers "
            f"(largest at layer {int(floor.idxmax())})",
        )
    ]


def localised_change_checks(metrics: pd.DataFrame, spec: ControlSpec) -> list[dict]:
    """Blocks from k rewritten: learning and forgetting exactly at the floor before layer k,
    and changed at every layer from k on (the onset is k)."""
    depth = int(metrics["layer"].max())
    before, after = range(spec.block), range(spec.block, depth + 1)
    rows = []
    for metric in METRICS:
        unchanged = float(_rise(metrics, spec.name, metric)[list(before)].abs().to_numpy().max())
        rows.append(
            _row(
                spec.name,
                f"{metric}: any change at {_span(before)} (before the rewritten block {spec.block})",
                f"max over {_span(before)} and seeds of |{metric} - floor|",
                f"> {EXACT}",
                unchanged,
                unchanged > EXACT,
                False,
                f"{_span(before)} unchanged by construction: largest |{metric} - floor| {unchanged:.1e}",
            )
        )
        rows.append(_change_row(metrics, spec.name, metric, after, everywhere=True, expected=True))
    return rows


def linear_map_checks(metrics: pd.DataFrame, spec: ControlSpec) -> list[dict]:
    """Layers from k read through an invertible non-orthogonal map: CKA divergence changes at
    every mapped layer, learning and forgetting at no layer (the same invariances)."""
    depth = int(metrics["layer"].max())
    mapped, every = range(spec.block, depth + 1), range(depth + 1)
    return [
        _change_row(metrics, spec.name, "cka_divergence", mapped, everywhere=True, expected=True),
        *(_change_row(metrics, spec.name, metric, every, everywhere=False, expected=False) for metric in METRICS),
    ]


def collapse_checks(metrics: pd.DataFrame, spec: ControlSpec) -> list[dict]:
    """Layers before k projected onto their leading directions: learning changes at every
    collapsed layer, forgetting and CKA divergence at no layer."""
    depth = int(metrics["layer"].max())
    collapsed, every = range(spec.block), range(depth + 1)
    return [
        _change_row(metrics, spec.name, "learning", collapsed, everywhere=True, expected=True),
        _change_row(metrics, spec.name, "forgetting", every, everywhere=False, expected=False),
        _change_row(metrics, spec.name, "cka_divergence", every, everywhere=False, expected=False),
    ]


def flow_checks(flows: pd.DataFrame, spec: ControlSpec, depth: int, floor: pd.Series) -> list[dict]:
    """Compression (below the diagonal) or expansion (above it): positive flow at every
    planted cell of the control, by the claims' cell criterion (``floor``: the identical
    copy's, :func:`.flow_statistics.flow_floor`); and the claims' test of Section 4.3 on the
    identical copy, the twin, finding neither."""
    triangle = spec.flow_triangle
    effect = "compression" if triangle == BELOW else "expansion"
    planted = spec.planted_flow_cells(depth)
    cells = _control_flow_cells(flows, spec.name, depth)
    missing = [cell for cell in planted if cell not in cells.index]
    if missing:
        raise ValueError(f"control '{spec.name}' has no flow at its planted cells (i, j) {missing}")
    at_planted = cells.loc[planted]
    found_cells = set(positive_cells(at_planted, triangle, floor).index)
    margins = at_planted["mean"] - cell_thresholds(at_planted, floor)
    rows_planted = sorted({i for i, _ in planted})
    cell_text = ", ".join(
        f"({i}, {j}) {at_planted.loc[(i, j), 'mean']:+.3f}±{at_planted.loc[(i, j), 'sd']:.3f}" for i, j in planted
    )
    missed = [cell for cell in planted if cell not in found_cells]
    twin = flow_share(_control_flow_cells(flows, IDENTICAL, depth), triangle, floor)
    return [
        _row(
            spec.name,
            f"{effect} at every planted cell (i, j) = {planted[0]}..{planted[-1]}",
            f"min over the planted cells of seed-mean flow - max(MIN_FLOW, seed sd, floor of row i): the claims' cell criterion "
            f"({POSITIVE_CELL})",
            "> 0",
            float(margins.min()),
            not missed,
            True,
            f"flow at {cell_text}"
            + (f"; not positive at {missed}" if missed else "")
            + f"; the planted cells fill {len(rows_planted)} of {depth} pretrained layers (the claims' test needs "
            f"{MIN_FLOW_SHARE:.2f})",
        ),
        _row(
            IDENTICAL,
            f"{effect} ({triangle} the diagonal, twin of {spec.name})",
            f"share of pretrained layers with a positive cell {triangle} the diagonal ({POSITIVE_CELL}), "
            "the claims' test of Section 4.3",
            f">= {MIN_FLOW_SHARE:.2f}",
            twin.share,
            twin.shows_flow,
            False,
            str(twin),
        ),
    ]


def _control_flow_cells(flows: pd.DataFrame, control: str, depth: int) -> pd.DataFrame:
    """Seed mean and sd per cell (i, j) of one control's flow, complete: every seed of the
    table, and every cell of layers 0..depth once and defined (:func:`.flow_statistics.flow_cells`
    refuses the rest, the control named here)."""
    rows = flows[flows["control"] == control]
    if rows.empty:
        raise ValueError(f"no flow rows of control '{control}' in the control invariance flow")
    missing = sorted(set(flows["seed"]) - set(rows["seed"]))
    if missing:
        raise IncompleteFlow(f"control '{control}' has no flow for seeds {missing}")
    try:
        return flow_cells(rows, depth)
    except IncompleteFlow as err:
        raise IncompleteFlow(f"control '{control}': {err}") from None


def model_control_checks(metrics: pd.DataFrame, flows: pd.DataFrame, specs: Sequence[ControlSpec]) -> list[dict]:
    """Every check of the model controls (:func:`.control_plan.control_specs`)."""
    by_kind = {spec.kind: spec for spec in specs}
    depth = int(metrics["layer"].max())
    floor = flow_floor(metrics[metrics["control"] == IDENTICAL])
    return [
        *identical_copy_checks(metrics),
        *localised_change_checks(metrics, by_kind[REINITIALISED]),
        *linear_map_checks(metrics, by_kind[LINEARLY_MAPPED]),
        *collapse_checks(metrics, by_kind[COLLAPSED]),
        *flow_checks(flows, by_kind[COMPRESSED], depth, floor),
        *flow_checks(flows, by_kind[EXPANDED], depth, floor),
    ]


# --- the robustness control -----------------------------------------------------------


def planted_knobs(epochs: int = PLANTED_EPOCHS, seed: int = 0, t_max: float = PLANTED_T_MAX) -> pd.Series:
    """Per "epoch" 1..``epochs`` of the planted series: t, the backbone's place between the
    run's source (0) and its last checkpoint (1), evenly spaced over [0, ``t_max``] in a
    shuffled order."""
    t = np.random.default_rng(seed).permutation(np.linspace(0.0, t_max, epochs))
    return pd.Series(t, index=pd.RangeIndex(1, epochs + 1, name="epoch"), name="t")


def planted_model(start, end, t: float):
    """The model of one planted epoch: ``end`` with its backbone at ``start + t (end -
    start)`` (``start``: a model of the same backbone, any head)."""
    import copy

    model = copy.deepcopy(end)
    _interpolate_backbone(model, start, end, t)
    return model


def _interpolate_backbone(model, start, end, t: float) -> None:
    """Write ``start + t (end - start)`` into the backbone of ``model`` (a copy of ``end``),
    in place; its other parameters are left as they are."""
    import torch

    begin, finish = dict(start.named_parameters()), dict(end.named_parameters())
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith(BACKBONE_PREFIX):
                parameter.copy_(begin[name] + t * (finish[name] - begin[name]))


def planted_run(run: Run) -> Run:
    """The run the planted series' tables name: the robustness run's source, dataset and
    task, variant ``planted_robustness``."""
    return dataclasses.replace(run, variant=PLANTED_ROBUSTNESS)


def measure_planted_series(
    start, end, inversions, sample, run: Run, image_size, device, seed: int = 0, t_max: float = PLANTED_T_MAX
):
    """The planted robustness series: the models of :func:`planted_knobs` (reaching ``t_max``) between ``start``
    (the robustness run's source, where its finetuning started) and ``end`` (its last
    checkpoint), each measured as a dynamics epoch is: forgetting against the
    source from its stored ``inversions`` (one per STIR seed; the forgetting monitor), and
    accuracy on the run's clean and corrupted ``sample`` (:func:`.robust_accuracy.robust_accuracy`).
    Returns (``STUDY_LAYER_METRICS`` with forgetting only, ``ROBUST_ACCURACY``) of the
    series, named as ``run`` (:func:`planted_run`), and the knobs. One copy of ``end``
    serves every epoch, its backbone overwritten per epoch (:func:`planted_model`'s model)."""
    import copy

    from ..monitor import ForgettingMonitor
    from .evaluation import image_accuracy
    from .robust_accuracy import robust_accuracy
    from .vocabulary import with_context

    knobs = planted_knobs(seed=seed, t_max=t_max)
    monitor = ForgettingMonitor(start, inversions)
    model = copy.deepcopy(end)
    metrics, robust = [], []
    for epoch, t in knobs.items():
        _interpolate_backbone(model, start, end, t)
        accuracy = image_accuracy(model, run.task, image_size, device)
        metrics.append(with_context(monitor.measure(model), run, int(epoch)))
        robust.append(with_context(robust_accuracy(accuracy, sample), run, int(epoch)))
    return (
        tables.conform(pd.concat(metrics, ignore_index=True), tables.STUDY_LAYER_METRICS),
        tables.conform(pd.concat(robust, ignore_index=True), tables.ROBUST_ACCURACY),
        knobs,
    )


def robustness_checks(
    series_metrics: pd.DataFrame,
    series_robust: pd.DataFrame,
    reading: str = "paper",
    seed: int = 0,
) -> list[dict]:
    """The planted relation found by the paper's test of the headline hypothesis (r >=
    :data:`STRONG_R` and Bonferroni p < :data:`ALPHA` over the family's size), and the
    twin: the exact permutation moment of r over :data:`SHUFFLES` shuffles of the series'
    accuracy. An undefined r (a constant series) passes neither."""
    run, metric_tables, accuracy = aligned_run(series_metrics, series_robust, None)
    headline_values = hypothesis_values(run, metric_tables, reading, only=[HEADLINE])
    headline = headline_values.correlate(accuracy).iloc[0]
    values = headline_values.values.iloc[:, 0]
    n = int(headline["n_epochs"])
    found = bool(headline["r"] >= STRONG_R and headline["p_bonferroni"] < ALPHA)
    test = f"r >= {STRONG_R} and p_bonferroni < {ALPHA}"
    shuffled = shuffled_columns(accuracy, SHUFFLES, seed + 1)
    r, _ = pearson_columns(shuffled, values.to_numpy())
    moment = (n - 1) * r**2
    error = float(np.std(moment, ddof=1) / math.sqrt(SHUFFLES))
    statistic = float(np.mean(moment))  # NaN where r is undefined (a constant series): not a pass
    return [
        _row(
            PLANTED_ROBUSTNESS,
            f"the planted relation of the headline ({headline['hypothesis']}) with the mean corrupted accuracy",
            f"r and Bonferroni p (family of {int(headline['family_size'])}) of the headline over the planted series",
            test,
            float(headline["r"]),
            found,
            True,
            f"{run.label}, {n} models from the run's source toward its last checkpoint (t in 0-{PLANTED_T_MAX}) "
            f"in shuffled order: r = {number(headline['r'])}, Bonferroni p = "
            f"{number(headline['p_bonferroni'], '.2g')}; mean corrupted accuracy {accuracy.min():.3f}-{accuracy.max():.3f}, "
            f"headline {values.min():.3f}-{values.max():.3f}",
        ),
        _row(
            SHUFFLED_ROBUSTNESS,
            "the planted relation in the shuffled series: the permutation moment of r",
            f"mean over {SHUFFLES} shuffles of the series' accuracy of (n - 1) r^2 with the headline "
            "(1 in expectation for any series)",
            f"outside 1 ± {MOMENT_BAND:g} standard errors ({number(MOMENT_BAND * error)})",
            statistic,
            not abs(statistic - 1) <= MOMENT_BAND * error,
            False,
            f"(n - 1) mean r^2 = {number(statistic)} ± {number(error)} over {SHUFFLES} shuffles of {n} epochs; the "
            f"planted r was {number(headline['r'])} ((n - 1) r^2 = {number((n - 1) * headline['r'] ** 2, '.1f')} before "
            "shuffling)",
        ),
    ]


def family_wise_error(values, shuffled: np.ndarray) -> dict[str, float]:
    """Per family of ``values`` (:class:`.hypotheses.HypothesisValues`): the share of the
    shuffled accuracy series (the columns of ``shuffled``, one value per correlated epoch)
    in which some member passes its family's Bonferroni correction at :data:`ALPHA` (which
    promises at most ALPHA when the parametric p-values are valid)."""
    families = {h.id: h.family for h in values.members}
    false_alarms = dict.fromkeys(values.family_sizes, 0)
    for column in shuffled.T:
        for family in {families[h] for h in values.passing_bonferroni(pd.Series(column), ALPHA)}:
            false_alarms[family] += 1
    return {family: count / shuffled.shape[1] for family, count in false_alarms.items()}


def family_wise_finding(
    run_metrics: pd.DataFrame, run_robust: pd.DataFrame, reading: str = "paper", seed: int = 0
) -> dict:
    """A finding, not a check: the family-wise error of the paper's test on the robustness
    run's own series, over :data:`SHUFFLES` shuffles of its mean corrupted accuracy."""
    epochs = sorted(set(run_robust["epoch"]) & set(run_metrics["epoch"]) - {0})  # the epochs both measured
    run, metric_tables, accuracy = aligned_run(run_metrics, run_robust, epochs)
    values = hypothesis_values(run, metric_tables, reading)
    errors = family_wise_error(values, shuffled_columns(accuracy, SHUFFLES, seed + 2))
    allowed = ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / SHUFFLES)
    worst = max(errors.values())
    return _row(
        FAMILY_WISE_ERROR,
        "the paper's test keeps its family-wise promise on the run's own series",
        f"per family, share of {SHUFFLES} shuffles of {run.label}'s mean corrupted accuracy ({len(epochs)} epochs) "
        "in which some member passes its family's Bonferroni",
        f"> {allowed:.3f} (the {ALPHA} the correction promises, plus two binomial standard errors)",
        worst,
        worst > allowed,
        False,
        ", ".join(f"{name} {share:.3f}" for name, share in errors.items())
        + " (a finding about the parametric p-values, not a check of the pipeline: see the claim "
        "headline_survives_permutation)",
        kind=FINDING,
    )


# --- the table and the report -----------------------------------------------------------


def evaluate_controls(
    metrics: pd.DataFrame,
    flows: pd.DataFrame,
    specs: Sequence[ControlSpec],
    series: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    run: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    reading: str = "paper",
) -> pd.DataFrame:
    """The ``controls`` table: every check of the model controls (their layer metrics and
    flow, :func:`control_metrics`; ``specs`` from :func:`.control_plan.control_specs`);
    given the planted series' (layer metrics, robust accuracy), the robustness control and
    its twin; given the robustness run's own (layer metrics, robust accuracy), the
    family-wise finding."""
    rows = model_control_checks(metrics, flows, specs)
    if series is not None:
        rows += robustness_checks(*series, reading)
    if run is not None:
        rows.append(family_wise_finding(*run, reading))
    return controls_table(rows)


TITLE = "Planted-effect controls (beyond the paper)"


def report_section(checks: pd.DataFrame) -> ReportSection:
    """The controls table as the claims report's last section, its verdicts coloured, with
    its tally: how many checks came out as constructed (a finding is not a check)."""
    counted = checks[checks["kind"] == CHECK]
    good = int(counted["as_expected"].sum())
    tally = f"{good} of {len(counted)} checks as constructed, {len(counted) - good} not"
    return ReportSection(TITLE, checks, summary(checks), status_column="as_expected", tally=tally)


def summary(checks: pd.DataFrame) -> str:
    """One sentence for the report: how many checks came out as constructed, and the findings."""
    counted = checks[checks["kind"] == CHECK]
    wrong = counted[~counted["as_expected"]]
    verdict = (
        "every control behaved as constructed"
        if wrong.empty
        else ("NOT as constructed: " + "; ".join(f"{row.control}: {row.check}" for row in wrong.itertuples()))
    )
    findings = checks[checks["kind"] == FINDING]
    text = (
        f"{int(counted['as_expected'].sum())} of {len(counted)} checks as expected: each planted effect found "
        f"where it was planted, none in its negative twin ({verdict})."
    )
    for row in findings.itertuples():
        text += f" Finding (not a check): {row.check}: {'no' if row.found else 'yes'} ({row.evidence})."
    return text


def controls_table(rows: Iterable[dict]) -> pd.DataFrame:
    """The ``controls`` table of check rows."""
    return tables.conform(pd.DataFrame(list(rows), columns=list(CONTROLS.columns)), CONTROLS)
