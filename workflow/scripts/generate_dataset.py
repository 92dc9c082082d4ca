"""Write one generated dataset of the miniature study (finetune_invariance.study.synthetic)."""

from finetune_invariance.study.warm import run_warm

run_warm(__real_file__)  # in the workflow's warm interpreter, if one serves it (config warm_interpreter)

from pathlib import Path

from finetune_invariance.study import synthetic
from finetune_invariance.study.runtime import logged_to

with logged_to(snakemake.log[0]):
    root = Path(snakemake.output.train).parent.parent
    synthetic.generate(snakemake.wildcards.dataset, root=root, **snakemake.params.sizes)
