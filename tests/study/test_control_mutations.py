"""The controls' checks on real control measurements (the scale model's shipped source at
the embedded config's STIR settings, tests/study/control_fixture.py), unbroken and broken
in known ways: every check comes out as constructed on the real tables, and each break is
caught by the checks named here (or the tables are refused with the problem named)."""

import pandas as pd
import pytest

from finetune_invariance.study import control_mutations, control_plan, controls, tables

from . import control_fixture


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return tables.read_table(control_fixture.PAIRS, tables.CONTROL_PAIR_SIMILARITY)


@pytest.fixture(scope="module")
def specs(pairs):
    return control_plan.control_specs(None, None, int(pairs["reference_layer"].max()))


def test_the_fixture_is_what_the_controls_code_measures(monkeypatch):
    """Seed 0 measured again by the code the control_stir jobs run gives the fixture's rows
    (regenerate with ``python tests/study/control_fixture.py`` when the source or the code
    changes on purpose), inverting as many models as the launch plan counts."""
    from finetune_invariance import inversion

    calls = []
    invert = inversion.invert
    monkeypatch.setattr(inversion, "invert", lambda *a, **k: calls.append(1) or invert(*a, **k))
    fresh = control_fixture.measure(0)
    assert len(calls) == 1 + control_plan.INVERTED_MODELS  # the source's own, then the controls' models
    stored = tables.read_table(control_fixture.PAIRS, tables.CONTROL_PAIR_SIMILARITY)
    stored = stored[stored["seed"] == 0]
    keys = ["control", "reference", "target", "reference_layer", "target_layer"]
    fresh, stored = (t.sort_values(keys).reset_index(drop=True) for t in (fresh, stored))
    pd.testing.assert_frame_equal(fresh[keys], stored[keys], check_dtype=False)
    for column in ("stir", "cka"):
        assert (fresh[column] - stored[column]).abs().max() < 1e-5, column


def test_every_check_comes_out_as_constructed_on_the_real_measurements(pairs, specs):
    checks = control_mutations.checks_of(pairs, specs)
    assert checks.as_expected.all(), checks[~checks.as_expected][["control", "check", "evidence"]].to_string()
    assert set(checks[checks.found].control) == {
        control_plan.REINITIALISED,
        control_plan.COMPRESSED,
        control_plan.EXPANDED,
        control_plan.LINEARLY_MAPPED,  # its CKA divergence
        control_plan.COLLAPSED,  # its learning
    }


#: Each mutation and (control, start of the check's name) of checks that must catch it.
CAUGHT_BY = {
    "stir_constant": [
        (control_plan.REINITIALISED, "learning: a change at every layer"),
        (control_plan.COMPRESSED, "compression at every planted cell"),
        (control_plan.COLLAPSED, "learning: a change at every layer"),
    ],
    "stir_is_cka": [
        (control_plan.LINEARLY_MAPPED, "forgetting: a change at any layer"),
        (control_plan.LINEARLY_MAPPED, "learning: a change at any layer"),
    ],
    "layers_late_in_both": [
        (control_plan.REINITIALISED, "forgetting: a change at every layer"),
        (control_plan.REINITIALISED, "learning: a change at every layer"),
    ],
    "layers_late_in_finetuned": [(control_plan.IDENTICAL, "any change")],
    "flow_transposed": [
        (control_plan.COMPRESSED, "compression at every planted cell"),
        (control_plan.EXPANDED, "expansion at every planted cell"),
    ],
    "other_seeds_inversions": [(control_plan.IDENTICAL, "any change")],
}


def test_every_mutation_has_its_catching_checks_named():
    assert set(CAUGHT_BY) == {mutation.name for mutation in control_mutations.MUTATIONS}


@pytest.mark.parametrize("mutation", control_mutations.MUTATIONS, ids=lambda m: m.name)
def test_each_break_is_caught_by_the_checks_that_read_it(pairs, specs, mutation):
    broken = mutation.pairs(pairs) if mutation.pairs is not None else pairs
    checks = control_mutations.checks_of(broken, specs, mutation.flows)
    for control, check in CAUGHT_BY[mutation.name]:
        rows = checks[(checks.control == control) & checks.check.str.startswith(check)]
        assert len(rows) == 1 and not rows.iloc[0].as_expected, (control, check, rows.evidence.tolist())


def test_the_mutations_command_reports_every_break_caught_on_a_results_folder(pairs, tmp_path, capsys):
    folder = tmp_path / "results"
    for seed, rows in pairs.groupby("seed"):
        path = folder / f"controls/seed{seed}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tables.write_table(rows, path, tables.CONTROL_PAIR_SIMILARITY)
    assert control_mutations.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "15 of 15 model-control checks as expected" in out
    assert f"every one of the {len(control_mutations.MUTATIONS)} mutations caught" in out


def test_the_mutations_command_names_a_folder_without_measurements(tmp_path, capsys):
    assert control_mutations.main([str(tmp_path)]) == 2
    assert "no control measurements" in capsys.readouterr().err


def test_a_mutation_that_changes_nothing_is_reported_as_not_caught(pairs, specs):
    harmless = control_mutations.Mutation("nothing", "the tables as they are", pairs=lambda p: p.copy())
    result = control_mutations.run_mutations(pairs, specs, [harmless])
    assert not result.caught.iloc[0] and "every check as on the unbroken tables" in result.how.iloc[0]


def test_the_floor_the_claims_read_is_the_identical_copys_rows(pairs):
    """The claims helper reads the identical copy's rows of control_layer_metrics as the floor:
    one value per (seed, layer, metric), learning = forgetting there."""
    metrics, _ = controls.control_metrics([pairs])
    floor = metrics[metrics.control == control_plan.IDENTICAL]
    assert not floor.duplicated(["seed", "layer", "metric"]).any()
    pivot = floor.pivot_table(index=["seed", "layer"], columns="metric", values="value")
    assert (pivot["learning"] == pivot["forgetting"]).all() and (pivot["forgetting"] > 0).all()
