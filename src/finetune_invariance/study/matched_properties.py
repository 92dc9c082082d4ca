"""The scale model's matched properties: which measured properties of the paper's setting
a configuration matches, each measured from the configuration and its run's tables.

A miniature of the paper departs from it everywhere; a claim's verdict on it says
something about the paper only where the properties the claim depends on are the paper's.
:data:`PROPERTIES` is the registry (docs/scale-model.md, "The properties"): for each, the
paper's value and its source, how the configuration's value is measured, the criterion
that counts it as matched (stated before the scale model was measured), the claims an
unmatched value bears on (claim ids, or sections of the paper: every claim of the
section), and the claims its calibration partly fixes (such a claim is not independent
evidence, whatever the property's status).

:func:`measure` turns a configuration (schema defaults filled) and its tables into the
``matched_properties`` table (:data:`~.tables.MATCHED_PROPERTIES`); :func:`beside_verdicts`
puts each claim's unmatched and calibrating properties beside its verdict in the claims
report. ``python -m finetune_invariance.study.matched_properties RESULTS --docs PAGE``
writes the table of a finished run into a Markdown page between the markers
:data:`DOCS_START` and :data:`DOCS_END`.

Nothing here imports torch: the job reads the configuration and tables, and draws a
sample of each generated dataset from its generator.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import catalog, synthetic
from .design import IMAGENET_ROLE, StudyDesign
from .flow_statistics import MIN_FLOW
from .paper import TABLE1 as PAPER_TABLE1
from .robust_accuracy import mean_corrupted_accuracy, severity_accuracy
from .vocabulary import CLASSIFICATION, CLEAN_SEVERITY, DEFAULT_VARIANT, SCRATCH, Run

MATCHED, UNMATCHED, NOT_MEASURED = "matched", "unmatched", "not measured"
STATUSES = (MATCHED, UNMATCHED, NOT_MEASURED)

# --- the paper's setting (the sources are in each property's ``source``) ------------------

PAPER_INPUT_SIZE = 224  # ViT-B/32 at 224 x 224 (paper Section 3.4)
#: Upsampling factor of each finetuning dataset to the paper's input, by the paper's dataset
#: a dataset plays (config ``datasets.<name>.plays``): native size (study/catalog.py) -> 224.
PAPER_UPSAMPLING = {
    role: PAPER_INPUT_SIZE / catalog.DATASETS[name].image_size
    for role, name in (("CIFAR10", "cifar10"), ("CIFAR100", "cifar100"), ("EuroSAT", "eurosat"))
}
PAPER_EPOCHS = 100
PAPER_BATCH_SIZE = 256
#: The paper config's optimizer steps per epoch: 50,000 CIFAR training images in batches of 256.
PAPER_STEPS_PER_EPOCH = math.ceil(catalog.DATASETS["cifar10"].train_size / PAPER_BATCH_SIZE)
PAPER_WARMUP_SHARE = 100 / (PAPER_EPOCHS * PAPER_STEPS_PER_EPOCH)  # the authors' warmup-100
PAPER_SCRATCH_WARMUP_SHARE = 440 / (PAPER_EPOCHS * PAPER_STEPS_PER_EPOCH)  # their scratch-warmup-440
PAPER_LR = {"sgd": 1e-3, "adam": 1e-4}  # finetuning (lr-0.001-bs-256) and the Adam variant (Fig. 15)
PAPER_LR_SPREAD = 10.0  # the SGD variants: 1e-2 and 1e-4 around 1e-3 (config/paper.yaml)
PAPER_WEIGHT_DECAY = {"imagenet": 1e-4, "other": 5e-4}
PAPER_BEST_EPOCH_SHARE = 84 / 100  # epoch=83-topk=1.ckpt (0-based) of ImageNet -> CIFAR10
PAPER_N_PER_SEVERITY = 1000
PAPER_STIR_SEEDS = 3
PAPER_CLASS_RATIO = 100 / 10
PAPER_PER_CLASS_RATIO = (50_000 / 100) / (50_000 / 10)

# --- the criteria's constants (stated before measuring, docs/scale-model.md) ----------------

MAX_SEVERITY5_RATIO = 0.9  # severity-5 accuracy at most this share of clean
MIN_SERIES_RESOLUTION = 5.0  # epoch-to-epoch range of the robustness series in standard errors
MAX_TRANSFER_GAP_DIFFERENCE = 0.05  # |gap - paper's gap| in test accuracy
SPECTRAL_SAMPLE = 256  # test images per dataset whose spectrum is measured

#: Every claim the robustness series feeds (Section 4.4 and beyond the paper).
ROBUSTNESS_CLAIMS = (
    "robustness_high_at_peak",
    "std_forgetting_predicts_robustness",
    "cka_weaker_than_headline",
    "headline_and_accuracy_stabilize",
    "early_epochs_correlate",
    "sgd_variants_show_trend",
    "adam_shows_no_trend",
    "spread_pick_beats_clean_pick",
    "headline_survives_permutation",
)
VARIANT_CLAIMS = ("sgd_variants_show_trend", "adam_shows_no_trend")
STIR_SECTIONS = ("4.1", "4.2", "4.3", "4.4", "C.1")


# --- what a measurement reads ---------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """A configuration (schema defaults filled) and what its run measured: study tables by
    stem (``table1_accuracy``, ``robust_accuracy``, ``control_layer_metrics``; any may be
    absent)."""

    config: Mapping[str, Any]
    tables: Mapping[str, pd.DataFrame]

    @property
    def design(self) -> StudyDesign:
        return StudyDesign(dict(self.config))

    def role(self, role: str) -> str | None:
        """The dataset that plays the paper's ``role`` (config ``plays``), if one does."""
        names = [name for name, entry in self.config["datasets"].items() if entry.get("plays") == role]
        return names[0] if names else None

    def table(self, stem: str) -> pd.DataFrame:
        table = self.tables.get(stem)
        if table is None or table.empty:
            raise NotMeasured(f"no {stem} table")
        return table

    def default_dynamics_run(self) -> Run:
        runs = [run for run in self.design.dynamics_runs() if run.variant == DEFAULT_VARIANT]
        if not runs:
            raise NotMeasured("no default dynamics run")
        return runs[0]

    def n_train(self, dataset: str) -> int:
        return int(self.config["datasets"][dataset].get("n_train", self.design.facts(dataset).train_size))

    def trained_runs(self) -> list[Run]:
        """Every default-variant classification run and every run that trains a source,
        except the ImageNet role's own pretraining (it plays a model trained elsewhere)."""
        imagenet_data = self.role(IMAGENET_ROLE)
        runs = {run for run in self.design.runs() if run.variant == DEFAULT_VARIANT} | self.design.pretraining_runs()
        return sorted(run for run in runs if run.dataset != imagenet_data)


