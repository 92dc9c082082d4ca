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


# --- every architecture family, at tiny size with random weights ------------------------------

SMALL = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2)
PATCHES = (32 // 8) ** 2

#: family -> (timm name, extra keywords, tokens a block outputs, written down from the papers:
#: class (+ distillation | + registers) + patches)
FAMILIES = {
    "augreg_in1k": ("vit_base_patch32_224.augreg_in1k", {}, 1 + PATCHES),
    "augreg_in21k": ("vit_base_patch32_224.augreg_in21k", {}, 1 + PATCHES),
    "deit_distilled": ("deit_base_distilled_patch16_224.fb_in1k", {}, 2 + PATCHES),
    "dinov2": ("vit_base_patch14_dinov2.lvd142m", {}, 1 + PATCHES),
    "dinov2_reg4": ("vit_base_patch14_reg4_dinov2.lvd142m", {}, 1 + 4 + PATCHES),
    "clip": ("vit_base_patch16_clip_224.openai", {}, 1 + PATCHES),
    "mae": ("vit_base_patch16_224.mae", {}, 1 + PATCHES),
    "mae_avg_fc_norm": ("vit_base_patch16_224.mae", {"global_pool": "avg"}, 1 + PATCHES),
}


def family_vit(family: str) -> nn.Module:
    name, extra, _ = FAMILIES[family]
    torch.manual_seed(0)
    vit = timm.create_model(name, pretrained=False, num_classes=0, **SMALL, **extra).eval()
    with torch.no_grad():  # random affine norms, so that a skipped or misplaced norm shows
        for module in vit.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.normal_(1.0, 0.5)
                module.bias.normal_(0.0, 0.5)
    return vit


def own_forward(vit, images):
    """What the model's own forward computes: each block's output (forward hooks) and the
    model's output, which is the pooled pre-logits representation (num_classes=0)."""
    normalized = InputNormalization(vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"])(images)
    blocks = []
    handles = [b.register_forward_hook(lambda m, i, o: blocks.append(o)) for b in vit.blocks]
    with torch.no_grad():
        output = vit(normalized)
    for h in handles:
        h.remove()
    return blocks, output


@pytest.mark.parametrize("family", FAMILIES)
def test_each_familys_layers_are_its_own_forwards_block_outputs_and_output(family, images):
    vit = family_vit(family)
    with torch.no_grad():
        reps = ViTLayers(vit).representations(images)
    blocks, output = own_forward(vit, images)
    tokens = FAMILIES[family][2]
    assert [r.shape for r in reps] == [(5, tokens * 32)] * 3 + [(5, 32)]
    for ours, block in zip(reps, blocks):
        torch.testing.assert_close(ours, block.flatten(1), rtol=0, atol=0)
    torch.testing.assert_close(reps[-1], output, rtol=0, atol=0)


def test_the_last_layer_pools_what_each_family_pools(images):
    """The pooled layer against its definition written out with torch's layer_norm."""

    def norm(module, x):
        return nn.functional.layer_norm(x, (32,), module.weight, module.bias, module.eps)

    expected = {
        # the class token after the final norm
        "augreg_in1k": lambda vit, last: norm(vit.norm, last[:, 0]),
        "clip": lambda vit, last: norm(vit.norm, last[:, 0]),
        "dinov2_reg4": lambda vit, last: norm(vit.norm, last[:, 0]),
        # DeiT: the mean of the class and distillation tokens after the final norm
        "deit_distilled": lambda vit, last: (norm(vit.norm, last[:, 0]) + norm(vit.norm, last[:, 1])) / 2,
        # MAE's finetuning recipe: the mean of the patch tokens, then fc_norm
        "mae_avg_fc_norm": lambda vit, last: norm(vit.fc_norm, last[:, 1:].mean(dim=1)),
    }
    for family, pooled in expected.items():
        vit = family_vit(family)
        blocks, _ = own_forward(vit, images)
        with torch.no_grad():
            ours = ViTLayers(vit).representations(images, [3])[0]
        torch.testing.assert_close(ours, pooled(vit, blocks[-1]), rtol=1e-5, atol=1e-5, msg=family)


def test_clip_norm_pre_comes_before_the_first_block(images):
    vit = family_vit("clip")
    inputs = []
    handle = vit.blocks[0].register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
    layered = ViTLayers(vit)
    with torch.no_grad():
        layered.representations(images, [0])
        embedded = vit._pos_embed(vit.patch_embed(layered.normalization(images)))
    handle.remove()
    torch.testing.assert_close(inputs[0], vit.norm_pre(embedded), rtol=0, atol=0)
    assert not torch.allclose(inputs[0], embedded)  # the pre-norm is there, and it matters


def test_register_tokens_can_be_left_out_of_the_block_layers(images):
    vit = family_vit("dinov2_reg4")
    blocks, _ = own_forward(vit, images)
    with torch.no_grad():
        reps = ViTLayers(vit, register_tokens=False).representations(images)
        per_sample = ViTLayers(vit, register_tokens=False).representations_per_sample(images, [0, 1, 2, 3, 0])
    for ours, block in zip(reps, blocks):  # tokens 1-4 are the registers
        torch.testing.assert_close(ours, torch.cat([block[:, :1], block[:, 5:]], dim=1).flatten(1), rtol=0, atol=0)
    torch.testing.assert_close(ViTLayers(vit, register_tokens=False).representations(images)[3], reps[3])
    groups = {group.layer: group for group in per_sample}
    torch.testing.assert_close(groups[0].features, reps[0][[0, 4]], rtol=0, atol=0)
    torch.testing.assert_close(groups[2].features, reps[2][[2]], rtol=0, atol=0)
    assert "register_tokens=False" in repr(ViTLayers(vit, register_tokens=False))
    assert "register_tokens" not in repr(ViTLayers(vit))


@pytest.mark.parametrize(
    "family, words",
    [
        ("augreg_in1k", "class token + 16 patches; last layer: the class token after the final norm"),
        (
            "dinov2_reg4",
            "class token + 4 register tokens + 16 patches; last layer: the class token after the final norm",
        ),
        ("deit_distilled", "class token + distillation token + 16 patches; last layer: the mean of the class and"),
        ("clip", "class token + 16 patches (normalised by norm_pre before block 0); last layer: the class token"),
        (
            "mae_avg_fc_norm",
            "class token + 16 patches; last layer: global avg pooling of the patch tokens, then fc_norm",
        ),
    ],
)
def test_token_layout_says_which_tokens_a_layer_holds(family, words):
    from finetune_invariance.layers import token_layout

    layout = token_layout(family_vit(family))
    assert layout.describe().startswith(words)
    assert layout.prefix_tokens + layout.patch_tokens == FAMILIES[family][2]
