"""docs/claims.md is the claims' reference: its list and counts are the registry's, every
test it names exists, and README.md types no count of them."""

from __future__ import annotations

import re

from finetune_invariance.study import claims
from finetune_invariance.study.claims.reference import END, START, count_sentence, reference
from finetune_invariance.study.claims.registry import BEYOND

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


def test_the_readme_types_no_count_of_claims(repo_root):
    # The count lives in the generated block of docs/claims.md; a number typed into the
    # front door went stale once already (it counted one claim beyond the paper, not two).
    readme = (repo_root / "README.md").read_text()
    typed = re.findall(r"\b(?:\d+|one|two|three|four|five|six|ten|twenty[- ]\w+)\s+(?:paper\s+)?claims\b", readme, re.I)
    assert typed == []
