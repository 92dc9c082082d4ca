"""Every registered claim evaluated on a run's tables (:func:`evaluate_claims`), and the
claims report (:func:`claims_report`), Markdown and HTML.

The report opens with one screen: what the configuration is and which dataset plays which
of the paper's, the tallies (the paper's claims, those beyond it, the planted-effect
controls), then one row per claim grouped by the paper's section: its name, its verdict,
the decisive number of this run and the paper's value. The detail follows, one block per
claim (the paper's sentence, the statistic, the threshold, every setting's evidence, what
a failing claim's runs reached, the scale model's unmatched properties), then the other
sections (the controls). :meth:`ClaimsReport.landing` is the tallies and verdicts alone,
for the landing page of Snakemake's HTML report.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from ...tables import html_page, html_table, markdown_table
from ..matched_properties import NOT_MEASURED as PROPERTY_NOT_MEASURED
from ..matched_properties import SCALE_MODEL_COLUMN, UNMATCHED, beside_verdicts
from .evidence import PARAMETRIC, PERMUTATION, NotMeasured, StudyTables
from .registry import BEYOND, CLAIMS, FAILS, HOLDS, NOT_MEASURED, SECTIONS, VERDICTS, Claim, Finding

COLUMNS = [
    "claim",
    "section",
    "statement",
    "statistic",
    "threshold",
    "paper_value",
    "verdict",
    "summary",
    "evidence",
    "facts",
]
MAX_EVIDENCE_SETTINGS = 4  # settings spelled out in one evidence string
SUMMARY_CHARACTERS = 140  # the most characters of a summary's "this run" cell
TITLE = "Claims of the paper, checked on this run"


def _summarise(findings: list[Finding]) -> tuple[str, str, str]:
    """The verdict from every setting's outcome, the evidence (failing settings first, then
    unmeasured ones, then holding ones) and the summary (how many settings hold, and the
    first of them in that order, shortened: :func:`shortened`).

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
    unmeasured_tally = f", not measured in {len(unmeasured)}" if unmeasured else ""
    summary = shortened(ordered[0].evidence)
    if len(findings) > 1:
        first = "first failing" if failing else "first unmeasured" if unmeasured else "first"
        prefix = f"holds in {len(holding)} of {len(findings)} settings{unmeasured_tally}; {first}: "
        summary = prefix + shortened(ordered[0].evidence, SUMMARY_CHARACTERS - len(prefix))
    return verdict, f"holds in {len(holding)}/{len(findings)}{unmeasured_tally}: " + "; ".join(shown), summary


_LAYER_MAPPING = re.compile(r"\s*\(paper layers? [^()]* here\)")


def shortened(evidence: str, limit: int = SUMMARY_CHARACTERS) -> str:
    """One setting's evidence for the summary, at most ``limit`` characters: without the
    mapping of the paper's layer numbers onto this model ('(paper layers 7-12 = layers 2-4
    here)', in the detail), its '; '-separated parts while they fit, the first cut at a
    word if it alone does not; '…' where something was left out."""
    parts = _LAYER_MAPPING.sub("", evidence).split("; ")
    if len("; ".join(parts)) <= limit:
        return "; ".join(parts)
    kept = parts[0]
    if len(kept) > limit - 3:
        return kept[: kept.rfind(" ", 0, limit - 2)].rstrip(",;:") + " …"
    for part in parts[1:]:
        if len(kept) + 2 + len(part) > limit - 3:
            break
        kept += "; " + part
    return kept + "; …"


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
    and no setting fails); summary, the decisive setting's evidence in a line; facts,
    beside a failure, what its runs reached. With a ``matched_properties`` table, a column
    :data:`..matched_properties.SCALE_MODEL_COLUMN` names the unmatched properties that
    bear on each claim.
    """
    study = StudyTables(tables, imagenet_source, variant_optimizers, inference, identical_copy)
    records = []
    for claim in CLAIMS:
        facts = ""
        try:
            findings = claim.evaluate(study)
            if not findings:
                raise NotMeasured("no setting to evaluate")
            verdict, evidence, summary = _summarise(findings)
            facts = _failure_facts(claim, study, findings)
        except NotMeasured as missing:
            verdict, evidence, summary = NOT_MEASURED, str(missing), shortened(str(missing))
        prose = {name: getattr(claim, name) for name in ("statement", "statistic", "threshold", "paper_value")}
        records.append(
            dict(
                claim=claim.id,
                section=claim.section,
                **prose,
                verdict=verdict,
                summary=summary,
                evidence=evidence,
                facts=facts,
            )
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

    def opening(self) -> list[str]:
        """The configuration, its summary and the roles of its source and datasets."""
        return [
            f"Configuration: {self.title}",
            *([self.summary.strip()] if self.summary.strip() else []),
            self.roles(),
        ]

    def configuration(self) -> str:
        """The configuration's title and its summary, as one paragraph."""
        return " ".join([f"Configuration: {self.title.rstrip('.')}.", self.summary.strip()]).strip()

    def roles(self) -> str:
        """Which source plays the paper's ImageNet and which dataset plays which of the paper's."""
        roles = (
            "; ".join(f"{dataset} plays {paper}" for dataset, paper in sorted(self.plays.items()))
            if self.plays
            else "no dataset names the paper's dataset it plays (config datasets.<name>.plays)"
        )
        return f"The paper's ImageNet source is played by the source '{self.imagenet_source}'. Datasets: {roles}."

    def inference_text(self) -> str:
        """Which p-value of a correlation across epochs the verdicts read ('' if not given)."""
        return _INFERENCE_TEXT[self.inference] if self.inference else ""

    def paragraphs(self) -> list[str]:
        return [*self.opening(), *([self.inference_text()] if self.inference else [])]


