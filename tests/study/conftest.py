"""Builders of hand-made study tables, shared by the tests of the analyses, figures and claims.

Each fixture returns a function that turns plain numbers into a schema-valid table of one
run (or several), so a test states its facts in a line and the table's shape lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study import tables
from finetune_invariance.study.corruptions import SEVERITIES
from finetune_invariance.study.vocabulary import CLEAN, CLEAN_SEVERITY, Run

#: The run most tests use: the paper's main setting.
PAPER_RUN = Run("imagenet", "cifar10", "classification")


def _per_seed_epoch_layer(values, n_seeds: int, n_epochs: int) -> np.ndarray:
    """Broadcast a layer profile (L,), an (epoch, layer) array or a (seed, epoch, layer)
    array to (seed, epoch, layer)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, None, :]
    elif array.ndim == 2:
        array = array[None, :, :]
    return np.broadcast_to(array, (n_seeds, n_epochs, array.shape[-1]))


def layer_metrics_table(
    values: Mapping[str, object],
    run: Run = PAPER_RUN,
    epochs: Sequence[int] = (1,),
    seeds: Sequence[int] = (0, 1, 2),
) -> pd.DataFrame:
    """STUDY_LAYER_METRICS of one run from metric -> values: a layer profile (L,), an
    (epoch, layer) array or a (seed, epoch, layer) array."""
    rows = []
    for metric, given in values.items():
        array = _per_seed_epoch_layer(given, len(seeds), len(epochs))
        for i, seed in enumerate(seeds):
            for j, epoch in enumerate(epochs):
                for layer, value in enumerate(array[i, j]):
                    rows.append(
                        {
                            **run.context,
                            "epoch": epoch,
                            "pretrained": "pretrained",
                            "finetuned": "finetuned",
                            "seed": seed,
                            "layer": layer,
                            "metric": metric,
                            "value": value,
                        }
                    )
    return tables.conform(pd.DataFrame(rows), tables.STUDY_LAYER_METRICS)


def invariance_flow_table(
    flow: object, run: Run = PAPER_RUN, epoch: int = 1, seeds: Sequence[int] = (0, 1, 2)
) -> pd.DataFrame:
    """STUDY_INVARIANCE_FLOW of one run from an (L, L) matrix or a (seed, L, L) array."""
    array = np.asarray(flow, dtype=np.float64)
    array = np.broadcast_to(array if array.ndim == 3 else array[None], (len(seeds), *array.shape[-2:]))
    rows = [
        {
            **run.context,
            "epoch": epoch,
            "pretrained": "pretrained",
            "finetuned": "finetuned",
            "seed": seed,
            "pretrained_layer": i,
            "finetuned_layer": j,
            "flow": array[s, i, j],
        }
        for s, seed in enumerate(seeds)
        for i in range(array.shape[1])
        for j in range(array.shape[2])
    ]
    return tables.conform(pd.DataFrame(rows), tables.STUDY_INVARIANCE_FLOW)


def robust_accuracy_table(
    severity_accuracy: Mapping[int, Sequence[float]],
    run: Run = PAPER_RUN,
    corruptions: Sequence[str] = ("fog", "contrast"),
    clean: float | Mapping[int, float] = 0.9,
    n_images: int = 50,
) -> pd.DataFrame:
    """ROBUST_ACCURACY of one run: epoch -> the accuracy at severities 1..5, the same for
    every corruption (so each severity's accuracy is the given one), and a clean row
    (``clean``: one accuracy for every epoch, or epoch -> accuracy)."""
    rows = []
    for epoch, accuracies in severity_accuracy.items():
        clean_accuracy = clean[epoch] if isinstance(clean, Mapping) else clean
        rows.append(
            {**run.context, "epoch": epoch, "corruption": CLEAN, "severity": CLEAN_SEVERITY, "accuracy": clean_accuracy, "n_images": n_images}
        )
        for corruption in corruptions:
            for severity, accuracy in zip(SEVERITIES, accuracies, strict=True):
                rows.append(
                    {
                        **run.context,
                        "epoch": epoch,
                        "corruption": corruption,
                        "severity": severity,
                        "accuracy": accuracy,
                        "n_images": n_images,
                    }
                )
    return tables.conform(pd.DataFrame(rows), tables.ROBUST_ACCURACY)


def table1_table(analysed: Mapping[Run, int], checkpoint: str = "best", accuracy: float = 0.9) -> pd.DataFrame:
    """TABLE1 with each run analysed at the given epoch (accuracy made up; NaN targets and paper values)."""
    rows = [
        {
            **run.context,
            "checkpoint": checkpoint,
            "epoch": epoch,
            "epochs": max(epoch, 1),
            "test_accuracy": accuracy if run.task == "classification" else np.nan,
            "test_l1": np.nan if run.task == "classification" else 0.05,
            "target_accuracy": np.nan,
            "source_accuracy": np.nan,
            "source_target_accuracy": np.nan,
            "paper_accuracy": np.nan,
            "paper_source_accuracy": np.nan,
        }
        for run, epoch in analysed.items()
    ]
    return tables.conform(pd.DataFrame(rows), tables.TABLE1)