class NotMeasured(Exception):
    """What a property needs is not in this configuration or its tables."""


@dataclass(frozen=True)
class Measurement:
    value: str  # the configuration's value, with the numbers behind it
    matched: bool


@dataclass(frozen=True)
class Property:
    key: str
    name: str
    paper_value: str
    source: str
    measured_by: str
    criterion: str
    bears_on: tuple[str, ...]
    measure: Callable[[Facts], Measurement]
    calibrates: tuple[str, ...] = ()


def _fmt(x: float) -> str:
    return f"{x:.3g}"


# --- the measurements -----------------------------------------------------------------------


def _upsampling(facts: Facts) -> Measurement:
    size = facts.design.image_size
    parts, factors = [], []
    for role, paper_factor in PAPER_UPSAMPLING.items():
        dataset = facts.role(role)
        if dataset is None:
            continue
        native = facts.design.facts(dataset).image_size
        factors.append((size / native, paper_factor))
        parts.append(
            f"{role} role {dataset}: {native} -> {size} px, {_fmt(size / native)}x (paper {_fmt(paper_factor)}x)"
            + _high_band_share(facts, dataset, size / native)
        )
    if not parts:
        raise NotMeasured("no dataset plays CIFAR10, CIFAR100 or EuroSAT")
    imagenet = facts.role(IMAGENET_ROLE)
    if imagenet is not None:  # its power above the first role's band, for comparison
        native = facts.design.facts(imagenet).image_size
        parts.append(
            f"ImageNet role {imagenet}: {native} -> {size} px" + _high_band_share(facts, imagenet, factors[0][0])
        )
    return Measurement("; ".join(parts), all(math.isclose(f, paper, rel_tol=0.1) for f, paper in factors))


