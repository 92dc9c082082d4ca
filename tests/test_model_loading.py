"""Models by name or path: timm weights files load into timm's own model, and a Hugging Face ViT's
layers are what its own forward reports (hidden states, the classifier's input)."""

import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from finetune_invariance.layers import ViTLayers, as_layers
from finetune_invariance.model_loading import (
    HuggingFaceViT,
    WeightsFileError,
    load_model,
    parse_model_args,
)

transformers = pytest.importorskip("transformers")

TINY_TIMM = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 3, "num_heads": 2}
TIMM_NAME = "vit_tiny_patch16_224"


def hf_config(**changes):
    settings = dict(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    return transformers.ViTConfig(**{**settings, **changes})


@pytest.fixture
def images():
    return torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# --- timm -------------------------------------------------------------------------------------------


def test_a_timm_weights_file_gives_the_saved_model_and_its_normalisation(tmp_path, images):
    torch.manual_seed(0)
    source = timm.create_model(TIMM_NAME, num_classes=10, **TINY_TIMM).eval()  # with a head, as after finetuning
    path = tmp_path / "finetuned.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = load_model(path, architecture=TIMM_NAME, model_args=TINY_TIMM)
    assert (loaded.image_size, loaded.channels) == ((32, 32), 3)
    assert isinstance(loaded.layered, ViTLayers) and loaded.layered.num_layers == 4
    with torch.no_grad():
        ours = loaded.layered.representations(images)
        theirs = ViTLayers(source).representations(images)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert loaded.layered.normalization.mean.flatten().tolist() == list(source.pretrained_cfg["mean"])


def test_mean_and_std_replace_the_models_own_and_come_together(tmp_path):
    source = timm.create_model(TIMM_NAME, num_classes=0, **TINY_TIMM)
    path = tmp_path / "m.safetensors"
    save_file(source.state_dict(), str(path))
    loaded = load_model(path, architecture=TIMM_NAME, model_args=TINY_TIMM, mean=[0.1, 0.2, 0.3], std=[1, 2, 3])
    assert loaded.layered.normalization.std.flatten().tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="give mean and std together"):
        load_model(path, architecture=TIMM_NAME, model_args=TINY_TIMM, mean=[0.1, 0.2, 0.3])


def test_what_cannot_be_loaded_is_named_with_the_fix(tmp_path):
    source = timm.create_model(TIMM_NAME, num_classes=0, **TINY_TIMM)
    path = tmp_path / "m.safetensors"
    save_file(source.state_dict(), str(path))
    with pytest.raises(ValueError, match="m.safetensors needs its architecture.*--architecture"):
        load_model(path)
    with pytest.raises(WeightsFileError, match="does not fit.*missing keys.*blocks.3"):
        load_model(path, architecture=TIMM_NAME, model_args={**TINY_TIMM, "depth": 4})
    with pytest.raises(FileNotFoundError, match="weights file .*gone.safetensors does not exist"):
        load_model(tmp_path / "gone.safetensors", architecture=TIMM_NAME)
    with pytest.raises(ValueError, match="'vit_tiny_patch16_22' is neither a folder, a weights file.*close matches"):
        load_model("vit_tiny_patch16_22")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no config.json.*save_pretrained"):
        load_model(tmp_path / "empty")


def test_model_arguments_are_read_as_yaml_scalars():
    assert parse_model_args(["img_size=32", "dynamic_img_size=true", "global_pool=avg", "mean=[0.5, 0.5]"]) == {
        "img_size": 32,
        "dynamic_img_size": True,
        "global_pool": "avg",
        "mean": [0.5, 0.5],
    }
    with pytest.raises(ValueError, match="'img_size' is not KEY=VALUE"):
        parse_model_args(["img_size"])


# --- Hugging Face transformers -----------------------------------------------------------------------


def test_hugging_face_layers_are_its_hidden_states_and_the_classifiers_input(images):
    torch.manual_seed(0)
    classifier = transformers.ViTForImageClassification(hf_config(num_labels=4)).eval()
    model = HuggingFaceViT(classifier)  # the ViT inside; the head is left out
    layered = as_layers(model)
    assert layered.num_layers == 4
    with torch.no_grad():
        reps = layered.representations(images)
        out = classifier(pixel_values=(images - 0.5) / 0.5, output_hidden_states=True)
    for block in range(3):  # hidden_states[0] is the embedding, [b + 1] block b's output
        torch.testing.assert_close(reps[block], out.hidden_states[block + 1].flatten(1), rtol=0, atol=0)
    torch.testing.assert_close(classifier.classifier(reps[3]), out.logits, rtol=1e-6, atol=1e-6)
    assert reps[3].shape == (5, 32)


def test_a_hugging_face_folder_loads_with_its_image_processors_normalisation(tmp_path, images):
    torch.manual_seed(1)
    vit = transformers.ViTModel(hf_config(), add_pooling_layer=False).eval()
    vit.save_pretrained(tmp_path)
    processor = {"image_processor_type": "ViTImageProcessor", "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    loaded = load_model(tmp_path)
    assert (loaded.image_size, loaded.channels, loaded.layered.num_layers) == ((32, 32), 3, 4)
    mean, std = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = loaded.layered.representations(images, [3])[0]
        theirs = vit(pixel_values=(images - mean) / std).last_hidden_state[:, 0]
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


def test_a_hugging_face_folder_without_processor_config_uses_the_vit_processors_defaults(tmp_path):
    transformers.ViTModel(hf_config(), add_pooling_layer=False).save_pretrained(tmp_path)
    normalization = load_model(tmp_path).layered.model.normalization
    assert np.allclose(normalization.mean.flatten().tolist(), transformers.ViTImageProcessor().image_mean)
    assert np.allclose(normalization.std.flatten().tolist(), transformers.ViTImageProcessor().image_std)


def test_other_transformers_models_are_refused(tmp_path):
    transformers.DeiTModel(transformers.DeiTConfig(**hf_config().to_diff_dict())).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="holds a transformers 'deit' model; only ViTs"):
        load_model(tmp_path)
    with pytest.raises(TypeError, match="needs a transformers ViTModel"):
        HuggingFaceViT(torch.nn.Linear(2, 2))
