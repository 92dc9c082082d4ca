"""Models: every weight source, both task heads, and the errors a config typo produces."""

import hashlib
import math

import pytest
import timm
import torch
from safetensors.torch import save_file

from finetune_invariance.study.checkpoints import save_checkpoint
from finetune_invariance.study.models import (
    ModelSpec,
    PatchDecoder,
    WeightsFileError,
    WeightsUnavailableError,
    build_model,
    load_checkpoint,
    per_sample_loss,
)

from ..augreg import write_augreg_npz

NAME = "vit_tiny_patch16_224"
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


def tiny(weights="scratch", **changes):
    return ModelSpec(NAME, {**TINY, **changes}, weights)


def backbone_state(model):
    return {k: v.clone() for k, v in model.backbone.state_dict().items()}


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- scratch and heads ------------------------------------------------------------------


def test_scratch_heads_and_output_shapes():
    images = torch.rand(3, 3, 32, 32)
    classifier = build_model(tiny(), "classification", num_classes=7, seed=0)
    assert classifier.head.weight.shape == (7, 32) and classifier(images).shape == (3, 7)
    reconstructor = build_model(tiny(), "reconstruction", seed=0)
    assert reconstructor.head.conv.weight.shape == (8 * 8 * 3, 32, 1, 1)
    assert reconstructor(images).shape == images.shape
    assert reconstructor.num_classes is None and classifier.image_size == (32, 32)


def test_head_init_trunc_normal_or_torchs_default_as_the_authors():
    bound = 1 / math.sqrt(32)  # torch's default for a fresh layer: uniform within 1/sqrt(fan_in)
    for task, num_classes in (("classification", 7), ("reconstruction", None)):
        default = build_model(tiny(), task, num_classes, seed=0).head
        authors = build_model(ModelSpec(NAME, TINY, head_init="pytorch"), task, num_classes, seed=0).head
        default, authors = (getattr(head, "conv", head) for head in (default, authors))
        assert torch.all(default.bias == 0) and default.weight.std().item() == pytest.approx(0.02, rel=0.2)
        assert authors.weight.abs().max() <= bound and authors.bias.abs().max() <= bound
        assert authors.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2) and torch.all(
            authors.bias != 0
        )
    with pytest.raises(ValueError, match=r"head_init must be one of \['trunc_normal', 'pytorch'\]"):
        ModelSpec(NAME, TINY, head_init="zeros")


def test_scratch_is_seeded_and_leaves_the_callers_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_model(tiny(), "classification", 4, seed=1)
    assert torch.equal(torch.get_rng_state(), before)
    b = build_model(tiny(), "classification", 4, seed=1)
    c = build_model(tiny(), "classification", 4, seed=2)
    assert_same_tensors(a.state_dict(), b.state_dict())
    assert not torch.equal(a.backbone.pos_embed, c.backbone.pos_embed)


def test_normalisation_defaults_to_timm_and_can_be_set():
    cfg = timm.create_model(NAME, pretrained=False, **TINY).pretrained_cfg
    model = build_model(tiny(), "classification", 2)
    assert model.spec.mean == tuple(cfg["mean"]) and model.spec.std == tuple(cfg["std"])
    custom = build_model(ModelSpec(NAME, TINY, "scratch", (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)), "classification", 2)
    x = torch.rand(1, 3, 4, 4)
    expected = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    assert torch.allclose(custom.normalization(x), expected)


