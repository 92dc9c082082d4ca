"""The registry: every claim states its sentence, statistic, threshold and paper value
beside its own evaluator, and the registry refuses a claim that does not."""

from __future__ import annotations

import numpy as np
import pytest

from finetune_invariance.study import claims
from finetune_invariance.study.claims import registry


def test_every_claim_states_its_sentence_statistic_threshold_and_paper_value():
    for claim in claims.CLAIMS:
        for field in registry.STATED:
            assert len(getattr(claim, field).strip()) > 10, (claim.id, field)


def test_no_two_claims_share_a_name_or_an_evaluator():
    ids = [c.id for c in claims.CLAIMS]
    evaluators = [c.evaluate for c in claims.CLAIMS]
    assert len(set(ids)) == len(ids)
    assert len({id(e) for e in evaluators}) == len({id(e.__code__) for e in evaluators}) == len(evaluators)
    assert all(c.id == c.evaluate.__name__ for c in claims.CLAIMS)  # named where it is defined


def test_the_report_has_at_least_23_claims_of_the_paper_and_the_ones_beyond_it():
    sections = [c.section for c in claims.CLAIMS]
    assert sum(c.of_the_paper for c in claims.CLAIMS) >= 23
    assert sections.count(registry.BEYOND) >= 1
    assert sections == sorted(sections, key=list(registry.SECTIONS).index)  # in the paper's order


@pytest.fixture
def empty_registry(monkeypatch):
    monkeypatch.setattr(registry, "CLAIMS", [])
    return registry


def declare(section="4.1", **prose):
    stated = dict(statement="a sentence of the paper", statistic="a statistic", threshold="> 0", paper_value="0.78")
    return registry.claim(section, **(stated | prose))


@pytest.mark.parametrize("field", registry.STATED)
def test_a_claim_without_its_prose_is_refused_naming_what_it_lacks(empty_registry, field):
    with pytest.raises(ValueError, match=f"'example' lacks \\['{field}'\\]"):

        @declare(**{field: "  "})
        def example(study):
            return []


def test_an_unknown_section_is_refused(empty_registry):
    with pytest.raises(ValueError, match="section '5.1'"):

        @declare("5.1")
        def example(study):
            return []


def test_a_second_claim_of_the_same_name_or_evaluator_is_refused(empty_registry):
    def example(study):
        return []

    declare()(example)
    with pytest.raises(ValueError, match="share an evaluator"):
        declare("4.2")(example)  # the same function registered again, under another section
    alias = type(example)(example.__code__, globals(), "alias")
    with pytest.raises(ValueError, match="share an evaluator"):
        declare()(alias)  # a copy of the same code under another name
    with pytest.raises(ValueError, match="already registered"):

        @declare()
        def example(study):  # noqa: F811 (a second claim of this name is the point)
            return []

    assert [c.id for c in empty_registry.CLAIMS] == ["example"]


def test_an_undefined_statistic_never_makes_a_finding_hold():
    assert registry.Finding(np.nan > 0, "r = nan").holds is False
    assert registry.Finding(np.float64(0.8) >= 0.7, "r = 0.8").holds is True
