"""The controls' models compute what they claim: every layer j with a known origin i gives
the pretrained model's layer i bit for bit (or its image under the control's map), and
every other layer differs from all of them; the maps plant the CKA divergence they state."""

import pytest
import timm
import torch

import numpy as np

from finetune_invariance import controls
from finetune_invariance.layers import ViTLayers, as_layers

DEPTH = 6


@pytest.fixture(scope="module")
def pretrained():
    torch.manual_seed(0)
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=DEPTH, num_heads=2, num_classes=0
    )
    with torch.no_grad():  # a non-trivial model: timm initialises biases and norms to constants
        for parameter in vit.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return vit.eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _layers(model, images):
    layered = as_layers(model).eval()
    with torch.no_grad():
        return layered.representations(images)


CONTROLS = [
    lambda vit, images: controls.identical_copy(vit),
    lambda vit, images: controls.reinitialised_from(vit, 3),
    lambda vit, images: controls.compressed(vit, 2, 2),
    lambda vit, images: controls.expanded(vit, 2, 2),
    lambda vit, images: controls.linearly_mapped(vit, images, 3),
    lambda vit, images: controls.collapsed(vit, images, 2),
]


@pytest.mark.parametrize("make", CONTROLS)
def test_each_layer_is_the_pretrained_layer_it_names(pretrained, images, make):
    control = make(pretrained, images)
    assert as_layers(control.pretrained).num_layers == as_layers(control.finetuned).num_layers == DEPTH + 1
    p, f = _layers(control.pretrained, images), _layers(control.finetuned, images)
    for j, i in enumerate(control.source_layer):
        if i is None:
            assert all(not torch.equal(f[j], p[k]) for k in range(len(p)) if p[k].shape == f[j].shape)
        elif j in control.maps:  # f_j = A p_i, by the map's matrix
            expected = p[i] @ control.maps[j].matrix().T
            torch.testing.assert_close(f[j], expected, rtol=1e-4, atol=1e-5)
            assert not torch.allclose(f[j], p[i], atol=1e-4), f"layer {j} should differ from p_{i}"
        else:
            assert torch.equal(f[j], p[i]), f"layer {j} should be the pretrained layer {i}"