def test_patch_decoder_matches_a_naive_per_pixel_implementation():
    torch.manual_seed(0)
    p, c, d, gh, gw = 2, 3, 5, 2, 3
    decoder = PatchDecoder(d, p, c)
    tokens = torch.randn(2, gh * gw, d)
    out = decoder(tokens, (gh, gw))
    w, bias = decoder.conv.weight[:, :, 0, 0], decoder.conv.bias
    naive = torch.empty(2, c, gh * p, gw * p)
    for b in range(2):
        for y in range(gh * p):
            for x in range(gw * p):
                token = tokens[b, (y // p) * gw + (x // p)]  # row-major patch order
                for ch in range(c):
                    k = ch * p * p + (y % p) * p + (x % p)  # PixelShuffle's channel layout
                    naive[b, ch, y, x] = bias[k] + w[k] @ token
    assert torch.allclose(out, naive, atol=1e-6)
    with pytest.raises(ValueError, match="do not fill a 2 x 2 grid"):
        decoder(tokens, (2, 2))


def test_per_sample_loss_closed_forms():
    logits = torch.zeros(4, 5)
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(per_sample_loss("classification", logits, None, labels), torch.full((4,), math.log(5)))
    images = torch.rand(2, 3, 4, 4)
    offset = torch.tensor([0.1, 0.3]).view(2, 1, 1, 1)
    assert torch.allclose(per_sample_loss("reconstruction", images + offset, images, None), torch.tensor([0.1, 0.3]))


def test_layered_wraps_the_backbone():
    layers = pytest.importorskip("finetune_invariance.layers")
    model = build_model(tiny(), "classification", 3)
    assert isinstance(model.layered(), layers.ViTLayers)


# --- pretrained sources -------------------------------------------------------------------


def test_file_weights_load_into_the_backbone_and_the_head_is_new(tmp_path):
    # Stands in for a hub download: a timm model with its 1000-class head, as safetensors.
    source = timm.create_model(NAME, pretrained=False, num_classes=1000, **TINY)
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    model = build_model(tiny(f"file:{path}"), "classification", 3, seed=0)
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("head.")}
    assert_same_tensors(backbone_state(model), expected)
    assert model.head.weight.shape == (3, 32)


def test_file_weights_are_resampled_to_a_larger_input(tmp_path):
    source = timm.create_model(NAME, pretrained=False, num_classes=0, **TINY)
    path = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(path))
    model = build_model(tiny(f"file:{path}", img_size=48), "reconstruction")
    assert model.backbone.pos_embed.shape == (1, 1 + 6 * 6, 32)
    assert torch.equal(model.backbone.patch_embed.proj.weight, source.patch_embed.proj.weight)
    assert model(torch.rand(1, 3, 48, 48)).shape == (1, 3, 48, 48)


def test_file_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file .*missing.safetensors does not exist"):
        build_model(tiny(f"file:{tmp_path / 'missing.safetensors'}"), "classification", 2)
    deeper = timm.create_model(NAME, pretrained=False, num_classes=0, **{**TINY, "depth": 3})
    path = tmp_path / "deeper.safetensors"
    save_file(deeper.state_dict(), str(path))
    with pytest.raises(ValueError, match=r"does not fit .*unexpected keys \['blocks\.2\."):
        build_model(tiny(f"file:{path}"), "classification", 2)


def test_unreadable_or_wider_weights_files_are_named_with_the_fix(tmp_path):
    import os

    for name in ("random.safetensors", "random.pth"):
        (tmp_path / name).write_bytes(os.urandom(300))
        with pytest.raises(
            ValueError, match=f"weights file .*{name} cannot be read as a state dict.*download it again"
        ):
            build_model(tiny(f"file:{tmp_path / name}"), "classification", 2)
    wider = timm.create_model(NAME, pretrained=False, num_classes=0, **{**TINY, "embed_dim": 64})
    path = tmp_path / "wider.safetensors"
    save_file({k: v.contiguous() for k, v in wider.state_dict().items()}, str(path))
    with pytest.raises(ValueError, match=r"(?s)wider.safetensors holds another architecture.*size mismatch"):
        build_model(tiny(f"file:{path}"), "classification", 2)


