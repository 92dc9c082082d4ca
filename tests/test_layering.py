"""The package's layering, as its docstrings state it: each module imports only the
modules listed before it, and the metrics library never imports the study."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import finetune_invariance
import finetune_invariance.study

PACKAGE = Path(finetune_invariance.__file__).parent


def stated_order(package) -> list[str]:
    """Module names in the order of the package docstring's ':mod:`.name`' entries."""
    return re.findall(r":mod:`\.(\w+)`", package.__doc__)


def imported_modules(path: Path, package: str) -> set[str]:
    """Fully qualified finetune_invariance modules a file imports (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
                names = [f"{base}.{alias.name}" for alias in node.names] if not node.module else [base]
            else:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name for name in names if name and name.startswith("finetune_invariance."))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("finetune_invariance."))
    return found


def modules_of(directory: Path, package: str) -> set[str]:
    """The modules of a package: its files and its subpackages (folders with an __init__.py)."""
    modules = {f"{package}.{path.stem}" for path in directory.glob("*.py") if path.stem != "__init__"}
    return modules | {f"{package}.{path.parent.name}" for path in directory.glob("*/__init__.py")}


def module_imports(directory: Path, package: str, name: str) -> set[str]:
    """What module ``name`` of a package imports; for a subpackage, what its files import from outside it."""
    path = directory / f"{name}.py"
    if path.exists():
        return imported_modules(path, package)
    inner = f"{package}.{name}"
    found = set().union(*(imported_modules(p, inner) for p in (directory / name).glob("*.py")))
    return {m for m in found if m != inner and not m.startswith(f"{inner}.")}


def test_the_stated_order_lists_every_module():
    library = modules_of(PACKAGE, "finetune_invariance") - {"finetune_invariance.study"}  # the study: the other wing
    assert {f"finetune_invariance.{m}" for m in stated_order(finetune_invariance)} == library
    study = "finetune_invariance.study"
    assert {f"{study}.{m}" for m in stated_order(finetune_invariance.study)} == modules_of(PACKAGE / "study", study)


def listed_module(name: str, known: set[str]) -> str | None:
    """The listed module ``name`` is or lies in (``study.claims.evidence``: ``study.claims``), if any."""
    parts = name.split(".")
    return next((m for m in (".".join(parts[:k]) for k in range(len(parts), 0, -1)) if m in known), None)


def test_each_module_imports_only_modules_listed_before_it():
    library = [f"finetune_invariance.{m}" for m in stated_order(finetune_invariance)]
    study = [f"finetune_invariance.study.{m}" for m in stated_order(finetune_invariance.study)]
    known = set(library) | set(study)
    for order, directory, package in (
        (library, PACKAGE, "finetune_invariance"),
        (study, PACKAGE / "study", "finetune_invariance.study"),
    ):
        for position, module in enumerate(order):
            allowed = set(order[:position]) | (set(library) if order is study else set())
            imported = module_imports(directory, package, module.rsplit(".", 1)[1])
            imports = {listed_module(name, known) for name in imported} - {None, module}
            assert imports <= allowed, f"{module} imports {sorted(imports - allowed)}, which are not listed before it"


def test_an_import_of_a_subpackages_module_counts_as_importing_the_subpackage(tmp_path):
    """``from .claims.evidence import X`` puts the module after ``claims`` like ``from .claims import X``."""
    source = tmp_path / "comparison.py"
    source.write_text("from .claims.evidence import ALPHA\nfrom . import tables\n")
    known = {"finetune_invariance.study.claims", "finetune_invariance.study.tables"}
    imported = imported_modules(source, "finetune_invariance.study")
    assert {listed_module(name, known) for name in imported} - {None} == known
