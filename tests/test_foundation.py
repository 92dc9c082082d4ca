"""Beyond the paper: the study on your own pretrained ViTs and your own data (docs/your-models.md).

A tiny study with two sources of different timm architectures and depths (one loaded from a
``file:`` weights file) and a ``kind: folder`` dataset of PNGs runs end to end; the
foundation config dry-runs to the jobs derived by hand; its launch plan in the docs is the
command's; the models' comparison and its figures follow the paper's layer mapping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from finetune_invariance.study import tables
from finetune_invariance.study.vocabulary import Run

from .conftest import REPO, run_snakemake
from .study.conftest import (
    layer_metrics_table,
    learning_forgetting_correlation_table,
    named_hypotheses_table,
    table1_table,
    validated_config,
)
from .test_workflow import ANALYSIS_AND_FIGURE_JOBS, job_counts

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


# --- docs/method.md: which tokens a layer holds, per family ---------------------------------


@pytest.mark.parametrize(
    "row, name, overrides",
    [
        ("| AugReg ViT-B/32", "vit_base_patch32_224", {}),
        ("| DeiT-B/16 distilled", "deit_base_distilled_patch16_224", {}),
        ("| DINOv2-B/14 with registers", "vit_base_patch14_reg4_dinov2", {"img_size": 224}),
        ("| DINOv2-B/14 (", "vit_base_patch14_dinov2", {"img_size": 224}),
        ("| CLIP ViT-B/16", "vit_base_patch16_clip_224", {}),
        ("| MAE ViT-B/16 as its authors", "vit_base_patch16_224", {"global_pool": "avg"}),
        ("| MAE ViT-B/16 as timm", "vit_base_patch16_224", {}),
    ],
)
def test_the_method_pages_token_table_is_each_models_own_layout(row, name, overrides):
    import timm

    from finetune_invariance.layers import token_layout

    with torch.device("meta"):
        vit = timm.create_model(name, pretrained=False, num_classes=0, **overrides)
    tokens = token_layout(vit).describe().split(";")[0]
    line = next(line for line in (REPO / "docs/method.md").read_text().splitlines() if line.startswith(row))
    assert f"`{name}`" in line and f"| {tokens} |" in line, line


# --- sources of different depths: the paper's layer mapping --------------------------------------


def test_profiles_of_models_of_different_depths_are_drawn_at_their_relative_depth(tmp_path):
    from finetune_invariance.finetuning_metrics import summarize_over_seeds
    from finetune_invariance.study import figures

    shallow, deep = Run("small", "d", "classification"), Run("big", "d", "classification")
    metrics = pd.concat(
        [
            layer_metrics_table({"learning": np.arange(3.0), "forgetting": np.arange(3.0)}, run=shallow),
            layer_metrics_table({"learning": np.arange(5.0), "forgetting": np.arange(5.0)}, run=deep),
        ]
    )
    profiles = summarize_over_seeds(metrics, keys=["source", "dataset", "task", "variant", "epoch", "layer", "metric"])
    fig = figures.plot_source_comparison(profiles, table1_table({shallow: 1, deep: 1}), tmp_path / "sources.png")
    lines = {line.get_label(): list(line.get_xdata()) for line in fig.axes[0].get_lines() if line.get_label()[0] != "_"}
    # depth 2: layers 0, 1, 2 at paper layers 0, 6, 12; depth 4: at 0, 3, 6, 9, 12
    assert lines == {"small": [0, 6, 12], "big": [0, 3, 6, 9, 12]}
    assert fig.axes[0].get_xlabel() == "paper layer = 12 x layer / depth (12 = pooled output)"
    assert {text.get_text() for text in fig.legends[0].get_texts()} >= {"small (depth 2)", "big (depth 4)"}
    same = figures.plot_source_comparison(
        profiles[profiles.source == "big"], table1_table({deep: 1}), tmp_path / "one.png"
    )
    assert [list(line.get_xdata()) for line in same.axes[0].get_lines() if line.get_label() == "big"] == [
        [0, 1, 2, 3, 4]
    ]


def test_the_model_comparison_averages_the_paper_ranges_by_relative_depth_and_asks_each_model():
    from finetune_invariance.study.model_comparison import compare_models

    shallow, deep = Run("small", "d", "classification"), Run("big", "d", "classification")
    # depth 4: paper layers 1-6 are layers 0..2 (round(l * 4 / 12)), 7-12 layers 2..4
    deep_profile = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    metrics = pd.concat(
        [
            layer_metrics_table({m: deep_profile for m in ("learning", "forgetting", "cka_divergence")}, run=deep),
            layer_metrics_table({m: np.zeros(3) for m in ("learning", "forgetting", "cka_divergence")}, run=shallow),
        ]
    )
    correlation = learning_forgetting_correlation_table({deep: (0.9, 0.001), shallow: (0.9, 0.2)})
    named = named_hypotheses_table({"headline": "std"}, run=deep)
    named.loc[named.role == "headline", ["r", "p_bonferroni"]] = [0.8, 0.01]
    table = compare_models(
        metrics, table1_table({shallow: 1, deep: 1}), correlation, named, {"big": "vit_b", "small": "vit_s"}
    )
    rows = table.set_index("source")
    assert rows.loc["big", "depth"] == 4 and rows.loc["small", "depth"] == 2 and rows.loc["big", "model"] == "vit_b"
    assert rows.loc["big", "learning_early"] == pytest.approx((1 + 2 + 3) / 3)
    assert rows.loc["big", "forgetting_later"] == pytest.approx((3 + 4 + 5) / 3)
    assert rows.loc["big", "learning_forgetting_verdict"] == "holds"
    assert rows.loc["small", "learning_forgetting_verdict"] == "does not hold"  # p = 0.2
    assert rows.loc["big", "headline_verdict"] == "holds"
    assert rows.loc["small", "headline_verdict"].startswith("not measured")  # no dynamics run
    named.loc[named.role == "headline", ["r", "p_bonferroni"]] = [np.nan, np.nan]  # a constant series
    undefined = compare_models(metrics, table1_table({deep: 1}), correlation, named, {"big": "vit_b"})
    assert undefined["headline_verdict"].tolist() == ["does not hold"]


# --- config/foundation.yaml ----------------------------------------------------------------------


def foundation_counts() -> dict[str, int]:
    """Jobs per rule of config/foundation.yaml, by hand: 6 sources x CIFAR10, CIFAR100, classification."""
    sources, datasets, seeds = 6, 2, 3
    runs = sources * datasets
    without_dynamics = {k: v for k, v in ANALYSIS_AND_FIGURE_JOBS.items() if k != "figure_dynamics"}
    return {
        "source_model": sources,
        "finetune": runs,  # every run is an analysed one; no source is trained here
        "invert_pretrained": sources * datasets * seeds,  # each source on each dataset it is finetuned on
        "stir": runs * seeds,  # each run at its best checkpoint: no dynamics runs
        **without_dynamics,  # no dynamics, variants or monitored runs: no dynamics figures
        "model_comparison": 1,  # six models: the comparison beyond the paper
    }


@pytest.mark.workflow
def test_the_foundation_config_dry_runs_to_the_jobs_derived_by_hand(tmp_path):
    out = run_snakemake("-n", "--configfile", str(REPO / "config/foundation.yaml"), "--directory", str(tmp_path))
    assert job_counts(out.stdout) == foundation_counts()


def test_dynamics_for_every_foundation_model_cost_more_than_the_papers_design():
    """The rule of docs/your-models.md: dynamics runs are affordable at no more GPU-hours than the paper's design."""
    from finetune_invariance.study.launch_plan import MEASUREMENTS, total_gpu_hours

    def hours(*names):
        return total_gpu_hours([REPO / "config" / name for name in names], REPO / "Snakefile", MEASUREMENTS[0])

    paper, foundation = hours("paper.yaml"), hours("foundation.yaml")
    with_dynamics = hours("foundation.yaml", "foundation_dynamics.yaml")
    assert foundation <= paper < with_dynamics


