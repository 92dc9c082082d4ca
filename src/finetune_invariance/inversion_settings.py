"""The settings of representation inversion (:mod:`.inversion`), without torch: the recipe's
defaults, the compute precisions and the memory default.

Their one home: :mod:`.inversion` computes with them, and the command line's ``--help``
shows them without importing torch. The study's training precision is one of the same
:data:`PRECISIONS`.
"""

from __future__ import annotations

#: Gradient steps of an inversion (the published STIR recipe).
DEFAULT_ITERATIONS = 500
#: The step size of the normalised gradient step (the published attacker's 0.5).
DEFAULT_STEP_SIZE = 0.5
#: Added to ||g|| in the step, as in the published attacker.
GRADIENT_EPSILON = 1e-10
#: Compute precisions: 'fp32', the published recipe, and the reduced 'tf32' and 'bf16'.
PRECISIONS = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"
#: Bytes an inversion's copies may take on the CPU when no memory budget is given.
CPU_MEMORY_BUDGET = 4 * 2**30


def check_precision(precision: str) -> None:
    """ValueError unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
