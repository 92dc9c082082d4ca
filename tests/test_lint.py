"""The linter configured in pyproject.toml (pyflakes and syntax errors) passes on the whole
repository: no unused import, no undefined name, no function defined twice."""

from __future__ import annotations

import subprocess
import sys


def test_ruff_check_passes(repo_root):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(repo_root)],
        capture_output=True,
        text=True,
        cwd=repo_root,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_catches_a_function_defined_twice(repo_root, tmp_path):
    """The check can fail: a module with a redefined function (F811) is refused under the
    repository's own configuration."""
    module = tmp_path / "twice.py"
    module.write_text("def f():\n    return 1\n\n\ndef f():\n    return 2\n")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(repo_root / "pyproject.toml"), str(module)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "F811" in result.stdout, result.stdout + result.stderr
