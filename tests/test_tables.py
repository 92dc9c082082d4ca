"""Table schemas, validated parquet I/O and Markdown / HTML rendering."""

import numpy as np
import pandas as pd

from finetune_invariance import tables


def test_markdown_table_formats_and_aligns():
    df = pd.DataFrame({"model": ["a|b", "c"], "accuracy": [0.97123, np.nan], "epochs": [100, 20]})
    text = tables.markdown_table(df, floatfmt=".2f")
    assert text.splitlines() == [
        "| model | accuracy | epochs |",
        "|---|---:|---:|",
        "| a\\|b | 0.97 | 100 |",
        "| c | – | 20 |",
    ]


def test_html_table_escapes_formats_and_marks_statuses():
    df = pd.DataFrame({"model": ["<a&b>", "c"], "accuracy": [0.97123, np.nan], "verdict": ["holds", "does not hold"]})
    assert tables.html_table(df, floatfmt=".2f", status_column="verdict").splitlines() == [
        "<table>",
        "<thead><tr><th>model</th><th>accuracy</th><th>verdict</th></tr></thead>",
        "<tbody>",
        '<tr><td>&lt;a&amp;b&gt;</td><td class="number">0.97</td><td class="status-holds">holds</td></tr>',
        '<tr><td>c</td><td class="number">–</td><td class="status-does-not-hold">does not hold</td></tr>',
        "</tbody>",
        "</table>",
    ]


def test_markdown_and_html_written_side_by_side(tmp_path):
    df = pd.DataFrame({"run": ["x"], "r": [0.5]})
    tables.write_markdown_and_html(df, tmp_path / "t.md", tmp_path / "t.html", "Title & more")
    assert (tmp_path / "t.md").read_text() == tables.markdown_table(df)
    page = (tmp_path / "t.html").read_text()
    assert "<h1>Title &amp; more</h1>" in page and tables.html_table(df) in page and "href=" not in page
