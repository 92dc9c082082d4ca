"""README.md stays true: its library example runs, its schemas and commands are the real ones."""

import re

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


def test_results_map_documents_every_schema(repo_root):
    assert tables.results_map() in _readme(repo_root)


def test_ci_runs_the_readme_install_and_test_commands(repo_root):
    readme = _readme(repo_root)
    ci = (repo_root / ".ci" / "run").read_text()
    for command in ("pip install -e '.[test]'", "python -m pytest"):
        assert command in readme
        assert command in ci