def _naive_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA from its definition with feature covariances (Kornblith et al.), in numpy."""
    x, y = x.double().numpy(), y.double().numpy()
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(x.T @ y) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_the_linear_map_is_invertible_non_orthogonal_and_plants_its_cka_divergence(pretrained, images):
    control = controls.linearly_mapped(pretrained, images, 3)
    assert control.mapped_layers() == [3, 4, 5, 6]
    p, f = _layers(control.pretrained, images), _layers(control.finetuned, images)
    for layer in control.mapped_layers():
        singular = torch.linalg.svdvals(control.maps[layer].matrix().double())
        assert singular.min() > 0 and singular.max() / singular.min() > 1.5  # invertible, not a rotation
        assert 1 - _naive_cka(p[layer], f[layer]) == pytest.approx(controls.MAPPED_CKA_DIVERGENCE, abs=1e-4)


def test_the_collapse_is_a_projection_that_keeps_cka_and_drops_directions(pretrained, images):
    control = controls.collapsed(pretrained, images, 2)
    assert control.mapped_layers() == [0, 1, 2]
    p, f = _layers(control.pretrained, images), _layers(control.finetuned, images)
    for layer in control.mapped_layers():
        projection = control.maps[layer].matrix().double()
        torch.testing.assert_close(projection @ projection, projection, atol=1e-6, rtol=1e-6)
        assert torch.linalg.matrix_rank(projection, atol=1e-4) < projection.shape[0]  # directions dropped
        assert 0 <= 1 - _naive_cka(p[layer], f[layer]) <= controls.COLLAPSED_CKA_DIVERGENCE + 1e-9


def test_the_planted_cka_divergence_closed_form_matches_the_definition():
    x = torch.randn(9, 5, generator=torch.Generator().manual_seed(3)) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1])
    centred = x.double() - x.double().mean(0)
    _, values, vectors = torch.linalg.svd(centred, full_matrices=False)
    gains = torch.tensor([0.3, 1.0, 2.0, 0.0, 1.0], dtype=torch.float64)
    mapped = x.double() @ (vectors.T @ torch.diag(gains) @ vectors)
    assert controls.planted_cka_divergence(values, gains) == pytest.approx(1 - _naive_cka(x, mapped), abs=1e-12)


def test_a_mapped_model_inverts_through_its_mapped_layers(pretrained, images):
    """The inversion reads a layer through representations_per_sample: the mapped model's
    groups are the mapped representations, as representations() gives them."""
    control = controls.linearly_mapped(pretrained, images, 3)
    layered = as_layers(control.finetuned).eval()
    with torch.no_grad():
        groups = layered.representations_per_sample(images, [0, 3, 6, 4, 5])
        full = layered.representations(images, [0, 3, 6, 4, 5])
    for group in groups:
        position = [0, 3, 6, 4, 5].index(group.layer)
        torch.testing.assert_close(group.features, full[position][group.index], rtol=1e-5, atol=1e-6)


def test_the_pretrained_model_is_left_unchanged(pretrained, images):
    before = _layers(pretrained, images)
    for make in CONTROLS:
        make(pretrained, images)
    assert all(torch.equal(a, b) for a, b in zip(before, _layers(pretrained, images)))


def test_moved_cells_are_below_the_diagonal_for_compression_and_above_for_expansion(pretrained):
    assert controls.compressed(pretrained, 2, 2).moved_cells() == [(4, 2), (5, 3)]
    assert controls.expanded(pretrained, 2, 2).moved_cells() == [(1, 2), (1, 3), (2, 4), (3, 5)]
    assert controls.identical_copy(pretrained).moved_cells() == []
    assert controls.reinitialised_from(pretrained, 3).unchanged_layers() == [0, 1, 2]


def test_planted_flow_cells_leave_out_moved_cells_whose_own_layer_holds_the_same_invariances(pretrained):
    """Expanded: finetuned layers 2 and 3 hold pretrained layer 1, and so does finetuned layer
    1: flow(1, j) = STIR(p_1 | p_1) - STIR(p_1 | p_1) = 0 there, nothing is planted."""
    assert controls.expanded(pretrained, 2, 2).planted_flow_cells() == [(2, 4), (3, 5)]
    assert controls.compressed(pretrained, 2, 2).planted_flow_cells() == [(4, 2), (5, 3)]


def test_an_identity_block_returns_its_input_exactly(pretrained):
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        assert torch.equal(controls.identity_block(pretrained.blocks[0]).eval()(x), x)


def test_gradients_pass_an_identity_block_unchanged(pretrained, images):
    """Inversions through a layer behind an identity block are the original layer's."""
    surgery = controls.with_identities_inserted(pretrained, 2, 1).eval()  # its layer 4 is layer 3
    grads = []
    for vit, layer in ((pretrained, 3), (surgery, 4)):
        x = images.clone().requires_grad_(True)
        ViTLayers(vit.eval()).representations(x, [layer])[0].square().sum().backward()
        grads.append(x.grad)
    assert torch.equal(*grads)


def test_reinitialisation_is_seeded_and_leaves_the_global_generator_alone(pretrained):
    state = torch.random.get_rng_state()
    a = controls.reinitialised_from(pretrained, 3, seed=7).finetuned.state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    b = controls.reinitialised_from(pretrained, 3, seed=7).finetuned.state_dict()
    c = controls.reinitialised_from(pretrained, 3, seed=8).finetuned.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize(
    "make, block",
    [
        (lambda vit, b: controls.reinitialised_from(vit, b), 0),
        (lambda vit, b: controls.compressed(vit, b, 3), 3),  # from block 3, 3 layers move past layer 5
        (lambda vit, b: controls.expanded(vit, b, 1), DEPTH),
    ],
)
def test_blocks_outside_the_model_are_refused(pretrained, make, block):
    with pytest.raises(ValueError, match="depth 6"):
        make(pretrained, block)


def test_rewritten_blocks_are_redrawn_at_their_scale_with_amplified_outputs_and_sharp_attention(pretrained):
    rewritten = controls.rewritten_from(pretrained, 3, seed=0)
    for (name, before), after in zip(pretrained.blocks[3:].named_parameters(), rewritten.blocks[3:].parameters()):
        assert not torch.equal(before, after), name
        if name.endswith("attn.qkv.weight"):  # rows: queries, keys, values
            width = before.shape[1]
            for rows, gain in ((slice(0, 2 * width), controls.ATTENTION_SHARPENING), (slice(2 * width, None), 1.0)):
                assert after[rows].std().item() == pytest.approx(gain * before.std().item(), rel=0.3), name
            continue
        gain = controls.REWRITE_GAIN if name.endswith(("attn.proj.weight", "mlp.fc2.weight")) else 1.0
        if before.numel() > 100:
            assert after.std().item() == pytest.approx(gain * before.std().item(), rel=0.2), name
    assert all(torch.equal(a, b) for a, b in zip(pretrained.blocks[:3].parameters(), rewritten.blocks[:3].parameters()))
