"""The planted-effect controls a study runs (beyond the paper): their kinds and where their
changes sit in a model of a given depth. :mod:`.controls` builds, measures and checks them;
this module is the plan alone, which the config check and the workflow read at parse time
(no torch)."""

from __future__ import annotations

from dataclasses import dataclass

from .flow_statistics import ABOVE, BELOW

IDENTICAL, REINITIALISED, COMPRESSED, EXPANDED = "identical_copy", "reinitialised", "compressed", "expanded"
LINEARLY_MAPPED, COLLAPSED = "linearly_mapped", "collapsed"
PLANTED_ROBUSTNESS, SHUFFLED_ROBUSTNESS = "planted_robustness", "shuffled_robustness"
#: The family-wise error of the paper's test on the robustness run's own series: a finding
#: row of the controls table, not a check.
FAMILY_WISE_ERROR = "family_wise_error"
MODEL_CONTROLS = (IDENTICAL, REINITIALISED, COMPRESSED, EXPANDED, LINEARLY_MAPPED, COLLAPSED)
#: Models a control_stir job inverts (one seed): the rewritten model (the localised change's
#: finetuned side, compression's finetuned and expansion's pretrained side), its copy shifted by
#: identity blocks (the other side of both), the linear map and the collapse; the source's
#: own inversions are stored (the identical copy and the maps' pretrained side).
INVERTED_MODELS = 4
#: Models in the planted robustness series (the dynamics runs' 20 epochs).
PLANTED_EPOCHS = 20


@dataclass(frozen=True)
class ControlSpec:
    """One model control: its kind, the block k where its change starts (the rewriting, the
    identity blocks, the first mapped layer; the collapse ends just before it) and the
    number of layers s a compression or expansion moves invariances by."""

    kind: str
    block: int
    shift: int

    def __post_init__(self) -> None:
        if self.kind not in MODEL_CONTROLS:
            raise ValueError(f"control kind must be one of {MODEL_CONTROLS}, got {self.kind!r}")

    @property
    def name(self) -> str:
        return self.kind

    @property
    def flow_triangle(self) -> str:
        """Where a compression ('below' the diagonal, j < i) or expansion ('above') plants its flow."""
        if self.kind not in (COMPRESSED, EXPANDED):
            raise ValueError(f"control '{self.kind}' plants no flow")
        return BELOW if self.kind == COMPRESSED else ABOVE

    def planted_flow_cells(self, depth: int) -> list[tuple[int, int]]:
        """The cells (pretrained layer i, finetuned layer j) where a compression or expansion
        of a model of ``depth`` blocks plants positive flow: f_j computes p_i and f_i does
        not. Compression: (j + s, j) for j = k..depth-1-s; expansion: (j - s, j) for
        j = k+s..depth-1 (:meth:`finetune_invariance.controls.Control.planted_flow_cells`
        of the built pair, which a test compares)."""
        k, s = self.block, self.shift
        if self.flow_triangle == BELOW:
            return [(j + s, j) for j in range(k, depth - s)]
        return [(j - s, j) for j in range(k + s, depth)]

    def build(self, source, images, seed: int = 0):
        """The :class:`finetune_invariance.controls.Control` pair built from ``source`` (an
        :class:`~.models.ImageModel`; the surgery controls use its backbone, the maps its
        layered view and ``images``, the control's STIR images). ``seed`` draws the
        rewritten blocks."""
        from .. import controls as planted  # torch and timm: not at the workflow's parse time

        vit = source.backbone
        if self.kind == IDENTICAL:
            return planted.identical_copy(vit)
        if self.kind == REINITIALISED:
            return planted.reinitialised_from(vit, self.block, seed=seed)
        if self.kind == COMPRESSED:
            return planted.compressed(vit, self.block, self.shift, seed=seed)
        if self.kind == EXPANDED:
            return planted.expanded(vit, self.block, self.shift, seed=seed)
        if self.kind == LINEARLY_MAPPED:
            return planted.linearly_mapped(source, images, self.block)
        return planted.collapsed(source, images, self.block - 1)


def control_specs(configured_block: int | None, configured_shift: int | None, depth: int) -> list[ControlSpec]:
    """The model controls of a model of ``depth`` blocks: config ``controls.block``, the
    block k where the changes start (by default depth // 4: 3 of 12), and ``controls.shift``,
    the layers compression and expansion move invariances by (by default depth // 3: 4 of
    12), so that each moves depth - block - shift layers (5 of 12, over the claims' third)."""
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