def test_checkpoint_source_takes_backbone_and_normalisation_not_head(tmp_path):
    spec = ModelSpec(NAME, TINY, "scratch", (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    pretrained = build_model(spec, "classification", 5, seed=3)
    path = save_checkpoint(tmp_path / "pre.safetensors", pretrained, {"epoch": 100})
    finetune = build_model(tiny(f"checkpoint:{path}"), "reconstruction", seed=0)
    assert_same_tensors(backbone_state(finetune), backbone_state(pretrained))
    assert finetune.spec.mean == (0.1, 0.2, 0.3) and finetune.spec.std == (0.4, 0.5, 0.6)
    assert finetune.head.conv.weight.shape[0] == 8 * 8 * 3
    fresh = build_model(tiny(f"checkpoint:{path}"), "classification", 5, seed=0)
    assert not torch.equal(fresh.head.weight, pretrained.head.weight)


def test_checkpoint_of_another_architecture_names_both(tmp_path):
    other = build_model(tiny(embed_dim=48), "classification", 5)
    path = save_checkpoint(tmp_path / "other.safetensors", other, {})
    with pytest.raises(ValueError, match=r"another architecture: .*'embed_dim': 48.*'embed_dim': 32"):
        build_model(tiny(f"checkpoint:{path}"), "classification", 5)


def test_hub_weights_offline_give_a_clear_error(tmp_path, monkeypatch):
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE / the cache location at import; set both the
    # variable and the values it was read into, with an empty cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        WeightsUnavailableError, match=r"vit_tiny_patch16_224\.augreg_in21k.*HF_HUB_OFFLINE=1.*file:<path>"
    ):
        build_model(tiny("timm:augreg_in21k"), "classification", 10)


def test_unknown_hub_tag_lists_the_available_ones():
    with pytest.raises(
        WeightsUnavailableError, match=r"no pretrained weights 'vit_tiny_patch16_224\.imagenet'.*augreg_in21k"
    ):
        build_model(tiny("timm:imagenet"), "classification", 10)


# --- configuration errors -----------------------------------------------------------------


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown timm model 'vit_base_patch32_244'.*vit_base_patch32_224"):
        build_model(ModelSpec("vit_base_patch32_244"), "classification", 10)


def test_non_vit_model_is_refused():
    with pytest.raises(ValueError, match="resnet18.*needs a VisionTransformer"):
        build_model(ModelSpec("resnet18"), "classification", 10)


@pytest.mark.parametrize("weights", ["imagenet", "timm:", "scratch:x", "url:", "http://x"])
def test_malformed_weights_string(weights):
    with pytest.raises(ValueError, match="ModelSpec.weights must be"):
        ModelSpec(NAME, TINY, weights)


def test_a_patch_size_that_does_not_tile_the_image_is_refused():
    with pytest.raises(ValueError, match=r"patch size \(8, 8\) does not tile the image size \(36, 36\)"):
        build_model(tiny(img_size=36), "classification", 2)


def test_a_checksum_belongs_to_a_weights_file():
    with pytest.raises(ValueError, match="sha256 checks a 'url:' or 'file:' weights file"):
        ModelSpec(NAME, TINY, "scratch", sha256="0" * 64)
    with pytest.raises(ValueError, match="64 lowercase hex digits"):
        ModelSpec(NAME, TINY, "file:/w.npz", sha256="ABC")


def test_task_and_num_classes_are_checked():
    with pytest.raises(ValueError, match="task must be one of"):
        build_model(tiny(), "segmentation", 3)
    with pytest.raises(ValueError, match="classification needs num_classes"):
        build_model(tiny(), "classification")
    with pytest.raises(ValueError, match="must not set num_classes"):
        ModelSpec(NAME, {**TINY, "num_classes": 3})


def test_spec_round_trips_through_a_dict():
    spec = ModelSpec(NAME, TINY, "file:/w.safetensors", (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), "0" * 64)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match=r"unknown ModelSpec fields \['colour'\]"):
        ModelSpec.from_dict({**spec.to_dict(), "colour": 1})


# --- the authors' AugReg checkpoint: an original ViT .npz -----------------------------------


