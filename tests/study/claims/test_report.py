"""Evaluating every claim, the facts beside a failure, and the report: its first screen (the
configuration, the tallies, one summary row per claim), the detail below, the landing-page
fragment, and evidence that never reads as an error."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study import claims, controls
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED, VERDICTS, About
from finetune_invariance.study.claims.report import SUMMARY_CHARACTERS, shortened
from finetune_invariance.study.matched_properties import beside_verdicts

from .complete import SETTINGS, complete_study
from .handmade import IMAGENET, IMAGENET_CLS, IMAGENET_REC, flat, profiles, run, verdict_row

ABOUT = About(
    title="scale model of the paper",
    summary="Tiny ViTs on generated data; read the verdicts as a rehearsal.",
    imagenet_source="textures",
    plays={"shapes": "CIFAR100", "digits": "CIFAR10"},
)


def test_no_tables_leaves_every_claim_unmeasured_with_a_reason():
    df = claims.evaluate_claims({}, IMAGENET)
    assert list(df.columns) == claims.COLUMNS
    assert list(df["claim"]) == [c.id for c in claims.CLAIMS]
    assert (df["verdict"] == NOT_MEASURED).all()
    reasons = df["evidence"]
    assert (reasons.str.len() > 0).all() and not reasons.str.startswith("holds in").any() and (df["facts"] == "").all()
    assert reasons.str.startswith(("no ", "the variants' optimizers were not given")).all()
    assert (df["summary"] == reasons).all()  # short reasons are their own summary


def test_an_unknown_table_is_an_error_naming_it():
    with pytest.raises(ValueError, match="layer_metricz"):
        claims.evaluate_claims({"layer_metricz": None}, IMAGENET)


def test_a_failing_claim_shows_what_its_runs_reached(static_tables):
    failing = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), flat(0.2)), IMAGENET_REC: profiles(flat(0.1), flat(0.2))}
    )
    row = verdict_row(failing, "reconstruction_learns_more")
    assert row["verdict"] == FAILS
    assert row["facts"] == (
        "imagenet → cifar10, classification: test accuracy 0.900 at epoch 1 of 1; "
        "imagenet → cifar10, reconstruction: test L1 0.050 at epoch 1 of 1"
    )
    holding = static_tables(
        {IMAGENET_CLS: profiles(flat(0.3), flat(0.2)), IMAGENET_REC: profiles(flat(0.5), flat(0.2))}
    )
    assert verdict_row(holding, "reconstruction_learns_more")[["verdict", "facts"]].tolist() == [HOLDS, ""]


def test_a_failure_stays_a_failure_without_the_facts(make_named_correlations):
    weak = {"named_hypotheses": make_named_correlations({"headline": 0.4})}  # no table1_accuracy to explain it
    assert verdict_row(weak, "std_forgetting_predicts_robustness")[["verdict", "facts"]].tolist() == [FAILS, ""]


# --- the summary line of a claim ----------------------------------------------------------------


def test_a_summary_drops_the_layer_mapping_and_keeps_the_parts_that_fit():
    evidence = "run: (paper layers 7-12 = layers 2-4 here) learning 0.4±0.1; forgetting 0.3±0.1; cka 0.1±0.0"
    assert shortened(evidence) == "run: learning 0.4±0.1; forgetting 0.3±0.1; cka 0.1±0.0"
    assert shortened(evidence, 46) == "run: learning 0.4±0.1; forgetting 0.3±0.1; …"
    long = "word " * 60
    cut = shortened(long, 50)
    assert cut.endswith(" …") and len(cut) <= 50 and cut[:-2] == ("word " * 9).strip()  # cut at a word
    for limit in range(20, 100, 7):  # never longer than the limit, whatever the parts
        for text in (evidence, long, "a; " * 40, "abc " * 9 + "; " + "d" * 30):
            assert len(shortened(text, limit)) <= limit


def test_a_summary_of_several_settings_counts_them_and_shows_the_first_failing(make_learning_forgetting_correlation):
    table = make_learning_forgetting_correlation(
        {IMAGENET_CLS: (0.97, 1e-6), IMAGENET_REC: (0.3, 0.2), run("scratch"): (0.9, 1e-4)}
    )
    row = verdict_row({"learning_forgetting_correlation": table}, "learning_forgetting_correlated")
    assert row["verdict"] == FAILS
    assert row["summary"].startswith(
        "holds in 2 of 3 settings; first failing: imagenet → cifar10, reconstruction: r = 0.300"
    )
    assert len(row["summary"]) <= SUMMARY_CHARACTERS


# --- the report ---------------------------------------------------------------------------------


def verdicts() -> pd.DataFrame:
    """Every claim with a verdict chosen here (cycling through the three) and a summary naming it."""
    df = claims.evaluate_claims({}, IMAGENET)
    df["verdict"] = [VERDICTS[i % 3] for i in range(len(df))]
    df["summary"] = [f"the number of {claim}" for claim in df["claim"]]
    return df


def control_checks(as_expected: list[bool], findings: int = 1) -> pd.DataFrame:
    """A controls table: one check per entry of ``as_expected``, and ``findings`` findings."""
    rows = [
        {"control": f"c{i}", "check": "found", "kind": "check", "as_expected": ok} for i, ok in enumerate(as_expected)
    ]
    rows += [{"control": "fwe", "check": "promise", "kind": "finding", "as_expected": False}] * findings
    df = pd.DataFrame(rows)
    return df.assign(statistic="s", threshold="t", value=0.1, found=df["as_expected"], expected=True, evidence="e")


CONTROLS = controls.report_section(control_checks([True, False, True, True, False]))


def expected_tallies(df: pd.DataFrame) -> list[str]:
    """The tally lines, counted here claim by claim."""
    lines = []
    for what, ours in (("claims of the paper", True), ("claims beyond the paper", False)):
        mine = [v for v, c in zip(df["verdict"], claims.CLAIMS) if c.of_the_paper == ours]
        counts = ", ".join(f"{v}: {sum(x == v for x in mine)}" for v in (HOLDS, FAILS, NOT_MEASURED))
        lines.append(f"{len(mine)} {what}: {counts}")
    return lines + [f"{controls.TITLE}: 3 of 5 checks as constructed, 2 not"]


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of a page, as rows of cells (the separator line dropped)."""
    found, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                found.append(current)
            if not re.fullmatch(r"\|(-+:?\|)+", line):
                current.append([cell.strip() for cell in line.strip("|").split(" | ")])
        else:
            current = None
    return found


