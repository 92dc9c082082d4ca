"""The study of the paper, built on the metrics library: data, models, training,
robustness, the analyses of the paper's figures and tables, and the claims report.

The Snakemake workflow (``Snakefile``, ``workflow/``) wires files to these modules.
"""