def test_an_augreg_npz_lands_where_the_flax_layout_and_timms_loader_put_it(tmp_path):
    path = tmp_path / "B_tiny-i1k.npz"
    w = write_augreg_npz(path)
    model = build_model(tiny(f"file:{path}"), "classification", 3, seed=0)
    vit = model.backbone
    # The Flax layout, written out: a patch kernel (h, w, in, out) is a convolution; Dense
    # kernels (in, out) act as x @ kernel; attention kernels (in, heads, head_dim).
    assert torch.equal(vit.patch_embed.proj.weight, w["embedding/kernel"].permute(3, 2, 0, 1))
    assert torch.equal(vit.patch_embed.proj.bias, w["embedding/bias"])
    assert torch.equal(vit.cls_token, w["cls"]) and torch.equal(
        vit.pos_embed, w["Transformer/posembed_input/pos_embedding"]
    )
    assert torch.equal(vit.norm.weight, w["Transformer/encoder_norm/scale"])
    x = torch.randn(5, 32)
    for i, block in enumerate(vit.blocks):
        prefix = f"Transformer/encoderblock_{i}/"
        attention = prefix + "MultiHeadDotProductAttention_1/"
        assert torch.equal(block.norm1.weight, w[prefix + "LayerNorm_0/scale"])
        assert torch.equal(block.norm2.bias, w[prefix + "LayerNorm_2/bias"])
        flax_qkv = [
            torch.einsum("nd,dhk->nhk", x, w[f"{attention}{name}/kernel"]) + w[f"{attention}{name}/bias"]
            for name in ("query", "key", "value")
        ]
        assert torch.allclose(block.attn.qkv(x), torch.cat([t.flatten(1) for t in flax_qkv], dim=1), atol=1e-5)
        heads = torch.randn(5, 2, 16)
        flax_out = torch.einsum("nhk,hkd->nd", heads, w[attention + "out/kernel"]) + w[attention + "out/bias"]
        assert torch.allclose(block.attn.proj(heads.flatten(1)), flax_out, atol=1e-5)
        dense = prefix + "MlpBlock_3/Dense_0/"
        assert torch.allclose(block.mlp.fc1(x), x @ w[dense + "kernel"] + w[dense + "bias"], atol=1e-5)
    # timm's own loader puts every weight in the same place.
    reference = timm.create_model(NAME, pretrained=False, num_classes=0, **TINY)
    reference.load_pretrained(str(path))
    assert_same_tensors(backbone_state(model), reference.state_dict())
    assert model.spec.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_url_weights_are_downloaded_once_and_checked_against_their_sha256(tmp_path, monkeypatch):
    published = tmp_path / "bucket" / "B_tiny-i1k.npz"
    published.parent.mkdir()
    write_augreg_npz(published)
    digest = hashlib.sha256(published.read_bytes()).hexdigest()
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    url = published.as_uri()  # urllib serves file:// like https://

    model = build_model(tiny(f"url:{url}"), "classification", 3, seed=0)
    cached = tmp_path / "hub" / "checkpoints" / "B_tiny-i1k.npz"
    assert cached.read_bytes() == published.read_bytes()
    assert model.spec.weights == f"url:{url}" and model.spec.sha256 == digest  # recorded on the first download
    published.unlink()  # a second build reads the cache
    pinned = build_model(ModelSpec(NAME, TINY, f"url:{url}", sha256=digest), "classification", 3, seed=0)
    assert_same_tensors(backbone_state(pinned), backbone_state(model))

    with pytest.raises(WeightsFileError, match=rf"{cached} has SHA-256 {digest}, expected {'1' * 64}.*delete"):
        build_model(ModelSpec(NAME, TINY, f"url:{url}", sha256="1" * 64), "classification", 3)
    cached.unlink()
    with pytest.raises(WeightsUnavailableError, match=r"could not download weights .*file:<path>"):
        build_model(tiny(f"url:{url}"), "classification", 3)


def test_a_checkpoint_of_url_weights_keeps_their_provenance_and_loads_without_them(tmp_path, monkeypatch):
    published = tmp_path / "B_tiny-i1k.npz"
    write_augreg_npz(published)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    model = build_model(tiny(f"url:{published.as_uri()}"), "classification", 3, seed=0)
    path = save_checkpoint(tmp_path / "source.safetensors", model, {})
    published.unlink()
    (tmp_path / "hub" / "checkpoints" / "B_tiny-i1k.npz").unlink()
    loaded, _ = load_checkpoint(path)
    assert loaded.spec == model.spec
    assert_same_tensors(loaded.state_dict(), model.state_dict())


# --- other pretrained families ------------------------------------------------------------------

SMALL = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
MAE = "vit_base_patch16_224"  # timm's MAE weights are the tag 'mae' of this architecture


def saved_timm_model(path, name, **overrides):
    """A timm model's state dict as the hub's model.safetensors holds it (its head included)."""
    torch.manual_seed(1)
    model = timm.create_model(name, pretrained=False, **SMALL, **overrides)
    save_file(model.state_dict(), str(path))
    return model


