"""The launch plan: jobs from the workflow's dry-run, GPU-hours from the recorded costs,
disk and downloads, checked against counts and sizes worked out by hand for the paper."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.launch_plan import (
    LaunchPlanError,
    disk_use,
    downloads,
    gpu_hours,
    gpu_work,
    load_config,
    model_facts,
    parse_dry_run,
    study_model_facts,
    work_ratios,
)
from finetune_invariance.study.measured_costs import MEASUREMENTS, Measurement

from ..test_workflow import paper_design_counts


@pytest.fixture(scope="module")
def paper(repo_root):
    config = load_config([repo_root / "config/paper.yaml"], repo_root / "workflow/schemas/config.schema.yaml")
    study = StudyDesign(config)
    return config, study, study_model_facts(study)


#: The paper's inversions: 13 layers (12 blocks and the pooled output) of n = 500 images of
#: 3 x 224 x 224, 500 iterations.
LAYERS, N, PIXELS, ITERATIONS = 13, 500, 3 * 224 * 224, 500


def test_each_gpu_job_does_the_work_the_paper_describes(paper):
    _, study, facts = paper
    work = gpu_work(study, facts)
    counts = paper_design_counts()
    assert {rule: len(jobs) for rule, jobs in work.items()} == {rule: counts[rule] for rule in work}
    assert {f["layers"] for f in facts.values()} == {LAYERS}
    inversion = Counter({"inversion_image_step_fp32": ITERATIONS * N})
    assert all(job == inversion for job in work["invert_pretrained"])
    # A STIR job inverts the checkpoint once more, then passes X and the 13 layers'
    # inversions through both models in both directions.
    assert all(job == inversion + Counter({"evaluated_image": 2 * 2 * (LAYERS + 1) * N}) for job in work["stir"])
    # ImageNet -> CIFAR10 at every one of 100 epochs: 1000 clean + 5 x 1000 corrupted inputs per epoch.
    assert max(job["evaluated_image"] for job in work["robust_accuracy"]) == 100 * 6 * 1000


def test_gpu_hours_of_the_inversions_are_the_measured_step_times_the_steps(paper):
    _, study, _ = paper
    h200 = MEASUREMENTS[0]
    assert h200.device == "NVIDIA H200" and h200.date
    inversions_only = Measurement(**{**h200.__dict__, "derived": {"evaluated_image": (0.0, "left out")}})
    hours = {row.rule: row.hours for row in gpu_hours(gpu_work(study, study_model_facts(study)), inversions_only)}
    # 1.59 s per step of 13 layers x 500 images (the H200 measurement).
    assert hours["stir"] == pytest.approx(paper_design_counts()["stir"] * ITERATIONS * 1.59 / 3600)
    assert hours["invert_pretrained"] == pytest.approx(24 * ITERATIONS * 1.59 / 3600)


def test_a_cost_measured_for_another_model_does_not_apply(repo_root):
    config = load_config([repo_root / "config.yaml"], repo_root / "workflow/schemas/config.schema.yaml")
    reason = MEASUREMENTS[0].applies_to(config["model"], StudyDesign(config).image_size)
    assert "vit_tiny_patch16_224" in reason and "vit_base_patch32_224" in reason


def test_a_unit_without_a_cost_leaves_its_rules_uncounted(paper):
    _, study, _ = paper
    no_inversion = Measurement(**{**MEASUREMENTS[0].__dict__, "seconds": {"training_image_fp32": 1e-4}})
    rows = {row.rule: row for row in gpu_hours(gpu_work(study, study_model_facts(study)), no_inversion)}
    assert rows["stir"].hours is None and rows["stir"].missing == ("inversion_image_step_fp32",)
    assert rows["finetune"].hours is not None


def test_disk_of_the_paper(paper):
    import timm

    _, study, facts = paper
    use = {row.folder: row for row in disk_use(study, facts)}
    inversion_file = ((LAYERS + 1) * N * PIXELS + LAYERS * N) * 4  # every layer's inversions, the targets, the losses
    assert use["results/paper/inversions"].final == 24 * inversion_file
    # Every epoch of ImageNet -> CIFAR10 and -> CIFAR100 (100 each) and of the 4 variants
    # (20 each), the best checkpoint of the 10 other runs.
    published = 2 * 100 + 4 * 20 + 10
    backbone = sum(p.numel() for p in timm.create_model("vit_base_patch32_224", num_classes=0).parameters()) * 4
    assert use["results/paper/finetune"].final == pytest.approx(published * backbone, rel=0.03)
    assert use["data/CIFAR-10-C"].peak > 2 * use["data/CIFAR-10-C"].final  # the archive, deleted after extraction


def test_downloads_of_the_paper_name_their_origin_and_the_offline_files(paper):
    config, study, facts = paper
    rows = {row.what: row for row in downloads(study, facts)}
    cifar_c = rows["CIFAR-10-C"]
    assert "zenodo.org/record/2535967" in cifar_c.source and "md5 " in cifar_c.source
    assert cifar_c.offline.startswith("data/CIFAR-10-C/ with labels.npy, gaussian_noise.npy")
    weights = config["sources"]["imagenet"]["weights"]
    imagenet = rows["weights of source 'imagenet'"]
    assert weights.split(":", 1)[1] in imagenet.source + imagenet.destination
    assert rows["cifar10"].offline == "data/cifar-10-batches-py"
    assert set(rows) == {
        "cifar10",
        "cifar100",
        "eurosat",
        "oxford_pets",
        "CIFAR-10-C",
        "CIFAR-100-C",
        "weights of source 'imagenet'",
    }


DRY_RUN = """Job stats:
job        count
-------  -------
stir           2
table1         1
total          3

