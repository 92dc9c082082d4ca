"""The study's path through the package (train, checkpoint, invert, STIR, evaluate) on every
device this machine has: the CPU always, CUDA where there is one. Catches tensors left on
the wrong device, which CPU-only tests cannot."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from finetune_invariance import tables
from finetune_invariance.study import synthetic
from finetune_invariance.study.checkpoints import save_checkpoint
from finetune_invariance.study.layout import checkpoint_path
from finetune_invariance.study.data import get_dataset
from finetune_invariance.inversion import Inversions, invert
from finetune_invariance.study.models import ModelSpec, build_model, load_checkpoint
from finetune_invariance.stir import pair_similarity
from finetune_invariance.study.evaluation import evaluate
from finetune_invariance.study.training import TrainConfig, train

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
SPEC = ModelSpec(
    name="vit_tiny_patch16_224", overrides=dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
)


@pytest.mark.parametrize("device", DEVICES)
def test_study_path_runs_on_device(device, tmp_path):
    synthetic.generate("digits", tmp_path, seed=0, n_train=96, n_test=32)
    train_set, test_set = (get_dataset("digits", split, tmp_path) for split in ("train", "test"))
    save_checkpoint(tmp_path / "source.safetensors", build_model(SPEC, "classification", 1, seed=0), {"epoch": 0})

    finetuned = build_model(replace(SPEC, weights=f"checkpoint:{tmp_path / 'source.safetensors'}"), "classification", 10)
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=1e-3, warmup_steps=1, image_size=32)
    history = train(finetuned, config, train_set, test_set, tmp_path / "run", {1}, run_name="device", device=device)
    assert np.isfinite(history["train_loss"]).all()

    p, _ = load_checkpoint(tmp_path / "source.safetensors", map_location=device)
    f, _ = load_checkpoint(checkpoint_path(tmp_path / "run", 1), map_location=device)
    assert next(f.parameters()).device.type == device
    images = torch.stack([test_set[k][0] for k in range(8)]).to(device)
    for name, model in (("p", p), ("f", f)):
        inverted = invert(model, images, seed=0, iterations=3, progress=False)
        assert inverted.images.device.type == device
        inverted.save(tmp_path / f"{name}.safetensors")
    # Stored inversions load on the CPU; STIR moves each batch to the models' device.
    inv_p, inv_f = (Inversions.load(tmp_path / f"{name}.safetensors") for name in ("p", "f"))
    similarity = pair_similarity(p, f, inv_p.targets, inv_p, inv_f)
    tables.conform(similarity, tables.PAIR_SIMILARITY)
    assert similarity[["stir", "cka"]].apply(lambda c: c.between(-1e-6, 1 + 1e-6)).all().all()

    metrics = evaluate(f, test_set, "classification", 32, device)
    assert 0 <= metrics["accuracy"] <= 1 and metrics["n"] == 32