_INFERENCE_TEXT = {
    PARAMETRIC: "Correlations across epochs are judged by the paper's parametric p-values (Pearson, Bonferroni over "
    "the family); the permutation test that respects time series is shown beside them (config robustness.inference).",
    PERMUTATION: "Correlations across epochs are judged by the permutation test that respects time series (circular "
    "shifts and reversals of the accuracy series, family-wise by max-T); the paper's parametric p-values are shown "
    "beside them (config robustness.inference).",
}


@dataclass(frozen=True)
class ReportSection:
    """A titled table of the report; cells of ``status_column`` are coloured in HTML.
    ``tally`` (e.g. '23 of 25 checks as constructed, 2 not') joins the report's tallies."""

    title: str
    table: pd.DataFrame
    intro: str = ""
    status_column: str | None = None
    tally: str = ""


#: The summary's columns: (heading, verdicts column or None for the claim's name).
SUMMARY_HEADINGS = ("claim", "verdict", "this run", "the paper", "unmatched properties")
#: The detail's fields of each claim: (label, verdicts column), in order; empty ones are left out.
DETAIL_FIELDS = (
    ("The paper", "statement"),
    ("Statistic", "statistic"),
    ("Threshold", "threshold"),
    ("The paper's value", "paper_value"),
    ("This run", "evidence"),
    ("What the failing settings' runs reached", "facts"),
    ("The scale model", SCALE_MODEL_COLUMN),
)
DETAIL_INTRO = (
    "Each claim in the paper's order: the paper's sentence, the statistic computed from this run's tables, the "
    "threshold it must pass (exactly as strong as the sentence; docs/claims.md gives every word's reading), the "
    "paper's value, then every setting's evidence (failing settings first), what a failing claim's runs reached "
    "and the properties of the paper's setting this configuration leaves unmatched that bear on the verdict."
)


def claim_name(claim_id: str) -> str:
    """A claim's id read as words: 'cka_divergence_peaks_early' -> 'CKA divergence peaks early'."""
    return " ".join({"cka": "CKA", "sgd": "SGD", "adam": "Adam"}.get(word, word) for word in claim_id.split("_"))


def unmatched_count(note: object) -> int:
    """How many properties a claim's scale-model note names as unmatched or not measured."""
    if not isinstance(note, str):
        return 0
    return len(re.findall(rf"\((?:{UNMATCHED}|{PROPERTY_NOT_MEASURED})\)", note))


def _status_class(value: object) -> str:
    """The class html_table gives a status cell: 'status-<value>'."""
    return "status-" + re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")


