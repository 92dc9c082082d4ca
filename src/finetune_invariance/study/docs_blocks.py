"""The documentation's generated blocks: what a command prints, copied into README.md and
docs/*.md between markers, so that no figure a command prints is typed by hand.

    python -m finetune_invariance.study.docs_blocks            # rewrite every block of README.md and docs/*.md
    python -m finetune_invariance.study.docs_blocks --check    # name each page whose blocks are stale; exit 1
    python -m finetune_invariance.study.docs_blocks docs/results.md   # one page

A block is ``<!-- KIND: ARGUMENT -->`` (or ``<!-- KIND -->``), the generated text, then
``<!-- end KIND -->``. Where the opening marker ends its line the text goes on lines of
its own, else inline. The kinds (docs/code-map.md, "Generated documentation"):

- ``about: CONFIG``: what the configuration is and which dataset plays which of the
  paper's, as its claims report opens (config ``about``, ``imagenet_source``,
  ``datasets.<name>.plays``; :class:`.claims.About`);
- ``study comparison: CONFIG``: the command line comparing two models of the study: the
  ImageNet-role source and a checkpoint a run from it publishes, on its dataset's test split;
- ``table schemas``: every table's schema (:func:`.tables.results_map`);
- ``measured costs``: the GPU costs measured so far (:data:`.measured_costs.MEASUREMENTS`);
- ``modules: PACKAGE``: the module list of a package's docstring (its stated layering);
- ``pytest marker: NAME``: a test marker's description in pyproject.toml;
- ``launch plan: CONFIGS`` and ``gpu-hours: CONFIGS``: the launch plan and its total,
  written by :func:`.launch_plan.write_docs`.

Other marked blocks (e.g. the matched-properties table, written from a run's tables by
``python -m finetune_invariance.study.matched_properties``) are left as they are.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

#: The repository holding the workflow and the documentation (an editable install lives in it).
REPOSITORY = Path(__file__).resolve().parents[3]

BLOCK = re.compile(
    r"<!-- (?P<kind>[a-z][a-z -]*?)(?:: (?P<argument>[^>]*?))? -->(?P<newline>\n?)(?P<text>.*?)<!-- end (?P=kind) -->",
    re.DOTALL,
)
#: The kinds :func:`.launch_plan.write_docs` fills.
LAUNCH_PLAN_KINDS = ("launch plan", "gpu-hours")


class DocsBlockError(ValueError):
    """A block names something that does not exist (a config, a package, a marker)."""


def _about(config_file: str, repository: Path) -> str:
    from .claims import About
    from .design import StudyDesign
    from .launch_plan import SCHEMA, load_config

    config = load_config([repository / config_file], repository / SCHEMA)
    plays = StudyDesign(config, repository).dataset_roles()
    about = About(config["about"]["title"], config["about"]["summary"], config["imagenet_source"], plays)
    return "\n\n".join(about.paragraphs())


def _study_comparison(config_file: str, repository: Path) -> str:
    from .design import StudyDesign
    from .launch_plan import SCHEMA, load_config
    from .vocabulary import CLASSIFICATION

    config = load_config([repository / config_file], repository / SCHEMA)
    study, source = StudyDesign(config, repository), config["imagenet_source"]
    runs = [run for run in sorted(study.runs()) if run.source == source and run.task == CLASSIFICATION]
    if not runs:
        raise DocsBlockError(f"{config_file} has no classification run from its ImageNet-role source {source!r}")
    # a run analysed at one checkpoint (a dynamics run publishes every epoch) if there is one
    run = min(runs, key=lambda run: len(study.kept_checkpoints(run)))
    weights = config["sources"][source]["weights"]
    pretrained = (
        weights.removeprefix("file:")
        if weights.startswith("file:")
        else study.layout.path("source_weights", source=source)
    )
    finetuned = study.layout.path("checkpoint", run, checkpoint=study.kept_checkpoints(run)[-1])
    images = study.layout.pattern("generated_test", dataset=run.dataset)
    return (
        f"```bash\nfinetune-invariance compare {pretrained} \\\n    {finetuned} \\\n"
        f"    --images {images} --out comparison/ --n {config['stir']['n_images']} --dry-run\n```"
    )


def _table_schemas(_: str | None, repository: Path) -> str:
    from .tables import results_map

    return results_map().rstrip("\n")


def _measured_costs(_: str | None, repository: Path) -> str:
    from .measured_costs import MEASUREMENTS

    parts = []
    for m in MEASUREMENTS:
        overrides = f" (overrides {m.overrides})" if m.overrides else ""
        rows = [f"| `{unit}` | {seconds:.4g} | measured |" for unit, seconds in m.seconds.items()]
        rows += [f"| `{unit}` | {seconds:.4g} | {how} |" for unit, (seconds, how) in m.derived.items()]
        parts.append(
            f"#### {m.device}, {m.date}\n\n`{m.model}`{overrides} at {m.image_size} px, training at batch "
            f"{m.batch_size}. Source: {m.source}.\n\n| unit of work | seconds | |\n|---|---:|---|\n" + "\n".join(rows)
        )
    return "\n\n".join(parts)


_MODULE_ITEM = re.compile(r"^- :mod:`\.(\w+)`:\s*(.*)$")


def _modules(package: str, repository: Path) -> str:
    try:
        doc = importlib.import_module(package).__doc__ or ""
    except ImportError as err:
        raise DocsBlockError(f"no package {package!r}: {err}") from None
    items: list[str] = []
    for line in doc.splitlines():
        item = _MODULE_ITEM.match(line)
        if item:
            items.append(f"- `{package}.{item[1]}`: {item[2]}")
        elif items and line.startswith("  ") and line.strip():  # an item's continuation line
            items[-1] += " " + line.strip()
    if not items:
        raise DocsBlockError(f"the docstring of {package} lists no modules ('- :mod:`.name`: ...')")
    text = "\n".join(items)
    text = re.sub(r":mod:`\.(\w+)`", rf"`{package}.\1`", text)
    text = re.sub(r":\w+:`~?([\w.]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _pytest_marker(name: str, repository: Path) -> str:
    pyproject = (repository / "pyproject.toml").read_text()
    found = re.search(rf'^\s*"{re.escape(name)}: ([^"]*)",?\s*$', pyproject, re.MULTILINE)
    if found is None:
        raise DocsBlockError(f"pyproject.toml declares no pytest marker {name!r}")
    return found[1]


#: Kind -> what fills it, from the block's argument and the repository.
RENDERERS: dict[str, Callable[[str | None, Path], str]] = {
    "about": _about,
    "study comparison": _study_comparison,
    "table schemas": _table_schemas,
    "measured costs": _measured_costs,
    "modules": _modules,
    "pytest marker": _pytest_marker,
}


def fill(text: str, repository: Path = REPOSITORY) -> str:
    """``text`` with every block of a kind in :data:`RENDERERS` filled anew."""

    def render(match: re.Match) -> str:
        kind, argument, newline = match["kind"], match["argument"], match["newline"]
        if kind not in RENDERERS:
            return match[0]
        generated = RENDERERS[kind](argument, repository)
        head = f"<!-- {kind}{f': {argument}' if argument else ''} -->"
        return f"{head}\n{generated}\n<!-- end {kind} -->" if newline else f"{head}{generated}<!-- end {kind} -->"

    return BLOCK.sub(render, text)


def has_launch_plans(text: str) -> bool:
    return any(match["kind"] in LAUNCH_PLAN_KINDS for match in BLOCK.finditer(text))


def regenerated(page: Path, repository: Path = REPOSITORY) -> str:
    """The text ``page`` would have with every block generated anew (the page is not changed)."""
    text = fill(page.read_text(encoding="utf-8"), repository)
    if not has_launch_plans(text):
        return text
    from .launch_plan import write_docs

    with tempfile.TemporaryDirectory(prefix="docs_blocks_") as folder:
        copy = Path(folder) / page.name
        copy.write_text(text, encoding="utf-8")
        write_docs(copy, repository / "Snakefile")
        return copy.read_text(encoding="utf-8")


def stale(page: Path, repository: Path = REPOSITORY) -> bool:
    """Whether some generated block of ``page`` differs from what its command prints now."""
    return regenerated(page, repository) != page.read_text(encoding="utf-8")


def default_pages(repository: Path = REPOSITORY) -> list[Path]:
    """README.md and every page under docs/."""
    return [repository / "README.md", *sorted((repository / "docs").glob("*.md"))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: README.md and docs/*.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each stale page")
    args = parser.parse_args(argv)
    from .config import ConfigError
    from .launch_plan import LaunchPlanError

    pages = args.pages or default_pages()
    missing = [str(page) for page in pages if not page.is_file()]
    if missing:
        parser.error(f"no such page: {', '.join(missing)}")
    out_of_date = []
    for page in pages:
        try:
            text = regenerated(page)
        except (DocsBlockError, ConfigError, LaunchPlanError) as err:
            sys.exit(f"{page}: {err}")
        if text != page.read_text(encoding="utf-8"):
            out_of_date.append(page)
            if not args.check:
                page.write_text(text, encoding="utf-8")
    if args.check and out_of_date:
        print(
            "stale generated blocks in: "
            + ", ".join(map(str, out_of_date))
            + " (python -m finetune_invariance.study.docs_blocks rewrites them)",
            file=sys.stderr,
        )
        return 1
    verb = "up to date" if args.check else "written"
    print(f"{len(pages)} pages, {len(out_of_date)} {'stale' if args.check else 'rewritten'}; generated blocks {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
