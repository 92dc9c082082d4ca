"""The claims' registry: each claim is written once, where its evaluator is defined.

A section module declares a claim by decorating its evaluator with :func:`claim`, which
takes the paper's sentence, the statistic, the threshold and the paper's value (the way
timm registers each model where it is defined), so the prose the report prints and the
code that decides the verdict sit together and cannot drift apart. The claim is named
after its evaluator; a second claim of the same name, or one reusing another's
evaluator, is refused when it is registered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..vocabulary import Run
from .evidence import StudyTables, reached_accuracy

HOLDS = "holds"
FAILS = "does not hold"
NOT_MEASURED = "not measured by this config"
VERDICTS = (HOLDS, FAILS, NOT_MEASURED)

BEYOND = "beyond"
#: Where each claim's sentence is, in the paper's order; the report has one part each.
SECTIONS: dict[str, str] = {
    "4.1": "Section 4.1: effects of the finetuning task",
    "4.2": "Section 4.2: effects of the pretraining dataset",
    "4.3": "Section 4.3: compression and expansion",
    "4.4": "Section 4.4: forgetting and learning dynamics",
    "C.1": "Appendix C.1: correlation between learning and forgetting",
    BEYOND: "Beyond the paper",
}

#: The prose every claim states beside its verdict.
STATED = ("statement", "statistic", "threshold", "paper_value")


@dataclass(frozen=True)
class Finding:
    """A claim's outcome in one setting (one dataset, source pair or run), and the runs it
    read (whose measured facts are shown beside a failure).

    ``holds`` is True or False where the setting was measured, None where it was not: its
    rows are absent or incomplete, or its statistic is undefined (:func:`.evidence.decide`
    turns a comparison with an undefined statistic into None). A bare NaN counts as
    unmeasured too; any other non-boolean is a programming error.
    """

    holds: bool | None
    evidence: str
    runs: tuple[Run, ...] = ()

    def __post_init__(self) -> None:
        value = self.holds
        if isinstance(value, (bool, np.bool_)):
            object.__setattr__(self, "holds", bool(value))
        elif value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
            object.__setattr__(self, "holds", None)
        else:
            raise TypeError(f"Finding.holds must be a bool or None (not measured), got {value!r}: {self.evidence}")

    @property
    def measured(self) -> bool:
        return self.holds is not None


Evaluator = Callable[[StudyTables], list[Finding]]
#: The measured facts about some runs that may explain a failing claim.
Explainer = Callable[[StudyTables, Sequence[Run]], list[str]]


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    statement: str  # the paper's sentence, paraphrased tightly
    statistic: str  # what is computed from the tables
    threshold: str  # what it must pass, with the stated constants
    paper_value: str  # what the paper reports
    evaluate: Evaluator
    explain: Explainer | None = reached_accuracy

    def __post_init__(self) -> None:
        blank = [name for name in STATED if not getattr(self, name).strip()]
        if blank:
            raise ValueError(f"claim '{self.id}' lacks {blank}: every claim states {list(STATED)}")
        if self.section not in SECTIONS:
            raise ValueError(f"claim '{self.id}' has section {self.section!r}; expected one of {list(SECTIONS)}")

    @property
    def of_the_paper(self) -> bool:
        return self.section != BEYOND


#: Every claim, in the paper's order: by section, then as each section module defines them.
CLAIMS: list[Claim] = []


def register(new: Claim) -> None:
    """Add a claim; one with the name or the evaluator of a registered claim is an error."""
    for old in CLAIMS:
        if old.evaluate is new.evaluate or old.evaluate.__code__ is new.evaluate.__code__:
            raise ValueError(f"claims '{old.id}' and '{new.id}' share an evaluator; write one per claim")
        if old.id == new.id:
            raise ValueError(f"a claim named '{new.id}' is already registered")
    CLAIMS.append(new)
    CLAIMS.sort(key=lambda c: list(SECTIONS).index(c.section))  # stable: keeps each section's own order


def claim(
    section: str,
    *,
    statement: str,
    statistic: str,
    threshold: str,
    paper_value: str,
    explain: Explainer | None = reached_accuracy,
) -> Callable[[Evaluator], Evaluator]:
    """Register the decorated evaluator as the claim named after it."""

    def declare(evaluate: Evaluator) -> Evaluator:
        register(Claim(evaluate.__name__, section, statement, statistic, threshold, paper_value, evaluate, explain))
        return evaluate

    return declare
