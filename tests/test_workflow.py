"""The Snakemake workflow: lint, formatting, config validation, dry-runs of the shipped
configs and profile, and an end-to-end run of a config far smaller than the mini study."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from .conftest import TINY_CONFIG, run_snakemake
from .study_outputs import assert_study_outputs

pytestmark = pytest.mark.workflow

def snakemake(repo_root: Path, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(*args, cwd=cwd or repo_root, check=check)


def job_counts(output: str) -> Counter:
    """Jobs per rule from the 'Job stats' table a dry-run prints."""
    counts: Counter = Counter()
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match:
            break
        if match.group(1) != "total":
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


ANALYSIS_AND_FIGURE_JOBS = {
    "table1": 1,
    "layer_metrics": 1,
    "robust_accuracy_table": 1,
    "forgetting_monitor_table": 1,
    "checkpoint_picks": 1,
    "robustness_correlations": 1,
    "learning_forgetting_correlation": 1,
    "claims": 1,
    "matched_properties": 1,  # the properties of the paper's setting matched (docs/scale-model.md)
    "figure_layer_profiles": 1,
    "figure_invariance_flow": 1,
    "figure_dynamics": 1,
    "all": 1,
}


CONTROL_JOBS = {"controls": 1, "control_robustness": 1}  # the checks' table; the planted robustness series


def test_embedded_study_dry_run_plans_every_stage(repo_root, tmp_path):
    counts = job_counts(snakemake(repo_root, "-n", "--directory", str(tmp_path)).stdout)
    # config.yaml, by hand: runs glyphs64 -> glyphs10, glyphs30 (both tasks); glyphs30,
    # scratch -> glyphs10 and glyphs10, scratch -> glyphs30 (classification); the variants
    # lr_high, lr_low, no_augment and adam of glyphs64 -> glyphs10. glyphs64 is a shipped
    # checkpoint; scratch -> glyphs10 / glyphs30 pretrain those sources and are analysed.
    runs = 4 + 2 + 2
    seeds = 3  # stir.seeds
    assert counts == {
        "generate_dataset": 2,  # glyphs10, glyphs30 (glyphs64 is only the shipped source's data)
        "source_model": 4,  # glyphs64, glyphs10, glyphs30, scratch
        "finetune": runs + 4,
        "invert_pretrained": 6 * seeds,  # (source, dataset) pairs x seeds
        # 7 runs at their best checkpoint, glyphs64 -> glyphs10 at each of its 20 epochs; the
        # variants are measured by the forgetting monitor alone
        "stir": (7 + 20) * seeds,
        "control_stir": seeds,  # every model control, once per seed
        "robust_accuracy": 5,
        "corrupted_testset": 1,
        **ANALYSIS_AND_FIGURE_JOBS,
        **CONTROL_JOBS,
    }


def paper_design_counts() -> dict[str, int]:
    """Jobs per rule of the paper's design, derived by hand from the paper (docs/method.md)."""
    imagenet_runs = 4 * 2  # CIFAR10, CIFAR100, EuroSAT, Pets x classification, reconstruction
    cifar_runs = 4  # CIFAR100 and scratch -> CIFAR10, CIFAR10 and scratch -> CIFAR100 (classification)
    variants = 4  # Fig. 6/15: ImageNet -> CIFAR10 with other lr (2), no augmentation, Adam
    seeds = 3
    # Every epoch of ImageNet -> CIFAR10 / CIFAR100 (100 each); the other 10 runs at their
    # best checkpoint. The variants' forgetting is measured while they train (the monitor).
    analysed_checkpoints = 2 * 100 + (imagenet_runs + cifar_runs - 2)
    return {
        "finetune": imagenet_runs + cifar_runs + variants,  # scratch -> CIFAR is the CIFAR pretraining
        "source_model": 4,  # imagenet, cifar10, cifar100, scratch
        "invert_pretrained": (4 + 4) * seeds,  # ImageNet x 4 datasets, 4 CIFAR (source, dataset) pairs
        "stir": analysed_checkpoints * seeds,
        "control_stir": seeds,  # beyond the paper: every planted-effect control, once per seed
        "robust_accuracy": 2 + variants,
        "corrupted_testset": 2,
        "download_cifar_c": 2,
        **ANALYSIS_AND_FIGURE_JOBS,
        **CONTROL_JOBS,
    }


def test_paper_config_dry_run_plans_the_paper_design(repo_root, tmp_path):
    out = snakemake(repo_root, "-n", "--configfile", str(repo_root / "config/paper.yaml"), "--directory", str(tmp_path)).stdout
    assert job_counts(out) == paper_design_counts()


def _slurm_dry_run(repo_root, tmp_path, site):
    env = {key: value for key, value in os.environ.items() if not key.startswith("FTI_SLURM_")} | site
    arguments = ["-n", "--profile", str(repo_root / "profiles/slurm"), "--configfile", str(repo_root / "config/paper.yaml")]
    return run_snakemake(*arguments, "--directory", str(tmp_path), cwd=tmp_path, check=False, env=env)


