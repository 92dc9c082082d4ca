"""docs/claims.md is the claims' reference: its list and counts are the registry's, every
test it names exists, and a count of claims stated in README.md is the registry's."""

from __future__ import annotations

import re

import pytest

from finetune_invariance.study import claims
from finetune_invariance.study.claims.reference import END, START, count_sentence, reference
from finetune_invariance.study.claims.registry import BEYOND

WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def _docs(repo_root) -> str:
    return (repo_root / "docs/claims.md").read_text()


def test_the_docs_list_every_registered_claim_as_the_registry_does(repo_root):
    text = _docs(repo_root)
    block = text[text.index(START) : text.index(END) + len(END)] + "\n"
    assert block == reference(), "regenerate it: python -m finetune_invariance.study.claims.reference"
    listed = re.findall(r"^\| `([a-z_0-9]+)` \|", block, re.M)
    assert listed == [c.id for c in claims.CLAIMS]


def test_the_count_sentence_counts_the_registry():
    beyond = sum(c.section == BEYOND for c in claims.CLAIMS)
    assert count_sentence() == (
        f"{len(claims.CLAIMS)} claims are registered: {len(claims.CLAIMS) - beyond} of the paper and {beyond} beyond it."
    )


def test_every_test_the_docs_name_exists(repo_root):
    text = _docs(repo_root)
    named = re.findall(r"`(test_[a-z_]+\.py)::(test_[a-z_0-9]+)", text) + [
        (None, name) for name in re.findall(r"`::(test_[a-z_0-9]+)", text)
    ]
    assert named
    sources = {path.name: path.read_text() for path in (repo_root / "tests").rglob("test_*.py")}
    missing = [name for _, name in named if not any(f"def {name}(" in source for source in sources.values())]
    assert missing == []


def test_a_count_of_claims_stated_in_the_readme_is_the_registrys(repo_root):
    readme = (repo_root / "README.md").read_text()
    stated = re.findall(r"(\w+) claims of Sections 4\.1-4\.4 and Appendix C\.1 and (\w+) beyond the paper", readme)
    if not stated:
        pytest.skip("README.md states no count of the registered claims")
    beyond = sum(c.section == BEYOND for c in claims.CLAIMS)
    for paper, extra in stated:
        assert (int(WORDS.get(paper, paper)), int(WORDS.get(extra, extra))) == (len(claims.CLAIMS) - beyond, beyond)
