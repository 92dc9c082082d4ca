"""Layer representations against timm's and torchvision's own forward paths."""

import pytest
import timm
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

from finetune_invariance.layers import HookedLayers, NonFiniteError, ViTLayers, as_layers, check_images, measuring
from finetune_invariance.preprocessing import InputNormalization

DEPTH = 3


def tiny_vit(depth: int = DEPTH, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    vit = timm.create_model(
        "vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=depth, num_heads=2, num_classes=0
    )
    return vit.eval()


@pytest.fixture
def images():
    return torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def timm_reference(vit, images):
    """Block outputs from forward hooks on timm's own forward, and its pre-logits head."""
    normalized = InputNormalization(vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"])(images)
    outputs = []
    handles = [b.register_forward_hook(lambda m, i, o: outputs.append(o.flatten(1))) for b in vit.blocks]
    with torch.no_grad():
        pooled = vit.forward_head(vit.forward_features(normalized), pre_logits=True)
    for h in handles:
        h.remove()
    return outputs + [pooled]


def test_vit_layers_equal_timm_block_hooks_and_pre_logits(images):
    vit = tiny_vit()
    layered = ViTLayers(vit)
    assert layered.num_layers == DEPTH + 1
    with torch.no_grad():
        reps = layered.representations(images)
    reference = timm_reference(vit, images)
    assert [r.shape for r in reps] == [(5, 17 * 32)] * DEPTH + [(5, 32)]  # 16 patches + cls token
    for ours, theirs in zip(reps, reference):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def count_block_calls(vit):
    calls = [0] * len(vit.blocks)

    def counter(b):
        def hook(module, inputs):
            calls[b] += len(inputs[0])

        return hook

    handles = [block.register_forward_pre_hook(counter(b)) for b, block in enumerate(vit.blocks)]
    return calls, handles


def test_truncated_forward_equals_full_forward_and_stops_early(images):
    vit = tiny_vit()
    layered = ViTLayers(vit)
    with torch.no_grad():
        full = layered.representations(images)
        calls, _ = count_block_calls(vit)
        layer1, layer0 = layered.representations(images, [1, 0])
    assert calls == [5, 5, 0]  # block 2 never ran
    torch.testing.assert_close(layer1, full[1], rtol=0, atol=0)
    torch.testing.assert_close(layer0, full[0], rtol=0, atol=0)


def test_per_sample_forward_gives_each_sample_its_own_layer_and_exits_early():
    images = torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    vit = tiny_vit()
    layered = ViTLayers(vit)
    layer_of_sample = [3, 0, 2, 0, 1, 3, 2]
    with torch.no_grad():
        full = layered.representations(images)
        calls, _ = count_block_calls(vit)
        groups = layered.representations_per_sample(images, layer_of_sample)
    # Block b sees only the samples whose layer is b or deeper (layer 3 = after all blocks).
    assert calls == [7, 5, 4]
    seen = []
    for group in groups:
        for position, k in enumerate(group.index.tolist()):
            assert layer_of_sample[k] == group.layer
            torch.testing.assert_close(group.features[position], full[group.layer][k], rtol=1e-5, atol=1e-6)
            seen.append(k)
    assert sorted(seen) == list(range(7))


def test_per_sample_forward_passes_gradients_to_each_image():
    layered = ViTLayers(tiny_vit())
    x = torch.rand(3, 3, 32, 32, requires_grad=True)
    groups = layered.representations_per_sample(x, [0, 3, 3])
    sum(g.features.sum() for g in groups if g.layer == 0).backward()
    assert x.grad[0].abs().sum() > 0
    assert x.grad[1:].abs().sum() == 0  # the layer-0 loss does not touch the other samples


def test_hooked_layers_on_resnet18_match_torchvision_feature_extractor():
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None).eval()
    names = ["layer1", "layer2", "layer3", "layer4", "avgpool"]
    normalization = InputNormalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    layered = HookedLayers(resnet, names, normalization)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        reps = layered.representations(images)
        reference = create_feature_extractor(resnet, names)(normalization(images))
    assert layered.num_layers == 5
    for rep, name in zip(reps, names):
        torch.testing.assert_close(rep, reference[name].flatten(1), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        calls = []
        handle = resnet.layer3.register_forward_hook(lambda *a: calls.append(1))
        layered.representations(images, [1])
        handle.remove()
    assert calls == []  # stopped after layer2
    groups = layered.representations_per_sample(images, [4, 0])
    assert {(g.layer, tuple(g.index.tolist())) for g in groups} == {(4, (0,)), (0, (1,))}
    torch.testing.assert_close(next(g for g in groups if g.layer == 0).features[0], reps[0][1])


def test_as_layers_dispatch():
    vit = tiny_vit()
    assert isinstance(as_layers(vit), ViTLayers)
    layered = ViTLayers(vit)
    assert as_layers(layered) is layered

    class ImageModel(nn.Module):
        def layered(self):
            return layered

    assert as_layers(ImageModel()) is layered
    with pytest.raises(TypeError, match="HookedLayers"):
        as_layers(nn.Linear(3, 3))


def test_measuring_sets_eval_and_freezes_then_restores():
    vit = tiny_vit().train()
    with measuring(vit):
        assert not vit.training
        assert not any(p.requires_grad for p in vit.parameters())
    assert vit.training and all(p.requires_grad for p in vit.parameters())


def test_bad_inputs_give_clear_errors(images):
    layered = ViTLayers(tiny_vit())
    with pytest.raises(ValueError, match=r"layer 4 is out of range: this model has layers 0\.\.3"):
        layered.representations(images, [0, 4])
    with pytest.raises(ValueError, match=r"\(48, 48\) pixels but the model expects \(32, 32\)"):
        layered.representations(torch.rand(2, 3, 48, 48))
    with pytest.raises(ValueError, match="layer 9 is out of range"):
        layered.representations_per_sample(images, [0, 1, 2, 3, 9])
    with pytest.raises(ValueError, match="'nope'"):
        HookedLayers(nn.Sequential(nn.Linear(2, 2)), ["0", "nope"])
    with pytest.raises(TypeError, match="VisionTransformer"):
        ViTLayers(nn.Linear(2, 2))


def test_nan_weights_are_reported_with_layer_and_parameter(images):
    vit = tiny_vit()
    with torch.no_grad():
        vit.blocks[1].mlp.fc1.weight[0, 0] = float("nan")
    layered = ViTLayers(vit)
    layered.representations(images, [0])  # block 0 does not depend on the broken weight
    with pytest.raises(NonFiniteError, match=r"layer 1: .*blocks\.1\.mlp\.fc1\.weight"):
        layered.representations(images, [0, 1])


def test_check_images_names_the_argument_and_what_is_wrong(images):
    check_images(images, "targets", min_images=5)  # valid: no error
    with pytest.raises(TypeError, match="targets must be a torch.Tensor, got ndarray"):
        check_images(images.numpy(), "targets")
    with pytest.raises(ValueError, match="targets holds 5 images; at least 6 are needed"):
        check_images(images, "targets", min_images=6)
    with pytest.raises(ValueError, match=r"targets are torch.float16: images must be float32 in \[0, 1\]"):
        check_images(images.half(), "targets")
    one_too_bright = torch.full((2, 3, 4, 4), 0.5)
    one_too_bright[0, 0, 0, 0], one_too_bright[1, 0, 0, 0] = 1.25, 0.0
    with pytest.raises(ValueError, match=r"targets have 1 values outside \[0, 1\] or NaN \(finite range \[0, 1.25\]\)"):
        check_images(one_too_bright, "targets")
    with pytest.raises(ValueError, match=r"targets have 6 values outside \[0, 1\] or NaN \(finite range none\)"):
        check_images(torch.full((2, 3, 1, 1), float("nan")), "targets")