def high_band_share(images: np.ndarray, model_size: int, factor: float) -> float:
    """Share of the spectral power (grey level, each image's mean removed) above
    1/``factor`` of the Nyquist frequency, in the images as the model sees them: bilinearly
    upsampled from their native size to ``model_size`` (half-pixel centres, as the loader)."""
    grey = images.astype(np.float64).mean(axis=-1) / 255.0
    matrix = synthetic._linear_upsampling_matrix(grey.shape[1], model_size)
    seen = np.einsum("ij,njk,lk->nil", matrix, grey, matrix)
    seen -= seen.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(seen)) ** 2
    frequency = np.abs(np.fft.fftfreq(model_size))  # cycles per pixel, Nyquist 0.5
    radius = np.maximum(frequency[:, None], frequency[None, :])
    total = power.sum()
    return float(power[:, radius > 0.5 / factor].sum() / total) if total > 0 else math.nan


def _high_band_share(facts: Facts, dataset: str, factor: float) -> str:
    """The spectral note of a generated dataset: its power above the band, measured on
    :data:`SPECTRAL_SAMPLE` images drawn as its test split is (seed 0), stored as uint8."""
    if facts.config["datasets"][dataset]["kind"] != "generated" or factor <= 1:
        return ""
    images = synthetic.make_splits(dataset, seed=0, n_train=1, n_test=SPECTRAL_SAMPLE)["test"][0]
    share = high_band_share(images, facts.design.image_size, factor)
    return f"; spectral power above Nyquist/{_fmt(factor)} as the model sees it: {share:.2f}"


def _augmentation(facts: Facts) -> Measurement:
    runs = facts.trained_runs()
    if not runs:
        raise NotMeasured("no finetuning or scratch run")
    augments = {run: facts.design.training(run)["augment"] for run in runs}
    others = sorted(f"{run.source}->{run.dataset}: {aug}" for run, aug in augments.items() if aug != "authors")
    n = sum(aug == "authors" for aug in augments.values())
    value = f"authors' in {n} of {len(runs)} finetuning and scratch runs" + (
        f" (not: {', '.join(others)})" if others else ""
    )
    return Measurement(value, not others)


def _variant_augmentation(facts: Facts) -> Measurement:
    run = facts.default_dynamics_run()
    default = facts.design.training(run)["augment"]
    changed = {}
    for variant in facts.design.variant_groups().get((run.source, run.dataset, run.task), []):
        augment = facts.design.training(Run(run.source, run.dataset, run.task, variant))["augment"]
        if augment != default:
            changed[variant] = augment
    if not changed:
        raise NotMeasured("no dynamics variant changes the augmentation")
    value = "; ".join(f"variant {v}: {a} (default {default})" for v, a in sorted(changed.items()))
    return Measurement(value, default == "authors" and set(changed.values()) == {"none"})


def _weight_decay(facts: Facts) -> Measurement:
    imagenet = facts.config["imagenet_source"]
    decays: dict[str, set[float]] = {}
    for run in facts.trained_runs():
        decays.setdefault(run.source, set()).add(float(facts.design.training(run)["weight_decay"]))
    if not decays:
        raise NotMeasured("no finetuning or scratch run")
    matched, parts = True, []
    for source, values in sorted(decays.items()):
        paper = PAPER_WEIGHT_DECAY["imagenet" if source == imagenet else "other"]
        matched &= values == {paper}
        parts.append(f"from {source}: {', '.join(_fmt(v) for v in sorted(values))} (paper {_fmt(paper)})")
    return Measurement("; ".join(parts), matched)


def _warmup_share(run: Run, facts: Facts) -> tuple[float, int, int]:
    training = facts.design.training(run)
    steps = math.ceil(facts.n_train(run.dataset) / training["batch_size"])
    total = steps * (training.get("schedule_epochs") or training["epochs"])
    return training["warmup_steps"] / total, training["warmup_steps"], total


