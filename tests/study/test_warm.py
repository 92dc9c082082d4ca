"""The warm interpreter: a job script handed to it runs with the job's directory,
environment, threads and output streams, reports its exit status, dies with its job, and
the server dies with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from finetune_invariance.study import warm

# What Snakemake's preamble provides, then the line every workflow script starts with.
JOB = """\
__real_file__ = __file__
from finetune_invariance.study.warm import run_warm
run_warm(__real_file__)
import os, sys, time
from pathlib import Path
import torch
"""


def wait_for(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("warm")
    process = warm.start(workdir)
    wait_for(lambda: (workdir / warm.SOCKET).exists())
    yield workdir
    warm.stop(process, workdir)
    assert process.returncode is not None and not (workdir / warm.SOCKET).exists()


def job(workdir: Path, body: str, name: str = "job.py", **env: str) -> subprocess.Popen:
    script = workdir / name
    script.write_text(JOB + textwrap.dedent(body))
    return subprocess.Popen(
        [sys.executable, str(script)],
        cwd=workdir,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_job_runs_in_the_server_with_its_directory_environment_and_threads(server):
    process = job(
        server,
        """
        Path("written.txt").write_text(os.environ["JOB_VALUE"])
        print("child", os.getppid(), torch.get_num_threads(), os.environ.get("FINETUNE_INVARIANCE_WARM_CHILD"))
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """,
        JOB_VALUE="from the job's environment",
        OMP_NUM_THREADS="2",
    )
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 3
    _, parent, threads, inside = stdout.split()
    assert int(parent) != process.pid  # a fork of the server, not the job's own interpreter
    assert (threads, inside) == ("2", "1")
    assert "to stderr" in stderr
    assert (server / "written.txt").read_text() == "from the job's environment"


def test_an_exception_in_the_job_fails_it_with_the_traceback(server):
    process = job(server, "raise ValueError('the job failed here')", name="failing.py")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and "ValueError: the job failed here" in stderr


def test_killing_the_job_kills_its_child(server):
    process = job(server, "Path('child.pid').write_text(str(os.getpid())); time.sleep(60)", name="slow.py")
    wait_for(lambda: (server / "child.pid").exists())
    child = int((server / "child.pid").read_text())
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)

    def gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{child}/status").read_text().count("zombie") > 0

    wait_for(gone, 10)


def test_without_a_server_the_job_runs_in_its_own_interpreter(tmp_path):
    process = job(tmp_path, "print(os.environ.get('FINETUNE_INVARIANCE_WARM_CHILD'))")
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and stdout.strip() == "None"


def test_the_server_exits_with_the_process_that_started_it():
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="warm", dir="/tmp"))  # a Unix socket's path must be short
    starter = (
        "import sys; from finetune_invariance.study import warm; "
        "print(warm.start(sys.argv[1]).pid, flush=True)"
    )
    result = subprocess.run([sys.executable, "-c", starter, str(tmp_path)], capture_output=True, text=True, check=True)
    server = int(result.stdout)

    def exited() -> bool:
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            return True
        return "zombie" in Path(f"/proc/{server}/status").read_text().lower()

    wait_for(exited, 60)
    assert not (tmp_path / warm.SOCKET).exists()
