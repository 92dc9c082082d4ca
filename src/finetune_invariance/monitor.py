"""Forgetting as a live training signal (docs/method.md, "The study's metrics").

Forgetting(l) = 1 - STIR(f_l | p_l) = 1 - CKA(f_l(X), f_l(X'_{p,l})), where X'_{p,l} are
the inversions of the images X through layer l of the pretrained model p. Only p is
inverted, and p does not change while f trains: with X'_p stored, the forgetting of the
current model f costs forward passes of f on X and on each X'_{p,l} (stopping after
layer l), no new inversion. So it can be measured at any step of a training loop::

    monitor = ForgettingMonitor(model, [invert(model, X, seed=s) for s in (0, 1)])
    ...  # training steps
    table = monitor.measure(model)  # forgetting per (seed, layer)
    forgetting_spread(table, layers=range(2, 13))  # the paper's headline statistic

The Gram matrices come from :func:`.stir.layer_grams` with the offline path's batch
size, so at a checkpoint the monitor's values are the 'forgetting' rows of
``finetuning_metrics.layer_metrics(stir.pair_similarity(p, f, X, X'_p, X'_f))``, bit for
bit on the CPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import pandas as pd
import torch

from . import tables
from .cka import cka_from_grams
from .inversion import Inversions
from .layers import as_layers, check_images
from .stir import DEFAULT_BATCH_SIZE, _check_reference_layers, _check_seeds, layer_grams


class ForgettingMonitor:
    """Forgetting of a model in training relative to ``pretrained``, from stored inversions.

    ``inversions`` are the pretrained model's :class:`.inversion.Inversions`, one per STIR
    seed (a single one is one seed), each with its images X in ``.targets``; every seed
    must have inverted the same layers, and forgetting is measured at those layers. A
    seed's number is its super-noise seed; give ``seeds`` (one per Inversions) when they
    started from explicit seed images. ``pretrained`` (anything :func:`.layers.as_layers`
    accepts) is read only for its number of layers, which every measured model must share;
    passing the model before its first training step is fine. ``batch_size``: images per
    forward; keep the offline path's (:data:`.stir.DEFAULT_BATCH_SIZE`) for its exact
    values. ``device``: where to keep the images (default: where they are); the training
    model's device saves copying them there at every measurement.
    """

    def __init__(
        self,
        pretrained: torch.nn.Module,
        inversions: Inversions | Sequence[Inversions],
        *,
        seeds: Sequence[int] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        device: torch.device | str | None = None,
    ):
        inversions = [inversions] if isinstance(inversions, Inversions) else list(inversions)
        if not inversions:
            raise ValueError("inversions is empty: give the pretrained model's Inversions of at least one STIR seed")
        reference = as_layers(pretrained)
        self.num_layers = reference.num_layers
        self.seeds = _check_seeds(_seeds_of(inversions, seeds))
        self.layers = _common_layers(inversions)
        for k, inv in enumerate(inversions):
            name = f"inversions[{k}]"
            _check_reference_layers(inv, reference, name)
            check_images(inv.targets, f"{name}.targets", min_images=2)  # CKA needs two inputs
            check_images(inv.images.flatten(0, 1), f"{name}.images")
            if inv.targets.shape[1:] != inversions[0].targets.shape[1:]:
                raise ValueError(
                    f"{name}.targets are {tuple(inv.targets.shape[1:])} images but inversions[0].targets are "
                    f"{tuple(inversions[0].targets.shape[1:])}: all seeds feed the same model"
                )
        if device is not None:
            inversions = [
                dataclasses.replace(inv, images=inv.images.to(device), targets=inv.targets.to(device))
                for inv in inversions
            ]
        self.inversions = inversions
        self.batch_size = batch_size
        # Seeds that share their images X share f's Gram matrices of X (computed once per measurement).
        self._first_with_targets = [
            next(j for j in range(k + 1) if torch.equal(inversions[j].targets, inv.targets))
            for k, inv in enumerate(inversions)
        ]

    def measure(self, model: torch.nn.Module, names: tuple[str, str] = ("pretrained", "finetuned")) -> pd.DataFrame:
        """Forgetting(l) = 1 - STIR(f_l | p_l) of ``model`` (f) per (seed, layer), docs/method.md.

        Returned as :data:`.tables.LAYER_METRICS` rows with metric 'forgetting', sorted by
        seed and layer; ``names`` fill its ``pretrained`` and ``finetuned`` columns.
        ``model`` is anything :func:`.layers.as_layers` accepts; it runs in eval mode
        without gradients, and its train/eval modes and ``requires_grad`` flags are
        restored afterwards, so a training loop carries on as before.
        """
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"names must be two different model names, got {tuple(names)}")
        layered = as_layers(model)
        if layered.num_layers != self.num_layers:
            raise ValueError(
                f"the model has {layered.num_layers} layers but the pretrained model has {self.num_layers}: "
                "forgetting compares layer l of both models, so they need the same number of layers"
            )
        grams_x: dict[int, list[torch.Tensor]] = {}
        rows = []
        for k, (seed, inv) in enumerate(zip(self.seeds, self.inversions)):
            shared = self._first_with_targets[k]
            if shared not in grams_x:
                grams_x[shared] = layer_grams(layered, inv.targets, self.batch_size, self.layers)
            for gram_x, layer in zip(grams_x[shared], self.layers):
                (gram_inverted,) = layer_grams(layered, inv.for_layer(layer), self.batch_size, [layer])
                stir = cka_from_grams(gram_x, gram_inverted)
                rows.append({"seed": seed, "layer": layer, "value": 1.0 - stir})
        table = pd.DataFrame(rows).assign(pretrained=names[0], finetuned=names[1], metric="forgetting")
        return tables.conform(table.sort_values(["seed", "layer"], kind="stable"), tables.LAYER_METRICS)


def _seeds_of(inversions: Sequence[Inversions], seeds: Sequence[int] | None) -> list[int]:
    """Each Inversions' STIR seed: its super-noise seed, or the given one (they must agree)."""
    if seeds is None:
        seeds = [None] * len(inversions)
    elif len(seeds) != len(inversions):
        raise ValueError(
            f"seeds has {len(seeds)} entries for {len(inversions)} inversions: give one seed per Inversions"
        )
    out = []
    for k, (inv, seed) in enumerate(zip(inversions, seeds)):
        if seed is None and inv.seed is None:
            raise ValueError(
                f"inversions[{k}] started from seed images and carry no seed: "
                "pass seeds= (one STIR seed per Inversions)"
            )
        if seed is not None and inv.seed is not None and int(seed) != inv.seed:
            raise ValueError(f"seeds[{k}] is {seed} but inversions[{k}] started from super-noise seed {inv.seed}")
        out.append(inv.seed if seed is None else int(seed))
    return out