def _warmup(facts: Facts) -> Measurement:
    parts, matched = [], True
    runs = facts.trained_runs()
    for label, paper, chosen in (
        ("finetuning", PAPER_WARMUP_SHARE, [r for r in runs if r.source != SCRATCH]),
        ("from scratch", PAPER_SCRATCH_WARMUP_SHARE, [r for r in runs if r.source == SCRATCH]),
    ):
        for run in chosen[:1]:
            share, steps, total = _warmup_share(run, facts)
            matched &= abs(steps - paper * total) < 1.0
            parts.append(
                f"{label} ({run.source}->{run.dataset}): {steps} of {total} steps, {share:.2%} (paper {paper:.2%})"
            )
    if not parts:
        raise NotMeasured("no finetuning or scratch run")
    return Measurement("; ".join(parts), matched)


def _learning_rates(facts: Facts) -> Measurement:
    factors = {}
    for run in facts.trained_runs():
        training = facts.design.training(run)
        factors[f"{run.path} ({training['optimizer']})"] = training["lr"] / PAPER_LR[training["optimizer"]]
    run = facts.default_dynamics_run()
    default = facts.design.training(run)
    spreads = []
    for variant in facts.design.variant_groups().get((run.source, run.dataset, run.task), []):
        training = facts.design.training(Run(run.source, run.dataset, run.task, variant))
        if training["optimizer"] == "adam":
            factors[f"variant {variant} (adam)"] = training["lr"] / PAPER_LR["adam"]
        elif training["optimizer"] == default["optimizer"] and not math.isclose(training["lr"], default["lr"]):
            spreads.append(training["lr"] / default["lr"])
    distinct = sorted({round(f, 9) for f in factors.values()})
    spread_ok = all(math.isclose(max(s, 1 / s), PAPER_LR_SPREAD, rel_tol=1e-6) for s in spreads)
    value = (
        f"factor over the paper's learning rate: {', '.join(_fmt(f) for f in distinct)} "
        f"(SGD / 1e-3, Adam / 1e-4, over {len(factors)} runs and variants); "
        f"SGD variants x{', x'.join(_fmt(s) for s in sorted(spreads)) or ' none'} of the default (paper x10, x0.1)"
    )
    return Measurement(value, len(distinct) == 1 and spread_ok)


def _table1_row(facts: Facts, run: Run) -> pd.Series:
    table = facts.table("table1_accuracy")
    rows = table[(table[list(run.context)] == pd.Series(run.context)).all(axis=1)]
    if rows.empty:
        raise NotMeasured(f"no Table 1 row for {run.path}")
    return rows.iloc[0]


def _best_epoch(facts: Facts) -> Measurement:
    run = facts.default_dynamics_run()
    row = _table1_row(facts, run)
    share = row["epoch"] / row["epochs"]
    value = f"epoch {row['epoch']} of {row['epochs']} ({share:.2f}) in {run.source}->{run.dataset} (paper 84 of 100)"
    return Measurement(value, share > 0.5)


def _robust_rows(facts: Facts) -> pd.DataFrame:
    run = facts.default_dynamics_run()
    table = facts.table("robust_accuracy")
    rows = table[(table[list(run.context)] == pd.Series(run.context)).all(axis=1)]
    if rows.empty:
        raise NotMeasured(f"no robust accuracy of {run.path}")
    return rows


def _severity5(facts: Facts) -> Measurement:
    epoch = int(_table1_row(facts, facts.default_dynamics_run())["epoch"])
    per = severity_accuracy(_robust_rows(facts))
    at = per[per["epoch"] == epoch].set_index("severity")["accuracy"]
    if CLEAN_SEVERITY not in at or 5 not in at:
        raise NotMeasured(f"no clean or severity-5 accuracy at epoch {epoch}")
    ratio = at[5] / at[CLEAN_SEVERITY]
    levels = ", ".join(f"{s}: {at[s]:.3f}" for s in sorted(at.index))
    return Measurement(
        f"{ratio:.2f} at the analysed epoch {epoch} (accuracy by severity {levels})", ratio <= MAX_SEVERITY5_RATIO
    )


def _n_per_severity(facts: Facts) -> Measurement:
    rows = _robust_rows(facts)
    corrupted = rows[rows["severity"] != CLEAN_SEVERITY]
    n = int(corrupted.groupby(["epoch", "severity"])["n_images"].sum().min())
    return Measurement(f"{n}", n >= PAPER_N_PER_SEVERITY)