def test_the_markdown_report_opens_with_the_configuration_then_the_tallies():
    df = verdicts()
    text = claims.claims_report(df, ABOUT, [CONTROLS]).markdown()
    paragraphs = text.split("\n\n")
    assert paragraphs[:4] == [
        "# Claims of the paper, checked on this run",
        "Configuration: scale model of the paper. Tiny ViTs on generated data; read the verdicts as a rehearsal.",
        "The paper's ImageNet source is played by the source 'textures'. Datasets: digits plays CIFAR10; shapes plays CIFAR100.",
        "\n".join(f"- {line}" for line in expected_tallies(df)),
    ]
    assert paragraphs[4].startswith("| claim | verdict | this run | the paper |")  # then the summary


def test_the_summary_has_one_row_per_claim_grouped_by_the_papers_sections():
    df = verdicts()
    summary = markdown_tables(claims.claims_report(df, ABOUT, [CONTROLS]).markdown())[0]
    assert summary[0] == ["claim", "verdict", "this run", "the paper", "unmatched properties"]
    groups = [row[0] for row in summary[1:] if row[1] == ""]
    rows = [row for row in summary[1:] if row[1] != ""]
    assert groups == [f"**{title}**" for title in claims.SECTIONS.values()]  # every section has claims
    assert [row[0].lower().replace(" ", "_") for row in rows] == [c.id for c in claims.CLAIMS]
    assert [row[1] for row in rows] == list(df["verdict"])
    assert [row[2] for row in rows] == [f"the number of {c.id}" for c in claims.CLAIMS]
    assert [row[3] for row in rows] == [c.paper_value for c in claims.CLAIMS]
    # grouped: each claim's row below its own section's title
    section_of_row, current = [], None
    for row in summary[1:]:
        if row[1] == "":
            current = row[0].strip("*")
        else:
            section_of_row.append(current)
    assert section_of_row == [claims.SECTIONS[c.section] for c in claims.CLAIMS]