@pytest.mark.workflow
def test_the_docs_launch_plans_are_the_commands(tmp_path):
    page = tmp_path / "your-models.md"
    shutil.copyfile(REPO / "docs/your-models.md", page)
    subprocess.run(
        [sys.executable, "-m", "finetune_invariance.study.launch_plan", "--docs", str(page)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=900,
    )
    assert (
        page.read_text() == (REPO / "docs/your-models.md").read_text()
    ), "docs/your-models.md is out of date: python -m finetune_invariance.study.launch_plan --docs docs/your-models.md"


def test_the_docs_show_the_model_comparisons_schema():
    from finetune_invariance.tables import markdown_schema

    assert markdown_schema(tables.MODEL_COMPARISON) in (REPO / "docs/your-models.md").read_text()


def test_the_docs_example_config_is_a_valid_config(tmp_path):
    from finetune_invariance.study.config import check_config

    from .study.test_folder_dataset import random_pixels, write_png

    text = (REPO / "docs/your-models.md").read_text()
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.DOTALL).group(1))
    for split in ("train", "test"):
        for name in ("daisy", "rose"):
            for k in range(60):
                write_png(tmp_path / "my_images" / split / name / f"{k}.png", random_pixels(k, 8, 8))
    check_config(validated_config(example), workflow_dir=tmp_path)


# --- end to end: two architectures, a file: source, your own PNGs ---------------------------------