def series_resolution(robust: pd.DataFrame) -> tuple[float, float]:
    """(epoch-to-epoch range of the mean corrupted accuracy, the median over epochs of its
    binomial standard error: sqrt(sum over severities of p (1 - p) / n) / 5)."""
    series = mean_corrupted_accuracy(robust)
    corrupted = robust[robust["severity"] != CLEAN_SEVERITY]
    n = corrupted.groupby(["epoch", "severity"])["n_images"].sum()
    p = severity_accuracy(corrupted).set_index(["epoch", "severity"])["accuracy"]
    variance = (p * (1 - p) / n).groupby("epoch").sum() / p.groupby("epoch").size() ** 2
    return float(series.max() - series.min()), float(np.sqrt(variance).median())


def _series(facts: Facts) -> Measurement:
    spread, se = series_resolution(_robust_rows(facts))
    ratio = spread / se if se > 0 else math.inf
    return Measurement(
        f"range {spread:.3f}, standard error {se:.4f}: {ratio:.1f} standard errors", ratio >= MIN_SERIES_RESOLUTION
    )


def _seeds(facts: Facts) -> Measurement:
    n = len(facts.config["stir"]["seeds"])
    return Measurement(f"{n}", n >= PAPER_STIR_SEEDS)


def identical_copy_floor(control_layer_metrics: pd.DataFrame) -> pd.Series:
    """Per layer, the larger of the identical copy's seed-mean forgetting and learning
    (1 - STIR of a model with itself, from fresh inversions): the metrics' floor."""
    rows = control_layer_metrics[
        (control_layer_metrics["control"] == "identical_copy")
        & control_layer_metrics["metric"].isin(["forgetting", "learning"])
    ]
    if rows.empty:
        raise NotMeasured("no identical-copy rows")
    return rows.groupby(["layer", "metric"])["value"].mean().groupby("layer").max()


def _floor(facts: Facts) -> Measurement:
    floor = identical_copy_floor(facts.table("control_layer_metrics"))
    above = floor[floor >= MIN_FLOW]
    value = (
        f"{floor.min():.3f}-{floor.max():.3f} across layers (MIN_FLOW {MIN_FLOW}; the flow detector counts a cell "
        "only above its row's floor, flow_statistics.POSITIVE_CELL); "
    ) + (
        f"at or above it at layers {', '.join(str(int(layer)) for layer in above.index)}"
        if len(above)
        else "below it at every layer"
    )
    return Measurement(value, above.empty)


def _roles_10_100(facts: Facts) -> tuple[str, str]:
    ten, hundred = facts.role("CIFAR10"), facts.role("CIFAR100")
    if ten is None or hundred is None:
        raise NotMeasured("no datasets play CIFAR10 and CIFAR100")
    return ten, hundred


def _class_ratio(facts: Facts) -> Measurement:
    ten, hundred = _roles_10_100(facts)
    k10, k100 = facts.design.facts(ten).num_classes, facts.design.facts(hundred).num_classes
    ratio = k100 / k10
    return Measurement(f"{_fmt(ratio)} ({hundred} {k100} / {ten} {k10})", ratio >= PAPER_CLASS_RATIO)


def _per_class_ratio(facts: Facts) -> Measurement:
    ten, hundred = _roles_10_100(facts)
    per = {d: facts.n_train(d) / facts.design.facts(d).num_classes for d in (ten, hundred)}
    ratio = per[hundred] / per[ten]
    return Measurement(
        f"{_fmt(ratio)} ({hundred} {_fmt(per[hundred])} / {ten} {_fmt(per[ten])} per class)",
        ratio <= PAPER_PER_CLASS_RATIO,
    )


