"""A results folder belongs to one configuration, and the checkpoints published into it are
checked before any job reads them."""

from __future__ import annotations

import shutil
from pathlib import Path

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
    check_weights_files,
    holds_results,
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


def _a_result(results="results"):
    """A file a successful job writes (a table)."""
    path = Path(results) / "tables/table1_accuracy.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"table")


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
    _a_result()
    other = tmp_path / "other.yaml"
    with pytest.raises(ResultsFolderError) as refused:
        check_results_folder(_with(config, key, value), [other])
    message = str(refused.value)
    assert str(config_file) in message and str(other) in message
    assert f"differs from it in {key}" in message
    # tiny.yaml's data folder lies inside its results folder: the advice moves both.
    assert "--config results=<folder> data_root=<folder>/data" in message and "delete 'results'" in message
    assert "delete results/.config_stamp.yaml" in message


def test_the_advice_names_data_root_only_where_it_lies_in_the_results_folder(tiny):
    config, config_file = tiny
    config = _with(config, "data_root", "data")
    stamp_results_folder(config, [config_file])
    _a_result()
    with pytest.raises(ResultsFolderError, match=r"own folder \(its 'results:' key, or --config results=<folder>\)"):
        check_results_folder(_with(config, "stir.iterations", 500), [config_file])


def test_a_new_results_folder_whose_data_root_stays_in_another_studys_folder_is_refused(tiny, tmp_path):
    """The first fix of a refusal, --config results=<new>, left data_root at results/data:
    the new study would write its generated datasets into the old study's folder."""
    config, config_file = tiny
    stamp_results_folder(config, [config_file])
    _a_result()
    moved = _with(_with(config, "stir.iterations", 500), "results", "new")
    with pytest.raises(ResultsFolderError) as refused:
        check_results_folder(moved, [tmp_path / "other.yaml"])
    message = str(refused.value)
    assert "the data folder 'results/data' (config data_root) lies inside the results folder" in message
    assert "differs from it in stir.iterations" in message
    assert "--config results=new data_root=new/data" in message
    check_results_folder(_with(moved, "data_root", "new/data"), [tmp_path / "other.yaml"])  # the advice
    # A results folder inside the other's (results/paper beside the embedded study) with its data inside it.
    nested = _with(_with(moved, "results", "results/paper"), "data_root", "results/paper/data")
    check_results_folder(nested, [tmp_path / "other.yaml"])
    check_results_folder(_with(config, "results", "new"), [config_file])  # the same design may share its data


def test_a_stamp_binds_only_once_a_job_succeeded(tiny, tmp_path):
    """A run whose first job failed has stamped the folder but left no result (Snakemake
    deletes a failed job's outputs; its log stays): the corrected config is not refused and
    its run replaces the stamp, which then binds."""
    config, config_file = tiny
    stamp_results_folder(config, [config_file])
    for leftover in ("logs/finetune/x.log", "benchmarks/finetune/x.tsv", "work/a/b/c/d/resume.safetensors"):
        (Path("results") / leftover).parent.mkdir(parents=True, exist_ok=True)
        (Path("results") / leftover).write_bytes(b"x")
    (Path("results") / "finetune/a/b").mkdir(parents=True)  # a folder Snakemake made for an output
    assert not holds_results("results")
    corrected, corrected_file = _with(config, "finetune.epochs", 4), tmp_path / "corrected.yaml"
    check_results_folder(corrected, [corrected_file])
    stamp = stamp_results_folder(corrected, [corrected_file])
    assert yaml.safe_load(stamp.read_text())["config_files"] == [str(corrected_file)]
    _a_result()
    assert holds_results("results")
    with pytest.raises(ResultsFolderError, match="differs from it in finetune.epochs"):
        check_results_folder(config, [config_file])
    stamp_results_folder(config, [config_file])  # a binding stamp is kept as first written
    assert yaml.safe_load(stamp.read_text())["config_files"] == [str(corrected_file)]


def test_a_damaged_stamp_is_named(tiny):
    config, config_file = tiny
    stamp = stamp_results_folder(config, [config_file])
    _a_result()
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
    _follow_the_rm_advice(message)
    check_published_checkpoints(study)


def _follow_the_rm_advice(message):
    """Delete what the advice's one 'rm -rf ...' names; returns the paths."""
    (line,) = [line for line in message.splitlines() if "rm -rf " in line]
    paths = line.split("rm -rf ", 1)[1].split(", then", 1)[0].split()
    for path in map(Path, paths):
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return paths


def _finish(study):
    """Every run published and the table that reads every history written."""
    for run in study.training_runs():
        _publish(study, run)
    _a_result(study.layout.results)


