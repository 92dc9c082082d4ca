"""The repository is self-contained: every relative link of its Markdown files resolves inside
the clone (the file, and the heading an anchor names), and nothing cites a definitions
document outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

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