def _transfer_gap(facts: Facts) -> Measurement:
    imagenet = facts.config["imagenet_source"]
    parts, matched, measured = [], True, False
    for role, paper_dataset in (("CIFAR10", "cifar10"), ("CIFAR100", "cifar100")):
        dataset = facts.role(role)
        if dataset is None:
            continue
        try:
            pretrained = _table1_row(facts, Run(imagenet, dataset, CLASSIFICATION))["test_accuracy"]
            scratch = _table1_row(facts, Run(SCRATCH, dataset, CLASSIFICATION))["test_accuracy"]
        except NotMeasured:
            continue
        paper = PAPER_TABLE1[("imagenet", paper_dataset)].accuracy - PAPER_TABLE1[("scratch", paper_dataset)].accuracy
        gap = pretrained - scratch
        matched &= abs(gap - paper) <= MAX_TRANSFER_GAP_DIFFERENCE
        measured = True
        parts.append(f"{role} role: {pretrained:.3f} - {scratch:.3f} = {gap:+.3f} (paper {paper:+.2f})")
    if not measured:
        raise NotMeasured("no ImageNet-source and scratch runs on the CIFAR roles in Table 1")
    return Measurement("; ".join(parts), matched)


def _epochs(facts: Facts) -> Measurement:
    run = facts.default_dynamics_run()
    epochs = facts.design.training(run)["epochs"]
    return Measurement(f"{epochs}", epochs == PAPER_EPOCHS)


