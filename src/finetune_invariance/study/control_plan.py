"""The planted-effect controls a study runs (beyond the paper): their kinds and where their
changes sit in a model of a given depth. :mod:`.controls` builds, measures and checks them;
this module is the plan alone, which the config check and the workflow read at parse time
(no torch)."""

from __future__ import annotations

from dataclasses import dataclass

IDENTICAL, REINITIALISED, COMPRESSED, EXPANDED = "identical_copy", "reinitialised", "compressed", "expanded"
PLANTED_ROBUSTNESS, SHUFFLED_ROBUSTNESS = "planted_robustness", "shuffled_robustness"
MODEL_CONTROLS = (IDENTICAL, REINITIALISED, COMPRESSED, EXPANDED)


@dataclass(frozen=True)
class ControlSpec:
    """One model control: its kind, the block where a re-initialisation starts and the
    number of layers a compression or expansion moves invariances by."""

    kind: str
    block: int
    shift: int

    def __post_init__(self) -> None:
        if self.kind not in MODEL_CONTROLS:
            raise ValueError(f"control kind must be one of {MODEL_CONTROLS}, got {self.kind!r}")

    @property
    def name(self) -> str:
        return self.kind

    def build(self, vit, seed: int = 0):
        """The :class:`finetune_invariance.controls.Control` pair of a pretrained timm ViT."""
        from .. import controls as planted  # torch and timm: not at the workflow's parse time

        if self.kind == IDENTICAL:
            return planted.identical_copy(vit)
        if self.kind == REINITIALISED:
            return planted.reinitialised_from(vit, self.block, seed=seed)
        if self.kind == COMPRESSED:
            return planted.compressed(vit, self.block, self.shift, seed=seed)
        return planted.expanded(vit, self.block, self.shift, seed=seed)


def control_specs(configured_block: int | None, configured_shift: int | None, depth: int) -> list[ControlSpec]:
    """The four model controls of a model of ``depth`` blocks: config ``controls.block``, the
    first rewritten block (by default depth // 4: 3 of 12), and ``controls.shift``, the
    layers compression and expansion move invariances by (by default depth // 3: 4 of 12),
    so that each moves depth - block - shift layers (5 of 12, over the claims' third)."""
    block = max(1, depth // 4) if configured_block is None else configured_block
    shift = max(1, depth // 3) if configured_shift is None else configured_shift
    if not 1 <= block < depth:
        raise ValueError(f"config key 'controls.block': {block} must be a block of the model, 1..{depth - 1}")
    if not 1 <= shift <= depth - 1 - block:
        raise ValueError(
            f"config key 'controls.shift': {shift} layers from block {block} do not fit a model of depth {depth} "
            f"(1..{depth - 1 - block})"
        )
    return [ControlSpec(kind, block, shift) for kind in MODEL_CONTROLS]