def _common_layers(inversions: Sequence[Inversions]) -> list[int]:
    """The layers every seed inverted, in increasing order."""
    layers = sorted(inversions[0].layers)
    for k, inv in enumerate(inversions[1:], start=1):
        if sorted(inv.layers) != layers:
            raise ValueError(
                f"inversions[{k}] are through layers {sorted(inv.layers)} but inversions[0] through {layers}: "
                "every seed needs the same layers"
            )
    return layers


def forgetting_profile(table: pd.DataFrame) -> pd.Series:
    """Seed-mean forgetting per layer (index ``layer``) from one model pair's forgetting rows.

    ``table`` holds :data:`.tables.LAYER_METRICS` columns, as :meth:`ForgettingMonitor.measure`
    or :func:`.finetuning_metrics.layer_metrics` give (only its 'forgetting' rows are used;
    extra columns are ignored). ValueError if a (seed, layer) appears twice (rows of
    several pairs or checkpoints: select one first), or if a seed lacks a layer another
    seed has (its mean would average fewer seeds).
    """
    for column in ("metric", "seed", "layer", "value"):
        if column not in table.columns:
            raise ValueError(f"column '{column}' is not in the table; columns: {list(table.columns)}")
    rows = table[table["metric"] == "forgetting"]
    if rows.empty:
        raise ValueError(f"the table has no 'forgetting' rows; metrics: {sorted(set(table['metric']))}")
    repeated = rows.duplicated(["seed", "layer"], keep=False)
    if repeated.any():
        seed, layer = rows.loc[repeated, ["seed", "layer"]].iloc[0]
        raise ValueError(
            f"{int(repeated.sum())} forgetting rows share a (seed, layer), e.g. seed {seed}, layer {layer}: "
            "give the rows of one model pair at one checkpoint"
        )
    all_layers = set(rows["layer"])
    for seed, of_seed in rows.groupby("seed"):
        missing = sorted(all_layers - set(of_seed["layer"]))
        if missing:
            raise ValueError(f"seed {seed} has no forgetting at layers {missing}, which other seeds have")
    return rows.groupby("layer")["value"].mean()


def _selected(table: pd.DataFrame, layers: Iterable[int]) -> pd.Series:
    profile = forgetting_profile(table)
    layers = [int(layer) for layer in layers]
    if not layers:
        raise ValueError("layers is empty: name the layers to aggregate over")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers {layers} contain duplicates: each layer counts once in the aggregate")
    layers = sorted(layers)  # the study's order, so the float sums agree to the last bit
    missing = sorted(set(layers) - set(profile.index))
    if missing:
        raise ValueError(f"layers {missing} have no forgetting in the table, which has layers {list(profile.index)}")
    return profile.loc[layers]


def forgetting_spread(table: pd.DataFrame, layers: Iterable[int]) -> float:
    """Population std (ddof=0) of the seed-mean forgetting across ``layers`` (docs/method.md, "The study's metrics").

    The statistic the paper correlates with robustness: its headline takes layers 2-12 of
    ViT-B/32's 0..12. For another depth D the study scales that selection
    (``finetune_invariance.study.hypotheses.headline_hypothesis(D + 1).selection``, the
    last ``round(11 D / 12)`` of layers 1..D, at most D - 1 of them: layers 2..4 at D = 4). Seeds are averaged per layer first, then the
    spread is taken across layers, as the study's hypotheses do.
    """
    return float(_selected(table, layers).std(ddof=0))


def forgetting_mean(table: pd.DataFrame, layers: Iterable[int]) -> float:
    """Mean of the seed-mean forgetting across ``layers`` (the hypotheses' 'mean' aggregate)."""
    return float(_selected(table, layers).mean())