rule stir:
    output: a
    resources: tmpdir=/tmp, gpu=1, runtime=240, mem_mb=32000
localrule table1:
    output: c
    resources: tmpdir=/tmp
rule stir:
    output: b
    resources: tmpdir=/tmp, gpu=1, runtime=300, mem_mb=32000
"""


def test_jobs_are_read_from_the_dry_run_and_checked_against_its_job_stats():
    jobs = parse_dry_run(DRY_RUN)
    assert (jobs["stir"].jobs, jobs["stir"].gpu_jobs, jobs["stir"].runtime_min) == (2, 2, 300)
    assert (jobs["table1"].jobs, jobs["table1"].gpu_jobs, jobs["table1"].runtime_min) == (1, 0, None)
    with pytest.raises(LaunchPlanError, match="disagree with its Job stats"):
        parse_dry_run(DRY_RUN.replace("stir           2", "stir           3"))


def _plan(repo_root, tmp_path, *args, env=None):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "finetune_invariance.study.launch_plan",
            "--configfile",
            str(repo_root / "config/paper.yaml"),
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )


@pytest.mark.workflow
def test_the_plan_of_the_paper_prints_jobs_gpu_hours_disk_and_downloads(repo_root, tmp_path):
    result = _plan(repo_root, tmp_path)
    assert result.returncode == 0, result.stderr
    plan = result.stdout
    counts = paper_design_counts()
    gpu_rules = ("finetune", "invert_pretrained", "stir", "control_stir", "control_robustness", "robust_accuracy")
    gpu = sum(counts[rule] for rule in gpu_rules)
    assert f"{sum(counts.values())} jobs, {gpu} of them ask for a GPU" in plan
    assert "### NVIDIA H200 (measured 2026-11-28)" in plan and f"| **total** | {gpu} |" in plan
    for heading in ("## Disk", "## Downloads", "### On a cluster without internet, provide"):
        assert heading in plan
    assert not (tmp_path / "results").exists()  # a plan runs nothing


@pytest.mark.workflow
def test_the_plan_with_the_slurm_profile_names_the_placeholders_to_fill(repo_root, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("FTI_SLURM_")}
    result = _plan(repo_root, tmp_path, "--profile", str(repo_root / "profiles/slurm"), env=env)
    assert result.returncode != 0
    for variable in ("FTI_SLURM_ACCOUNT", "FTI_SLURM_CPU_PARTITION", "FTI_SLURM_GPU_PARTITION"):
        assert variable in result.stderr


# --- sources of other models (config/foundation.yaml) ---------------------------------------------


def test_forward_macs_are_the_published_counts_and_scale_the_costs():
    b32 = model_facts({"name": "vit_base_patch32_224"})
    b16 = model_facts({"name": "vit_base_patch16_224"})
    # ViT-B/32 at 224: 4.4 GMAC per image (measured_costs); ViT-B/16: 17.6 GMAC (Dosovitskiy et al.)
    assert b32["forward_macs"] == pytest.approx(4.4e9, rel=0.01) and b16["forward_macs"] == pytest.approx(
        17.6e9, rel=0.01
    )
    ratios = work_ratios(b16, b32)
    assert ratios["forward"] == pytest.approx(b16["forward_macs"] / b32["forward_macs"])
    assert ratios["inversion"] == pytest.approx(ratios["forward"])  # the same depth
    half = model_facts({"name": "vit_base_patch32_224", "overrides": {"depth": 6}})
    # layers 0..5 need 1..6 blocks and the pooled layer 6: 27 block passes of 6, against 90 of 12
    # (the patch embedding, not a block, adds a few percent)
    assert work_ratios(half, b32)["inversion"] == pytest.approx(27 / 90, rel=0.05)


def test_a_model_of_another_size_is_estimated_by_scaling_and_says_so(paper):
    from finetune_invariance.study.launch_plan import _model_ratios

    config, paper_study, paper_facts = paper
    b16 = {
        **config,
        "sources": {
            **config["sources"],
            "imagenet": {
                **config["sources"]["imagenet"],
                "model": {
                    "name": "vit_base_patch16_224",
                    "head_init": "pytorch",
                    "register_tokens": True,
                    "overrides": {},
                },
            },
        },
    }
    study = StudyDesign(b16)
    facts = study_model_facts(study)
    work = gpu_work(study, facts)
    ratios, scaled, reason = _model_ratios(study, facts, work, MEASUREMENTS[0])
    assert reason is None and scaled == ["imagenet"]
    assert ratios["cifar10"] == {"forward": 1.0, "inversion": 1.0}
    measured = {row.rule: row.hours for row in gpu_hours(gpu_work(paper_study, paper_facts), MEASUREMENTS[0])}
    estimated = {row.rule: row.hours for row in gpu_hours(work, MEASUREMENTS[0], ratios)}
    # B/16 does 17.6 / 4.4 GMAC per image of B/32 at the same depth; 12 of the 24 inversions are its
    assert ratios["imagenet"]["inversion"] == pytest.approx(17.6 / 4.4, rel=0.01)
    expected = measured["invert_pretrained"] * (12 * ratios["imagenet"]["inversion"] + 12) / 24
    assert estimated["invert_pretrained"] == pytest.approx(expected)
