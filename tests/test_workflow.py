"""The Snakemake workflow: lint, formatting, config validation, dry-runs of the shipped
configs and profile, and an end-to-end run of a config far smaller than the mini study."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.workflow

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(repo_root: Path, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(repo_root / "Snakefile"), *args],
        cwd=cwd or repo_root,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def job_counts(output: str) -> Counter:
    """Jobs per rule from the 'Job stats' table a dry-run prints."""
    counts: Counter = Counter()
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def test_lint_passes(repo_root):
    result = snakemake(repo_root, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_files_are_snakefmt_formatted(repo_root):
    files = [repo_root / "Snakefile", *sorted((repo_root / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", *map(str, files)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mini_study_dry_run_plans_every_stage(repo_root, tmp_path):
    out = snakemake(repo_root, "-n", "--directory", str(tmp_path)).stdout
    counts = job_counts(out)
    # config.yaml: 3 generated datasets; 2 pretrained sources + scratch; 10 default runs
    # plus 2 extra variants of the dynamics run; 5 epochs; 2 seeds.
    assert counts["generate_dataset"] == 3
    assert counts["pretrain"] == 2
    assert counts["source_model"] == 3
    assert counts["finetune"] == 12
    assert counts["invert_pretrained"] == 5 * 2  # (dataset, source) pairs x seeds
    dynamics_epochs = 3 * 5
    assert counts["invert_finetuned"] == (9 + dynamics_epochs) * 2
    assert counts["stir"] == counts["invert_finetuned"]
    assert counts["robust_accuracy"] == 3
    assert counts["corrupted_testset"] == 1
    assert counts["figure_invariance_flow"] == 10
    assert counts["figure_dynamics"] == 3 and counts["figure_variants"] == 1


def test_paper_config_dry_run_plans_the_paper_design(repo_root, tmp_path):
    out = snakemake(repo_root, "-n", "--configfile", str(repo_root / "config/paper.yaml"), "--directory", str(tmp_path)).stdout
    counts = job_counts(out)
    # Sources ImageNet (4 datasets x 2 tasks), CIFAR100 and scratch -> CIFAR10, CIFAR10 and
    # scratch -> CIFAR100 (2 tasks each): 16 default runs; 4 extra variants of ImageNet -> CIFAR10.
    assert counts["finetune"] == 20
    assert counts["pretrain"] == 2  # CIFAR10 and CIFAR100 from scratch
    assert counts["source_model"] == 4
    assert counts["invert_pretrained"] == 8 * 3  # 8 (dataset, source) pairs, 3 seeds
    # 14 runs at their last epoch; ImageNet -> CIFAR10 / CIFAR100 default for all 100 epochs;
    # the 4 variants for their 20 epochs.
    assert counts["invert_finetuned"] == (14 + 2 * 100 + 4 * 20) * 3
    assert counts["stir"] == counts["invert_finetuned"]
    assert counts["robust_accuracy"] == 6
    assert counts["corrupted_testset"] == 2
    assert counts["download_cifar_c"] == 2
    assert counts["figure_invariance_flow"] == 16


def test_slurm_profile_dry_run(repo_root, tmp_path):
    out = snakemake(
        repo_root,
        "-n",
        "--profile",
        str(repo_root / "profiles/slurm"),
        "--configfile",
        str(repo_root / "config/paper.yaml"),
        "--directory",
        str(tmp_path),
    ).stdout
    assert job_counts(out)["finetune"] == 20


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"stir": {"iteratoins": 5}}, r"config key 'stir': .*'iteratoins' was unexpected.*allowed keys here: .*'iterations'"),
        ({"stir": {"n_images": "many"}}, r"config key 'stir.n_images': 'many' is not of type 'integer'"),
        ({"finetune": {"optimizer": "rmsprop"}}, r"config key 'finetune.optimizer': .*allowed values: \['sgd', 'adam'\]"),
        ({"sources": {"web": {"weights": "http://x"}}}, r"config key 'sources.web.weights': 'http://x' does not match"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(repo_root, tmp_path, bad, message):
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    for key, value in bad.items():
        config[key] = {**config.get(key, {}), **value}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(repo_root, "-n", "--configfile", "bad.yaml", "--directory", str(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


TINY_CONFIG = """
results: results
data_root: results/data
device: cpu
model:
  name: vit_tiny_patch16_224
  overrides: {img_size: 16, patch_size: 8, embed_dim: 16, depth: 2, num_heads: 2}
  image_size: 16
datasets:
  shapes: {kind: generated, n_train: 120, n_test: 60, corrupted: generated}
  textures: {kind: generated, n_train: 120, n_test: 60}
