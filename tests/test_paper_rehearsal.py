"""The dress rehearsal of the paper's path: config/paper.yaml, changed only in counts and
locations (tests/configs/paper_rehearsal.yaml), run end to end on the CPU with the real
model (ViT-B/32 at 224) on tiny copies of the paper's datasets in their published formats
(tests/paper_fixture.py) and a random ViT-B/32 in the AugReg ``.npz`` format, served by a
``file://`` URL through the same download as the authors' checkpoint."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import update_config

from finetune_invariance.study import cifar_c
from finetune_invariance.study.config import load_config_file
from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.results_folder import OPERATIONAL_KEYS

from .augreg import VIT_B32, write_augreg_npz
from .conftest import REPO, run_snakemake
from .paper_fixture import write_paper_datasets
from .study.conftest import validated_config
from .study_outputs import assert_study_outputs
from .test_workflow import job_counts

pytestmark = pytest.mark.rehearsal

PAPER = REPO / "config/paper.yaml"
REHEARSAL = REPO / "tests/configs/paper_rehearsal.yaml"
SITE = REPO / "tests/rehearsal_site"

#: What the rehearsal may replace besides the operational keys (where and how the study
#: runs, results_folder.OPERATIONAL_KEYS): counts, and where the ImageNet weights are.
COUNT_KEYS = (
    "finetune.epochs",
    "finetune.batch_size",
    "finetune.num_workers",
    "variants.*.epochs",
    "variants.*.schedule_epochs",
    "stir.n_images",
    "stir.seeds",
    "stir.iterations",
    "robustness.n_images",
    "monitor.every_steps",
    "monitor.until_epoch",
)
LOCATION_KEYS = ("sources.imagenet.weights",)
#: The rule whose outputs, the published CIFAR-C files, the fixture writes: it only downloads.
DOWNLOAD_RULES = {"download_cifar_c"}
#: Disk the run needs at its peak (measured: 34 GB, mostly the runs' work folders: resume
#: states and checkpoints of 16 ViT-B/32 runs, and their published checkpoints).
DISK_GB = 40
#: Rules with a job per STIR seed or per analysed epoch, which the rehearsal has fewer of.
PER_SEED_OR_EPOCH_RULES = {"invert_pretrained", "stir", "control_stir"}


def rehearsal_config(fixture: Path) -> dict:
    """config/paper.yaml with the rehearsal's keys replaced, as Snakemake merges config files."""
    config = load_config_file(PAPER)
    update_config(config, yaml.safe_load(REHEARSAL.read_text().replace("{fixture}", str(fixture))))
    return config


def differing_keys(a, b, prefix: str = "") -> set[str]:
    """Dotted keys whose values differ between two configs (lists compared whole)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return set() if a == b else {prefix}
    keys = set(a) | set(b)
    return {key for k in keys for key in differing_keys(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)}


def test_the_rehearsal_changes_only_counts_and_locations(tmp_path):
    paper = validated_config(load_config_file(PAPER))
    rehearsal = validated_config(rehearsal_config(tmp_path))
    allowed = (*OPERATIONAL_KEYS, *COUNT_KEYS, *LOCATION_KEYS)
    changed = differing_keys(paper, rehearsal)
    assert "stir.seeds" in changed  # the comparison sees a replaced key
    assert {key for key in changed if not any(fnmatch.fnmatch(key, p) or key.startswith(f"{p}.") for p in allowed)} == set()
    # The ImageNet weights stay the authors' file, downloaded the same way, from elsewhere.
    weights = rehearsal["sources"]["imagenet"]["weights"]
    assert weights.startswith("url:file://") and Path(weights).name == Path(paper["sources"]["imagenet"]["weights"]).name
    # The variants stay the first epochs of the default's schedule.
    for name, variant in rehearsal["variants"].items():
        assert variant.get("schedule_epochs", rehearsal["finetune"]["epochs"]) == rehearsal["finetune"]["epochs"], name


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The paper's DAG run once: (work folder, validated config, the dry-run's jobs per rule)."""
    workdir = tmp_path_factory.mktemp("paper_rehearsal")
    free_gb = shutil.disk_usage(workdir).free / 2**30
    if free_gb < DISK_GB:
        pytest.fail(
            f"the paper rehearsal writes about {DISK_GB} GB of ViT-B/32 checkpoints into {workdir}, which has "
            f"{free_gb:.0f} GB free: give pytest a larger temporary folder (--basetemp) or free space there"
        )
    fixture = workdir / "fixture"
    fixture.mkdir()
    config = rehearsal_config(fixture)
    write_augreg_npz(fixture / Path(config["sources"]["imagenet"]["weights"]).name, std=0.02, **VIT_B32)
    checksums = write_paper_datasets(workdir / config["data_root"])
    (workdir / "paper_rehearsal.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SITE), os.environ.get("PYTHONPATH")])),
        "FTI_REHEARSAL_CIFAR_MD5": json.dumps(checksums),
        "TORCH_HOME": str(workdir / "torch_home"),
    }
    args = ("--configfile", "paper_rehearsal.yaml", "--directory", str(workdir))
    try:
        planned = job_counts(run_snakemake("-n", *args, cwd=workdir, env=env).stdout)
        run_snakemake("--cores", "2", *args, cwd=workdir, env=env)
        yield workdir, validated_config(config), planned
    finally:  # tens of gigabytes of ViT-B/32 weights, also after a failure; logs, tables and figures stay
        for folder in ("work", "finetune", "sources", "inversions"):
            shutil.rmtree(workdir / config["results"] / folder, ignore_errors=True)
        for folder in (fixture, workdir / "torch_home"):
            shutil.rmtree(folder, ignore_errors=True)


