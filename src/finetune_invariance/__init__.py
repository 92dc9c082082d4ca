"""finetune_invariance: what finetuning does to a Vision Transformer's invariances.

Two wings. The metrics library (this package's top level) is what a researcher imports
for their own models; the study (:mod:`finetune_invariance.study`) is the Snakemake
study of the paper built on it. The library never imports the study.

The library, each module importing only modules listed before it:

- :mod:`.atomic`: atomic file writes;
- :mod:`.tables`: table schemas, validated parquet I/O, Markdown; the library's tables;
- :mod:`.preprocessing`: the [0, 1] clamp and input normalisation inside every model;
- :mod:`.layers`: a model's layer representations (docs/method.md "Models and layers");
- :mod:`.cka`: linear CKA and minibatch CKA (docs/method.md "Linear CKA");
- :mod:`.inversion_settings`: the inversion recipe's defaults and precisions, without torch;
- :mod:`.inversion`: representation inversion, the STIR recipe;
- :mod:`.inversion_cache`: inversions kept on disk, keyed by the model's weights, the images, the seed and the recipe;
- :mod:`.stir`: STIR matrices and the per-pair similarity table (docs/method.md "STIR");
- :mod:`.finetuning_metrics`: forgetting, learning, CKA divergence, invariance flow;
- :mod:`.monitor`: forgetting of a model in training, from the pretrained model's stored inversions;
- :mod:`.controls`: planted-effect control pairs, whose answer is known by construction;
- :mod:`.checkpoint_format`: the names of the study's checkpoint format, without torch or timm;
- :mod:`.model_loading`: a model from a timm name, a weights file or a Hugging Face ``transformers`` ViT;
- :mod:`.image_loading`: images from a folder of image files or an array file, at a model's input size;
- :mod:`.plots`: the library's figures (layer profiles with seed bands, the flow heatmap); the study draws with them;
- :mod:`.cli`: the ``finetune-invariance`` command line.
"""

__version__ = "0.1.0"
