"""Every registered claim evaluated on a run's tables (:func:`evaluate_claims`), and the
claims report (:func:`claims_report`), Markdown and HTML, which opens with what the
configuration is and which dataset plays which of the paper's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ...tables import html_page, html_table, markdown_table
from ..matched_properties import beside_verdicts
from .evidence import PARAMETRIC, PERMUTATION, NotMeasured, StudyTables
from .registry import BEYOND, CLAIMS, FAILS, HOLDS, NOT_MEASURED, SECTIONS, VERDICTS, Claim, Finding

COLUMNS = ["claim", "section", "statement", "statistic", "threshold", "paper_value", "verdict", "evidence", "facts"]
MAX_EVIDENCE_SETTINGS = 4  # settings spelled out in one evidence string
TITLE = "Claims of the paper, checked on this run"


def _summarise(findings: list[Finding]) -> tuple[str, str]:
    """The verdict from every setting's outcome, and the evidence: failing settings first,
    then unmeasured ones, then holding ones.

    Any measured failure: does not hold (an unmeasured setting never hides one); else any
    unmeasured setting: not measured (a claim about several settings holds only when every
    one was measured); else holds.
    """
    failing = [f for f in findings if f.holds is False]
    unmeasured = [f for f in findings if f.holds is None]
    holding = [f for f in findings if f.holds is True]
    ordered = failing + unmeasured + holding
    shown = [f.evidence if f.measured else f"not measured: {f.evidence}" for f in ordered[:MAX_EVIDENCE_SETTINGS]]
    if len(ordered) > MAX_EVIDENCE_SETTINGS:
        shown.append(f"+{len(ordered) - MAX_EVIDENCE_SETTINGS} more settings")
    verdict = FAILS if failing else NOT_MEASURED if unmeasured else HOLDS
    tally = f"holds in {len(holding)}/{len(findings)}" + (f", not measured in {len(unmeasured)}" if unmeasured else "")
    return verdict, f"{tally}: " + "; ".join(shown)


def _failure_facts(claim: Claim, study: StudyTables, findings: list[Finding]) -> str:
    """The claim's measured facts about the runs of its failing settings ('' if it has
    none, or the tables lack them: a failure stays a failure either way)."""
    runs = sorted({run for finding in findings if finding.holds is False for run in finding.runs})
    if claim.explain is None or not runs:
        return ""
    try:
        return "; ".join(claim.explain(study, runs))
    except NotMeasured:
        return ""


def evaluate_claims(
    tables: Mapping[str, pd.DataFrame],
    imagenet_source: str,
    variant_optimizers: Mapping[str, str] | None = None,
    inference: str = PARAMETRIC,
    identical_copy: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Evaluate every registered claim (:data:`.registry.CLAIMS`) on the study's tables.

    ``tables`` maps :data:`.evidence.CLAIM_TABLES` stems to tables; any may be absent.
    ``imagenet_source`` is the source that plays the paper's ImageNet; ``variant_optimizers``
    maps each dynamics variant to its optimizer ('sgd' or 'adam'), which the variant claims
    (Figs. 6, 15) need; ``inference`` (config ``robustness.inference``) which p-value of a
    correlation across epochs the verdicts read; ``identical_copy`` the (source, dataset)
    of the controls' identical copy, the floor of learning. Returns one row per claim with
    columns :data:`COLUMNS`; verdict is 'holds', 'does not hold' or 'not measured by this
    config' (where a setting the claim names lacks its rows or its statistic is undefined,
    and no setting fails); facts, beside a failure, what its runs reached.
    """
    study = StudyTables(tables, imagenet_source, variant_optimizers, inference, identical_copy)
    records = []
    for claim in CLAIMS:
        facts = ""
        try:
            findings = claim.evaluate(study)
            if not findings:
                raise NotMeasured("no setting to evaluate")
            verdict, evidence = _summarise(findings)
            facts = _failure_facts(claim, study, findings)
        except NotMeasured as missing:
            verdict, evidence = NOT_MEASURED, str(missing)
        prose = {name: getattr(claim, name) for name in ("statement", "statistic", "threshold", "paper_value")}
        records.append(
            dict(claim=claim.id, section=claim.section, **prose, verdict=verdict, evidence=evidence, facts=facts)
        )
    return beside_verdicts(pd.DataFrame(records, columns=COLUMNS), tables.get("matched_properties"))


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class About:
    """What the configuration is (config ``about``), which source plays the paper's
    ImageNet (``imagenet_source``) and which of the paper's datasets each dataset plays
    (``datasets.<name>.plays``): what the report states before any verdict."""

    title: str
    summary: str
    imagenet_source: str
    plays: Mapping[str, str] = field(default_factory=dict)
    inference: str = ""  # config robustness.inference: which p-value of a correlation across epochs the verdicts read

    def paragraphs(self) -> list[str]:
        roles = (
            "; ".join(f"{dataset} plays {paper}" for dataset, paper in sorted(self.plays.items()))
            if self.plays
            else "no dataset names the paper's dataset it plays (config datasets.<name>.plays)"
        )
        return [
            f"Configuration: {self.title}",
            *([self.summary.strip()] if self.summary.strip() else []),
            f"The paper's ImageNet source is played by the source '{self.imagenet_source}'. Datasets: {roles}.",
            *([_INFERENCE_TEXT[self.inference]] if self.inference else []),
        ]


