"""finetune_invariance: what finetuning does to a Vision Transformer's invariances.

Metrics (METHOD.md): linear CKA, representation inversion, STIR, forgetting, learning,
CKA divergence and the invariance-flow matrix; plus the training, robustness and figure
code of the Snakemake study in this repository.
"""

__version__ = "0.1.0"
