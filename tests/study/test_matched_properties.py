"""The matched-properties registry and its measurements: the paper's own configuration
matches the paper's setting; each criterion fails on the input it is there to catch; the
claims report names the unmatched properties beside the verdicts they bear on."""

import math

import numpy as np
import pandas as pd
import pytest

from finetune_invariance.study import matched_properties as mp
from finetune_invariance.study import tables
from finetune_invariance.study.claims.registry import CLAIMS, SECTIONS
from finetune_invariance.study.flow_statistics import MIN_FLOW
from finetune_invariance.study.vocabulary import Run

from .conftest import robust_accuracy_table, table1_table

IMAGENET_CIFAR10 = Run("imagenet", "cifar10", "classification")


def _by_key(table: pd.DataFrame) -> dict[str, pd.Series]:
    return {row.property: row for row in table.itertuples()}


def _paper_tables(
    severity: dict[int, list[float]], clean: float = 0.98, n_images: int = 500
) -> dict[str, pd.DataFrame]:
    """Table 1 (the default dynamics run best at epoch 84 of 100, ImageNet and scratch at the
    paper's Table 1 accuracies) and the dynamics run's robust accuracy (two corruptions of
    ``n_images`` each per severity)."""
    table1 = table1_table({IMAGENET_CIFAR10: 84, Run("scratch", "cifar10", "classification"): 90})
    table1["epochs"] = 100
    table1.loc[table1["source"] == "imagenet", "test_accuracy"] = 0.97
    table1.loc[table1["source"] == "scratch", "test_accuracy"] = 0.98
    robust = robust_accuracy_table(severity, IMAGENET_CIFAR10, clean=clean, n_images=n_images)
    return {"table1_accuracy": table1, "robust_accuracy": robust}


def test_registry_names_only_claims_and_sections_that_exist():
    known = {claim.id for claim in CLAIMS} | set(SECTIONS)
    for prop in mp.PROPERTIES:
        unknown = set(prop.bears_on + prop.calibrates) - known
        assert not unknown, f"{prop.key} names unknown claims or sections {unknown}"
    assert len({prop.key for prop in mp.PROPERTIES}) == len(mp.PROPERTIES)
    assert ("clean_accuracy_increases_gradually",) == next(p for p in mp.PROPERTIES if p.key == "best_epoch").calibrates


def test_paper_constants_follow_from_the_paper_setting():
    # 50,000 CIFAR images in batches of 256: 196 steps; 100 of 19,600 and 440 of 19,600.
    assert mp.PAPER_STEPS_PER_EPOCH == 196
    assert mp.PAPER_WARMUP_SHARE == pytest.approx(100 / 19_600)
    assert mp.PAPER_SCRATCH_WARMUP_SHARE == pytest.approx(440 / 19_600)
    assert mp.PAPER_UPSAMPLING == {"CIFAR10": 7.0, "CIFAR100": 7.0, "EuroSAT": 3.5}


def test_the_paper_configuration_matches_the_paper_setting(shipped_config):
    """config/paper.yaml is the paper's setting: every property measured on it from its
    settings, and from tables made to the paper's numbers, is matched."""
    severity = {epoch: [0.95, 0.9, 0.85, 0.8, 0.7 - 0.01 * (epoch % 2)] for epoch in range(1, 101)}
    severity[3] = [0.95, 0.9, 0.85, 0.8, 0.95]  # a peak: the series' range is 0.05
    facts = mp.Facts(shipped_config("config/paper.yaml"), _paper_tables(severity, n_images=500))
    table = _by_key(mp.measure(facts))
    for key in (
        "upsampling",
        "augmentation",
        "variant_augmentation",
        "weight_decay",
        "warmup",
        "learning_rate_rule",
        "best_epoch",
        "severity5_ratio",
        "n_per_severity",
        "series_resolution",
        "stir_seeds",
        "class_ratio",
        "per_class_ratio",
        "transfer_gap",
        "epochs",
    ):
        assert table[key].status == mp.MATCHED, (key, table[key].value)
    assert table["identical_copy_floor"].status == mp.NOT_MEASURED  # no controls table given
    assert "epoch 84 of 100 (0.84)" in table["best_epoch"].value
    assert table["n_per_severity"].value == "1000"  # two corruptions of 500 per severity