FOLDER_CLASSES = ("circle", "square", "stripes")
DEIT = {"img_size": 16, "patch_size": 8, "embed_dim": 16, "depth": 3, "num_heads": 2}
DINO = {"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2}


def own_study_config(root: Path) -> dict:
    """DeiT distilled (depth 3, 16 px) from a weights file and DINOv2 with registers (depth 2,
    32 px: the folder's 16 px images are upsampled) from scratch, on a folder of PNGs."""
    return {
        "about": {"title": "two architectures on your own images (test)"},
        "results": "results",
        "data_root": "results/data",
        "device": "cpu",
        "warm_interpreter": True,
        "model": {"name": "vit_tiny_patch16_224", "overrides": DEIT},
        "datasets": {
            "mine": {"kind": "folder", "root": str(root / "images"), "image_size": 16, "corrupted": "generated"}
        },
        "sources": {
            "deit": {
                "weights": f"file:{root / 'deit.safetensors'}",
                "model": {"name": "deit_tiny_distilled_patch16_224", "overrides": DEIT},
            },
            "dino": {"weights": "scratch", "model": {"name": "vit_small_patch14_reg4_dinov2", "overrides": DINO}},
        },
        "finetune": {"epochs": 3, "batch_size": 10, "warmup_steps": 1, "lr": 0.05, "augment": "none"},
        "finetune_runs": [{"sources": ["deit", "dino"], "datasets": ["mine"], "tasks": ["classification"]}],
        "dynamics": [{"source": "deit", "dataset": "mine"}],
        "imagenet_source": "deit",
        "controls": {"enabled": False},
        "stir": {"n_images": 4, "seeds": [0], "iterations": 2},
        "robustness": {"corruptions": ["gaussian_noise", "contrast"], "n_images": 10},
    }


def write_own_study(root: Path) -> None:
    """PNGs of three colour classes (10 train, 4 test images each) and a DeiT weights file
    as the hub publishes one (a timm state dict with its two heads)."""
    import timm
    from PIL import Image
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("test", 4)):
        for c, name in enumerate(FOLDER_CLASSES):
            for k in range(n):
                pixels = np.zeros((16, 16, 3), np.uint8)
                pixels[..., c] = 200
                pixels = np.clip(pixels + rng.integers(0, 60, pixels.shape), 0, 255).astype(np.uint8)
                (root / "images" / split / name).mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels).save(root / "images" / split / name / f"{k}.png")
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, num_classes=10, **DEIT)
    save_file(deit.state_dict(), str(root / "deit.safetensors"))
    (root / "own.yaml").write_text(yaml.safe_dump(own_study_config(root), sort_keys=False))


@pytest.fixture(scope="module")
def own_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("own_study")
    write_own_study(root)
    start = time.monotonic()
    run_snakemake("--cores", "2", "--configfile", "own.yaml", "--directory", str(root), cwd=root)
    print(f"own study: {time.monotonic() - start:.0f} s")
    return root


@pytest.mark.workflow
def test_two_architectures_on_your_own_images_run_end_to_end_with_both_sources_layers(own_study):
    results = own_study / "results"
    metrics = tables.read_table(results / "tables/layer_metrics.parquet", tables.STUDY_LAYER_METRICS)
    layers = metrics.groupby("source")["layer"].agg(["min", "max"])
    assert layers.to_dict("index") == {"deit": {"min": 0, "max": 3}, "dino": {"min": 0, "max": 2}}
    # deit every epoch (its dynamics run), dino at its best; 3 metrics, 1 seed
    assert len(metrics) == (3 * 4 + 1 * 3) * 3
    compared = tables.read_table(results / "tables/model_comparison.parquet", tables.MODEL_COMPARISON).set_index(
        "source"
    )
    assert compared["model"].to_dict() == {
        "deit": "deit_tiny_distilled_patch16_224",
        "dino": "vit_small_patch14_reg4_dinov2",
    }
    assert compared["depth"].to_dict() == {"deit": 3, "dino": 2}
    assert compared.loc["deit", "headline_verdict"] in ("holds", "does not hold")  # measured: its dynamics run
    assert "beyond the paper" in (results / "tables/model_comparison.html").read_text().lower()
    robust = tables.read_table(results / "tables/robust_accuracy.parquet", tables.ROBUST_ACCURACY)
    assert set(robust["source"]) == {"deit"} and set(robust["epoch"]) == {1, 2, 3}
    from finetune_invariance.study import cifar_c

    sample = cifar_c.load_sets(results / "data/corrupted/mine.npz")
    assert {s.images.shape[1:] for s in sample} == {(16, 16, 3)}  # the folder's native size
    assert (results / "figures/source_comparison/classification.png").is_file() and (results / "claims.md").is_file()


@pytest.mark.workflow
def test_the_file_source_is_the_weights_file_and_each_runs_model_its_sources(own_study):
    from safetensors.torch import load_file

    from finetune_invariance.study.models import load_checkpoint

    source, _ = load_checkpoint(own_study / "results/sources/deit.safetensors")
    saved = load_file(str(own_study / "deit.safetensors"))
    assert torch.equal(source.backbone.dist_token, saved["dist_token"])
    run, _ = load_checkpoint(
        own_study / "results/finetune/dino/mine/classification/default/checkpoints/best.safetensors"
    )
    assert run.spec.name == "vit_small_patch14_reg4_dinov2" and run.image_size == (32, 32) and run.num_classes == 3
