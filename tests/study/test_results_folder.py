"""A results folder belongs to one configuration, and the checkpoints published into it are
checked before any job reads them."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from safetensors.torch import save_file

from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.layout import checkpoint_path
from finetune_invariance.study.results_folder import (
    ResultsFolderError,
    check_published_checkpoints,
    check_results_folder,
    stamp_results_folder,
)

from .conftest import validated_config


@pytest.fixture
def tiny(repo_root, tmp_path, monkeypatch):
    """tests/configs/tiny.yaml, validated, with its results below tmp_path (the working folder)."""
    monkeypatch.chdir(tmp_path)
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text((repo_root / "tests/configs/tiny.yaml").read_text())
    return validated_config(yaml.safe_load(config_file.read_text())), config_file


def _with(config, dotted, value):
    changed = yaml.safe_load(yaml.safe_dump(config))
    *parents, key = dotted.split(".")
    node = changed
    for parent in parents:
        node = node[parent]
    node[key] = value
    return changed


def test_a_folder_without_a_stamp_is_anyones_and_a_started_run_stamps_it(tiny):
    config, config_file = tiny
    check_results_folder(config, [config_file])
    stamp = stamp_results_folder(config, [config_file])
    assert stamp.parent.name == "results"
    assert yaml.safe_load(stamp.read_text())["config_files"] == [str(config_file)]
    check_results_folder(config, [config_file])


@pytest.mark.parametrize(
    "key, value",
    [
        ("device", "cuda"),
        ("resources.gpu_mem_mb", 64000),
        ("warm_interpreter", False),
        ("data_root", "/scratch/data"),
        ("download", True),
        ("stir.memory_budget_gb", 80),
        ("about.title", "another title"),
    ],
)
def test_where_and_how_the_study_runs_is_not_another_configuration(tiny, key, value):
    config, config_file = tiny
    stamp_results_folder(config, [config_file])
    check_results_folder(_with(config, key, value), ["elsewhere.yaml"])


@pytest.mark.parametrize(
    "key, value",
    [
        ("stir.iterations", 500),
        ("stir.seeds", [0, 1, 2]),
        ("finetune.epochs", 4),
        ("model.overrides.depth", 3),
        ("analysed_checkpoint", "last"),
        ("robustness.n_images", 20),
    ],
)
def test_another_design_is_refused_naming_both_configs_the_key_and_the_fixes(tiny, tmp_path, key, value):
    config, config_file = tiny
    stamp_results_folder(config, [config_file])
    other = tmp_path / "other.yaml"
    with pytest.raises(ResultsFolderError) as refused:
        check_results_folder(_with(config, key, value), [other])
    message = str(refused.value)
    assert str(config_file) in message and str(other) in message
    assert f"differs from it in {key}" in message
    assert "--config results=<folder>" in message and "delete 'results'" in message
    assert "delete results/.config_stamp.yaml" in message


def test_a_damaged_stamp_is_named(tiny):
    config, config_file = tiny
    stamp = stamp_results_folder(config, [config_file])
    stamp.write_text("digest: [")
    with pytest.raises(ResultsFolderError, match=r"stamp results/.config_stamp.yaml is damaged"):
        check_results_folder(config, [config_file])


# --- published checkpoints --------------------------------------------------------------


def _publish(study, run):
    """What a finished finetune job leaves: its checkpoints (copies of its work folder's),
    history and monitor tables."""
    folder = study.layout.path("checkpoints", run)
    for label in study.kept_checkpoints(run):
        for path in (checkpoint_path(folder, label), checkpoint_path(study.layout.path("work", run), label)):
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"weight": torch.arange(64, dtype=torch.float32)}, str(path))
    for name in ("history", "forgetting_monitor"):
        study.layout.path(name, run).write_bytes(b"table")
    return folder


def test_intact_checkpoint_folders_pass(tiny):
    study = StudyDesign(tiny[0])
    for run in study.training_runs():
        _publish(study, run)
    check_published_checkpoints(study)


def test_a_missing_or_truncated_checkpoint_is_named_with_the_copy_that_restores_it(tiny):
    study = StudyDesign(tiny[0])
    dynamics = study.dynamics_runs()[0]
    folder, work = _publish(study, dynamics), study.layout.path("work", dynamics)
    assert len(study.kept_checkpoints(dynamics)) == 3  # every epoch of a dynamics run
    checkpoint_path(folder, "epoch_002").unlink()
    truncated = checkpoint_path(folder, "epoch_003")
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(ResultsFolderError) as refused:
        check_published_checkpoints(study)
    message = str(refused.value)
    for label, damage in (("epoch_002", "is missing"), ("epoch_003", "is damaged")):
        path = checkpoint_path(folder, label)
        assert f"{path} {damage}" in message
        assert f"copy it again from the run's work folder: cp {checkpoint_path(work, label)} {path}" in message
    for label in ("epoch_002", "epoch_003"):  # the advice
        shutil.copyfile(checkpoint_path(work, label), checkpoint_path(folder, label))
    check_published_checkpoints(study)


def test_without_a_work_copy_the_advice_is_to_train_the_run_again(tiny):
    study = StudyDesign(tiny[0])
    run = study.dynamics_runs()[0]
    folder = _publish(study, run)
    checkpoint_path(folder, "epoch_001").write_bytes(b"\xff" * 100)  # garbage in its place
    shutil.rmtree(study.layout.path("work", run))
    with pytest.raises(ResultsFolderError) as refused:
        check_published_checkpoints(study)
    message = str(refused.value)
    assert "epoch_001.safetensors is damaged" in message
    history = study.layout.path("history", run)
    assert f"delete {history} and the folder {folder}, then run your usual command with --forcerun {history}" in message
    study.layout.path("history", run).unlink()  # the advice: the job is then not finished
    shutil.rmtree(folder)
    check_published_checkpoints(study)


def test_a_deleted_folder_of_a_finished_run_is_noticed(tiny):
    study = StudyDesign(tiny[0])
    run = study.dynamics_runs()[0]
    folder = _publish(study, run)
    shutil.rmtree(folder)
    with pytest.raises(
        ResultsFolderError, match=rf"copy it again from the run's work folder: mkdir -p {folder} && cp "
    ):
        check_published_checkpoints(study)


def test_a_folder_whose_job_has_not_finished_is_left_to_snakemake(tiny):
    # Snakemake deletes a job's outputs before it runs it again: without its history and
    # monitor tables the folder belongs to a job that was killed (--rerun-incomplete).
    study = StudyDesign(tiny[0])
    run = study.dynamics_runs()[0]
    folder = _publish(study, run)
    checkpoint_path(folder, "epoch_002").unlink()
    study.layout.path("forgetting_monitor", run).unlink()
    check_published_checkpoints(study)


def test_a_key_added_to_the_schema_since_the_stamp_counts_as_its_default(tiny, repo_root):
    config, config_file = tiny
    schema = repo_root / "workflow/schemas/config.schema.yaml"
    stamp = stamp_results_folder(config, [config_file])
    older = yaml.safe_load(stamp.read_text())
    del older["design"]["monitor"]  # as written before the schema had 'monitor' (all defaults here)
    older["digest"] = "0" * 64
    stamp.write_text(yaml.safe_dump(older))
    assert config["monitor"] == validated_config({**config, "monitor": {}})["monitor"]
    check_results_folder(config, [config_file], schema)
    with pytest.raises(ResultsFolderError, match=r"differs from it in monitor.until_epoch"):
        check_results_folder(_with(config, "monitor.until_epoch", 2), [config_file], schema)
