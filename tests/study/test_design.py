"""The study design read from the config: runs, epochs, references between keys."""

import copy

import pandas as pd
import pytest
import yaml

from finetune_invariance.study.design import ConfigError, Run, Study, with_context


def _config(**changes):
    config = {
        "results": "results",
        "model": {"name": "vit_tiny_patch16_224"},
        "datasets": {
            "a": {"kind": "generated", "corrupted": "generated"},
            "b": {"kind": "generated"},
            "pre": {"kind": "generated"},
        },
        "sources": {"pre": {"weights": "pretrain:pre"}, "scratch": {"weights": "scratch"}},
        "pretrain": {"epochs": 7},
        "finetune": {"epochs": 4, "lr": 0.1},
        "variants": {"default": {}, "slow": {"lr": 0.01, "epochs": 2}},
        "finetune_runs": [{"sources": ["pre", "scratch"], "datasets": ["a", "b"], "tasks": ["classification"]}],
        "dynamics": [{"source": "pre", "dataset": "a", "task": "classification", "variants": ["default", "slow"]}],
        "stir": {"seeds": [0, 3]},
    }
    config.update(changes)
    return config


def test_runs_are_the_union_of_blocks_and_dynamics_without_duplicates():
    runs = Study(_config()).runs()
    expected = {Run(s, d, "classification", "default") for s in ("pre", "scratch") for d in ("a", "b")}
    expected.add(Run("pre", "a", "classification", "slow"))
    assert set(runs) == expected
    assert len(runs) == len(expected)


def test_dynamics_runs_are_analysed_every_epoch_others_at_the_last():
    study = Study(_config())
    assert study.analysed_epochs(Run("pre", "a", "classification", "default")) == [1, 2, 3, 4]
    assert study.analysed_epochs(Run("pre", "a", "classification", "slow")) == [1, 2]
    assert study.analysed_epochs(Run("scratch", "b", "classification", "default")) == [4]


def test_variant_overrides_the_finetune_hyperparameters():
    study = Study(_config())
    assert study.training("finetune", "slow")["lr"] == 0.01
    assert study.training("finetune")["lr"] == 0.1
    with pytest.raises(ConfigError, match="variant 'fast' is not defined"):
        study.training("finetune", "fast")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sources": {"x": {"weights": "pretrain:nowhere"}}}, r"sources.x.weights = 'pretrain:nowhere'"),
        (
            {"finetune_runs": [{"sources": ["ghost"], "datasets": ["a"], "tasks": ["classification"]}]},
            r"finetune_runs\[0\].sources: \['ghost'\] not defined",
        ),
        (
            {"dynamics": [{"source": "pre", "dataset": "b", "task": "classification", "variants": ["default"]}]},
            r"datasets.b.corrupted",
        ),
        (
            {"dynamics": [{"source": "pre", "dataset": "a", "task": "classification", "variants": ["nope"]}]},
            r"dynamics\[0\].variants: \['nope'\]",
        ),
    ],
)
def test_inconsistent_references_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        Study(_config(**change))


def test_with_context_prefixes_the_run_columns():
    df = with_context(pd.DataFrame({"x": [1, 2]}), Run("s", "d", "classification", "v"), epoch=3)
    assert list(df.columns) == ["source", "dataset", "task", "variant", "epoch", "x"]
    assert df["epoch"].tolist() == [3, 3] and df["source"].tolist() == ["s", "s"]


@pytest.mark.parametrize("path", ["config.yaml", "config/paper.yaml"])
def test_shipped_configs_are_consistent(path, repo_root):
    config = yaml.safe_load((repo_root / path).read_text())
    config.setdefault("variants", {"default": {}})
    config.setdefault("dynamics", [])
    for entry in config["dynamics"]:
        entry.setdefault("task", "classification")
    study = Study(copy.deepcopy({"results": "results", **config}))
    assert study.runs()