def test_a_finished_runs_outputs_gone_with_its_work_copies_is_noticed_and_the_advice_trains_it_again(tiny):
    """Both the published checkpoint and its work copy gone: before, the advice kept the work
    folder (whose resume state then failed the job) and, once the run's outputs were deleted,
    the dry-run saw nothing to do. Now the dry-run names the run and the advice deletes what
    makes Snakemake train it again."""
    study = StudyDesign(tiny[0])
    _finish(study)
    run = study.dynamics_runs()[0]
    work, folder = study.layout.path("work", run), study.layout.path("checkpoints", run)
    checkpoint_path(folder, "epoch_002").unlink()
    checkpoint_path(work, "epoch_002").unlink()
    (work / "resume.safetensors").write_bytes(b"state")
    with pytest.raises(ResultsFolderError) as refused:
        check_published_checkpoints(study)
    assert "its work copy" in str(refused.value) and "train the run again" in str(refused.value)
    # Deleting only the run's outputs (the old advice) leaves a run Snakemake would not remake.
    shutil.rmtree(folder)
    study.layout.path("history", run).unlink()
    with pytest.raises(ResultsFolderError) as refused:
        check_published_checkpoints(study)
    message = str(refused.value)
    assert f"the run {run.path} lacks {folder}, {study.layout.path('history', run)}" in message
    assert "'Nothing to be done'" in message and "train the run again" in message
    deleted = _follow_the_rm_advice(message)
    assert str(work) in deleted and str(study.layout.path("table", stem="table1_accuracy")) in deleted
    check_published_checkpoints(study)


def test_a_finished_runs_outputs_gone_with_a_whole_work_folder_are_published_again(tiny):
    study = StudyDesign(tiny[0])
    _finish(study)
    run = study.dynamics_runs()[0]
    work = study.layout.path("work", run)
    (work / "resume.safetensors").write_bytes(b"state")
    shutil.rmtree(study.layout.path("checkpoints", run))
    study.layout.path("forgetting_monitor", run).unlink()
    with pytest.raises(ResultsFolderError, match=r"publish it again from its work folder") as refused:
        check_published_checkpoints(study)
    assert str(work) not in _follow_the_rm_advice(str(refused.value))
    assert work.is_dir()
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
    _a_result()
    older = yaml.safe_load(stamp.read_text())
    del older["design"]["monitor"]  # as written before the schema had 'monitor' (all defaults here)
    older["digest"] = "0" * 64
    stamp.write_text(yaml.safe_dump(older))
    assert config["monitor"] == validated_config({**config, "monitor": {}})["monitor"]
    check_results_folder(config, [config_file], schema)
    with pytest.raises(ResultsFolderError, match=r"differs from it in monitor.until_epoch"):
        check_results_folder(_with(config, "monitor.until_epoch", 2), [config_file], schema)


# --- weights files ------------------------------------------------------------------------


@pytest.fixture
def shipped(tiny, tmp_path):
    """tiny.yaml with a 'file:' source pinned by its sha256, as the scale model ships its source."""
    import hashlib

    weights = tmp_path / "source.safetensors"
    save_file({"weight": torch.arange(64, dtype=torch.float32)}, str(weights))
    config = _with(tiny[0], "sources.shipped", {"weights": f"file:{weights}"})
    config["sources"]["shipped"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    return StudyDesign(config), weights


def test_a_truncated_pinned_weights_file_is_refused_naming_the_key(shipped, tmp_path):
    study, weights = shipped
    check_weights_files(study, tmp_path / "hashes.json")
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(
        ResultsFolderError, match=rf"config key 'sources.shipped.sha256': weights file {weights} .*damaged"
    ):
        check_weights_files(study, tmp_path / "hashes.json")
    weights.unlink()
    with pytest.raises(
        ResultsFolderError, match=rf"config key 'sources.shipped.weights': weights file {weights} does not"
    ):
        check_weights_files(study, tmp_path / "hashes.json")


def test_a_weights_files_hash_is_remembered_by_size_and_mtime(shipped, tmp_path, monkeypatch):
    import os

    from finetune_invariance.study import runtime

    study, weights = shipped
    hashed = []
    real = runtime.sha256
    monkeypatch.setattr(runtime, "sha256", lambda path: hashed.append(path) or real(path))
    cache = tmp_path / "hashes.json"
    check_weights_files(study, cache)
    check_weights_files(study, cache)
    assert hashed == [weights]  # the second dry-run reads the remembered hash
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched (or replaced)
    check_weights_files(study, cache)
    assert hashed == [weights, weights]


def test_the_shipped_source_of_the_scale_model_passes(repo_root, tmp_path):
    config = validated_config(yaml.safe_load((repo_root / "config.yaml").read_text()))
    check_weights_files(StudyDesign(config, workflow_dir=repo_root), tmp_path / "hashes.json")
