"""STIR (docs/method.md, "STIR") and the per-pair similarity table.

STIR(m2 | m1, X) = CKA(m2(X), m2(X')), X' the inversions of X through m1: how much m2
shares the invariances m1 has. The layer i of m1 used for inversion and the layer j of
m2 used for CKA are chosen independently, so one set of inversions per (model, layer,
seed) serves every layer j of every target model: nothing here inverts again.

All CKAs are computed from normalised centred Gram matrices (:mod:`.cka`), one per
(model, image set, layer), so each model's forward on each image set runs once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import tables
from .cka import cka_from_grams, normalized_centered_gram
from .inversion import Inversions, invert, inversion_steps
from .inversion_cache import InversionCache, InversionKey, inversion_keys
from .inversion_settings import DEFAULT_ITERATIONS, DEFAULT_PRECISION, DEFAULT_STEP_SIZE
from .layers import LayeredModel, as_layers, check_images, measuring

DEFAULT_BATCH_SIZE = 256


def layer_grams(
    model: torch.nn.Module,
    images: torch.Tensor,
    batch_size: int = DEFAULT_BATCH_SIZE,
    layers: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Normalised centred Gram matrix (n x n, float64) of each of ``layers`` of ``model`` on ``images``.

    ``layers`` defaults to every layer; the list follows their order. The forward stops
    after the deepest requested layer, and a layer's Gram matrix is the same (bit for bit)
    whichever other layers are requested. ``images`` are n >= 2 float32 images in [0, 1]
    (CKA needs at least two). The forward runs in eval mode without gradients,
    ``batch_size`` images at a time, each batch moved to the model's device (so stored
    inversions can stay on the CPU).
    """
    _check_stir_images(images)
    return _layer_grams(as_layers(model), images, batch_size, layers)


def _check_stir_images(images: torch.Tensor) -> None:
    check_images(images, "images", min_images=2)  # CKA of one input is undefined


def _layer_grams(
    layered: LayeredModel, images: torch.Tensor, batch_size: int, layers: Sequence[int] | None = None
) -> list[torch.Tensor]:
    """:func:`layer_grams` for images already checked (the caller's, or inversions of them)."""
    layers = layered.check_layers(layers)
    with measuring(layered), torch.no_grad():
        batches = [
            layered.representations(images[s : s + batch_size].to(layered.device), layers)
            for s in range(0, len(images), batch_size)
        ]
    return [
        normalized_centered_gram(torch.cat([reps[a] for reps in batches]), f"layer {layer}")
        for a, layer in enumerate(layers)
    ]


def _stir_from_grams(
    target_grams_x: Sequence[torch.Tensor], target_grams_inverted: Sequence[torch.Tensor]
) -> np.ndarray:
    """Row of STIR(m2_j | m1_i) over j: CKA(m2_j(X), m2_j(X'_i)) from the two Gram lists."""
    return np.array([cka_from_grams(a, b) for a, b in zip(target_grams_x, target_grams_inverted)])


def _check_inversions_of(inversions: Inversions, images: torch.Tensor, name: str) -> None:
    same = inversions.targets.shape == images.shape and torch.equal(
        inversions.targets.cpu(), images.detach().float().cpu()
    )
    if not same:
        raise ValueError(f"{name} were made for other images than the ones given")


def _check_reference_layers(inversions: Inversions, model: LayeredModel, name: str) -> None:
    if max(inversions.layers) >= model.num_layers:
        raise ValueError(
            f"{name} are through layers {list(inversions.layers)} but the model has layers 0..{model.num_layers - 1}"
        )