def test_mae_weights_load_into_average_pooling_with_a_fresh_fc_norm(tmp_path):
    """MAE's finetuning recipe: its final norm is left out, fc_norm starts at weight 1, bias 0."""
    saved = saved_timm_model(tmp_path / "mae.safetensors", f"{MAE}.mae", num_classes=0)
    with torch.no_grad():
        saved.norm.weight.fill_(3.0)  # so that a norm copied into fc_norm would show
    save_file(saved.state_dict(), str(tmp_path / "mae.safetensors"))
    spec = ModelSpec(f"{MAE}.mae", {**SMALL, "global_pool": "avg"}, f"file:{tmp_path / 'mae.safetensors'}")
    model = build_model(spec, "classification", 3)
    blocks = {k: v for k, v in saved.state_dict().items() if not k.startswith("norm.")}
    assert_same_tensors({k: v for k, v in backbone_state(model).items() if not k.startswith("fc_norm.")}, blocks)
    assert torch.equal(model.backbone.fc_norm.weight, torch.ones(32)) and torch.equal(
        model.backbone.fc_norm.bias, torch.zeros(32)
    )
    # the same weights without the pooling override load strictly, their final norm included
    token = build_model(ModelSpec(f"{MAE}.mae", SMALL, spec.weights), "classification", 3)
    assert torch.equal(token.backbone.norm.weight, torch.full((32,), 3.0))


def test_a_file_that_lacks_other_weights_is_still_refused_with_average_pooling(tmp_path):
    saved = saved_timm_model(tmp_path / "mae.safetensors", f"{MAE}.mae", num_classes=0)
    save_file(
        {k: v for k, v in saved.state_dict().items() if k != "blocks.1.mlp.fc2.bias"}, str(tmp_path / "mae.safetensors")
    )
    spec = ModelSpec(MAE, {**SMALL, "global_pool": "avg"}, f"file:{tmp_path / 'mae.safetensors'}")
    with pytest.raises(WeightsFileError, match=r"missing keys \['blocks.1.mlp.fc2.bias'\]"):
        build_model(spec, "classification", 3)


def test_hub_weights_with_another_pooling_come_from_the_hubs_own_architecture(monkeypatch):
    from finetune_invariance.study import models

    created = []
    real = models.create_vit

    def fake_create_vit(name, model_args=None, *, pretrained, offline_fix=""):
        created.append((name, dict(model_args or {}), pretrained))
        if pretrained:  # the hub, offline: a seeded model of the hub's architecture
            torch.manual_seed(5)
        return real(name, model_args, pretrained=False)

    monkeypatch.setattr(models, "create_vit", fake_create_vit)
    model = build_model(ModelSpec(MAE, {**SMALL, "global_pool": "avg"}, "timm:mae"), "classification", 3)
    assert created[:2] == [(f"{MAE}.mae", SMALL, True), (f"{MAE}.mae", {**SMALL, "global_pool": "avg"}, False)]
    torch.manual_seed(5)
    hub = real(f"{MAE}.mae", SMALL, pretrained=False)
    assert torch.equal(model.backbone.blocks[1].attn.qkv.weight, hub.blocks[1].attn.qkv.weight)
    assert model.backbone.global_pool == "avg" and torch.equal(model.backbone.fc_norm.weight, torch.ones(32))


def test_deit_distilled_hub_file_loads_without_its_two_heads(tmp_path):
    name = "deit_base_distilled_patch16_224"
    saved = saved_timm_model(tmp_path / "deit.safetensors", name, num_classes=10)
    model = build_model(ModelSpec(name, SMALL, f"file:{tmp_path / 'deit.safetensors'}"), "classification", 3)
    assert torch.equal(model.backbone.dist_token, saved.dist_token)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_register_tokens_setting_reaches_the_layers_and_round_trips():
    name = "vit_base_patch14_reg4_dinov2"
    spec = ModelSpec(name, {**SMALL, "patch_size": 8}, register_tokens=False, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = build_model(spec, "classification", 3)
    with torch.no_grad():
        reps = model.layered().representations(torch.rand(2, 3, 32, 32), [0])
    assert reps[0].shape == (2, (1 + 16) * 32)  # class token and 16 patches: the 4 registers left out
    assert ModelSpec.from_dict(model.spec.to_dict()) == model.spec
    assert model.spec.mean == (0.5,) * 3 and model.spec.std == (0.25,) * 3
    assert build_model(ModelSpec(name, {**SMALL, "patch_size": 8}), "classification", 3).layered().representations(
        torch.rand(2, 3, 32, 32), [0]
    )[0].shape == (2, (1 + 4 + 16) * 32)
