"""Checks of a finished study's results folder, shared by the local and the SLURM
end-to-end tests so both runs are judged the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from finetune_invariance.study import claims, tables
from finetune_invariance.study.control_plan import (
    FAMILY_WISE_ERROR,
    MODEL_CONTROLS,
    PLANTED_ROBUSTNESS,
    SHUFFLED_ROBUSTNESS,
)
from finetune_invariance.study.controls import CHECK, report_section
from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.vocabulary import Run

FIGURE_KINDS = {
    "task_comparison",
    "cka_divergence_by_task",
    "source_comparison",
    "cka_divergence_by_source",
    "invariance_flow",
    "dynamics",
    "early_epoch_correlation",
    "variants",
    "forgetting_monitor",
}


def read_tables(results: Path) -> dict[str, pd.DataFrame]:
    """Every aggregated table, read against its schema."""
    return {stem: tables.read_table(results / "tables" / f"{stem}.parquet", schema) for stem, schema in tables.STUDY_TABLES.items()}


def model_depth(model: dict) -> int:
    """The number of blocks of the config's model, as timm builds it (on the meta device)."""
    import timm
    import torch

    with torch.device("meta"):
        return len(timm.create_model(model["name"], pretrained=False, **model.get("overrides", {})).blocks)


def assert_study_outputs(workdir: Path, config: dict, controls_resolve: bool = True) -> None:
    """The tables, figures and claims a finished study must have, checked against facts
    derived here from the config and the training histories. ``controls_resolve``: whether
    the planted-effect controls must also find their effects (not at a rehearsal's counts:
    one inversion step of a random model)."""
    study = StudyDesign(config)
    results = workdir / config["results"]
    study_tables = read_tables(results)

    # Table 1: each run analysed at the epoch of best test accuracy of its own history.
    table1 = study_tables["table1_accuracy"].set_index(["source", "dataset", "task", "variant"])
    assert sorted(Run(*key) for key in table1.index) == study.runs()
    for run in study.runs():
        history = tables.read_table(results / "finetune" / run.path / "history.parquet", tables.TRAINING_HISTORY)
        score = history["test_accuracy"] if run.task == "classification" else -history["test_l1"]
        best = int(history["epoch"][np.argmax(score.to_numpy())])  # first maximum
        assert table1.loc[tuple(run.context.values()), "epoch"] == best, run

    # Metrics: every (run, analysed epoch, seed, layer) has the three metrics.
    metrics = study_tables["layer_metrics"]
    depth = model_depth(config["model"])
    # (the dynamics variants measured by the forgetting monitor alone have forgetting only)
    per_checkpoint = {run: 1 if study.is_monitor_only(run) else 3 for run in study.runs()}
    expected_rows = sum(len(study.analysed_checkpoints(run)) * n for run, n in per_checkpoint.items())
    assert len(metrics) == expected_rows * len(study.seeds) * (depth + 1)
    assert set(metrics["layer"]) == set(range(depth + 1)) and set(metrics["seed"]) == set(study.seeds)
    assert metrics["value"].between(-1e-6, 1 + 1e-6).all()  # 1 - STIR or 1 - CKA
    flow = study_tables["invariance_flow"]
    assert (flow.loc[flow.pretrained_layer == flow.finetuned_layer, "flow"] == 0).all()

    # Robustness: every dynamics epoch at every severity; the hypothesis family of the depth.
    robust = study_tables["robust_accuracy"]
    for run in study.dynamics_runs():
        assert sorted(run.rows(robust)["epoch"].unique()) == list(range(1, study.epochs(run) + 1))
    hypotheses = study_tables["hypotheses"]
    for run in study.dynamics_runs():  # the whole family, or the headline of a monitor-only variant
        assert len(run.rows(hypotheses)) == (1 if study.is_monitor_only(run) else 40 * (depth - 1)), run
    named = study_tables["named_hypotheses"]
    assert set(named["role"]) >= {"headline", "cka"}

    # The forgetting monitor: at an epoch's end, exactly the offline forgetting of that checkpoint.
    monitor = study_tables["forgetting_monitor"]
    offline = metrics[metrics["metric"] == "forgetting"].rename(columns={"value": "forgetting"})
    at_epoch_ends = monitor[monitor["training_epochs"] >= 1].assign(epoch=lambda df: df["training_epochs"].astype(int))
    at_epoch_ends = at_epoch_ends[at_epoch_ends["training_epochs"] == at_epoch_ends["epoch"]]
    keys = ["source", "dataset", "task", "variant", "epoch", "seed", "layer"]
    compared = at_epoch_ends.merge(offline[[*keys, "forgetting"]], on=keys, suffixes=("_online", "_offline"))
    monitored = [run for run in study.dynamics_runs() if study.is_monitored(run)]
    assert len(compared) == sum(study.epochs(run) for run in monitored) * len(study.seeds) * (depth + 1)
    assert (compared["forgetting_online"] == compared["forgetting_offline"]).all()
    picks = study_tables["checkpoint_picks"]
    assert len(picks) == 3 * len(monitored)

    # Planted-effect controls: each effect found where it was planted, none in its twin.
    if study.controls_enabled:
        checks = tables.read_table(results / "tables" / "controls.parquet", tables.CONTROLS)
        assert set(checks["control"]) == {*MODEL_CONTROLS, PLANTED_ROBUSTNESS, SHUFFLED_ROBUSTNESS, FAMILY_WISE_ERROR}
        if controls_resolve:  # every check as constructed (the family-wise error is a finding)
            wrong = checks[(checks["kind"] == CHECK) & ~checks["as_expected"]]
            assert wrong.empty, wrong[["control", "check", "evidence"]].to_string()

    # Figures: every kind, each PNG with its PDF.
    pngs = sorted((results / "figures").rglob("*.png"))
    assert {p.relative_to(results / "figures").parts[0] for p in pngs} == FIGURE_KINDS
    for png in pngs:
        assert png.stat().st_size > 5000, png
        assert png.with_suffix(".pdf").is_file()

    # Claims: the report is the claims of these tables with this config's settings, opening
    # with what the configuration is; it and the Markdown tables have HTML pages for the report.
    optimizers = {run.variant: study.training(run)["optimizer"] for run in study.dynamics_runs()}
    inference = config["robustness"]["inference"]
    claim_tables = dict(study_tables)
    identical_copy = None
    if study.controls_enabled:
        path = results / "tables" / "control_layer_metrics.parquet"
        claim_tables["control_layer_metrics"] = tables.read_table(path, tables.CONTROL_LAYER_METRICS)
        identical_copy = (study.controls_source, study.controls_dataset)
    verdicts = claims.evaluate_claims(
        claim_tables, config["imagenet_source"], optimizers, inference=inference, identical_copy=identical_copy
    )
    assert list(verdicts["claim"]) == [claim.id for claim in claims.CLAIMS]
    assert set(verdicts["verdict"]) <= set(claims.VERDICTS)
    plays = {name: dataset["plays"] for name, dataset in config["datasets"].items() if "plays" in dataset}
    about = claims.About(config["about"]["title"], config["about"]["summary"], config["imagenet_source"], plays, inference)
    sections = [report_section(tables.read_table(results / "tables/controls.parquet", tables.CONTROLS))] if study.controls_enabled else []
    report = claims.claims_report(verdicts, about, sections)
    assert (results / "claims.md").read_text() == report.markdown()
    assert (results / "claims.html").read_text() == report.html()
    for stem in ("table1_accuracy", "learning_forgetting_correlation", "named_hypotheses", "checkpoint_picks"):
        page = (results / "tables" / f"{stem}.html").read_text()
        assert page.count("<tr>") == len(study_tables[stem]) + 1, stem  # a header and every row
