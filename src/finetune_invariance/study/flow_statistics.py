"""Reading an invariance-flow matrix (Section 4.3): where it shows compression or expansion.

Invariance Flow(i, j) = STIR(f_j | p_i) - STIR(f_i | p_i) (docs/method.md). Positive cells
below the diagonal (j < i) mean pretrained invariances sit in earlier finetuned layers
(compression), above it (j > i) in deeper ones (expansion). A cell counts as positive when
its seed mean exceeds :data:`MIN_FLOW`, its seed standard deviation and the identical-copy
floor of its pretrained layer (:func:`flow_floor`); a triangle shows the effect when a
substantial share (:data:`MIN_FLOW_SHARE`) of the pretrained layers have such a cell.

Why the floor: the flow of row i is measured against STIR(f_i | p_i), which for an
unchanged layer is the identical copy's 1 - forgetting_i, below 1 by the inversion's
residual (the floor). An unchanged model can therefore show flow up to floor_i in row i
(STIR(f_j | p_i) <= 1), so a gain no larger than the floor is not evidence that
invariances moved. At the paper's 500 iterations the floor is small; at a scale model's
few iterations it exceeds :data:`MIN_FLOW` (docs/claims.md, "Readings"). The claims of Section 4.3 and the planted compression and expansion
controls read the flow through these functions, so the controls test the claims' detector.
Where in the matrix the flow sits (the paper's "lower left", "early-layer invariances") is
:meth:`FlowShare.share_in` of a range of pretrained layers.

:func:`flow_cells` refuses an incomplete or undefined matrix, as
:func:`finetune_invariance.finetuning_metrics.flow_matrix` does: a seed missing a cell, or
a NaN cell, would otherwise shift a mean or count as "no flow".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_FLOW = 0.01  # smallest invariance flow counted as positive: 1% of STIR's [0, 1] range
MIN_FLOW_SHARE = 1 / 3  # "substantial": this share of the pretrained layers shows the flow
POSITIVE_CELL = f"seed mean > max({MIN_FLOW}, seed sd, identical-copy floor of pretrained layer i)"
BELOW, ABOVE = "below", "above"  # compression, expansion


class IncompleteFlow(ValueError):
    """An invariance-flow table lacks cells, repeats them, or has undefined (NaN) ones."""


_KEYS = ["seed", "pretrained_layer", "finetuned_layer"]


def flow_cells(rows: pd.DataFrame, depth: int | None = None) -> pd.DataFrame:
    """Per (i, j) of an invariance-flow table of one pair: seed mean and seed sd (ddof=1;
    0 for one seed) of the flow, indexed by (pretrained_layer, finetuned_layer).

    :class:`IncompleteFlow` unless every seed has every cell of the (D + 1) x (D + 1) grid
    once (D: ``depth``, by default the deepest layer in the rows) and no flow is NaN; the
    message names the first offending cells."""
    if rows.empty:
        raise IncompleteFlow("no invariance-flow rows")
    if rows.duplicated(_KEYS).any():
        repeated = rows.loc[rows.duplicated(_KEYS, keep=False), _KEYS].drop_duplicates()
        raise IncompleteFlow(f"flow cells (seed, i, j) repeat: {[tuple(map(int, r)) for r in repeated.values[:5]]}")
    deepest = int(max(rows["pretrained_layer"].max(), rows["finetuned_layer"].max()))
    depth = deepest if depth is None else depth
    grid = pd.MultiIndex.from_product([sorted(rows["seed"].unique()), range(depth + 1), range(depth + 1)], names=_KEYS)
    missing = grid.difference(pd.MultiIndex.from_frame(rows[_KEYS]))
    if len(missing) or deepest > depth:
        shown = [tuple(map(int, cell)) for cell in missing[:5]]
        raise IncompleteFlow(
            f"the {depth + 1}x{depth + 1} flow matrix lacks {len(missing)} cells (seed, i, j): {shown}"
        )
    undefined = rows["flow"].isna()
    if undefined.any():
        cells = [tuple(map(int, r)) for r in rows.loc[undefined, _KEYS].values[:5]]
        raise IncompleteFlow(f"flow is undefined (NaN) in {int(undefined.sum())} cells (seed, i, j): {cells}")
    cells = rows.groupby(["pretrained_layer", "finetuned_layer"])["flow"]
    return pd.DataFrame({"mean": cells.mean(), "sd": cells.std(ddof=1).fillna(0.0)})


def flow_floor(identical_copy: pd.DataFrame) -> pd.Series:
    """Per pretrained layer i, the identical copy's seed-mean forgetting 1 - STIR(p_i | p_i)
    (``identical_copy``: its rows of a layer-metrics table, ``seed``, ``layer``, ``metric``,
    ``value``): the most flow an unchanged model can show in row i."""
    forgetting = identical_copy[identical_copy["metric"] == "forgetting"]
    if forgetting.empty or forgetting["value"].isna().any():
        raise IncompleteFlow("the identical copy's forgetting (the flow's floor) is missing or undefined")
    floor = forgetting.groupby("layer")["value"].mean()
    return floor.rename_axis("pretrained_layer").rename("floor")


def cell_thresholds(cells: pd.DataFrame, floor: pd.Series) -> pd.Series:
    """Per cell of a :func:`flow_cells` table, the value its seed mean must exceed
    (:data:`POSITIVE_CELL`): max(:data:`MIN_FLOW`, seed sd, ``floor`` of its pretrained layer)."""
    i = cells.index.get_level_values("pretrained_layer")
    missing = sorted(set(i) - set(floor.index))
    if missing:
        raise IncompleteFlow(f"the identical-copy floor lacks pretrained layers {missing[:5]}")
    threshold = np.maximum(np.maximum(cells["sd"].to_numpy(), MIN_FLOW), floor.loc[i].to_numpy())
    return pd.Series(threshold, index=cells.index, name="threshold")


def positive_cells(cells: pd.DataFrame, triangle: str, floor: pd.Series) -> pd.DataFrame:
    """The cells of one triangle ('below': j < i, 'above': j > i) whose flow is positive
    (:data:`POSITIVE_CELL`; ``floor`` from :func:`flow_floor`)."""
    if triangle not in (BELOW, ABOVE):
        raise ValueError(f"triangle must be '{BELOW}' or '{ABOVE}', got {triangle!r}")
    i = cells.index.get_level_values("pretrained_layer")
    j = cells.index.get_level_values("finetuned_layer")
    part = cells[(j < i) if triangle == BELOW else (j > i)]
    return part[part["mean"] > cell_thresholds(part, floor)]


@dataclass(frozen=True)
class FlowShare:
    """How much of a triangle shows positive flow."""

    triangle: str
    rows_with_flow: int
    depth: int
    largest: tuple[float, float, int, int] | None  # mean, sd, i, j of the largest positive cell
    rows: tuple[int, ...] = ()  # the pretrained layers with a positive cell on the triangle's side

    @property
    def share(self) -> float:
        """Share of the pretrained layers with a positive cell on the triangle's side; D of
        the D + 1 pretrained layers have cells on each side."""
        return self.rows_with_flow / self.depth

    @property
    def shows_flow(self) -> bool:
        return self.share >= MIN_FLOW_SHARE

    def candidates(self, layers: Iterable[int]) -> list[int]:
        """The pretrained layers among ``layers`` that have cells on the triangle's side
        (1..D below the diagonal, 0..D-1 above it)."""
        side = range(1, self.depth + 1) if self.triangle == BELOW else range(0, self.depth)
        return sorted(set(layers) & set(side))

    def share_in(self, layers: Iterable[int]) -> float:
        """Share of the pretrained ``layers`` (those with cells on the triangle's side) that
        show the flow; NaN if none of them has such cells."""
        candidates = self.candidates(layers)
        return sum(row in candidates for row in self.rows) / len(candidates) if candidates else float("nan")

    def __str__(self) -> str:
        largest = "none"
        if self.largest is not None:
            mean, sd, i, j = self.largest
            largest = f"largest {mean:+.3f}±{sd:.3f} at (i, j) = ({i}, {j})"
        return (
            f"{self.rows_with_flow}/{self.depth} pretrained layers ({self.share:.2f}) {self.triangle} the diagonal, "
            f"{largest}"
        )


def flow_share(cells: pd.DataFrame, triangle: str, floor: pd.Series) -> FlowShare:
    """The share of the pretrained layers i with a positive cell on the triangle's side of
    a :func:`flow_cells` table (``floor`` from :func:`flow_floor`), and its largest positive cell."""
    depth = int(cells.index.get_level_values("pretrained_layer").max())
    positive = positive_cells(cells, triangle, floor)
    largest = None
    if not positive.empty:
        i, j = positive["mean"].idxmax()
        largest = (float(positive.loc[(i, j), "mean"]), float(positive.loc[(i, j), "sd"]), int(i), int(j))
    rows = tuple(sorted(int(i) for i in positive.index.get_level_values("pretrained_layer").unique()))
    return FlowShare(triangle, len(rows), depth, largest, rows)
