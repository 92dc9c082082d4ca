"""The names of the study's checkpoint format, without torch or timm.

A checkpoint the study writes (``finetune_invariance.study.checkpoints``) is a safetensors
file whose header entry :data:`HEADER_KEY` holds JSON describing the model (its format
version :data:`FORMAT_VERSION`), and whose tensors are the study model's state dict: the
ViT's under :data:`BACKBONE_PREFIX`, the input normalisation's under
:data:`NORMALIZATION_PREFIX`. The study writes it and :mod:`.model_loading` reads it for the
command line; both take the names from here, so that a job reading a checkpoint pays for
no timm import and the library imports nothing of the study.
"""

from __future__ import annotations

#: The safetensors header entry that describes a checkpoint's model.
HEADER_KEY = "finetune_invariance"
#: The version of that entry's layout; a reader refuses another.
FORMAT_VERSION = 1
#: Where the ViT's tensors and the input normalisation's are (the study model's ``backbone``
#: and ``normalization``).
BACKBONE_PREFIX, NORMALIZATION_PREFIX = "backbone.", "normalization."