sources:
  textures: {weights: "pretrain:textures"}
  scratch: {weights: scratch}
pretrain: {epochs: 1, batch_size: 32, warmup_steps: 1, lr: 0.05}
finetune: {epochs: 3, batch_size: 32, warmup_steps: 1, lr: 0.05}
variants: {default: {}, adam: {optimizer: adam, lr: 0.001}}
finetune_runs:
  - {sources: [textures, scratch], datasets: [shapes], tasks: [classification, reconstruction]}
dynamics:
  - {source: textures, dataset: shapes, variants: [default, adam]}
stir: {n_images: 8, seeds: [0, 1], iterations: 3}
robustness: {corruptions: [gaussian_noise, contrast], n_per_severity: 10}
"""


@pytest.fixture(scope="module")
def tiny_study(repo_root, tmp_path_factory):
    """The whole DAG on a config far smaller than the mini study, run once per test session."""
    workdir = tmp_path_factory.mktemp("tiny_study")
    (workdir / "tiny.yaml").write_text(TINY_CONFIG)
    snakemake(repo_root, "--cores", "2", "--configfile", "tiny.yaml", "--directory", str(workdir), cwd=workdir)
    return workdir


def test_tiny_study_writes_every_table_with_its_schema(tiny_study):
    from finetune_invariance import tables

    results = tiny_study / "results"
    for name in (
        "layer_metrics",
        "invariance_flow",
        "robust_accuracy",
        "hypotheses",
        "early_epoch_correlation",
        "learning_forgetting_correlation",
        "table1_accuracy",
    ):
        schema = {
            "layer_metrics": tables.STUDY_LAYER_METRICS,
            "invariance_flow": tables.STUDY_INVARIANCE_FLOW,
            "robust_accuracy": tables.ROBUST_ACCURACY,
            "hypotheses": tables.HYPOTHESES,
            "early_epoch_correlation": tables.EARLY_EPOCH_CORRELATION,
            "learning_forgetting_correlation": tables.LEARNING_FORGETTING_CORRELATION,
            "table1_accuracy": tables.TABLE1,
        }[name]
        df = tables.read_table(results / "tables" / f"{name}.parquet", schema)
        assert len(df) > 0, name
    metrics = tables.read_table(results / "tables/layer_metrics.parquet", tables.STUDY_LAYER_METRICS)
    # 2 sources x 2 tasks at the last epoch, plus the dynamics runs' other epochs; 3 layers.
    assert set(metrics["layer"]) == {0, 1, 2}
    assert set(metrics["seed"]) == {0, 1}
    assert set(metrics["metric"]) == {"forgetting", "learning", "cka_divergence"}
    dynamics = metrics[(metrics.source == "textures") & (metrics.task == "classification")]
    assert set(dynamics.epoch) == {1, 2, 3}
    flow = tables.read_table(results / "tables/invariance_flow.parquet", tables.STUDY_INVARIANCE_FLOW)
    diagonal = flow[flow.pretrained_layer == flow.finetuned_layer]
    assert (diagonal.flow == 0).all()


def test_tiny_study_draws_every_figure_and_the_claims(tiny_study):
    results = tiny_study / "results"
    pngs = sorted((results / "figures").rglob("*.png"))
    kinds = {p.relative_to(results / "figures").parts[0].removesuffix(".png") for p in pngs}
    assert kinds == {
        "task_comparison",
        "cka_divergence_by_task",
        "source_comparison",
        "cka_divergence_by_source",
        "invariance_flow",
        "dynamics",
        "early_epoch_correlation",
        "variants",
    }
    for png in pngs:
        assert png.stat().st_size > 5000, png
        assert png.with_suffix(".pdf").exists()
    claims = (results / "claims.md").read_text()
    assert "holds" in claims or "does not hold" in claims


def test_tiny_study_rerun_has_nothing_to_do(repo_root, tiny_study):
    out = snakemake(repo_root, "-n", "--configfile", "tiny.yaml", "--directory", str(tiny_study), cwd=tiny_study)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_tiny_study_report_is_self_contained_html(repo_root, tiny_study):
    report = tiny_study / "report.html"
    snakemake(repo_root, "--configfile", "tiny.yaml", "--report", str(report), "--directory", str(tiny_study), cwd=tiny_study)
    html = report.read_text()
    # Every figure is embedded (no links to files beside the report), under its category.
    for category in ("1. Finetuning task", "2. Pretraining source", "3. Invariance flow", "4. Dynamics and robustness"):
        assert category in html
    assert "invariance_flow" in html and "claims.md" in html
