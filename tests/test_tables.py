"""Table schemas, validated parquet I/O and Markdown rendering."""

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