def test_the_detail_follows_each_claim_stacked_then_the_other_sections():
    df = verdicts()
    text = claims.claims_report(df, ABOUT, [CONTROLS]).markdown()
    detail = text[text.index("## The claims in detail") :]
    for claim in claims.CLAIMS:
        block = detail[detail.index(f"`{claim.id}`") :].split("\n#", 1)[0]
        assert f"- **The paper:** {claim.statement}" in block and f"- **Threshold:** {claim.threshold}" in block
    assert len(markdown_tables(detail)) == 1  # the controls' table only: no wide table of claims
    assert detail.index("### Section 4.1") < detail.index(f"## {controls.TITLE}")


def test_an_unmatched_property_count_beside_each_verdict():
    matched = pd.DataFrame(
        {
            "property": ["a", "b", "c", "d"],
            "status": ["unmatched", "not measured", "matched", "unmatched"],
            "bears_on": ["4.4", "reconstruction_learns_more, 4.4", "4.4", "4.1"],
            "calibrates": ["", "", "", ""],
        }
    )
    df = beside_verdicts(verdicts(), matched)
    summary = markdown_tables(claims.claims_report(df, ABOUT).markdown())[0]
    counts = {row[0].lower().replace(" ", "_"): row[4] for row in summary[1:] if row[1]}
    assert counts["reconstruction_learns_more"] == "2"  # b (its id) and d (its section 4.1)
    assert counts["std_forgetting_predicts_robustness"] == "2"  # a and b; c is matched
    assert counts["learning_forgetting_correlated"] == "0"


class Page(HTMLParser):
    """The cells of every <table> of a page with their classes and styles, and the items of lists."""

    def __init__(self):
        super().__init__()
        self.tables, self.classes, self.styles, self.items, self.table_classes = [], [], [], [], []
        self._cell = self._item = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
            self.table_classes.append(attrs.get("class"))
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
            self.classes.append(attrs.get("class"))
            self.styles.append(attrs.get("style"))
        elif tag == "li":
            self._item = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._item is not None:
            self._item += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None
        elif tag == "li":
            self.items.append(self._item)
            self._item = None


def parsed(page: str) -> Page:
    result = Page()
    result.feed(page)
    return result


def test_the_html_report_shows_the_summary_first_in_a_table_that_wraps():
    df = verdicts()
    page = claims.claims_report(df, ABOUT, [CONTROLS]).html()
    assert page.index("scale model of the paper") < page.index("claims of the paper:") < page.index("<table")
    assert "src=" not in page and "<script" not in page and "http" not in page  # self-contained
    assert set(re.findall(r'href="([^"]*)"', page)) == {f"#{c.id}" for c in claims.CLAIMS}  # links to the detail
    html = parsed(page)
    assert html.items == expected_tallies(df)
    assert html.table_classes[0] == "summary"
    assert (
        "table.summary { width: 100%; table-layout: fixed; box-sizing: border-box; }" in page
    )  # the table fits the frame's width
    assert re.search(r"th, td \{[^}]*overflow-wrap: anywhere", page)  # and a long cell wraps
    summary = html.tables[0]
    rows = [row for row in summary[1:] if len(row) > 1]
    assert [row[1] for row in rows] == list(df["verdict"])
    assert len(rows) == len(claims.CLAIMS)
    # the detail is stacked, not a table: the summary and the controls are the page's tables
    assert len(html.tables) == 2
    assert html.tables[1][0] == list(CONTROLS.table.columns) and len(html.tables[1]) == len(CONTROLS.table) + 1
    assert {"status-holds", "status-does-not-hold", "status-not-measured-by-this-config", "status-false"} <= set(
        html.classes
    )