def test_slurm_profile_dry_run(repo_root, tmp_path):
    from .test_slurm import LOCAL_SITE

    result = _slurm_dry_run(repo_root, tmp_path, LOCAL_SITE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert job_counts(result.stdout) == paper_design_counts()


def test_slurm_profile_with_placeholders_stops_before_submitting_naming_the_variables(repo_root, tmp_path):
    result = _slurm_dry_run(repo_root, tmp_path, {"FTI_SLURM_ACCOUNT": ""})
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "FTI_SLURM_CPU_PARTITION: slurm_partition = YOUR_CPU_PARTITION (default-resources)" in log
    assert "FTI_SLURM_GPU_PARTITION: slurm_partition = YOUR_GPU_PARTITION (rule finetune" in log
    assert "FTI_SLURM_ACCOUNT:" not in log  # set, to nothing: submit without an account
    assert "Job stats" not in log and not (tmp_path / "results").exists()


def test_a_config_key_given_twice_fails_before_any_job_naming_the_file_and_key(repo_root, tmp_path):
    text = (repo_root / "config.yaml").read_text() + "\nstir:\n  iterations: 5\n"  # a second stir: block
    (tmp_path / "twice.yaml").write_text(text)
    result = snakemake(repo_root, "-n", "--configfile", "twice.yaml", "--directory", str(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert re.search(r"config file \S*twice.yaml: key 'stir' is given twice \(lines \d+ and \d+\)", result.stdout + result.stderr)


def _mini_config_with(repo_root, changes):
    config = yaml.safe_load((repo_root / "config.yaml").read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return config


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stir.iteratoins": 5}, r"config key 'stir': .*'iteratoins' was unexpected.*allowed keys here: .*'iterations'"),
        ({"stir.n_images": "many"}, r"config key 'stir.n_images': 'many' is not of type 'integer'"),
        ({"finetune.optimizer": "rmsprop"}, r"config key 'finetune.optimizer': .*allowed values: \['sgd', 'adam'\]"),
        ({"sources.web": {"weights": "http://x"}}, r"config key 'sources.web.weights': 'http://x' does not match"),
        ({"model.overrides.depth": 0}, r"config key 'model.overrides.depth': 0; a model needs at least 1 block"),
        ({"model.overrides.patch_size": 5}, r"config key 'model.overrides': patch size \(5, 5\) does not tile"),
        ({"stir.seeds": [0, 0]}, r"config key 'stir.seeds'.*non-unique"),
        ({"stir.n_images": 600}, r"config key 'stir.n_images': 600 images are drawn from the test set of 'glyphs10', which has 500"),
        ({"variants.lr_high.epochs": 2}, r"config key 'variants.lr_high.epochs'.*needs at least 3 epochs"),
        ({"robustness.corruptions": ["snow"]}, r"config key 'robustness.corruptions': \['snow'\] are not generated"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(repo_root, tmp_path, changes, message):
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(_mini_config_with(repo_root, changes)))
    result = snakemake(repo_root, "-n", "--configfile", "bad.yaml", "--directory", str(tmp_path), cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def tiny_config(repo_root):
    from finetune_invariance.study.config import check_config

    from .study.conftest import validated_config

    config = validated_config(yaml.safe_load((repo_root / "tests/configs/tiny.yaml").read_text()))
    check_config(config)
    return config


def test_tiny_study_writes_every_table_figure_and_claim(tiny_study, tiny_config):
    assert_study_outputs(tiny_study, tiny_config, controls_resolve=False)  # a degenerate model


def test_tiny_study_rows_match_the_design(tiny_study):
    from finetune_invariance.study import tables

    metrics = tables.read_table(tiny_study / "results/tables/layer_metrics.parquet", tables.STUDY_LAYER_METRICS)
    # By hand: textures -> shapes classification every epoch (3) in variant default, all 3
    # metrics; its variant adam every epoch, forgetting alone (the forgetting monitor);
    # textures -> shapes reconstruction and scratch -> shapes (both tasks) at their best
    # epoch, 3 metrics; 2 seeds; depth 4: layers 0..4.
    assert len(metrics) == ((3 + 3) * 3 + 3 * 1) * 2 * 5
    dynamics = metrics[(metrics.source == "textures") & (metrics.task == "classification")]
    assert set(dynamics.epoch) == {1, 2, 3} and set(dynamics.variant) == {"default", "adam"}
    assert not (tiny_study / "results/finetune/scratch/textures/classification/default/checkpoints/epoch_001.safetensors").exists()


def test_tiny_study_rerun_has_nothing_to_do(repo_root, tiny_study):
    out = snakemake(repo_root, "-n", "--configfile", "tiny.yaml", "--directory", str(tiny_study), cwd=tiny_study)
    assert "Nothing to be done" in out.stdout + out.stderr


def test_tiny_study_report_is_self_contained_html(repo_root, tiny_study):
    report = tiny_study / "report.html"
    snakemake(repo_root, "--configfile", "tiny.yaml", "--report", str(report), "--directory", str(tiny_study), cwd=tiny_study)
    html = report.read_text()
    # Every figure is embedded (no links to files beside the report), under its category.
    for category in (
        "1. Finetuning task",
        "2. Pretraining source",
        "3. Invariance flow",
        "4. Dynamics and robustness",
        "5. Hyperparameter variants",
        "6. Tables",
        "7. Claims of the paper",
    ):
        assert category in html
    assert "invariance_flow" in html and "claims.html" in html and "table1_accuracy.html" in html
    # The landing page holds the claims' tallies and every verdict (the claims rule's summary).
    import json

    from finetune_invariance.study import claims

    landing = json.loads(re.search(r"var workflow_desc = (\".*?[^\\]\");", html).group(1))
    summary = (tiny_study / "results/claims_summary.html").read_text()
    tallies = re.findall(r"<li>(.*?)</li>", summary)
    assert len(tallies) == 3 and all(tally in landing for tally in tallies)
    assert landing.count("<td style=\"background:") == len(claims.CLAIMS)


def test_tiny_study_files_have_the_umasks_mode(tiny_study):
    umask = os.umask(0)
    os.umask(umask)
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (tiny_study / "results").rglob("*") if path.is_file()}
    assert modes
    assert {path: oct(mode) for path, mode in modes.items() if mode != 0o666 & ~umask} == {}


def test_tiny_study_folder_is_stamped_and_another_design_is_refused(repo_root, tiny_study):
    stamp = yaml.safe_load((tiny_study / "results/.config_stamp.yaml").read_text())
    assert stamp["config_files"] == [str(tiny_study / "tiny.yaml")]
    config = yaml.safe_load(TINY_CONFIG.read_text())
    (tiny_study / "same_design.yaml").write_text(yaml.safe_dump({**config, "resources": {"gpu_mem_mb": 8000}}))
    (tiny_study / "other.yaml").write_text(yaml.safe_dump({**config, "stir": {**config["stir"], "iterations": 4}}))
    same = snakemake(repo_root, "-n", "--configfile", "same_design.yaml", "--directory", str(tiny_study), cwd=tiny_study)
    assert "another configuration" not in same.stdout + same.stderr
    other = snakemake(repo_root, "-n", "--configfile", "other.yaml", "--directory", str(tiny_study), cwd=tiny_study, check=False)
    log = other.stdout + other.stderr
    assert other.returncode != 0
    assert "the results folder 'results' holds the results of another configuration" in log
    assert str(tiny_study / "tiny.yaml") in log and str(tiny_study / "other.yaml") in log
    assert "differs from it in stir.iterations" in log


def test_the_paper_dry_run_beside_a_finished_study_plans_nothing_in_its_folder(repo_root, tiny_study):
    out = snakemake(repo_root, "-n", "--configfile", str(repo_root / "config/paper.yaml"), "--directory", str(tiny_study), cwd=tiny_study)
    planned = [path for line in out.stdout.splitlines() if line.strip().startswith(("output:", "log:")) for path in line.split(":", 1)[1].split(", ")]
    assert len(planned) > 900
    assert [path for path in planned if not path.strip().startswith(("results/paper/", "data/"))] == []
    assert job_counts(out.stdout) == paper_design_counts()


def test_a_deleted_or_damaged_published_checkpoint_is_noticed_and_the_advice_restores_it(repo_root, tiny_study, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study, symlinks=True)
    run = "textures/shapes/classification/default"
    folder = study / f"results/finetune/{run}/checkpoints"
    original = {path.name: path.read_bytes() for path in folder.iterdir()}
    (folder / "epoch_002.safetensors").unlink()
    damaged = folder / "epoch_003.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    refused = snakemake(repo_root, "-n", "--configfile", "tiny.yaml", "--directory", str(study), cwd=study, check=False)
    log = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"results/finetune/{run}/checkpoints/epoch_002.safetensors is missing" in log
    assert f"results/finetune/{run}/checkpoints/epoch_003.safetensors is damaged" in log
    # The advice: copy each again from the run's work folder; nothing has to run again.
    copies = re.findall(r"cp (\S+) (\S+)", log)
    assert sorted(Path(target).name for _, target in copies) == ["epoch_002.safetensors", "epoch_003.safetensors"]
    for source, target in copies:
        shutil.copyfile(study / source, study / target)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == original
    again = snakemake(repo_root, "-n", "--configfile", "tiny.yaml", "--directory", str(study), cwd=study)
    assert "Nothing to be done" in again.stdout + again.stderr