PROPERTIES: tuple[Property, ...] = (
    Property(
        "upsampling",
        "upsampling factor of the finetuning images to the model's input",
        "7 (CIFAR 32 -> 224), EuroSAT 3.5 (64 -> 224); ImageNet 1 (224 crops of larger photos)",
        "paper Section 3.4 and Appendix B (224 x 224 input); the datasets' native sizes",
        "model input / the native size of each dataset that plays a CIFAR or EuroSAT role (study/catalog.py); the "
        "spectral power above the band, measured on a sample of each generated set upsampled as the loader does",
        "within 10% of the paper's factor for every role",
        ("4.1", "4.2"),
        _upsampling,
    ),
    Property(
        "augmentation",
        "augmentation of every finetuning and scratch run",
        "the authors' transfer augmentation: RandomResizedCrop (area 0.08-1), flip, ColorJitter(0.25, 0.25, 0.25), RandomRotation(2)",
        "the authors' TRAIN_TRANSFORMS_TRANSFER_DEFAULT; config/paper.yaml finetune.augment",
        "each run's training settings (sources' and variants' overrides applied)",
        "'authors' in every such run",
        ("4.1", "4.2", "4.3", "4.4"),
        _augmentation,
    ),
    Property(
        "variant_augmentation",
        "augmentation of the Fig. 6 augmentation variant",
        "none (the variant without augmentation)",
        "paper Section 4.4 ('the usage of augmentations'); config/paper.yaml variants.no_augment",
        "the dynamics variants whose augmentation differs from the default's",
        "the default 'authors', the variant 'none'",
        VARIANT_CLAIMS,
        _variant_augmentation,
    ),
    Property(
        "weight_decay",
        "weight decay by source",
        "1e-4 from the ImageNet source; 5e-4 from the CIFAR sources and from scratch",
        "the authors' optimizer takes it from the source dataset; config/paper.yaml sources.<name>.finetune",
        "each finetuning and scratch run's weight_decay",
        "the paper's value for every run",
        ("4.4",),
        _weight_decay,
    ),
    Property(
        "warmup",
        "warm-up as a share of the schedule",
        f"finetuning 100 of {PAPER_EPOCHS * PAPER_STEPS_PER_EPOCH} steps ({PAPER_WARMUP_SHARE:.2%}); "
        f"from scratch 440 ({PAPER_SCRATCH_WARMUP_SHARE:.2%})",
        "the authors' warmup-100 and scratch-warmup-440 checkpoints; config/paper.yaml (196 steps of 256 per epoch x 100)",
        "warmup_steps / (schedule epochs x steps per epoch) of a finetuning and a scratch run",
        "the paper's share of the run's schedule to the nearest step",
        ("4.4",),
        _warmup,
    ),
    Property(
        "learning_rate_rule",
        "one scaling rule for every learning rate",
        "SGD 1e-3 at batch 256; SGD variants 1e-2 and 1e-4; Adam 1e-4",
        "the authors' scripts (lr-0.001-bs-256); config/paper.yaml variants (the project's reading)",
        "lr / the paper's lr of its optimizer, for every run and variant; the SGD variants' lr / the default's",
        "one factor for all; SGD variants x10 and x0.1",
        VARIANT_CLAIMS,
        _learning_rates,
    ),
    Property(
        "best_epoch",
        "position of the default dynamics run's analysed (best) epoch in its schedule",
        "0.84 (epoch=83-topk=1.ckpt, 0-based, of 100) for ImageNet -> CIFAR10; 0.79 for -> CIFAR100",
        "the authors' vit-b32-224x224_imagenet1k.sh",
        "Table 1's analysed epoch / epochs of the default dynamics run",
        "in the second half of the schedule",
        ("4.4",),
        _best_epoch,
        calibrates=("clean_accuracy_increases_gradually",),
    ),
    Property(
        "severity5_ratio",
        "accuracy at corruption severity 5 / clean accuracy, at the analysed epoch",
        "clearly below clean at severities 3-5 (Fig. 4c); no published CIFAR-10-C figure for a finetuned ViT was found",
        "paper Section 4.4; issue 26's bound",
        "the default dynamics run's robust accuracy table",
        f"at most {MAX_SEVERITY5_RATIO}",
        ROBUSTNESS_CLAIMS,
        _severity5,
    ),
    Property(
        "n_per_severity",
        "corrupted inputs per severity",
        f"{PAPER_N_PER_SEVERITY}",
        "paper Appendix E.1",
        "the robust accuracy table's inputs per (epoch, severity)",
        f"at least {PAPER_N_PER_SEVERITY}",
        ROBUSTNESS_CLAIMS,
        _n_per_severity,
    ),
    Property(
        "series_resolution",
        "epoch-to-epoch range of the mean corrupted accuracy, in its standard errors",
        "a peak and a plateau well above sampling noise (Fig. 4c, 1000 inputs per severity)",
        "paper Fig. 4c, Appendix E.1",
        "range over epochs / median binomial standard error of one epoch's mean (series_resolution)",
        f"at least {MIN_SERIES_RESOLUTION:g}",
        ROBUSTNESS_CLAIMS,
        _series,
    ),
    Property(
        "stir_seeds",
        "STIR seeds",
        f"{PAPER_STIR_SEEDS} (the project's reading; the paper averages over random seeds)",
        "paper Section 4; config/paper.yaml stir.seeds",
        "config stir.seeds",
        f"at least {PAPER_STIR_SEEDS}",
        STIR_SECTIONS,
        _seeds,
    ),
    Property(
        "identical_copy_floor",
        "STIR floor: an identical copy's forgetting and learning, per layer",
        "not reported (500 images, 500 iterations)",
        "-",
        "the identical-copy control's layer metrics (control_layer_metrics), seed means",
        f"below the flow detector's MIN_FLOW {MIN_FLOW} at every layer",
        ("4.3",),
        _floor,
    ),
    Property(
        "class_ratio",
        "classes of the CIFAR100 role / of the CIFAR10 role",
        f"{PAPER_CLASS_RATIO:g}",
        "the datasets",
        "the generators' class counts (study/catalog.py)",
        f"at least {PAPER_CLASS_RATIO:g}",
        ("4.2",),
        _class_ratio,
    ),
    Property(
        "per_class_ratio",
        "training images per class of the CIFAR100 role / of the CIFAR10 role",
        f"{PAPER_PER_CLASS_RATIO:g}",
        "the datasets",
        "n_train / classes of each role",
        f"at most {PAPER_PER_CLASS_RATIO:g}",
        ("4.2",),
        _per_class_ratio,
    ),
    Property(
        "transfer_gap",
        "transfer gap: ImageNet-source minus scratch test accuracy at the analysed checkpoint",
        "CIFAR10 0.97 - 0.98 = -0.01; CIFAR100 0.86 - 0.92 = -0.06",
        "paper Table 1",
        "Table 1 of the run",
        f"within {MAX_TRANSFER_GAP_DIFFERENCE} of the paper's gap for each role",
        ("4.2",),
        _transfer_gap,
    ),
    Property(
        "epochs",
        "finetuning epochs",
        f"{PAPER_EPOCHS}",
        "paper Appendix B",
        "the default dynamics run's epochs",
        f"{PAPER_EPOCHS}",
        ("4.4",),
        _epochs,
    ),
)