@dataclass(frozen=True)
class ClaimsReport:
    about: About
    verdicts: pd.DataFrame  # evaluate_claims' rows
    sections: tuple[ReportSection, ...] = ()

    # --- what the first screen shows --------------------------------------------------

    def tallies(self) -> list[str]:
        """The tallies: the paper's claims, those beyond it, and each other section's own."""
        lines = [
            _tally(self.verdicts[self.verdicts["section"] != BEYOND], "claims of the paper"),
            _tally(self.verdicts[self.verdicts["section"] == BEYOND], "claims beyond the paper"),
        ]
        return lines + [f"{section.title}: {section.tally}" for section in self.sections if section.tally]

    def summary_rows(self) -> list[tuple[str, list[pd.Series]]]:
        """(section title, its claims' rows) in the paper's order, sections without claims left out."""
        return [
            (title, [row for _, row in rows.iterrows()])
            for key, title in SECTIONS.items()
            if not (rows := self.verdicts[self.verdicts["section"] == key]).empty
        ]

    def _summary_cells(self, row: pd.Series) -> list[str]:
        unmatched = unmatched_count(row.get(SCALE_MODEL_COLUMN))
        notes = str(unmatched) if SCALE_MODEL_COLUMN in row.index else "no matched-properties table"
        return [claim_name(row["claim"]), row["verdict"], row["summary"], row["paper_value"], notes]

    # --- Markdown ---------------------------------------------------------------------

    def markdown(self) -> str:
        parts = [
            f"# {TITLE}",
            self.about.configuration(),
            self.about.roles(),
            "\n".join(f"- {line}" for line in self.tallies()),
        ]
        summary = []
        for title, rows in self.summary_rows():
            summary.append([f"**{title}**", *[""] * (len(SUMMARY_HEADINGS) - 1)])
            summary += [self._summary_cells(row) for row in rows]
        parts.append(markdown_table(pd.DataFrame(summary, columns=list(SUMMARY_HEADINGS))))
        parts += [f"## {_DETAIL_TITLE}", DETAIL_INTRO, *([self.about.inference_text()] if self.about.inference else [])]
        for title, rows in self.summary_rows():
            parts.append(f"### {title}")
            for row in rows:
                lines = [f"#### {claim_name(row['claim'])}: {row['verdict']}", "", f"`{row['claim']}`", ""]
                lines += [f"- **{label}:** {row[column]}" for label, column in self._fields(row)]
                parts.append("\n".join(lines))
        for section in self.sections:
            parts += [f"## {section.title}", *([section.intro] if section.intro else []), markdown_table(section.table)]
        return "\n\n".join(part.rstrip("\n") for part in parts) + "\n"

    @staticmethod
    def _fields(row: pd.Series) -> list[tuple[str, str]]:
        return [
            (label, column)
            for label, column in DETAIL_FIELDS
            if column in row.index and isinstance(row[column], str) and row[column]
        ]

    # --- HTML -------------------------------------------------------------------------

    def html(self) -> str:
        body = [
            f"<p>{escape(self.about.configuration())}</p>",
            f"<p>{escape(self.about.roles())}</p>",
            _html_list(self.tallies()),
            self._html_summary(),
            f"<h2>{escape(_DETAIL_TITLE)}</h2>",
            f"<p>{escape(DETAIL_INTRO)}</p>",
            *([f"<p>{escape(self.about.inference_text())}</p>"] if self.about.inference else []),
        ]
        for title, rows in self.summary_rows():
            body.append(f"<h3>{escape(title)}</h3>")
            for row in rows:
                fields = "".join(
                    f"<dt>{escape(label)}</dt><dd>{escape(str(row[column]))}</dd>"
                    for label, column in self._fields(row)
                )
                body.append(
                    f'<div class="claim" id="{escape(row["claim"])}"><h4>{escape(claim_name(row["claim"]))} '
                    f'<span class="verdict {_status_class(row["verdict"])}">{escape(row["verdict"])}</span> '
                    f"<code>{escape(row['claim'])}</code></h4><dl>{fields}</dl></div>"
                )
        for section in self.sections:
            body.append(f"<h2>{escape(section.title)}</h2>")
            if section.intro:
                body.append(f"<p>{escape(section.intro)}</p>")
            body.append(html_table(section.table, status_column=section.status_column))
        return html_page(TITLE, "\n".join(body) + "\n", style=_REPORT_STYLE)

    def _html_summary(self) -> str:
        head = "".join(f"<th>{escape(heading)}</th>" for heading in SUMMARY_HEADINGS)
        rows = []
        for title, claims in self.summary_rows():
            rows.append(f'<tr class="group"><th colspan="{len(SUMMARY_HEADINGS)}">{escape(title)}</th></tr>')
            for row in claims:
                name, verdict, *rest = self._summary_cells(row)
                cells = [
                    f'<td><a href="#{escape(row["claim"])}">{escape(name)}</a></td>',
                    f'<td class="{_status_class(verdict)}">{escape(verdict)}</td>',
                    *(f"<td>{escape(cell)}</td>" for cell in rest),
                ]
                rows.append("<tr>" + "".join(cells) + "</tr>")
        widths = "".join(f'<col class="{c}">' for c in ("claim", "verdict", "run", "paper", "unmatched"))
        return (
            f'<table class="summary">\n<colgroup>{widths}</colgroup>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(rows)
            + "\n</tbody>\n</table>\n"
        )

    def landing(self) -> str:
        """The tallies and every claim's verdict as an HTML fragment for the landing page of
        Snakemake's report (no stylesheet: its colours are inline, so that nothing of it
        restyles the report around it)."""
        rows = []
        for title, claims in self.summary_rows():
            rows.append(f'<tr><th colspan="2">{escape(title)}</th></tr>')
            rows += [
                f"<tr><td>{escape(claim_name(row['claim']))}</td>"
                f'<td style="background:{_VERDICT_COLOURS[row["verdict"]]}">{escape(row["verdict"])}</td></tr>'
                for row in claims
            ]
        return (
            f'<div class="claims-summary">\n<p><strong>{escape(TITLE)}</strong></p>\n{_html_list(self.tallies())}'
            "<table>\n<thead><tr><th>claim</th><th>verdict</th></tr></thead>\n<tbody>\n"
            + "\n".join(rows)
            + "\n</tbody>\n</table>\n</div>\n"
        )


