"""Fixtures every test module may use: the repository root and the tiny study, run once."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

# Two cores are shared by the test run and anything else on the machine; one intra-op
# thread keeps timings predictable and avoids oversubscription.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "tests/configs/tiny.yaml"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def run_snakemake(*args: str, cwd: Path | None = None, check: bool = True, env=None) -> subprocess.CompletedProcess:
    """``snakemake`` of this repository's Snakefile with ``args``."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """The whole DAG of tests/configs/tiny.yaml run locally (warm interpreter), once per session."""
    workdir = tmp_path_factory.mktemp("tiny_study")
    (workdir / "tiny.yaml").write_text(TINY_CONFIG.read_text())
    run_snakemake("--cores", "2", "--configfile", "tiny.yaml", "--directory", str(workdir), cwd=workdir)
    return workdir