def measure(facts: Facts) -> pd.DataFrame:
    """Every property of :data:`PROPERTIES` measured on ``facts``: the ``matched_properties``
    table (a property whose inputs are absent is 'not measured', with what was missing)."""
    rows = []
    for prop in PROPERTIES:
        try:
            measured = prop.measure(facts)
            value, status = measured.value, MATCHED if measured.matched else UNMATCHED
        except NotMeasured as missing:
            value, status = str(missing), NOT_MEASURED
        rows.append(
            {
                "property": prop.key,
                "description": prop.name,
                "paper_value": prop.paper_value,
                "paper_source": prop.source,
                "value": value,
                "measured_by": prop.measured_by,
                "criterion": prop.criterion,
                "status": status,
                "bears_on": ", ".join(prop.bears_on),
                "calibrates": ", ".join(prop.calibrates),
            }
        )
    return pd.DataFrame(rows)


def _split(cell: str) -> list[str]:
    return [part.strip() for part in str(cell).split(",") if part.strip()]


SCALE_MODEL_COLUMN = "scale_model"


def beside_verdicts(verdicts: pd.DataFrame, matched: pd.DataFrame | None) -> pd.DataFrame:
    """``verdicts`` (one row per claim, columns ``claim`` and ``section``) with a column
    :data:`SCALE_MODEL_COLUMN` naming, for each claim, the properties that bear on it and are
    not matched (unmatched, or not measured) and the properties whose calibration partly
    fixes it; unchanged when there is no matched-properties table."""
    if matched is None or matched.empty:
        return verdicts
    notes = []
    for claim, section in zip(verdicts["claim"], verdicts["section"]):
        unmatched = [
            f"{row.property} ({row.status})"
            for row in matched.itertuples()
            if row.status != MATCHED and ({claim, section} & set(_split(row.bears_on)))
        ]
        calibrated = [row.property for row in matched.itertuples() if claim in _split(row.calibrates)]
        parts = ([f"unmatched: {', '.join(unmatched)}"] if unmatched else []) + (
            [f"partly calibrated by: {', '.join(calibrated)}"] if calibrated else []
        )
        notes.append("; ".join(parts))
    return verdicts.assign(**{SCALE_MODEL_COLUMN: notes})


# --- the docs page ----------------------------------------------------------------------------

DOCS_START = "<!-- matched-properties: generated by python -m finetune_invariance.study.matched_properties -->"
DOCS_END = "<!-- matched-properties: end -->"
DOCS_COLUMNS = ["description", "paper_value", "paper_source", "value", "measured_by", "criterion", "status"]


def docs_table(matched: pd.DataFrame) -> str:
    """The Markdown table of the docs page: every property, paper and scale model side by side."""
    from .tables import markdown_table

    return markdown_table(matched[DOCS_COLUMNS].rename(columns={"description": "property", "value": "scale model"}))


def write_docs(page: Path, matched: pd.DataFrame, provenance: str) -> None:
    """Replace the text between :data:`DOCS_START` and :data:`DOCS_END` of ``page`` by the
    table of ``matched`` and a line saying where it was measured."""
    text = page.read_text(encoding="utf-8")
    if text.count(DOCS_START) != 1 or text.count(DOCS_END) != 1:
        raise ValueError(f"{page} must hold the markers {DOCS_START!r} and {DOCS_END!r} once each")
    head, rest = text.split(DOCS_START)
    _, tail = rest.split(DOCS_END)
    page.write_text(f"{head}{DOCS_START}\n\n{provenance}\n\n{docs_table(matched)}\n{DOCS_END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    from .tables import MATCHED_PROPERTIES, read_table

    parser = argparse.ArgumentParser(description="Write a run's matched-properties table into a Markdown page.")
    parser.add_argument("results", type=Path, help="the run's results folder (holds tables/matched_properties.parquet)")
    parser.add_argument("--docs", type=Path, required=True, help="the page to write into (e.g. docs/scale-model.md)")
    parser.add_argument("--provenance", default="", help="a line saying which run measured it")
    args = parser.parse_args(argv)
    path = args.results / "tables" / "matched_properties.parquet"
    if not path.is_file():
        parser.error(f"no {path}: run the workflow to its matched_properties table first")
    write_docs(
        args.docs, read_table(path, MATCHED_PROPERTIES), args.provenance or f"Measured by the run in {args.results}."
    )


if __name__ == "__main__":
    main()
