"""Section 4.2's claims on hand-made per-layer tables of classification runs from several sources."""

from __future__ import annotations

from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED

from .handmade import CIFAR, IMAGENET, SCRATCH, evaluate, flat, profiles, run, with_layers

SOURCES = {IMAGENET: 0.2, CIFAR: 0.4, SCRATCH: 0.6}  # learning and forgetting at every layer


def source_tables(static_tables, levels=SOURCES, changes=None, cka=None):
    """Classification runs of each source on CIFAR10; ``changes``: source -> {metric: profile}."""
    built = {}
    for source, level in levels.items():
        p = profiles(flat(level), flat(level), flat((cka or {}).get(source, 0.1)))
        p.update((changes or {}).get(source, {}))
        built[run(source)] = p
    return static_tables(built)


def test_pretrained_sources_below_scratch_in_early_layers(static_tables):
    verdict, evidence = evaluate(source_tables(static_tables), "pretrained_below_scratch_early")
    assert verdict == HOLDS and "holds in 2/2" in evidence
    assert "learning scratch 0.600±0.010 vs cifar100 0.400±0.010" in evidence


def test_a_pretrained_source_as_high_as_scratch_in_early_layers_fails(static_tables):
    close = with_layers(flat(0.4), {layer: 0.595 for layer in range(1, 7)})
    verdict, evidence = evaluate(
        source_tables(static_tables, changes={CIFAR: {"forgetting": close}}), "pretrained_below_scratch_early"
    )
    assert (
        verdict == FAILS
        and "holds in 1/2" in evidence
        and "forgetting scratch 0.600±0.010 vs cifar100 0.595±0.010" in evidence
    )


def test_pretrained_below_scratch_needs_a_scratch_run(static_tables):
    verdict, evidence = evaluate(
        source_tables(static_tables, {IMAGENET: 0.2, CIFAR: 0.4}), "pretrained_below_scratch_early"
    )
    assert verdict == NOT_MEASURED and "scratch" in evidence


def test_imagenet_lowest_in_later_layers(static_tables):
    verdict, evidence = evaluate(source_tables(static_tables), "imagenet_lower_in_later_layers")
    assert verdict == HOLDS and "paper layers 7-12 = layers 7-12 here" in evidence
    assert "forgetting cifar100 0.400±0.010 vs imagenet 0.200±0.010" in evidence


def test_cifar_pretraining_as_low_as_imagenet_in_later_layers_fails(static_tables):
    low_late = with_layers(flat(0.4), {layer: 0.2 for layer in range(7, 13)})
    verdict, evidence = evaluate(
        source_tables(static_tables, changes={CIFAR: {"learning": low_late}}), "imagenet_lower_in_later_layers"
    )
    assert verdict == FAILS and "learning cifar100 0.200±0.010 vs imagenet 0.200±0.010" in evidence


def test_the_imagenet_source_is_the_one_named(static_tables):
    # With 'cifar100' playing ImageNet, it is not below the source called imagenet.
    verdict, _ = evaluate(source_tables(static_tables), "imagenet_lower_in_later_layers", imagenet_source=CIFAR)
    assert verdict == FAILS
    verdict, evidence = evaluate(
        source_tables(static_tables), "imagenet_lower_in_later_layers", imagenet_source="textures"
    )
    assert verdict == NOT_MEASURED and "'textures'" in evidence


def test_scratch_higher_at_every_layer(static_tables):
    verdict, evidence = evaluate(source_tables(static_tables), "scratch_higher_at_every_layer")
    assert verdict == HOLDS and "13/13 layers resolved" in evidence


def test_scratch_not_higher_at_the_last_layer_fails(static_tables):
    verdict, evidence = evaluate(
        source_tables(static_tables, changes={IMAGENET: {"learning": with_layers(flat(0.2), {12: 0.6})}}),
        "scratch_higher_at_every_layer",
    )
    assert verdict == FAILS and "tightest layer 12: +0.000 vs seed sd 0.010" in evidence


def test_cka_divergence_higher_for_imagenet_while_learning_and_forgetting_lower(static_tables):
    cka = {IMAGENET: 0.5, CIFAR: 0.3, SCRATCH: 0.1}
    verdict, evidence = evaluate(source_tables(static_tables, cka=cka), "cka_orders_sources_oppositely")
    assert verdict == HOLDS and "holds in 1/1" in evidence  # scratch is not a CIFAR-pretrained source
    assert "cka_divergence imagenet 0.500±0.010 vs cifar100 0.300±0.010" in evidence


def test_cka_divergence_ordered_like_forgetting_fails(static_tables):
    cka = {IMAGENET: 0.3, CIFAR: 0.5, SCRATCH: 0.9}
    verdict, evidence = evaluate(source_tables(static_tables, cka=cka), "cka_orders_sources_oppositely")
    assert verdict == FAILS and "cka_divergence imagenet 0.300±0.010 vs cifar100 0.500±0.010" in evidence
