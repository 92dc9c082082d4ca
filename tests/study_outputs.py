"""Checks of a finished study's results folder, shared by the local and the SLURM
end-to-end tests so both runs are judged the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from finetune_invariance.study import claims, tables
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


def assert_study_outputs(workdir: Path, config: dict) -> None:
    """The tables, figures and claims a finished study must have, checked against facts
    derived here from the config and the training histories."""
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
    depth = config["model"]["overrides"]["depth"]
    expected_rows = sum(len(study.analysed_checkpoints(run)) for run in study.runs()) * len(study.seeds) * (depth + 1) * 3
    assert len(metrics) == expected_rows
    assert set(metrics["layer"]) == set(range(depth + 1)) and set(metrics["seed"]) == set(study.seeds)
    assert metrics["value"].between(-1e-6, 1 + 1e-6).all()  # 1 - STIR or 1 - CKA
    flow = study_tables["invariance_flow"]
    assert (flow.loc[flow.pretrained_layer == flow.finetuned_layer, "flow"] == 0).all()

    # Robustness: every dynamics epoch at every severity; the hypothesis family of the depth.
    robust = study_tables["robust_accuracy"]
    for run in study.dynamics_runs():
        assert sorted(run.rows(robust)["epoch"].unique()) == list(range(1, study.epochs(run) + 1))
    hypotheses = study_tables["hypotheses"]
    per_run = hypotheses.groupby(["source", "dataset", "task", "variant"]).size()
    assert (per_run == 40 * (depth - 1)).all() and len(per_run) == len(study.dynamics_runs())
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

    # Figures: every kind, each PNG with its PDF.
    pngs = sorted((results / "figures").rglob("*.png"))
    assert {p.relative_to(results / "figures").parts[0] for p in pngs} == FIGURE_KINDS
    for png in pngs:
        assert png.stat().st_size > 5000, png
        assert png.with_suffix(".pdf").is_file()

    # Claims: the report is the claims of these tables with this config's settings, opening
    # with what the configuration is; it and the Markdown tables have HTML pages for the report.
    optimizers = {run.variant: study.training(run)["optimizer"] for run in study.dynamics_runs()}
    verdicts = claims.evaluate_claims(study_tables, config["imagenet_source"], optimizers)
    assert list(verdicts["claim"]) == [claim.id for claim in claims.CLAIMS]
    assert set(verdicts["verdict"]) <= set(claims.VERDICTS)
    plays = {name: dataset["plays"] for name, dataset in config["datasets"].items() if "plays" in dataset}
    about = claims.About(config["about"]["title"], config["about"]["summary"], config["imagenet_source"], plays)
    report = claims.claims_report(verdicts, about)
    assert (results / "claims.md").read_text() == report.markdown()
    assert (results / "claims.html").read_text() == report.html()
    for stem in ("table1_accuracy", "learning_forgetting_correlation", "named_hypotheses", "checkpoint_picks"):
        page = (results / "tables" / f"{stem}.html").read_text()
        assert page.count("<tr>") == len(study_tables[stem]) + 1, stem  # a header and every row
