"""README.md stays true: a front door of bounded length whose Python examples run verbatim,
whose commands are the real ones (they parse with the programs' own parsers, their paths are
the workflow's, their pins are pyproject's, the launch plan through the profile runs as
written), and whose words for the claims report are the report's."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from finetune_invariance import cli

#: A front door, read in ten minutes: the reference lives in docs/.
MAX_README_LINES = 300


def _readme(repo_root) -> str:
    return (repo_root / "README.md").read_text()


def _first_block_after(readme: str, marker: str, language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", readme.split(marker, 1)[1], re.S).group(1)


def _shell_lines(block: str) -> list[list[str]]:
    """The command lines of a shell block, continuation lines joined, comments left out, split as a shell would."""
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_is_a_front_door(repo_root):
    readme = _readme(repo_root)
    assert len(readme.splitlines()) <= MAX_README_LINES
    assert "## Table schemas" not in readme and "#### `" not in readme  # the schemas live in docs/results.md


def test_library_example_runs_verbatim_and_gives_the_metrics(repo_root, capsys):
    code = _first_block_after(_readme(repo_root), "### In Python", "python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    summary = namespace["summary"]
    assert set(summary["metric"]) == {"forgetting", "learning", "cka_divergence"}
    assert sorted(summary["layer"].unique()) == [0, 1, 2, 3, 4]  # depth 4 -> 5 layers
    assert (summary["n_seeds"] == 2).all()
    flow = namespace["flow"]
    assert (flow.loc[flow.pretrained_layer == flow.finetuned_layer, "flow"] == 0).all()
    assert "forgetting" in capsys.readouterr().out


def test_hugging_face_example_runs_verbatim_and_gives_the_metrics(repo_root, capsys):
    pytest.importorskip("transformers")
    page = (repo_root / "docs/metrics-library.md").read_text()
    code = _first_block_after(page, "A Hugging Face `transformers` ViT works through", "python")
    namespace: dict = {}
    exec(compile(code, "docs/metrics-library.md", "exec"), namespace)
    metrics = namespace["metrics"]
    assert set(metrics["metric"]) == {"forgetting", "learning", "cka_divergence"}
    assert sorted(metrics["layer"].unique()) == [0, 1, 2, 3, 4]  # 4 blocks + the class token
    assert "forgetting" in capsys.readouterr().out


def test_the_command_line_example_is_a_valid_command(repo_root):
    [[program, *argv]] = _shell_lines(_first_block_after(_readme(repo_root), "### From the command line", "bash"))
    assert program == "finetune-invariance"
    args = cli._parser().parse_args(argv)
    assert (args.command, args.n, args.seeds, args.dry_run) == ("compare", 500, [0, 1, 2], True)


def test_the_study_comparison_names_a_published_checkpoint_and_test_set_of_the_embedded_study(repo_root):
    """The paths of "Comparing two of its models" are what `snakemake --cores 2` writes:
    the shipped ImageNet-role source, a checkpoint the design publishes for that run (a
    dynamics run publishes epochs, not 'best'), and the test split of the run's dataset."""
    from finetune_invariance.study.design import StudyDesign
    from finetune_invariance.study.launch_plan import SCHEMA, load_config
    from finetune_invariance.study.layout import Layout, locate
    from finetune_invariance.study.vocabulary import Run

    [[program, *argv]] = _shell_lines(_first_block_after(_readme(repo_root), "### Comparing two of its models", "bash"))
    args = cli._parser().parse_args(argv)
    assert program == "finetune-invariance" and args.command == "compare" and args.dry_run
    config = load_config([repo_root / "config.yaml"], repo_root / SCHEMA)
    study = StudyDesign(config, repo_root)
    assert config["sources"][config["imagenet_source"]]["weights"] == f"file:{args.pretrained}"
    assert (repo_root / str(args.pretrained)).is_file()
    located = locate("checkpoint", args.finetuned)
    assert located is not None, args.finetuned
    results, values = located
    run = Run.from_wildcards(values)
    assert run in set(study.runs()) and run.source == config["imagenet_source"]
    assert values["checkpoint"] in study.kept_checkpoints(run)
    assert results == Path(config["results"])
    layout = Layout(config["results"], config["data_root"])
    assert str(args.images) == layout.pattern("generated_test", dataset=run.dataset)


def test_the_cpu_only_install_pins_what_pyproject_pins(repo_root):
    """The CPU-index command installs exactly pyproject's torch and torchvision pins, and
    the CPU builds' local version label satisfies them (PEP 440), so the install that follows
    keeps them."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    pinned = {
        requirement.name: requirement.specifier
        for requirement in map(
            Requirement, tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
        )
    }
    block = _first_block_after(_readme(repo_root), "install the pinned versions from PyTorch's CPU index", "bash")
    first, second = _shell_lines(block)
    assert first[:2] == ["pip", "install"] and first[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    requested = dict(argument.split("==") for argument in first[2:-2])
    assert set(requested) == {"torch", "torchvision"}
    for name, version in requested.items():
        assert str(pinned[name]) == f"=={version}"
        assert Version(f"{version}+cpu") in pinned[name]
    assert second == ["pip", "install", "-e", ".[test]"]


def test_the_readme_names_every_verdict_of_the_claims_report(repo_root):
    from finetune_invariance.study.claims.registry import BEYOND, SECTIONS, VERDICTS

    section = _readme(repo_root).split("### Reading the claims report", 1)[1].split("\n## ", 1)[0]
    for verdict in VERDICTS:
        assert f"**{verdict}**" in section, verdict
    assert f'"{SECTIONS[BEYOND]}"' in section


@pytest.mark.workflow
def test_the_launch_plan_through_the_slurm_profile_runs_as_written(repo_root, tmp_path):
    """The cluster section's commands, with its own export line as the environment: the launch
    plan through the profile prints the plan (the profile's placeholders are what the export
    sets), and the run's flags are Snakemake's."""
    from snakemake.cli import get_argument_parser

    exported, plan, run = _shell_lines(_first_block_after(_readme(repo_root), "## On a SLURM cluster", "bash"))
    assert exported[0] == "export"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FTI_SLURM_")}
    environment |= dict(assignment.split("=", 1) for assignment in exported[1:])
    assert plan[:3] == ["python", "-m", "finetune_invariance.study.launch_plan"] and "--profile" in plan
    result = subprocess.run(
        [sys.executable, *plan[1:]], cwd=repo_root, env=environment, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GPU-hours" in result.stdout
    assert run[0] == "snakemake"
    parsed = get_argument_parser().parse_args(run[1:])
    assert parsed.profile and (repo_root / parsed.profile[0]).is_dir()
    assert all((repo_root / path).is_file() for path in parsed.configfile)


def _commands(script: str) -> list[str]:
    """The command lines of a shell script or code block, comments and blank lines left out."""
    lines = (line.split(" #", 1)[0].strip() for line in script.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_test_commands(repo_root, pytestconfig):
    """The Tests section's commands are .ci/run's test commands, in order: the fast suite
    (the rehearsal left out, pyproject's addopts) and the rehearsal alone."""
    readme = _readme(repo_root)
    tests = _commands(_first_block_after(readme, "## Tests", "bash"))
    ci = _commands((repo_root / ".ci" / "run").read_text())
    assert [line for line in ci if "pytest" in line] == tests
    assert tests == ["python -m pytest", "python -m pytest -m rehearsal"]
    assert "pip install -e '.[test]'" in readme and "python -m pip install -e '.[test]'" in ci
    addopts = pytestconfig.getini("addopts")
    assert addopts[addopts.index("-m") + 1] == "not rehearsal"