def test_the_landing_fragment_holds_the_tallies_and_every_verdict_without_a_stylesheet():
    df = verdicts()
    fragment = claims.claims_report(df, ABOUT, [CONTROLS]).landing()
    for tag in ("<style", "<html", "<body", "<head", "<script", 'class="status'):
        assert tag not in fragment  # nothing that would restyle the report around it
    html = parsed(fragment)
    assert html.items == expected_tallies(df)
    (table,) = html.tables
    rows = [row for row in table[1:] if len(row) == 2]
    assert [row[0].lower().replace(" ", "_") for row in rows] == [c.id for c in claims.CLAIMS]
    assert [row[1] for row in rows] == list(df["verdict"])
    colours = [style for style in html.styles if style]
    assert len(colours) == len(claims.CLAIMS) and len(set(colours)) == 3  # one colour per verdict


PLACEHOLDERS = {
    "nan": re.compile(r"\bnan\b", re.IGNORECASE),
    "a dash for a missing value": re.compile(r"–\)"),
    "a p-value bound of 1": re.compile(r"p <= 1(?![\d.e])"),
    "a range written with ..": re.compile(r"\d\.\.\d"),
}


def degenerate_study() -> dict[str, pd.DataFrame]:
    """The complete study with one seed (every seed sd undefined), undefined correlations,
    no paper values and the spread's pick on the best clean accuracy's epoch (a tie)."""
    tables = complete_study(seeds=(0,))
    undefined = dict(r=np.nan, p_value=np.nan, p_bonferroni=np.nan, p_permutation=np.nan, p_permutation_fwer=np.nan)
    tables["named_hypotheses"] = tables["named_hypotheses"].assign(**undefined, paper_r=np.nan)
    tables["learning_forgetting_correlation"] = tables["learning_forgetting_correlation"].assign(
        r=np.nan, paper_r=np.nan
    )
    early = tables["early_epoch_correlation"]
    tables["early_epoch_correlation"] = early.assign(r=np.where(early["last_epoch"] == 10, np.nan, early["r"]))
    picks = tables["checkpoint_picks"]
    clean_epoch = picks.loc[picks["rule"] == "best_clean_accuracy", "epoch"].iloc[0]
    tables["checkpoint_picks"] = picks.assign(epoch=clean_epoch)
    return tables


@pytest.mark.parametrize("study", [complete_study, degenerate_study])
def test_no_evidence_reads_as_an_error_and_no_summary_cell_is_a_paragraph(study):
    df = claims.evaluate_claims(study(), **SETTINGS)
    page = claims.claims_report(df, ABOUT, [CONTROLS])
    texts = {"markdown": page.markdown(), "html": page.html(), "landing": page.landing()}
    summary = markdown_tables(texts["markdown"])[0]
    assert max(len(cell) for row in summary for cell in row) <= SUMMARY_CHARACTERS  # no paragraph on the first screen
    for name, pattern in PLACEHOLDERS.items():
        for where, text in texts.items():
            assert not pattern.search(text), f"{name} in the {where}: {pattern.search(text)}"
    if study is degenerate_study:  # the cases that used to print a placeholder were reached
        evidence = " ".join(df["evidence"])
        for said in (
            "(one seed: no sd)",
            "r = undefined",
            "the paper gives no r for this setting",
            "not higher: McNemar's one-sided p >= 0.5",
        ):
            assert said in evidence, said


def test_a_config_without_roles_says_so():
    about = About("a study configuration", "", "imagenet")
    assert about.paragraphs() == [
        "Configuration: a study configuration",
        "The paper's ImageNet source is played by the source 'imagenet'. Datasets: no dataset names the paper's "
        "dataset it plays (config datasets.<name>.plays).",
    ]
    assert about.configuration() == "Configuration: a study configuration."


def test_claims_do_not_import_the_plotting_stack():
    code = "import sys, finetune_invariance.study.claims; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
