"""The documentation stays true and self-contained: every relative link of its Markdown files
resolves inside the clone (the file, and the heading an anchor names), nothing cites a
definitions document outside it, every docs page is reachable from the README, every
generated block is what its command prints, the code map names what exists, every command
shown parses with its program's parser, and no commit hash or note about this project's
machines is left in user-facing text."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from finetune_invariance.study import docs_blocks

# A Markdown inline link or image: [text](target) or ![alt](target "title").
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
# Spelt in two pieces so that this file does not match itself.
OUTSIDE_REFERENCES = ("METHOD" + ".md", "../" + "shared", "/work/" + "shared")
TEXT_SUFFIXES = {".md", ".rst", ".py", ".smk", ".yaml", ".yml", ".toml", ".txt", ".cfg", ""}


def repository_files(repo_root: Path) -> list[Path]:
    """The files a clone has (tracked), plus new files not ignored (part of the next commit)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell the repository's files from build outputs")
    return sorted(repo_root / name for name in listed if name and (repo_root / name).is_file())


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading.strip())
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Anchors of every ATX heading outside code blocks (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown), re.M):
        anchor = github_anchor(heading)
        found.add(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
        seen[anchor] = seen.get(anchor, 0) + 1
    return found


def relative_links(markdown: str) -> list[str]:
    """Link targets outside code blocks and code spans that are not URLs or mail addresses."""
    prose = CODE_SPAN.sub("", FENCE.sub("", markdown))
    return [t for t in LINK.findall(prose) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def broken_links(markdown_file: Path, repo_root: Path) -> list[str]:
    broken = []
    for target in relative_links(markdown_file.read_text()):
        path_part, _, anchor = target.partition("#")
        resolved = (markdown_file.parent / path_part).resolve() if path_part else markdown_file
        if not resolved.is_relative_to(repo_root.resolve()):
            broken.append(f"{target} (leaves the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            broken.append(f"{target} (no heading '#{anchor}' in {resolved.name})")
    return broken


def test_the_link_checker_finds_what_it_should(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# The `method`, exactly\n\n## Models and layers\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#models-and-layers) [ok](docs/a.md#the-method-exactly) [web](https://example.org/x)\n"
        "[gone](docs/b.md) [anchor](docs/a.md#no-such) [out](../elsewhere/defs.md) [here](#local)\n"
        "`[not a link](nowhere.md)`\n```\n[in code](nowhere.md)\n```\n# Local\n"
    )
    assert broken_links(page, tmp_path) == [
        "docs/b.md (no such file)",
        "docs/a.md#no-such (no heading '#no-such' in a.md)",
        "../elsewhere/defs.md (leaves the repository)",
    ]


def test_every_relative_markdown_link_resolves_inside_the_repository(repo_root):
    markdown = [path for path in repository_files(repo_root) if path.suffix == ".md"]
    assert repo_root / "README.md" in markdown and repo_root / "docs" / "method.md" in markdown
    broken = {str(path.relative_to(repo_root)): broken_links(path, repo_root) for path in markdown}
    assert {page: links for page, links in broken.items() if links} == {}


def test_the_readme_links_the_definitions_document(repo_root):
    assert "(docs/method.md)" in (repo_root / "README.md").read_text()


def test_no_file_cites_a_definitions_document_outside_the_repository(repo_root):
    offenders = []
    for path in repository_files(repo_root):
        if path.suffix not in TEXT_SUFFIXES:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(reference in line for reference in OUTSIDE_REFERENCES):
                offenders.append(f"{path.relative_to(repo_root)}:{number}: {line.strip()}")
    assert offenders == []


# --- the docs pages: reachable, generated blocks fresh, commands real, nothing about this project's machines ---


def docs_pages(repo_root: Path) -> list[Path]:
    return sorted((repo_root / "docs").glob("*.md"))


def linked_pages(page: Path) -> set[Path]:
    """The Markdown files a page links to (anchors dropped)."""
    targets = (target.partition("#")[0] for target in relative_links(page.read_text()))
    return {(page.parent / target).resolve() for target in targets if target.endswith(".md")}


def unreachable_pages(repo_root: Path) -> set[Path]:
    """The docs pages no chain of links from README.md reaches."""
    seen, frontier = set(), [(repo_root / "README.md").resolve()]
    while frontier:
        page = frontier.pop()
        if page in seen or not page.is_file():
            continue
        seen.add(page)
        frontier.extend(linked_pages(page))
    return {page.resolve() for page in docs_pages(repo_root)} - seen


def test_every_docs_page_is_reachable_from_the_readme(repo_root):
    assert unreachable_pages(repo_root) == set()


def test_the_readme_links_every_docs_page_in_its_table(repo_root):
    section = (repo_root / "README.md").read_text().split("## Documentation", 1)[1]
    assert {f"docs/{page.name}" for page in docs_pages(repo_root)} <= set(LINK.findall(section))


def test_the_reachability_check_finds_an_orphan(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("[a](docs/a.md)\n")
    (tmp_path / "docs" / "a.md").write_text("[b](b.md#x)\n")
    (tmp_path / "docs" / "b.md").write_text("# X\n")
    (tmp_path / "docs" / "orphan.md").write_text("# nobody links me\n")
    assert linked_pages(tmp_path / "README.md") == {(tmp_path / "docs/a.md").resolve()}
    assert unreachable_pages(tmp_path) == {(tmp_path / "docs/orphan.md").resolve()}


# Commit hashes (7-12 hex digits with a letter and a digit, or after the word "commit") and
# notes about the machines this project was built on have no place in user-facing text.
COMMIT = re.compile(r"\bcommit\s+[0-9a-f]{7,40}\b|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,12}\b", re.I)
MACHINE_NOTE = re.compile(
    r"this project'?s (?:own |shared )?(?:\S+ )?machine|\bour (?:test )?machine|\bthis (?:CPU )?machine|"
    r"the project's (?:own )?machine|shared 2-core",
    re.I,
)


def user_facing_offences(text: str) -> list[str]:
    return [m[0] for m in COMMIT.finditer(text)] + [m[0] for m in MACHINE_NOTE.finditer(text)]


def test_the_hash_and_machine_note_detector_finds_what_it_should():
    assert user_facing_offences("by commit 03eadbe; the 438bb97 run; on this project's shared 2-core machine") == [
        "commit 03eadbe",
        "438bb97",
        "this project's shared 2-core machine",
    ]
    assert user_facing_offences("on this machine") == ["this machine"]
    assert user_facing_offences("times it on your machine") == []
    clean = "md5 56bf5dcef84df0e2308c6dcbcbbd8499, sha256 " + "e24b7b36" * 8 + ", record 2535967, 7802 img/s, deadbeef"
    assert user_facing_offences(clean) == []


def test_no_commit_hash_or_machine_note_in_the_readme_or_docs(repo_root):
    offences = {
        str(page.relative_to(repo_root)): found
        for page in [repo_root / "README.md", *docs_pages(repo_root)]
        if (found := user_facing_offences(page.read_text()))
    }
    assert offences == {}


# --- generated blocks ---------------------------------------------------------------------------


def test_the_generator_fills_blocks_and_inline_slots_and_leaves_other_blocks_alone(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- table schemas -->\nstale\n<!-- end table schemas -->\n"
        'cost: "<!-- pytest marker: rehearsal -->old<!-- end pytest marker -->".\n'
        "<!-- model comparison schema -->\nsomeone else's\n<!-- end model comparison schema -->\n"
    )
    assert docs_blocks.stale(page)
    filled = docs_blocks.regenerated(page)
    assert "#### `pair_similarity`" in filled and "\nstale\n" not in filled
    assert re.search(
        r'cost: "<!-- pytest marker: rehearsal -->[^\n<]*15 minutes[^\n<]*<!-- end pytest marker -->"', filled
    )
    assert "\nsomeone else's\n" in filled
    page.write_text(filled)
    assert not docs_blocks.stale(page)


def test_the_generator_names_a_block_it_cannot_fill(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- pytest marker: no_such_marker --><!-- end pytest marker -->")
    with pytest.raises(docs_blocks.DocsBlockError, match="no_such_marker"):
        docs_blocks.regenerated(page)
    page.write_text("<!-- modules: finetune_invariance.no_such_package -->\n<!-- end modules -->")
    with pytest.raises(docs_blocks.DocsBlockError, match="no_such_package"):
        docs_blocks.regenerated(page)


def test_the_modules_lists_are_the_packages_docstrings(repo_root):
    import finetune_invariance
    import finetune_invariance.study

    page = (repo_root / "docs/code-map.md").read_text()
    for package in (finetune_invariance, finetune_invariance.study):
        stated = re.findall(r":mod:`\.(\w+)`", package.__doc__)
        listed = re.findall(rf"^- `{re.escape(package.__name__)}\.(\w+)`:", page, re.M)
        assert listed == stated, package.__name__


def test_the_schemas_page_is_every_schema(repo_root):
    from finetune_invariance.study import tables

    page = (repo_root / "docs/results.md").read_text()
    assert tables.results_map().rstrip("\n") in page
    assert set(re.findall(r"^#### `(\w+)`", page, re.M)) == set(tables.SCHEMAS)


def test_every_generated_block_without_a_launch_plan_is_what_its_command_prints(repo_root):
    stale = [
        page.name
        for page in docs_blocks.default_pages(repo_root)
        if docs_blocks.fill(page.read_text()) != page.read_text()
    ]
    assert stale == [], "python -m finetune_invariance.study.docs_blocks " + " ".join(stale)


@pytest.mark.workflow
@pytest.mark.parametrize("page", ["README.md", "docs/paper-configuration.md"])
def test_the_launch_plan_blocks_are_what_the_launch_plan_prints(repo_root, page):
    """The README's GPU-hours and the paper configuration's plan (docs/your-models.md's are
    checked by tests/test_foundation.py)."""
    assert docs_blocks.has_launch_plans((repo_root / page).read_text())
    assert not docs_blocks.stale(repo_root / page), f"python -m finetune_invariance.study.docs_blocks {page}"


# --- the code map ---------------------------------------------------------------------------------


def _code_map_rows(page: str) -> list[list[str]]:
    section = page.split("## Quantities, figures and tables", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| docs/method.md")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def _resolve(dotted: str, previous_module: str | None) -> tuple[object, str]:
    """The object a dotted name of the code map names; a short 'module.name' is relative to
    the package of the previous entry's module ('cka.cka_from_grams' after a library name)."""
    import importlib

    if not dotted.startswith("finetune_invariance"):
        dotted = f"{previous_module.rsplit('.', 1)[0]}.{dotted}"
    module_name, _, attribute = dotted.rpartition(".")
    module = importlib.import_module(module_name)
    return getattr(module, attribute), module_name


def test_code_map_names_functions_and_rules_that_exist(repo_root):
    rows = _code_map_rows((repo_root / "docs/code-map.md").read_text())
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


def test_the_code_map_check_fails_on_a_name_that_does_not_exist():
    with pytest.raises(AttributeError):
        _resolve("finetune_invariance.cka.no_such_function", None)
    assert _resolve("cka.linear_cka", "finetune_invariance.stir")[0].__name__ == "linear_cka"
    with pytest.raises(ModuleNotFoundError):
        _resolve("claims.inference.leave_one_out_r", "finetune_invariance.study.claims.dynamics")


# --- every command the README and the docs show parses with its program's own parser ----------

BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def shown_commands(repo_root: Path) -> list[tuple[str, list[str]]]:
    """(page, argv) of every command line of every bash block of README.md and docs/*.md."""
    import shlex

    found = []
    for page in docs_blocks.default_pages(repo_root):
        for block in BASH_BLOCK.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                if argv := shlex.split(line, comments=True):
                    found.append((page.name, argv))
    return found


def check_command(argv: list[str], repo_root: Path, monkeypatch) -> None:
    """Parse ``argv`` as its program would, and check that the files it names exist; an
    AssertionError or SystemExit says what is wrong."""
    from snakemake.cli import get_argument_parser

    from finetune_invariance import cli
    from finetune_invariance.study import launch_plan

    program, args = argv[0], argv[1:]
    if program == "snakemake":
        parsed = get_argument_parser().parse_args(args)
        assert all((repo_root / path).is_file() for path in parsed.configfile or []), argv
        assert all((repo_root / path).is_dir() for path in parsed.profile or []), argv
    elif program == "finetune-invariance":
        cli._parser().parse_args(args)
    elif program == "python" and args[:2] == ["-m", "finetune_invariance.study.launch_plan"]:
        calls = []
        monkeypatch.setattr(launch_plan, "plan", lambda *a: calls.append(a) or "")
        launch_plan.main(args[2:])
        [(config_files, _, profile)] = calls
        assert all((repo_root / path).is_file() for path in config_files), argv
        assert profile is None or (repo_root / profile).is_dir(), argv
    elif program == "python" and args[:2] == ["-m", "finetune_invariance.study.docs_blocks"]:
        monkeypatch.setattr(docs_blocks, "regenerated", lambda page, repository=None: page.read_text())
        monkeypatch.chdir(repo_root)
        assert docs_blocks.main(args[2:]) == 0
    elif program == "python" and args[:2] == ["-m", "pytest"]:
        options = iter(args[2:])
        for option in options:
            if option == "-m":
                declared = {line.split(":")[0] for line in pytest_markers(repo_root)}
                assert set(re.findall(r"\w+", next(options))) - {"not", "and", "or"} <= declared, argv
            else:
                assert (repo_root / option).exists(), argv
    elif program == "python" and args and args[0].startswith("benchmarks/"):
        assert (repo_root / args[0]).is_file(), argv
    elif program == "export":
        assert all(re.fullmatch(r"FTI_SLURM_[A-Z_]+=\S*", assignment) for assignment in args), argv
    elif program == "pip":  # the README's install lines: tests/test_readme.py checks their pins
        assert args[0] == "install", argv
    elif program.startswith(".ci/"):
        assert os.access(repo_root / program, os.X_OK), argv
    else:
        raise AssertionError(f"a command this test does not know how to check: {argv}")


def pytest_markers(repo_root: Path) -> list[str]:
    text = (repo_root / "pyproject.toml").read_text()
    return re.findall(r'^\s*"(\w+: [^"]*)",?\s*$', text.split("markers = [", 1)[1].split("]", 1)[0], re.M)


def test_every_shown_command_parses_and_names_files_that_exist(repo_root, monkeypatch):
    commands = shown_commands(repo_root)
    assert {page for page, _ in commands} >= {"README.md", "cluster.md", "paper-configuration.md", "tests.md"}
    for page, argv in commands:
        with monkeypatch.context() as patch:
            try:
                check_command(argv, repo_root, patch)
            except SystemExit as exit:
                raise AssertionError(f"{page}: {' '.join(argv)} does not parse ({exit})") from None


@pytest.mark.parametrize(
    "argv",
    [
        ["snakemake", "--configfile", "config/no_such.yaml", "--cores", "2"],
        ["snakemake", "--no-such-option"],
        ["finetune-invariance", "compare", "a", "b"],  # no --images, --out
        ["python", "-m", "finetune_invariance.study.launch_plan", "--configfile", "config/no_such.yaml"],
        ["python", "-m", "finetune_invariance.study.launch_plan", "--no-such-option"],
        ["python", "-m", "pytest", "-m", "no_such_marker"],
        ["python", "benchmarks/no_such.py"],
        ["export", "PATH=/tmp"],
        ["make", "all"],
    ],
)
def test_the_command_check_refuses_a_broken_command(argv, repo_root, monkeypatch):
    with pytest.raises((AssertionError, SystemExit)):
        check_command(argv, repo_root, monkeypatch)


def test_the_tests_page_shows_the_readmes_test_commands(repo_root):
    def block(page: str) -> str:
        text = (repo_root / page).read_text()
        return BASH_BLOCK.search(text.split("# Tests", 1)[1]).group(1)

    assert block("docs/tests.md") == block("README.md")
