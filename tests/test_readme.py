"""README.md stays true: its library example runs, its schemas, code map and commands are
the real ones."""

import importlib
import re
import shlex

import pytest

from finetune_invariance import cli
from finetune_invariance.study import tables


def _readme(repo_root) -> str:
    return (repo_root / "README.md").read_text()


def test_library_example_runs_verbatim_and_gives_the_metrics(repo_root, capsys):
    section = _readme(repo_root).split("## Use the metrics on your own models", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    summary = namespace["summary"]
    assert set(summary["metric"]) == {"forgetting", "learning", "cka_divergence"}
    assert sorted(summary["layer"].unique()) == [0, 1, 2, 3, 4]  # depth 4 -> 5 layers
    assert (summary["n_seeds"] == 2).all()
    flow = namespace["flow"]
    assert (flow.loc[flow.pretrained_layer == flow.finetuned_layer, "flow"] == 0).all()
    assert "forgetting" in capsys.readouterr().out


def _first_block_after(readme: str, marker: str, language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", readme.split(marker, 1)[1], re.S).group(1)


def test_hugging_face_example_runs_verbatim_and_gives_the_metrics(repo_root, capsys):
    pytest.importorskip("transformers")
    code = _first_block_after(_readme(repo_root), "A Hugging Face `transformers` ViT works through", "python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    metrics = namespace["metrics"]
    assert set(metrics["metric"]) == {"forgetting", "learning", "cka_divergence"}
    assert sorted(metrics["layer"].unique()) == [0, 1, 2, 3, 4]  # 4 blocks + the class token
    assert "forgetting" in capsys.readouterr().out


def test_the_command_line_example_is_a_valid_command(repo_root):
    command = _first_block_after(_readme(repo_root), "### From the command line", "bash").replace("\\\n", " ")
    program, *argv = shlex.split(command)
    assert program == "finetune-invariance"
    args = cli._parser().parse_args(argv)
    assert (args.command, args.n, args.seeds) == ("compare", 500, [0, 1, 2])


def test_results_map_documents_every_schema(repo_root):
    assert tables.results_map() in _readme(repo_root)


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


def _code_map_rows(readme: str) -> list[list[str]]:
    section = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| docs/method.md")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _resolve(dotted: str, previous_module: str | None) -> tuple[object, str]:
    """The object a dotted name of the code map names; a short 'module.name' is relative to
    the package of the previous entry's module ('cka.cka_from_grams' after a library name)."""
    if not dotted.startswith("finetune_invariance"):
        dotted = f"{previous_module.rsplit('.', 1)[0]}.{dotted}"
    module_name, _, attribute = dotted.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, attribute), module_name


def test_code_map_names_functions_and_rules_that_exist(repo_root):
    rows = _code_map_rows(_readme(repo_root))
    assert len(rows) >= 15
    rules = set(
        re.findall(
            r"^rule (\w+):", "\n".join(p.read_text() for p in (repo_root / "workflow/rules").glob("*.smk")), re.M
        )
    )
    for quantity, functions, rule_cell, _ in rows:
        module = None
        for dotted in re.findall(r"`([\w.]+)`", functions):
            found, module = _resolve(dotted, module)
            assert found is not None, (quantity, dotted)
        for rule in re.findall(r"`(\w+)`", rule_cell):
            assert rule in rules, (quantity, rule)