def test_the_scale_model_reports_its_departures(shipped_config):
    """config.yaml, whatever its calibration: 20 epochs are not the paper's 100, and its
    CIFAR roles are upsampled less than 7x, so both are unmatched; nothing needs a run's
    table to be measured from the settings alone."""
    table = _by_key(mp.measure(mp.Facts(shipped_config("config.yaml"), {})))
    assert table["epochs"].status == mp.UNMATCHED
    assert table["upsampling"].status == mp.UNMATCHED
    for key in ("best_epoch", "severity5_ratio", "series_resolution", "transfer_gap", "identical_copy_floor"):
        assert table[key].status == mp.NOT_MEASURED
    assert tables.conform(mp.measure(mp.Facts(shipped_config("config.yaml"), {})), tables.MATCHED_PROPERTIES).shape[
        0
    ] == len(mp.PROPERTIES)


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c["finetune"].update(augment="none"), "augmentation"),
        (lambda c: c["variants"]["no_augment"].update(augment="crop_flip"), "variant_augmentation"),
        (lambda c: c["sources"]["imagenet"]["finetune"].update(weight_decay=5e-4), "weight_decay"),
        (lambda c: c["finetune"].update(warmup_steps=200), "warmup"),
        (lambda c: c["variants"]["adam"].update(lr=1e-3), "learning_rate_rule"),
        (lambda c: c["variants"]["lr_1em2"].update(lr=3e-3), "learning_rate_rule"),
        (lambda c: c["stir"].update(seeds=[0, 1]), "stir_seeds"),
        (lambda c: c["finetune"].update(epochs=20), "epochs"),
    ],
)
def test_each_setting_criterion_fails_on_a_departure(shipped_config, change, key):
    config = shipped_config("config/paper.yaml")
    change(config)
    assert _by_key(mp.measure(mp.Facts(config, {})))[key].status == mp.UNMATCHED


def test_robustness_criteria_fail_at_the_ceiling_and_in_noise(shipped_config):
    config = shipped_config("config/paper.yaml")
    # Severity 5 at 0.95 of a 0.98 clean accuracy: above 0.9 of clean. A flat series with
    # 100 inputs per severity: its range (0.01) is about one standard error.
    flat = {epoch: [0.97, 0.96, 0.95, 0.94, 0.93 + 0.01 * (epoch % 2)] for epoch in range(1, 101)}
    table = _by_key(mp.measure(mp.Facts(config, _paper_tables(flat, clean=0.98, n_images=50))))
    assert table["severity5_ratio"].status == mp.UNMATCHED
    assert table["severity5_ratio"].value.startswith(f"{0.93 / 0.98:.2f}")
    assert table["n_per_severity"].status == mp.UNMATCHED
    assert table["series_resolution"].status == mp.UNMATCHED


def test_series_resolution_against_hand_computed_numbers():
    # Two epochs; every severity at p with 2 x 50 inputs: se = sqrt(5 p (1 - p) / 100) / 5.
    robust = robust_accuracy_table({1: [0.8] * 5, 2: [0.6] * 5}, n_images=50)
    spread, se = mp.series_resolution(robust)
    assert spread == pytest.approx(0.2)
    expected = np.median([math.sqrt(5 * p * (1 - p) / 100) / 5 for p in (0.8, 0.6)])
    assert se == pytest.approx(expected)