def concat(frames: Iterable[pd.DataFrame], schema) -> pd.DataFrame:
    return tables.concat(list(frames), schema)


@pytest.fixture
def make_layer_metrics():
    return layer_metrics_table


@pytest.fixture
def make_invariance_flow():
    return invariance_flow_table


@pytest.fixture
def make_robust_accuracy():
    return robust_accuracy_table


@pytest.fixture
def make_table1():
    return table1_table


def early_epoch_correlation_table(
    r: Mapping[str, Sequence[float]], run: Run = PAPER_RUN, first_last_epoch: int = 3
) -> pd.DataFrame:
    """EARLY_EPOCH_CORRELATION of one run: hypothesis id -> r over epochs 1..e for
    e = first_last_epoch, first_last_epoch + 1, ... (p-values made up)."""
    rows = [
        {
            **run.context,
            "hypothesis": hypothesis,
            "last_epoch": first_last_epoch + i,
            "r": value,
            "p_value": 0.01,
            "p_permutation": np.nan,
        }
        for hypothesis, values in r.items()
        for i, value in enumerate(values)
    ]
    return tables.conform(pd.DataFrame(rows), tables.EARLY_EPOCH_CORRELATION)


def named_hypotheses_table(roles: Mapping[str, str], run: Run = PAPER_RUN) -> pd.DataFrame:
    """NAMED_HYPOTHESES of one run: role -> hypothesis id (r, p and paper values made up)."""
    rows = [
        {
            **run.context,
            "role": role,
            "description": role,
            "hypothesis": hypothesis,
            "r": 0.5,
            "p_value": 0.01,
            "p_bonferroni": 0.5,
            "n_epochs": 10,
            "p_permutation": np.nan,
            "p_permutation_fwer": np.nan,
            "paper_r": np.nan,
            "paper_p_value": np.nan,
        }
        for role, hypothesis in roles.items()
    ]
    return tables.conform(pd.DataFrame(rows), tables.NAMED_HYPOTHESES)


def _pearson_p(r: float, n: int) -> float:
    """Two-sided p-value of Pearson's r over n points (t distribution with n - 2 degrees of freedom)."""
    from scipy import stats

    if abs(r) >= 1:
        return 0.0
    t = r * np.sqrt((n - 2) / (1 - r * r))
    return float(2 * stats.t.sf(abs(t), n - 2))


