"""What `snakemake -n` notices before it plans a job: a config file's YAML syntax error with
its file and line, a damaged shipped weights file, and a finished run whose outputs are gone
(with advice that works when followed as written)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from finetune_invariance.study.config import check_command_line_config_files

from .conftest import REPO, run_snakemake

pytestmark = pytest.mark.workflow

#: Config files with one syntax error each: (text, line of the error, what the message says).
BROKEN_YAML = {
    "bad_indentation": ("results: r\nstir:\n  n_images: 4\n   seeds: [0]\n", 4, "must line up"),
    "unclosed_bracket": ("results: r\nstir: {seeds: [0, 1}\n", 2, "'[' list is not closed"),
    "tab": ("results: r\nstir:\n\tseeds: [0]\n", 3, "never tabs"),
    "colon_in_value": ("about:\n  title: scale model: small\n", 2, "must be quoted"),
    "unterminated_string": (
        'about:\n  title: "scale model\nresults: r\n',
        4,
        "quoted string or a bracket is not closed",
    ),
    "duplicate_key": ("stir:\n  iterations: 5\nresults: r\nstir:\n  seeds: [0]\n", 4, "given twice"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_YAML))
def test_a_yaml_error_in_a_config_file_names_the_file_and_line(tmp_path, case):
    text, line, says = BROKEN_YAML[case]
    (tmp_path / f"{case}.yaml").write_text(text)
    result = run_snakemake(
        "-n", "--configfile", f"{case}.yaml", "--directory", str(tmp_path), cwd=tmp_path, check=False
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(rf"config file \S*{case}.yaml(, line {line}\b|: key .* \(lines \d+ and {line}\))", log), log
    assert says in log and "not valid JSON or YAML" not in log
    assert not (tmp_path / "r").exists()


def test_a_yaml_error_in_the_default_config_names_it(tmp_path):
    """The embedded config.yaml, read by the Snakefile's configfile directive, in a copy of the workflow."""
    for name in ("Snakefile", "workflow", "profiles"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copyfile
        copy(REPO / name, tmp_path / name)
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text() + "\nstir:\n\titerations: 5\n")
    result = run_snakemake("-n", "--snakefile", str(tmp_path / "Snakefile"), cwd=tmp_path, check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(rf"config file {tmp_path}/config.yaml, line \d+, column 1 .*never tabs", log), log


def test_the_config_files_of_snakemakes_command_line_are_found_in_every_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.yaml").write_text("results: r\n")
    (tmp_path / "bad.yaml").write_text("results: [r\n")
    for argv in (
        ["-n", "--configfile", "good.yaml", "bad.yaml", "--cores", "1"],
        ["--configfiles", "bad.yaml", "-n"],
        ["--configfile=bad.yaml"],
    ):
        with pytest.raises(SystemExit, match=r"config file bad.yaml, line 2"):
            check_command_line_config_files(argv)
    check_command_line_config_files(["--configfile", "good.yaml", "missing.yaml", "--cores", "bad.yaml"])


def test_a_truncated_shipped_source_is_refused_at_the_dry_run(tmp_path):
    """The scale model's source with its shipped sha256 but truncated bytes: caught by `snakemake -n`,
    before any job (the source_model job checked it only when it ran)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    shipped = REPO / config["sources"]["glyphs64"]["weights"].removeprefix("file:")
    truncated = tmp_path / "glyphs64_source.safetensors"
    truncated.write_bytes(shipped.read_bytes()[:-1000])
    config["sources"]["glyphs64"]["weights"] = f"file:{truncated}"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake("-n", "--configfile", "c.yaml", "--directory", str(tmp_path), cwd=tmp_path, check=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"config key 'sources.glyphs64.sha256': weights file {truncated}" in log and "damaged" in log
    assert "Job stats" not in log and not (tmp_path / "results").exists()


def test_a_run_whose_outputs_and_work_copies_are_gone_is_noticed_and_the_advice_trains_it_again(tiny_study, tmp_path):
    """Before: the advice kept the run's work folder (the job then failed on its resume state)
    and a dry-run after deleting the run's outputs said "Nothing to be done"."""
    study = tmp_path / "study"
    shutil.copytree(tiny_study, study, symlinks=True)
    run = "scratch/shapes/reconstruction/default"
    folder, work = Path(f"results/finetune/{run}/checkpoints"), Path(f"results/work/{run}")
    label = sorted(path.name for path in (study / folder).glob("*.safetensors"))[0]
    (study / folder / label).unlink()
    (study / work / label).unlink()
    arguments = ("--configfile", "tiny.yaml", "--directory", str(study))
    refused = run_snakemake("-n", *arguments, cwd=study, check=False)
    log = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "train the run again" in log, log
    # What the advice of old said to do, which now leaves a run that is named rather than ignored.
    shutil.rmtree(study / folder)
    (study / f"results/finetune/{run}/history.parquet").unlink()
    refused = run_snakemake("-n", *arguments, cwd=study, check=False)
    log = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Nothing to be done (all requested files" not in log
    assert f"the run {run} lacks {folder}" in log and "'Nothing to be done'" in log
    (command,) = re.findall(r"rm -rf ([^,]+), then run your usual command", log)
    for path in command.split():
        shutil.rmtree(study / path) if (study / path).is_dir() else (study / path).unlink(missing_ok=True)
    done = run_snakemake("--cores", "2", *arguments, cwd=study)
    assert re.search(
        r"rule finetune:\n(.*\n)*?\s+wildcards: source=scratch, dataset=shapes, task=reconstruction",
        done.stdout + done.stderr,
    )
    assert (study / folder / label).is_file() and (study / work / label).is_file()
    again = run_snakemake("-n", *arguments, cwd=study)
    assert "Nothing to be done" in again.stdout + again.stderr
