"""Wall time of the embedded study (``snakemake --cores 2`` on config.yaml) from a clean
results folder, side by side with and without the warm interpreter, and the share of the
cold run spent starting jobs (Python, torch, timm and the rest of each job's imports).

    python benchmarks/mini_study.py                 # both modes: the embedded study run twice
    python benchmarks/mini_study.py --modes warm    # with the warm interpreter only

Each run happens in a fresh temporary folder, so nothing is reused. The start-up share is
(cold - warm) / cold of the wall time: the two runs do the same jobs with the same
results (tests/test_slurm.py checks that on the tiny study: fresh interpreters on the
cluster, a warm one locally), and differ only in whether each job starts a fresh
interpreter. A rerun's "nothing to do" is timed too.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(workdir: Path, config: Path, cores: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of Snakemake and its jobs, jobs run) of one snakemake run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", str(cores)]
        + ["--configfile", str(config), "--directory", str(workdir)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"snakemake failed in {workdir}:\n{result.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    jobs = result.stderr.count("Finished jobid")
    return wall, cpu, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=["warm", "cold"], default=["warm", "cold"])
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    rows = {}
    for mode in args.modes:
        with tempfile.TemporaryDirectory(prefix="mini", dir="/tmp") as folder:  # short: it holds a socket
            workdir = Path(folder)
            path = workdir / "config.yaml"
            path.write_text(yaml.safe_dump({**config, "warm_interpreter": mode == "warm"}))
            wall, cpu, jobs = run(workdir, path, args.cores)
            rerun, _, _ = run(workdir, path, args.cores)
            rows[mode] = (wall, cpu, jobs, rerun)
    print("| mode | wall s | CPU s | jobs | rerun (nothing to do) s |\n|---|---:|---:|---:|---:|")
    for mode, (wall, cpu, jobs, rerun) in rows.items():
        print(f"| {mode} | {wall:.0f} | {cpu:.0f} | {jobs} | {rerun:.1f} |")
    if {"warm", "cold"} <= set(rows):
        share = (rows["cold"][0] - rows["warm"][0]) / rows["cold"][0]
        print(f"\njob start-up share of the cold run's wall time: {share:.0%}")
    print(f"command: python benchmarks/mini_study.py --modes {' '.join(args.modes)} --cores {args.cores}")


if __name__ == "__main__":
    main()