def named_correlations_table(
    r: Mapping[str, float],
    p_value: Mapping[str, float] | None = None,
    run: Run = PAPER_RUN,
    num_layers: int = 13,
    n_epochs: int = 20,
    paper_r: Mapping[str, float] | None = None,
    p_permutation_fwer: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """NAMED_HYPOTHESES of one run with the paper's named hypotheses ('headline', 'cka') of a
    model with ``num_layers`` layers: role -> r and role -> uncorrected p (default: from r
    over ``n_epochs`` points); p_bonferroni is p times the family's size, 32 (D - 1) STIR and
    8 (D - 1) CKA hypotheses for depth D (352 and 88 for the paper's 13 layers); role -> the
    family-wise permutation p (default NaN, not computed; the uncorrected one is NaN)."""
    from finetune_invariance.study.hypotheses import named_hypothesis
    from finetune_invariance.study.paper import NAMED_HYPOTHESES

    named = {n.role: n for n in NAMED_HYPOTHESES}
    family_size = {"stir": 32 * (num_layers - 2), "cka": 8 * (num_layers - 2)}
    table = named_hypotheses_table({role: named_hypothesis(named[role], num_layers).id for role in r}, run)
    p = {role: (p_value or {}).get(role, _pearson_p(value, n_epochs)) for role, value in r.items()}
    filled = table.assign(
        r=table["role"].map(r),
        p_value=table["role"].map(p),
        p_bonferroni=[min(1.0, p[role] * family_size[named[role].family]) for role in table["role"]],
        n_epochs=n_epochs,
        paper_r=table["role"].map(paper_r or {}).astype("float64"),
        p_permutation_fwer=table["role"].map(p_permutation_fwer or {}).astype("float64"),
    )
    return tables.conform(filled, tables.NAMED_HYPOTHESES)


def hypotheses_table(
    r: Mapping[str, float], run: Run = PAPER_RUN, n_epochs: int = 20, num_layers: int = 13
) -> pd.DataFrame:
    """HYPOTHESES of one run: hypothesis id -> r (NaN: undefined), every one in the family,
    with p from r over ``n_epochs`` points and the family's size (32 (D - 1) STIR, 8 (D - 1) CKA)."""
    from finetune_invariance.study.hypotheses import Hypothesis

    family_size = {"stir": 32 * (num_layers - 2), "cka": 8 * (num_layers - 2)}
    rows = []
    for hypothesis_id, value in r.items():
        hypothesis = Hypothesis.from_id(hypothesis_id)
        p = np.nan if np.isnan(value) else _pearson_p(value, n_epochs)
        rows.append(
            {
                **run.context,
                "hypothesis": hypothesis_id,
                "family": hypothesis.family,
                "layer_selection": hypothesis.selection.name,
                "first_layer": hypothesis.selection.first,
                "last_layer": hypothesis.selection.last,
                "combination": hypothesis.combination,
                "aggregate": hypothesis.aggregate,
                "in_family": True,
                "r": value,
                "p_value": p,
                "p_bonferroni": min(1.0, p * family_size[hypothesis.family]) if not np.isnan(p) else np.nan,
                "family_size": family_size[hypothesis.family],
                "n_epochs": n_epochs,
                "p_permutation": np.nan,
                "p_permutation_fwer": np.nan,
            }
        )
    return tables.conform(pd.DataFrame(rows), tables.HYPOTHESES)


def early_correlations_table(
    r: Mapping[int, float], run: Run = PAPER_RUN, hypothesis: str | None = None, num_layers: int = 13
) -> pd.DataFrame:
    """EARLY_EPOCH_CORRELATION of one run's headline hypothesis (or ``hypothesis``): last epoch
    e -> r over epochs 1..e for consecutive e, with p from r over e points (closed form)."""
    from finetune_invariance.study.hypotheses import headline_hypothesis

    epochs = sorted(r)
    if epochs != list(range(epochs[0], epochs[-1] + 1)):
        raise ValueError(f"early_correlations_table needs consecutive last epochs, got {epochs}")
    hypothesis = hypothesis or headline_hypothesis(num_layers).id
    table = early_epoch_correlation_table({hypothesis: [r[e] for e in epochs]}, run, first_last_epoch=epochs[0])
    filled = table.assign(p_value=[_pearson_p(v, int(e)) for v, e in zip(table["r"], table["last_epoch"])])
    return tables.conform(filled, tables.EARLY_EPOCH_CORRELATION)


def learning_forgetting_correlation_table(
    correlations: Mapping[Run, tuple[float, float]], epoch: int = 1, n_layers: int = 13
) -> pd.DataFrame:
    """LEARNING_FORGETTING_CORRELATION: run -> (r, p) at ``epoch`` (paper_r NaN)."""
    rows = [
        {**run.context, "epoch": epoch, "r": r, "p_value": p, "n_layers": n_layers, "paper_r": np.nan}
        for run, (r, p) in correlations.items()
    ]
    return tables.conform(pd.DataFrame(rows), tables.LEARNING_FORGETTING_CORRELATION)


@pytest.fixture
def make_named_correlations():
    return named_correlations_table


@pytest.fixture
def make_early_correlations():
    return early_correlations_table


@pytest.fixture
def make_hypotheses():
    return hypotheses_table


@pytest.fixture
def make_learning_forgetting_correlation():
    return learning_forgetting_correlation_table


def validated_config(config: dict) -> dict:
    """A workflow config validated by the schema, its defaults filled in (as the Snakefile does)."""
    import copy
    from pathlib import Path

    from snakemake.utils import validate

    config = copy.deepcopy(config)
    validate(config, str(Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml"))
    return config


@pytest.fixture
def shipped_config(repo_root):
    """The shipped configs (config.yaml, config/paper.yaml), validated, by file name."""
    import yaml

    return lambda path: validated_config(yaml.safe_load((repo_root / path).read_text()))


def forgetting_monitor_table(
    forgetting: Mapping[float, Sequence[float]],
    run: Run = PAPER_RUN,
    steps_per_epoch: int = 10,
    seeds: Sequence[int] = (0, 1),
) -> pd.DataFrame:
    """FORGETTING_MONITOR of one run: training epochs (e.g. 0.5, 1.0) -> the forgetting
    profile over layers, the same for every seed."""
    rows = [
        {
            **run.context,
            "step": round(epochs * steps_per_epoch),
            "training_epochs": epochs,
            "seed": seed,
            "layer": layer,
            "forgetting": value,
        }
        for epochs, profile in forgetting.items()
        for seed in seeds
        for layer, value in enumerate(profile)
    ]
    return tables.conform(pd.DataFrame(rows), tables.FORGETTING_MONITOR)