_INFERENCE_TEXT = {
    PARAMETRIC: "Correlations across epochs are judged by the paper's parametric p-values (Pearson, Bonferroni over "
    "the family); the permutation test that respects time series is shown beside them (config robustness.inference).",
    PERMUTATION: "Correlations across epochs are judged by the permutation test that respects time series (circular "
    "shifts and reversals of the accuracy series, family-wise by max-T); the paper's parametric p-values are shown "
    "beside them (config robustness.inference).",
}


@dataclass(frozen=True)
class ReportSection:
    """A titled table of the report; cells of ``status_column`` are coloured in HTML."""

    title: str
    table: pd.DataFrame
    intro: str = ""
    status_column: str | None = None


@dataclass(frozen=True)
class ClaimsReport:
    about: About
    tally: tuple[str, ...]
    sections: tuple[ReportSection, ...]

    def markdown(self) -> str:
        parts = [f"# {TITLE}", *self.about.paragraphs(), *self.tally]
        for section in self.sections:
            parts += [f"## {section.title}", *([section.intro] if section.intro else []), markdown_table(section.table)]
        return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"

    def html(self) -> str:
        from html import escape

        body = [f"<p>{escape(text)}</p>" for text in (*self.about.paragraphs(), *self.tally)]
        for section in self.sections:
            body.append(f"<h2>{escape(section.title)}</h2>")
            if section.intro:
                body.append(f"<p>{escape(section.intro)}</p>")
            body.append(html_table(section.table, status_column=section.status_column))
        return html_page(TITLE, "\n".join(body) + "\n", style=_VERDICT_STYLE)


_VERDICT_STYLE = """
td { max-width: 32em; }
td.status-holds { background: #d9f2d9; }
td.status-does-not-hold { background: #f8d7da; }
td.status-not-measured-by-this-config { background: #eeeeee; color: #555; }
td.status-true { background: #d9f2d9; }
td.status-false { background: #f8d7da; }
"""


def _tally(verdicts: pd.DataFrame, what: str) -> str:
    counts = verdicts["verdict"].value_counts()
    return f"{len(verdicts)} {what}: " + ", ".join(f"{v}: {int(counts.get(v, 0))}" for v in VERDICTS) + "."


def claims_report(verdicts: pd.DataFrame, about: About, sections: Sequence[ReportSection] = ()) -> ClaimsReport:
    """The report of :func:`evaluate_claims`'s verdicts: ``about``, the tally of the paper's
    claims and of those beyond it, one table per section of the paper, then ``sections``
    (tables from other analyses, e.g. controls), in order."""
    of_paper = verdicts[verdicts["section"] != BEYOND]
    tally = (
        _tally(of_paper, "claims of the paper"),
        _tally(verdicts[verdicts["section"] == BEYOND], "beyond the paper"),
    )
    claim_sections = tuple(
        ReportSection(title, rows.drop(columns="section"), status_column="verdict")
        for key, title in SECTIONS.items()
        if not (rows := verdicts[verdicts["section"] == key]).empty
    )
    return ClaimsReport(about, tally, claim_sections + tuple(sections))