def test_the_rehearsal_runs_every_rule_of_the_papers_dag(rehearsal, tmp_path):
    _, _, planned = rehearsal
    paper = job_counts(run_snakemake("-n", "--configfile", str(PAPER), "--directory", str(tmp_path), cwd=tmp_path).stdout)
    assert set(planned) == set(paper) - DOWNLOAD_RULES
    # The same runs, sources and analyses; only the jobs per seed and per epoch are fewer.
    assert {rule: n for rule, n in planned.items() if rule not in PER_SEED_OR_EPOCH_RULES} == {
        rule: n for rule, n in paper.items() if rule not in PER_SEED_OR_EPOCH_RULES | DOWNLOAD_RULES
    }


def test_the_rehearsal_writes_every_table_figure_and_claim(rehearsal):
    workdir, config, _ = rehearsal
    assert_study_outputs(workdir, config, controls_resolve=False)  # its verdicts mean nothing


def test_the_imagenet_source_is_the_augreg_file_through_the_hub_cache(rehearsal):
    from finetune_invariance.study.models import load_checkpoint

    workdir, config, _ = rehearsal
    url = config["sources"]["imagenet"]["weights"].removeprefix("url:")
    published = Path(url.removeprefix("file://"))
    cached = workdir / "torch_home/hub/checkpoints" / published.name
    assert cached.read_bytes() == published.read_bytes()
    model, _ = load_checkpoint(workdir / config["results"] / "sources/imagenet.safetensors")
    assert model.spec.sha256 == hashlib.sha256(published.read_bytes()).hexdigest()
    with np.load(published) as arrays:  # the Flax layout: patch kernel HWIO, Dense kernels (in, out)
        kernel = arrays["embedding/kernel"]
        fc1 = arrays["Transformer/encoderblock_11/MlpBlock_3/Dense_0/kernel"]
    assert np.array_equal(model.backbone.patch_embed.proj.weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
    assert np.array_equal(model.backbone.blocks[11].mlp.fc1.weight.detach().numpy(), fc1.T)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_the_corrupted_samples_are_rows_of_the_published_files_at_their_severity(rehearsal, dataset):
    workdir, config, _ = rehearsal
    sets = cifar_c.load_sets(workdir / StudyDesign(config).layout.path("corrupted_testset", dataset=dataset))
    folder = workdir / config["data_root"] / cifar_c.ARCHIVES[dataset].folder
    labels = np.load(folder / "labels.npy")
    n = len(labels) // 5
    corrupted = [s for s in sets if s.severity > 0]
    assert {s.corruption for s in corrupted} <= set(config["robustness"]["corruptions"])
    assert sum(len(s.labels) for s in corrupted) == 5 * config["robustness"]["n_images"]
    for s in corrupted:
        block = np.load(folder / f"{s.corruption}.npy")[(s.severity - 1) * n : s.severity * n]
        for image, label in zip(s.images, s.labels):
            rows = [i for i in range(n) if np.array_equal(block[i], image)]
            assert rows and labels[(s.severity - 1) * n + rows[0]] == label, (s.corruption, s.severity)
