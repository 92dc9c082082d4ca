"""The controls' models compute what they claim: every layer j with a known origin i gives
the pretrained model's layer i bit for bit, and every other layer differs from all of them."""

import pytest
import timm
import torch

from finetune_invariance import controls
from finetune_invariance.layers import ViTLayers

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


def _layers(vit, images):
    with torch.no_grad():
        return ViTLayers(vit.eval()).representations(images)


CONTROLS = [
    lambda vit: controls.identical_copy(vit),
    lambda vit: controls.reinitialised_from(vit, 3),
    lambda vit: controls.compressed(vit, 2, 2),
    lambda vit: controls.expanded(vit, 2, 2),
]


@pytest.mark.parametrize("make", CONTROLS)
def test_each_layer_is_the_pretrained_layer_it_names(pretrained, images, make):
    control = make(pretrained)
    assert len(control.pretrained.blocks) == len(control.finetuned.blocks) == DEPTH
    p, f = _layers(control.pretrained, images), _layers(control.finetuned, images)
    for j, i in enumerate(control.source_layer):
        if i is None:
            assert all(not torch.equal(f[j], p[k]) for k in range(len(p)) if p[k].shape == f[j].shape)
        else:
            assert torch.equal(f[j], p[i]), f"layer {j} should be the pretrained layer {i}"


def test_the_pretrained_model_is_left_unchanged(pretrained, images):
    before = _layers(pretrained, images)
    for make in CONTROLS:
        make(pretrained)
    assert all(torch.equal(a, b) for a, b in zip(before, _layers(pretrained, images)))


def test_moved_cells_are_below_the_diagonal_for_compression_and_above_for_expansion(pretrained):
    assert controls.compressed(pretrained, 2, 2).moved_cells() == [(4, 2), (5, 3)]
    assert controls.expanded(pretrained, 2, 2).moved_cells() == [(1, 2), (1, 3), (2, 4), (3, 5)]
    assert controls.identical_copy(pretrained).moved_cells() == []
    assert controls.reinitialised_from(pretrained, 3).unchanged_layers() == [0, 1, 2]


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


def test_rewritten_blocks_are_redrawn_at_their_scale_with_amplified_outputs(pretrained):
    rewritten = controls.rewritten_from(pretrained, 3, seed=0)
    for (name, before), after in zip(pretrained.blocks[3:].named_parameters(), rewritten.blocks[3:].parameters()):
        assert not torch.equal(before, after), name
        gain = controls.REWRITE_GAIN if name.endswith(("attn.proj.weight", "mlp.fc2.weight")) else 1.0
        if before.numel() > 100:
            assert after.std().item() == pytest.approx(gain * before.std().item(), rel=0.2), name
    assert all(torch.equal(a, b) for a, b in zip(pretrained.blocks[:3].parameters(), rewritten.blocks[:3].parameters()))
