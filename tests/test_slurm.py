"""The tiny study through profiles/slurm on a real SLURM cluster: the one-node cluster of
.ci/local_slurm.sh (partitions `cpu` and `gpu`, no accounting), with only the profile's
site values set, checked exactly like the local run of tests/test_workflow.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from .conftest import TINY_CONFIG, run_snakemake
from .study.conftest import validated_config
from .study_outputs import assert_study_outputs

pytestmark = pytest.mark.workflow

CPU_PARTITION, GPU_PARTITION = "cpu", "gpu"

# The site values of .ci/local_slurm.sh's cluster, in the environment variables the profile
# reads: no account and no slurmdbd (so squeue polls), one CPU per GPU on a 2-CPU node, and
# status checks every few seconds for jobs that take seconds.
LOCAL_SITE = {
    "FTI_SLURM_ACCOUNT": "",
    "FTI_SLURM_CPU_PARTITION": CPU_PARTITION,
    "FTI_SLURM_GPU_PARTITION": GPU_PARTITION,
    "FTI_SLURM_CPUS_PER_GPU": "1",
    "FTI_SLURM_STATUS_COMMAND": "squeue",
    "FTI_SLURM_SECONDS_BEFORE_STATUS_CHECKS": "2",
}


def declared_gpu_rules(repo_root) -> set[str]:
    """The rules whose resources ask for a GPU (``**GPU_RESOURCES`` or ``gpu=``), read from the rule files."""
    rules = set()
    for path in (repo_root / "workflow/rules").glob("*.smk"):
        for name, body in re.findall(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", path.read_text(), re.M | re.S):
            if re.search(r"\*\*GPU_RESOURCES\b|^\s+gpu\s*=", body, re.M):
                rules.add(name)
    return rules


def planned_job_resources(dry_run_output: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry-run prints."""
    jobs = []
    for block in re.split(r"^(?:local)?rule ", dry_run_output, flags=re.M)[1:]:
        rule = block.split(":", 1)[0]
        line = re.search(r"^\s+resources: (.*)$", block, re.M)
        resources = dict(item.split("=", 1) for item in line.group(1).split(", ")) if line else {}
        jobs.append((rule, resources))
    return jobs


def test_every_gpu_rule_has_a_profile_entry_that_sends_its_jobs_to_the_gpu_partition(repo_root, tmp_path):
    """The tiny study's DAG, planned through profiles/slurm: every job of a rule that declares
    a GPU gets the GPU partition and its CPUs per GPU, every other job the CPU partition."""
    gpu_rules = declared_gpu_rules(repo_root)
    assert {"finetune", "stir"} <= gpu_rules  # the reading of the rule files finds them
    arguments = ["-n", "--profile", str(repo_root / "profiles/slurm"), "--configfile", str(TINY_CONFIG)]
    result = run_snakemake(*arguments, "--directory", str(tmp_path), cwd=tmp_path, env={**os.environ, **LOCAL_SITE})
    jobs = planned_job_resources(result.stdout)
    assert {rule for rule, _ in jobs} >= gpu_rules, "extend tests/configs/tiny.yaml so its DAG has every GPU rule"
    for rule, resources in jobs:
        if rule in gpu_rules:
            assert resources.get("gpu") == "1", (rule, resources)
            assert (resources["slurm_partition"], resources.get("cpus_per_gpu")) == (GPU_PARTITION, "1"), (
                rule,
                resources,
            )
        elif rule != "all":  # a local rule has no resources
            assert "gpu" not in resources and resources["slurm_partition"] == CPU_PARTITION, (rule, resources)


def why_no_cluster() -> str | None:
    """None when a SLURM cluster with the local cluster's partitions answers, else why not."""
    setup = "run .ci/local_slurm.sh (as root) to set up a local one"
    if shutil.which("sinfo") is None:
        return f"no SLURM here (sinfo not found); {setup}"
    try:
        answer = subprocess.run(["sinfo", "--noheader", "--format=%R %a"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"the SLURM controller does not answer sinfo within 20 s; {setup}"
    if answer.returncode != 0:
        return f"the SLURM controller does not answer (sinfo: {answer.stderr.strip()}); {setup}"
    up = {line.split()[0] for line in answer.stdout.splitlines() if line.endswith(" up")}
    if not {CPU_PARTITION, GPU_PARTITION} <= up:
        wanted = f"partitions {CPU_PARTITION!r} and {GPU_PARTITION!r}"
        return f"SLURM answers but {wanted} are not both up (up: {sorted(up)}); {setup}"
    return None


@pytest.fixture(scope="module")
def slurm_study(repo_root, tmp_path_factory):
    """The tiny study run to completion by the SLURM executor; its workdir and SLURM run ID."""
    reason = why_no_cluster()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("slurm_study")
    arguments = ["--profile", str(repo_root / "profiles/slurm"), "--configfile", str(TINY_CONFIG)]
    result = run_snakemake(
        *arguments, "--directory", str(workdir), cwd=workdir, check=False, env={**os.environ, **LOCAL_SITE}
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-8000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id, log[-8000:]
    return workdir, run_id.group(1)


def test_slurm_study_writes_every_table_figure_and_claim(slurm_study, repo_root):
    workdir, _ = slurm_study
    config = validated_config(yaml.safe_load((repo_root / "tests/configs/tiny.yaml").read_text()))
    assert_study_outputs(workdir, config, controls_resolve=False)  # the tiny config's degenerate model


def test_slurm_study_gives_the_local_studys_tables_and_files(slurm_study, tiny_study):
    """Jobs on the cluster start fresh interpreters; the local run forks a warm one."""
    import pandas as pd

    workdir, _ = slurm_study
    local, cluster = tiny_study / "results", workdir / "results"
    for table in sorted((local / "tables").glob("*.parquet")):
        pd.testing.assert_frame_equal(pd.read_parquet(cluster / "tables" / table.name), pd.read_parquet(table))
    weights = sorted(local.rglob("*.safetensors"))
    assert weights
    for path in weights:
        assert (cluster / path.relative_to(local)).read_bytes() == path.read_bytes(), path


def test_slurm_jobs_ran_in_the_partition_of_their_kind(slurm_study, repo_root):
    _, run_id = slurm_study
    # The cluster has no accounting; it remembers finished jobs for MinJobAge (an hour).
    jobs = subprocess.run(
        ["squeue", "--states=all", "--noheader", f"--name={run_id}", "--format=%P %T %k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    partitions: dict[str, set[str]] = {}
    for job in jobs:
        partition, state, comment = job.split()
        assert state == "COMPLETED", job
        # The executor comments each job "rule_<rule>" or "rule_<rule>_wildcards_<values>".
        rule = re.fullmatch(r"rule_(\w+?)(_wildcards_.*)?", comment).group(1)
        partitions.setdefault(rule, set()).add(partition)
    gpu_rules = declared_gpu_rules(repo_root)
    assert {rule for rule, used in partitions.items() if used == {GPU_PARTITION}} == gpu_rules
    cpu_rules = {rule for rule, used in partitions.items() if used == {CPU_PARTITION}}
    assert cpu_rules and cpu_rules | gpu_rules == set(partitions), partitions