def test_identical_copy_floor_and_its_criterion(shipped_config):
    rows = []
    for seed, scale in ((0, 1.0), (1, 3.0)):
        for layer in range(13):
            for metric, value in (("forgetting", 0.002 * scale), ("learning", 0.001 * scale), ("cka_divergence", 0.5)):
                rows.append(
                    {
                        "control": "identical_copy",
                        "pretrained": "p",
                        "finetuned": "f",
                        "seed": seed,
                        "layer": layer,
                        "metric": metric,
                        "value": value * (1 + (layer == 7) * 5),
                    }
                )
    rows.append(
        {
            "control": "reinitialised",
            "pretrained": "p",
            "finetuned": "f",
            "seed": 0,
            "layer": 0,
            "metric": "forgetting",
            "value": 0.9,
        }
    )
    metrics = tables.conform(pd.DataFrame(rows), tables.CONTROL_LAYER_METRICS)
    floor = mp.identical_copy_floor(metrics)
    assert floor[0] == pytest.approx(0.004)  # seed mean of forgetting (0.002, 0.006), above learning's
    assert floor[7] == pytest.approx(0.024)  # CKA divergence and the other control are not the floor
    config = shipped_config("config/paper.yaml")
    table = _by_key(mp.measure(mp.Facts(config, {"control_layer_metrics": metrics})))
    assert table["identical_copy_floor"].status == mp.UNMATCHED
    assert table["identical_copy_floor"].value.endswith("at or above it at layers 7")
    low = metrics.assign(value=metrics["value"].where(metrics["layer"] != 7, 0.001))
    table = _by_key(mp.measure(mp.Facts(config, {"control_layer_metrics": low})))
    assert table["identical_copy_floor"].status == mp.MATCHED and floor.min() < MIN_FLOW


def test_high_band_share_closed_forms():
    rng = np.random.default_rng(0)
    # White noise at the model's size: power uniform over frequencies, so the share above
    # Nyquist/2 (|f| > 1/4 cycle per pixel in either axis) is 1 - (17/32)^2 of the cells.
    noise = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    assert mp.high_band_share(noise, 32, 2.0) == pytest.approx(1 - (17 / 32) ** 2, abs=0.02)
    # A grating of period 16 px has all its power at 1/16 cycle per pixel: none above Nyquist/2.
    x = np.arange(32)
    grating = np.broadcast_to((127.5 + 100 * np.sin(2 * np.pi * x / 16))[None, None, :, None], (4, 32, 32, 3))
    assert mp.high_band_share(grating.round().astype(np.uint8), 32, 2.0) < 0.01
    # Noise stored at 16 px and upsampled 2x by the loader keeps little power above the band.
    small = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    assert mp.high_band_share(small, 32, 2.0) < 0.5 * mp.high_band_share(noise, 32, 2.0)


def test_beside_verdicts_names_unmatched_and_calibrating_properties():
    verdicts = pd.DataFrame(
        {
            "claim": [
                "pretrained_below_scratch_early",
                "clean_accuracy_increases_gradually",
                "compression_below_diagonal",
            ],
            "section": ["4.2", "4.4", "4.3"],
            "verdict": ["holds", "holds", "does not hold"],
        }
    )
    matched = pd.DataFrame(
        [
            {"property": "class_ratio", "status": mp.UNMATCHED, "bears_on": "4.2", "calibrates": ""},
            {
                "property": "best_epoch",
                "status": mp.MATCHED,
                "bears_on": "4.4",
                "calibrates": "clean_accuracy_increases_gradually",
            },
            {"property": "identical_copy_floor", "status": mp.NOT_MEASURED, "bears_on": "4.3", "calibrates": ""},
            {"property": "stir_seeds", "status": mp.MATCHED, "bears_on": "4.2, 4.3", "calibrates": ""},
        ]
    )
    notes = mp.beside_verdicts(verdicts, matched)[mp.SCALE_MODEL_COLUMN].tolist()
    assert notes == [
        "unmatched: class_ratio (unmatched)",
        "partly calibrated by: best_epoch",
        "unmatched: identical_copy_floor (not measured)",
    ]
    assert mp.beside_verdicts(verdicts, None).equals(verdicts)


def test_write_docs_replaces_only_between_the_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n\n{mp.DOCS_START}\nold table\n{mp.DOCS_END}\n\nafter\n")
    matched = pd.DataFrame([{c: f"{c} text" for c in tables.MATCHED_PROPERTIES.columns}])
    mp.write_docs(page, matched, "Measured by a test.")
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{mp.DOCS_END}\n\nafter\n")
    assert "old table" not in text and "Measured by a test." in text
    assert "| property | paper_value | paper_source | scale model |" in text  # the docs' column names
    assert "| description text | paper_value text | paper_source text | value text |" in text
    assert "bears_on text" not in text  # the report's columns stay in the table
    page.write_text("no markers")
    with pytest.raises(ValueError, match="must hold the markers"):
        mp.write_docs(page, matched, "x")
