"""Evaluating every claim, the facts beside a failure, and the report (Markdown, HTML)
that opens with what the configuration is."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser

import pandas as pd
import pytest

from finetune_invariance.study import claims
from finetune_invariance.study.claims import FAILS, HOLDS, NOT_MEASURED, About, ReportSection

from .handmade import IMAGENET, IMAGENET_CLS, IMAGENET_REC, flat, profiles, verdict_row

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


def verdicts() -> pd.DataFrame:
    df = claims.evaluate_claims({}, IMAGENET)
    df.loc[0, "verdict"], df.loc[1, "verdict"] = HOLDS, FAILS
    return df


CONTROLS = ReportSection(
    "Planted-effect controls",
    pd.DataFrame({"control": ["shuffled layers"], "found": ["not found"]}),
    "Effects planted in synthetic tables.",
    "found",
)


def test_the_markdown_report_opens_with_the_configuration_then_the_tally():
    text = claims.claims_report(verdicts(), ABOUT, [CONTROLS]).markdown()
    paragraphs = text.split("\n\n")
    n = sum(c.of_the_paper for c in claims.CLAIMS)
    beyond = len(claims.CLAIMS) - n
    assert paragraphs[:6] == [
        "# Claims of the paper, checked on this run",
        "Configuration: scale model of the paper",
        "Tiny ViTs on generated data; read the verdicts as a rehearsal.",
        "The paper's ImageNet source is played by the source 'textures'. Datasets: digits plays CIFAR10; shapes plays CIFAR100.",
        f"{n} claims of the paper: holds: 1, does not hold: 1, not measured by this config: {n - 2}.",
        f"{beyond} beyond the paper: holds: 0, does not hold: 0, not measured by this config: {beyond}.",
    ]
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [f"## {title}" for title in claims.SECTIONS.values()] + ["## Planted-effect controls"]
    assert "| claim | statement | statistic | threshold | paper_value | verdict | evidence | facts |" in text
    assert text.endswith(
        "Effects planted in synthetic tables.\n\n| control | found |\n|---|---|\n| shuffled layers | not found |\n"
    )


class Tables(HTMLParser):
    """The cells of every <table> of a page, and the class of each cell."""

    def __init__(self):
        super().__init__()
        self.tables, self.classes, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = ""
            self.classes.append(dict(attrs).get("class"))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self._cell)
            self._cell = None


def test_the_html_report_shows_every_claim_in_tables_with_the_configuration_first():
    df = verdicts()
    page = claims.claims_report(df, ABOUT, [CONTROLS]).html()
    assert page.index("scale model of the paper") < page.index("claims of the paper:") < page.index("<table>")
    assert "src=" not in page and "href=" not in page and "<script" not in page  # self-contained
    parsed = Tables()
    parsed.feed(page)
    shown = [row for table in parsed.tables[:-1] for row in table[1:]]  # each section's rows, headers dropped
    expected = df.drop(columns="section").astype(str).values.tolist()
    assert shown == expected
    assert parsed.tables[-1] == [["control", "found"], ["shuffled layers", "not found"]]
    assert {"status-holds", "status-does-not-hold", "status-not-measured-by-this-config", "status-not-found"} <= set(
        parsed.classes
    )


def test_a_config_without_roles_says_so():
    about = About("a study configuration", "", "imagenet")
    assert about.paragraphs() == [
        "Configuration: a study configuration",
        "The paper's ImageNet source is played by the source 'imagenet'. Datasets: no dataset names the paper's "
        "dataset it plays (config datasets.<name>.plays).",
    ]


def test_claims_do_not_import_the_plotting_stack():
    code = "import sys, finetune_invariance.study.claims; print(sorted(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