_DETAIL_TITLE = "The claims in detail"
_VERDICT_COLOURS = {HOLDS: "#d9f2d9", FAILS: "#f8d7da", NOT_MEASURED: "#eeeeee"}
_REPORT_STYLE = f"""
table.summary {{ width: 100%; table-layout: fixed; box-sizing: border-box; }}
dd {{ overflow-wrap: anywhere; }}
table.summary col.claim {{ width: 17%; }}
table.summary col.verdict {{ width: 11%; }}
table.summary col.run {{ width: 40%; }}
table.summary col.paper {{ width: 21%; }}
table.summary col.unmatched {{ width: 11%; }}
table.summary tr.group th {{ text-align: left; background: #e4e4f0; }}
table.summary a {{ color: inherit; }}
div.claim {{ border-top: 1px solid #ccc; padding: 0.2em 0 0.6em; }}
div.claim h4 {{ margin: 0.4em 0; }}
div.claim code {{ font-weight: normal; color: #666; font-size: 90%; }}
div.claim dl {{ display: grid; grid-template-columns: 12em 1fr; gap: 0.2em 1em; margin: 0; }}
div.claim dt {{ font-weight: bold; }}
div.claim dd {{ margin: 0; }}
span.verdict {{ font-weight: normal; padding: 0 0.4em; }}
.status-holds {{ background: {_VERDICT_COLOURS[HOLDS]}; }}
.status-does-not-hold {{ background: {_VERDICT_COLOURS[FAILS]}; }}
.status-not-measured-by-this-config {{ background: {_VERDICT_COLOURS[NOT_MEASURED]}; color: #555; }}
td.status-true {{ background: #d9f2d9; }}
td.status-false {{ background: #f8d7da; }}
"""


def _html_list(lines: Sequence[str]) -> str:
    return "<ul>\n" + "".join(f"<li>{escape(line)}</li>\n" for line in lines) + "</ul>\n"


def _tally(verdicts: pd.DataFrame, what: str) -> str:
    counts = verdicts["verdict"].value_counts()
    return f"{len(verdicts)} {what}: " + ", ".join(f"{v}: {int(counts.get(v, 0))}" for v in VERDICTS)


def claims_report(verdicts: pd.DataFrame, about: About, sections: Sequence[ReportSection] = ()) -> ClaimsReport:
    """The report of :func:`evaluate_claims`'s verdicts: ``about``, the tallies, one summary
    row per claim grouped by the paper's section, each claim in detail, then ``sections``
    (tables from other analyses, e.g. controls), in order."""
    return ClaimsReport(about, verdicts, tuple(sections))
