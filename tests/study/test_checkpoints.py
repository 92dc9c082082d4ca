"""Checkpoints: exact round trip from the path alone, atomic writes, clear errors."""

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from finetune_invariance.checkpoint_format import HEADER_KEY
from finetune_invariance.study.checkpoints import CheckpointError, save_checkpoint
from finetune_invariance.study.models import load_checkpoint
from finetune_invariance.study.models import ModelSpec, build_model

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
SPEC = ModelSpec("vit_tiny_patch16_224", TINY)


@pytest.mark.parametrize("task, num_classes", [("classification", 6), ("reconstruction", None)])
def test_round_trip_rebuilds_the_same_model(tmp_path, task, num_classes):
    model = build_model(SPEC, task, num_classes, seed=4)
    with torch.no_grad():
        model.normalization.mean.fill_(0.25)  # a buffer: must travel too
    metadata = {"epoch": 3, "metrics": {"test_accuracy": 0.5, "nan": float("nan")}, "train_config": {"lr": 0.001}}
    path = save_checkpoint(tmp_path / "sub" / "ck.safetensors", model, metadata)
    loaded, loaded_metadata = load_checkpoint(path)
    assert loaded.task == task and loaded.num_classes == num_classes and loaded.spec == model.spec
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    images = torch.rand(2, 3, 32, 32)
    model.eval(), loaded.eval()
    assert torch.equal(loaded(images), model(images))
    assert loaded_metadata["epoch"] == 3 and loaded_metadata["train_config"] == {"lr": 0.001}
    assert loaded_metadata["metrics"]["nan"] != loaded_metadata["metrics"]["nan"]  # NaN survives


def test_file_is_plain_safetensors_with_a_json_header(tmp_path):
    model = build_model(SPEC, "classification", 3)
    path = save_checkpoint(tmp_path / "ck.safetensors", model, {"epoch": 1})
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])  # safetensors: u64 length, then JSON
    header = json.loads(raw[8 : 8 + header_len])
    ours = json.loads(header["__metadata__"][HEADER_KEY])
    assert ours["model"]["spec"]["name"] == "vit_tiny_patch16_224" and ours["metadata"] == {"epoch": 1}
    assert set(load_file(str(path))) == set(model.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["ck.safetensors"]  # no temporary file left


def test_loading_needs_no_access_to_the_original_weights(tmp_path):
    source = build_model(SPEC, "classification", 3, seed=0)
    pre = save_checkpoint(tmp_path / "pre.safetensors", source, {})
    finetuned = build_model(ModelSpec("vit_tiny_patch16_224", TINY, f"checkpoint:{pre}"), "classification", 3)
    path = save_checkpoint(tmp_path / "ft.safetensors", finetuned, {})
    pre.unlink()
    loaded, _ = load_checkpoint(path)
    assert loaded.spec.weights == f"checkpoint:{pre}"  # provenance kept
    assert torch.equal(loaded.head.weight, finetuned.head.weight)


def test_unserialisable_metadata_names_the_key_and_writes_nothing(tmp_path):
    model = build_model(SPEC, "classification", 3)
    with pytest.raises(TypeError, match=r"\['config'\] are not JSON-serialisable"):
        save_checkpoint(tmp_path / "ck.safetensors", model, {"epoch": 1, "config": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint .*nope.safetensors does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_truncated_and_garbage_files_are_corrupt(tmp_path):
    model = build_model(SPEC, "classification", 3)
    path = save_checkpoint(tmp_path / "ck.safetensors", model, {})
    raw = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(raw[: len(raw) - 1000])
    recovery = "delete it and rerun the job that wrote it"
    with pytest.raises(CheckpointError, match=f"truncated.safetensors is not a readable safetensors file.*{recovery}"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=f"garbage.safetensors is not a readable safetensors file.*{recovery}"):
        load_checkpoint(garbage)


def test_the_same_model_and_metadata_give_the_same_bytes(tmp_path):
    model = build_model(SPEC, "classification", 3, seed=1)
    metadata = {"epoch": 3, "metrics": {"b": 1.0, "a": 0.5}, "run": "x"}
    first = save_checkpoint(tmp_path / "a.safetensors", model, metadata).read_bytes()
    reordered = {"run": "x", "metrics": {"a": 0.5, "b": 1.0}, "epoch": 3}
    assert save_checkpoint(tmp_path / "b.safetensors", model, reordered).read_bytes() == first


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(
        CheckpointError, match="foreign.safetensors is a safetensors file but not a checkpoint of this study"
    ):
        load_checkpoint(path)


def _rewrite(path, tensors):
    """Re-save ``tensors`` with the original header (a checkpoint tampered with)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    save_file(tensors, str(path), metadata=metadata)


def test_mismatched_keys_and_shapes_name_the_key(tmp_path):
    model = build_model(SPEC, "classification", 3)
    path = save_checkpoint(tmp_path / "ck.safetensors", model, {})
    tensors = load_file(str(path))
    _rewrite(path, {**tensors, "head.weight": torch.zeros(4, 32)})
    with pytest.raises(
        CheckpointError, match=r"ck.safetensors: tensor 'head.weight' has shape \(4, 32\), the model expects \(3, 32\)"
    ):
        load_checkpoint(path)
    del tensors["backbone.norm.bias"]
    _rewrite(path, tensors)
    with pytest.raises(CheckpointError, match=r"missing keys \['backbone.norm.bias'\]"):
        load_checkpoint(path)


def test_the_command_line_reads_the_header_this_module_writes(tmp_path):
    """The library's reader of study checkpoints (the command line's) names the same header
    entry and finds the model's description in it."""
    from finetune_invariance import model_loading

    spec = ModelSpec(
        "vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
    )
    path = save_checkpoint(tmp_path / "c.safetensors", build_model(spec, "classification", 3), {"epoch": 1})
    assert model_loading.checkpoint_model(path) == build_model(spec, "classification", 3).spec.to_dict()


def test_both_readers_refuse_another_format_version(tmp_path):
    """A checkpoint of another layout is named, not misread, by the study and by the command line."""
    from safetensors import safe_open

    from finetune_invariance import model_loading

    path = save_checkpoint(tmp_path / "c.safetensors", build_model(SPEC, "classification", 3), {"epoch": 1})
    with safe_open(str(path), "pt") as f:
        header = json.loads(f.metadata()[HEADER_KEY])
    save_file(load_file(str(path)), str(path), metadata={HEADER_KEY: json.dumps({**header, "format_version": 2})})
    with pytest.raises(CheckpointError, match="format_version 2, expected 1"):
        load_checkpoint(path)
    with pytest.raises(model_loading.WeightsFileError, match="format_version 2; .* reads format_version 1"):
        model_loading.checkpoint_model(path)
