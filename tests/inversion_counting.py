"""Counting the inversions ``stir.compare`` runs (the inversion cache's and the command line's tests)."""

from __future__ import annotations

from finetune_invariance import stir
from finetune_invariance.inversion import invert


def count_inversions(monkeypatch) -> list[int]:
    """The seed of every (model, seed) inversion ``stir.compare`` runs from now on, in order."""
    calls = []

    def counting_invert(model, images, **kwargs):
        calls.append(kwargs["seed"])
        return invert(model, images, **kwargs)

    monkeypatch.setattr(stir, "invert", counting_invert)
    return calls
