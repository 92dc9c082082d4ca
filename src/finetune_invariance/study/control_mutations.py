"""Real control measurements broken in known ways, to show that the controls' checks catch
each break (docs/controls.md, "Mutations").

A mutation rewrites the ``control_pair_similarity`` tables of the model controls (or the
flow computed from them) as a given bug would have written them; :func:`run_mutations`
recomputes the layer metrics and flow (:func:`.controls.control_metrics`) and every
model-control check (:func:`.controls.model_control_checks`). A mutation is *caught* when
the checks refuse the tables with a message, or when a check that came out as expected on
the unbroken measurements does not.

Run on a results folder (the embedded run's own control measurements)::

    python -m finetune_invariance.study.control_mutations results [--block K] [--shift S]

prints one row per mutation and exits with status 1 if one is not caught.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import tables
from .control_plan import ControlSpec, control_specs
from .controls import control_metrics, controls_table, model_control_checks

_KEYS = ["control", "reference", "target", "seed"]
FINETUNED = "finetuned"


@dataclass(frozen=True)
class Mutation:
    """A known break: ``pairs`` rewrites the controls' pair-similarity rows, ``flows`` the
    invariance flow computed from them (either may be None)."""

    name: str
    description: str
    pairs: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    flows: Callable[[pd.DataFrame], pd.DataFrame] | None = None


def _read_from(
    pairs: pd.DataFrame,
    reference_layer,
    target_layer,
    columns,
    seed=None,
    rows: np.ndarray | None = None,
) -> pd.DataFrame:
    """``pairs`` with ``columns`` of each row read from the row of the same control and
    models at (``reference_layer``, ``target_layer``) and seed ``seed`` (default: the row's
    own); only the rows where ``rows`` is True are rewritten (default: every row)."""
    indexed = pairs.set_index([*_KEYS, "reference_layer", "target_layer"])[list(columns)]
    keys = {key: pairs[key] for key in _KEYS} | ({} if seed is None else {"seed": seed})
    where = pd.MultiIndex.from_arrays([*keys.values(), reference_layer, target_layer])
    rows = np.ones(len(pairs), dtype=bool) if rows is None else np.asarray(rows)
    out = pairs.copy()
    out.loc[rows, list(columns)] = indexed.loc[where[rows]].to_numpy()
    return out


def _one_late(pairs: pd.DataFrame, shift_reference: np.ndarray, shift_target: np.ndarray) -> pd.DataFrame:
    """Layer l reads what layer l - 1 holds (layer 0 its own: a block's input for its output)."""
    reference = pairs["reference_layer"].to_numpy()
    target = pairs["target_layer"].to_numpy()
    reference = np.where(shift_reference, np.maximum(reference - 1, 0), reference)
    target = np.where(shift_target, np.maximum(target - 1, 0), target)
    return _read_from(pairs, reference, target, ["stir", "cka"])


def layers_late_in_both(pairs: pd.DataFrame) -> pd.DataFrame:
    """Every layer label of both models one late."""
    every = np.ones(len(pairs), dtype=bool)
    return _one_late(pairs, every, every)


def layers_late_in_finetuned(pairs: pd.DataFrame) -> pd.DataFrame:
    """The finetuned model's layer labels one late, the pretrained model's right."""
    return _one_late(pairs, (pairs["reference"] == FINETUNED).to_numpy(), (pairs["target"] == FINETUNED).to_numpy())


def other_seeds_inversions(pairs: pd.DataFrame) -> pd.DataFrame:
    """The finetuned side's inversions of the next seed (cyclically) used for each seed: the
    STIR rows that invert the finetuned model read another seed's."""
    seeds = sorted(pairs["seed"].unique())
    if len(seeds) < 2:
        raise ValueError("the other seed's inversions need at least two STIR seeds")
    following = dict(zip(seeds, seeds[1:] + seeds[:1]))
    return _read_from(
        pairs,
        pairs["reference_layer"],
        pairs["target_layer"],
        ["stir"],
        seed=pairs["seed"].map(following),
        rows=(pairs["reference"] == FINETUNED).to_numpy(),
    )


def transposed(flows: pd.DataFrame) -> pd.DataFrame:
    """Each flow matrix transposed (pretrained and finetuned layers swapped)."""
    return flows.rename(columns={"pretrained_layer": "finetuned_layer", "finetuned_layer": "pretrained_layer"})


MUTATIONS: tuple[Mutation, ...] = (
    Mutation("stir_constant", "STIR returns 0.5 for every pair of layers", pairs=lambda p: p.assign(stir=0.5)),
    Mutation(
        "stir_is_cka",
        "STIR silently replaced by plain CKA: STIR(m2_j | m1_i) := CKA(m1_i(X), m2_j(X)), the inversion ignored",
        pairs=lambda p: p.assign(stir=p["cka"]),
    ),
    Mutation("layers_late_in_both", "every layer label one late in both models", pairs=layers_late_in_both),
    Mutation("layers_late_in_finetuned", "the finetuned model's layer labels one late", pairs=layers_late_in_finetuned),
    Mutation("flow_transposed", "every flow matrix transposed", flows=transposed),
    Mutation(
        "other_seeds_inversions",
        "the finetuned side measured with the next seed's inversions",
        pairs=other_seeds_inversions,
    ),
)


def checks_of(pairs: pd.DataFrame, specs: Sequence[ControlSpec], flows_mutation=None) -> pd.DataFrame:
    """Every model-control check of the pair tables ``pairs`` (all controls and seeds)."""
    metrics, flows = control_metrics([pairs])
    if flows_mutation is not None:
        flows = flows_mutation(flows)
    return controls_table(model_control_checks(metrics, flows, specs))


def run_mutations(
    pairs: pd.DataFrame,
    specs: Sequence[ControlSpec],
    mutations: Sequence[Mutation] = MUTATIONS,
    unbroken: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per mutation: whether it was caught and how (columns mutation, description,
    caught, how). ``unbroken``: :func:`checks_of` ``pairs`` where the caller has it already
    (computed here otherwise). Raises ValueError when the unbroken measurements are refused."""
    if unbroken is None:
        unbroken = checks_of(pairs, specs)
    baseline = unbroken.set_index(["control", "check"])["as_expected"]
    rows = []
    for mutation in mutations:
        try:
            broken = mutation.pairs(pairs) if mutation.pairs is not None else pairs
            checks = checks_of(broken, specs, mutation.flows).set_index(["control", "check"])["as_expected"]
        except ValueError as err:
            rows.append(
                dict(mutation=mutation.name, description=mutation.description, caught=True, how=f"refused: {err}")
            )
            continue
        lost = [key for key, ok in baseline.items() if ok and not checks.get(key, False)]
        how = "; ".join(f"{control}: {check}" for control, check in lost) or "every check as on the unbroken tables"
        rows.append(
            dict(
                mutation=mutation.name,
                description=mutation.description,
                caught=bool(lost),
                how=(f"{len(lost)} checks not as expected: " if lost else "") + how,
            )
        )
    return pd.DataFrame(rows, columns=["mutation", "description", "caught", "how"])


def read_pairs(results: str | Path) -> pd.DataFrame:
    """The model controls' pair-similarity tables of a results folder, every seed."""
    from .layout import RESULTS_PATTERNS

    pattern = Path(results) / RESULTS_PATTERNS["control_pair_similarity"]
    paths = sorted(pattern.parent.glob(pattern.name.replace("{seed}", "*")))
    if not paths:
        raise FileNotFoundError(f"no control measurements {pattern} (run the workflow's control_stir jobs first)")
    return pd.concat([tables.read_table(path, tables.CONTROL_PAIR_SIMILARITY) for path in paths], ignore_index=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="a results folder with controls/seed<k>.parquet")
    parser.add_argument("--block", type=int, default=None, help="config controls.block (default: depth // 4)")
    parser.add_argument("--shift", type=int, default=None, help="config controls.shift (default: depth // 3)")
    args = parser.parse_args(argv)
    try:
        pairs = read_pairs(args.results)
        specs = control_specs(args.block, args.shift, int(pairs["reference_layer"].max()))
        baseline = checks_of(pairs, specs)
        result = run_mutations(pairs, specs, unbroken=baseline)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"unbroken: {int(baseline['as_expected'].sum())} of {len(baseline)} model-control checks as expected")
    print(tables.markdown_table(result))
    missed = result[~result["caught"]]
    if not missed.empty:
        print(f"NOT caught: {', '.join(missed['mutation'])}", file=sys.stderr)
        return 1
    print(f"every one of the {len(result)} mutations caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