def stir_matrix(
    target: torch.nn.Module, images: torch.Tensor, inversions: Inversions, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """S[a, j] = STIR(m2_j | m1_i) = CKA(m2_j(X), m2_j(X'_i)) with i = ``inversions.layers[a]`` (docs/method.md STIR).

    ``target`` is m2; ``inversions`` are X' through the layers of m1 (any model) for the
    images X (n >= 2, float32 in [0, 1]). m2's representations of X are computed once,
    those of each X'_i once.
    """
    _check_stir_images(images)
    _check_inversions_of(inversions, images, "the inversions")
    layered = as_layers(target)
    grams_x = _layer_grams(layered, images, batch_size)
    return np.stack(
        [
            _stir_from_grams(grams_x, _layer_grams(layered, inversions.for_layer(i), batch_size))
            for i in inversions.layers
        ]
    )


def _direction_rows(
    reference_name: str,
    target_name: str,
    reference_grams_x: Sequence[torch.Tensor],
    target_grams_x: Sequence[torch.Tensor],
    target: LayeredModel,
    inversions: Inversions,
    seed: int,
    batch_size: int,
) -> list[dict]:
    """PAIR_SIMILARITY rows for one direction (reference = m1 inverted, target = m2)."""
    rows = []
    for i in inversions.layers:
        stir = _stir_from_grams(target_grams_x, _layer_grams(target, inversions.for_layer(i), batch_size))
        for j, value in enumerate(stir):
            rows.append(
                {
                    "reference": reference_name,
                    "target": target_name,
                    "seed": seed,
                    "reference_layer": i,
                    "target_layer": j,
                    "stir": value,
                    "cka": cka_from_grams(reference_grams_x[i], target_grams_x[j]),
                    "n_images": len(inversions.targets),
                }
            )
    return rows


def _common_seed(seed: int | None, *inversions: Inversions) -> int:
    seeds = {inv.seed for inv in inversions if inv.seed is not None}
    if seed is not None:
        seeds.add(int(seed))
    if len(seeds) != 1:
        raise ValueError(
            f"cannot tell the STIR seed: inversions carry seeds {[inv.seed for inv in inversions]} and seed={seed}"
        )
    return seeds.pop()


def _check_model_pair(
    pretrained: torch.nn.Module, finetuned: torch.nn.Module, names: tuple[str, str], images: torch.Tensor
) -> tuple[LayeredModel, LayeredModel]:
    """The layered views of a pair that the table can describe: distinct names, same depth."""
    _check_stir_images(images)
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(
            f"names must be two different model names, got {tuple(names)}: "
            "the table tells the two directions apart by them"
        )
    p, f = as_layers(pretrained), as_layers(finetuned)
    if p.num_layers != f.num_layers:
        raise ValueError(
            f"'{names[0]}' has {p.num_layers} layers but '{names[1]}' has {f.num_layers}: forgetting and "
            "learning compare layer l of both models, so the pair needs the same number of layers"
        )
    return p, f


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one STIR seed")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(f"seeds {seeds} repeat {repeated}: a repeated seed is not an independent replicate")
    return seeds


def pair_similarity(
    pretrained: torch.nn.Module,
    finetuned: torch.nn.Module,
    images: torch.Tensor,
    inversions_pretrained: Inversions,
    inversions_finetuned: Inversions,
    names: tuple[str, str] = ("pretrained", "finetuned"),
    seed: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> pd.DataFrame:
    """The :data:`tables.PAIR_SIMILARITY` rows of one model pair and one seed, both directions.

    Rows reference=p, target=f: stir = STIR(f_j | p_i), cka = CKA(p_i(X), f_j(X));
    rows reference=f, target=p: stir = STIR(p_j | f_i), cka = CKA(f_i(X), p_j(X)).
    ``seed`` defaults to the inversions' super-noise seed (they must agree); give it when
    the inversions started from explicit seed images. The two models need the same number
    of layers and two different ``names``; ``images`` are n >= 2, float32 in [0, 1].
    """
    p, f = _check_model_pair(pretrained, finetuned, names, images)
    for inversions, model, name in (
        (inversions_pretrained, p, "inversions_pretrained"),
        (inversions_finetuned, f, "inversions_finetuned"),
    ):
        _check_inversions_of(inversions, images, name)
        _check_reference_layers(inversions, model, name)
    seed = _common_seed(seed, inversions_pretrained, inversions_finetuned)
    p_grams, f_grams = _layer_grams(p, images, batch_size), _layer_grams(f, images, batch_size)
    rows = _direction_rows(names[0], names[1], p_grams, f_grams, f, inversions_pretrained, seed, batch_size)
    rows += _direction_rows(names[1], names[0], f_grams, p_grams, p, inversions_finetuned, seed, batch_size)
    return tables.conform(pd.DataFrame(rows), tables.PAIR_SIMILARITY)


class InversionPlan(NamedTuple):
    """The inversions a comparison runs: see :func:`inversion_plan`."""

    keys: dict[tuple[str, int], InversionKey]
    todo: list[tuple[str, int]]
    steps: dict[str, int]


def inversion_plan(
    models: Mapping[str, torch.nn.Module],
    images: torch.Tensor,
    seeds: Sequence[int],
    *,
    iterations: int = DEFAULT_ITERATIONS,
    step_size: float = DEFAULT_STEP_SIZE,
    precision: str = DEFAULT_PRECISION,
    cache: InversionCache | None = None,
) -> InversionPlan:
    """What :func:`compare` inverts for ``models`` (name to model) and ``seeds``.

    ``keys``: the cache key of every (name, seed) (:func:`.inversion_cache.inversion_keys`:
    each model and the images hashed once), empty without a cache. ``todo``:
    the (name, seed) inversions not in the cache, seed by seed in the models' order.
    ``steps``: the image-steps of one inversion of each model
    (:func:`.inversion.inversion_steps`).
    """
    jobs = [(name, seed) for seed in seeds for name in models]
    recipe = dict(iterations=iterations, step_size=step_size, precision=precision)
    keys = {} if cache is None else inversion_keys(models, images, seeds, **recipe)
    todo = [job for job in jobs if not (keys and cache.path(keys[job]).exists())]
    steps = {
        name: inversion_steps(as_layers(model).num_layers, len(images), iterations) for name, model in models.items()
    }
    return InversionPlan(keys, todo, steps)


def compare(
    pretrained: torch.nn.Module,
    finetuned: torch.nn.Module,
    images: torch.Tensor,
    seeds: Sequence[int] = (0, 1),
    *,
    names: tuple[str, str] = ("pretrained", "finetuned"),
    iterations: int = DEFAULT_ITERATIONS,
    step_size: float = DEFAULT_STEP_SIZE,
    precision: str = DEFAULT_PRECISION,
    memory_budget: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    cache: InversionCache | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Invert both models through all their layers for each seed and return PAIR_SIMILARITY.

    The one-call entry point: for every seed, super-noise from that seed starts the
    inversions of both models (the images stay the same across seeds; draw a different
    sample per seed yourself if the study calls for it). ``seeds`` must be distinct (a
    repeated seed would pose as an independent replicate). Images, names, seeds and the
    layer counts are checked before the first inversion.

    ``cache``: inversions found there are reused and new ones stored there
    (:mod:`.inversion_cache`), so a rerun, or another finetuned model against the same
    pretrained one, inverts only what it has not inverted before. ``progress`` shows one
    bar over every inversion still to do, with its estimate of the time left.
    """
    p, f = _check_model_pair(pretrained, finetuned, names, images)
    seeds = _check_seeds(seeds)
    recipe = dict(iterations=iterations, step_size=step_size, precision=precision)
    models = dict(zip(names, (p, f)))
    keys, todo, steps = inversion_plan(models, images, seeds, cache=cache, **recipe)
    cached = set(keys) - set(todo)
    frames = []
    with tqdm(
        total=sum(steps[name] for name, _ in todo),
        disable=not progress or not todo,
        desc=f"inverting {len(todo)} of {len(names) * len(seeds)} (model, seed)",
        unit="image-step",
        unit_scale=True,
    ) as bar:
        for seed in seeds:  # one seed's inversions in memory at a time
            pair = []
            for name, model in models.items():
                found = cache.load(keys[name, seed], model.num_layers) if (name, seed) in cached else None
                if found is None:
                    if (name, seed) in cached:  # unusable entry (warned): its steps were not counted
                        bar.total += steps[name]
                    bar.set_postfix_str(f"{name}, seed {seed}")
                    found = invert(model, images, seed=seed, memory_budget=memory_budget, progress=bar, **recipe)
                    if cache is not None:
                        cache.store(keys[name, seed], found)
                pair.append(found)
            frames.append(pair_similarity(p, f, images, *pair, names, seed, batch_size))
    return tables.conform(pd.concat(frames, ignore_index=True), tables.PAIR_SIMILARITY)
