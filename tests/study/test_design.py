"""The study design read from a config: runs, pretraining runs, analysed checkpoints, jobs."""

import pytest

from finetune_invariance.study.design import StudyDesign
from finetune_invariance.study.vocabulary import Run

from .conftest import validated_config


def design(**changes) -> StudyDesign:
    config = {
        "model": {"name": "vit_tiny_patch16_224"},
        "datasets": {
            "a": {"kind": "generated", "corrupted": "generated"},
            "b": {"kind": "generated"},
            "pre": {"kind": "generated"},
        },
        "sources": {
            "pre": {"weights": "pretrain:pre"},
            "b": {"weights": "pretrain:b"},
            "scratch": {"weights": "scratch"},
        },
        "finetune": {"epochs": 4, "lr": 0.1},
        "variants": {"default": {}, "slow": {"lr": 0.01, "epochs": 3, "schedule_epochs": 4}},
        "finetune_runs": [
            {"sources": ["pre", "scratch"], "datasets": ["a", "b"], "tasks": ["classification"]},
            {"sources": ["pre"], "datasets": ["a"], "tasks": ["reconstruction"]},
        ],
        "dynamics": [{"source": "pre", "dataset": "a", "variants": ["default", "slow"]}],
        "stir": {"seeds": [0, 3]},
    }
    config.update(changes)
    return StudyDesign(validated_config(config))


def test_runs_are_the_union_of_blocks_and_dynamics_without_duplicates():
    runs = design().runs()
    expected = {Run(s, d, "classification") for s in ("pre", "scratch") for d in ("a", "b")}
    expected |= {Run("pre", "a", "reconstruction"), Run("pre", "a", "classification", "slow")}
    assert runs == sorted(expected)


def test_a_pretraining_run_that_is_analysed_is_trained_once():
    study = design()
    assert study.pretraining_run("pre") == Run("scratch", "pre", "classification")
    assert study.pretraining_run("b") == Run("scratch", "b", "classification")  # also an analysed run
    assert study.pretraining_run("scratch") is None
    training = study.training_runs()
    assert len(training) == len(set(training)) == len(study.runs()) + 1  # + scratch -> pre


def test_the_chain_of_trained_sources_is_trained_first():
    study = design()
    priorities = {run: study.training_priority(run) for run in study.training_runs()}
    assert priorities[Run("scratch", "pre", "classification")] == 2  # a source's pretraining run
    assert priorities[Run("scratch", "b", "classification")] == 2  # analysed, and the source 'b'
    assert priorities[Run("pre", "a", "reconstruction")] == 1  # from a source trained here
    assert priorities[Run("scratch", "a", "classification")] == 0  # nothing waits for it
    assert sum(p == 1 for p in priorities.values()) == 4  # pre -> a, a (slow), b and a (reconstruction)


def test_dynamics_runs_are_analysed_every_epoch_others_at_their_best_or_last_checkpoint():
    study = design()
    assert study.analysed_checkpoints(Run("pre", "a", "classification")) == [f"epoch_00{e}" for e in (1, 2, 3, 4)]
    assert study.analysed_checkpoints(Run("pre", "a", "classification", "slow")) == [
        "epoch_001",
        "epoch_002",
        "epoch_003",
    ]
    assert study.analysed_checkpoints(Run("scratch", "b", "classification")) == ["best"]
    last = design(analysed_checkpoint="last")
    assert last.analysed_checkpoints(Run("scratch", "b", "classification")) == ["epoch_004"]


def test_a_run_keeps_what_is_analysed_and_its_source_checkpoint():
    study = design()
    assert study.kept_checkpoints(Run("scratch", "pre", "classification")) == ["best"]  # pretrains 'pre' only
    assert study.checkpoint_epochs(Run("scratch", "pre", "classification")) == []
    assert study.kept_checkpoints(Run("pre", "a", "classification")) == [f"epoch_00{e}" for e in (1, 2, 3, 4)]
    assert study.checkpoint_epochs(Run("pre", "a", "classification")) == [1, 2, 3, 4]
    assert study.source_checkpoint("pre") == "best"
    assert design(analysed_checkpoint="last").kept_checkpoints(Run("scratch", "pre", "classification")) == ["epoch_004"]


def test_stir_jobs_and_pretrained_inversions():
    study = design()
    jobs = study.pair_jobs()
    # 4 epochs of the default dynamics run, 4 other runs at one checkpoint; 2 seeds. The 3
    # epochs of the 'slow' variant are measured by the forgetting monitor alone.
    assert len(jobs) == (4 + 4) * 2 and {job.seed for job in jobs} == {0, 3}
    assert not any(job.run.variant == "slow" for job in jobs)
    assert study.is_monitor_only(Run("pre", "a", "classification", "slow"))
    with_stir = design(variant_metrics="stir")
    assert len(with_stir.pair_jobs()) == (4 + 3 + 4) * 2  # every epoch of the variant too
    pairs = {(job.source, job.dataset) for job in study.pretrained_inversions()}
    assert pairs == {("pre", "a"), ("pre", "b"), ("scratch", "a"), ("scratch", "b")}
    assert len(study.pretrained_inversions()) == 4 * 2


def test_a_variant_overrides_the_finetune_hyperparameters():
    study = design()
    slow = study.training(Run("pre", "a", "classification", "slow"))
    assert (slow["lr"], slow["epochs"], slow["schedule_epochs"]) == (0.01, 3, 4)
    default = study.training(Run("pre", "a", "classification"))
    assert (default["lr"], default["epochs"], default["schedule_epochs"]) == (0.1, 4, None)
    assert default["batch_size"] == 256 and default["image_size"] == 224  # schema defaults, model's size


def test_a_source_sets_weight_decay_and_warmup_of_its_runs_under_their_variant():
    sources = {
        "pre": {"weights": "pretrain:pre", "finetune": {"weight_decay": 5e-4}},
        "b": {"weights": "pretrain:b"},
        "scratch": {"weights": "scratch", "finetune": {"weight_decay": 1e-3, "warmup_steps": 7}},
    }
    variants = {"default": {}, "slow": {"lr": 0.01, "epochs": 3, "schedule_epochs": 4, "weight_decay": 0.0}}
    study = design(sources=sources, variants=variants)
    from_pre = study.training(Run("pre", "a", "classification"))
    assert (from_pre["weight_decay"], from_pre["warmup_steps"]) == (5e-4, 100)  # 100: the schema's default
    pretraining = study.training(study.pretraining_run("pre"))  # a run from scratch
    assert (pretraining["weight_decay"], pretraining["warmup_steps"]) == (1e-3, 7)
    assert study.training(Run("pre", "a", "classification", "slow"))["weight_decay"] == 0.0


def test_the_old_boolean_augmentation_still_means_what_it_meant():
    assert design(finetune={"augment": False}).training(Run("pre", "a", "classification"))["augment"] == "none"
    assert design(finetune={"augment": True}).training(Run("pre", "a", "classification"))["augment"] == "crop_flip"
    assert design().training(Run("pre", "a", "classification"))["augment"] == "authors"  # the schema's default


def test_a_source_model_carries_the_pinned_checksum_of_its_weights_file():
    sources = {
        "web": {"weights": "url:https://example.org/B_32.npz", "sha256": "ab" * 32},
        "pre": {"weights": "pretrain:pre"},
        "scratch": {"weights": "scratch"},
    }
    study = design(sources=sources)
    assert study.source_model("web") == {
        "name": "vit_tiny_patch16_224",
        "overrides": {},
        "weights": "url:https://example.org/B_32.npz",
        "head_init": "trunc_normal",
        "sha256": "ab" * 32,
    }
    assert "sha256" not in study.source_model("scratch")


def test_variant_groups_are_the_dynamics_settings_with_several_variants():
    assert design().variant_groups() == {("pre", "a", "classification"): ["default", "slow"]}


@pytest.mark.parametrize("path", ["config.yaml", "config/paper.yaml"])
def test_shipped_configs_give_a_design(path, shipped_config):
    study = StudyDesign(shipped_config(path))
    assert study.runs() and study.pair_jobs() and study.pretrained_inversions()


def test_the_schemas_stir_defaults_are_the_inversion_recipes(repo_root):
    import yaml

    from finetune_invariance import inversion

    stir = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())["properties"]["stir"][
        "properties"
    ]
    assert (
        stir["iterations"]["default"] == inversion.DEFAULT_ITERATIONS == 500
    )  # docs/method.md: 500 in the authors' runs
    assert stir["step_size"]["default"] == inversion.DEFAULT_STEP_SIZE == 0.5
    assert stir["precision"]["default"] == "fp32"


# --- a model per source, your own data ----------------------------------------------------------

CLIP = {
    "name": "vit_base_patch16_clip_224.openai",
    "overrides": {"img_size": 32, "patch_size": 8},
    "mean": [0.4] * 3,
    "std": [0.3] * 3,
}


def per_source_design(tmp_path=None, **changes) -> StudyDesign:
    return design(
        sources={
            "pre": {"weights": "pretrain:pre"},
            "b": {"weights": "pretrain:b"},
            "scratch": {"weights": "scratch"},
            "clip": {"weights": "file:weights/clip.safetensors", "model": CLIP},
            "dino": {
                "weights": "timm:lvd142m",
                "model": {
                    "name": "vit_base_patch14_reg4_dinov2",
                    "register_tokens": False,
                    "image_size": 224,
                    "overrides": {"img_size": 224},
                },
            },
        },
        finetune_runs=[{"sources": ["pre", "clip", "dino"], "datasets": ["a"], "tasks": ["classification"]}],
        **changes,
    )


def test_a_source_with_its_own_model_gives_it_to_the_source_and_every_run_from_it():
    study = per_source_design()
    clip = study.source_model("clip")
    assert clip == {
        "name": "vit_base_patch16_clip_224.openai",
        "overrides": {"img_size": 32, "patch_size": 8},
        "weights": "file:weights/clip.safetensors",
        "head_init": "trunc_normal",
        "mean": [0.4] * 3,
        "std": [0.3] * 3,
    }
    assert study.model("checkpoint:x", source="dino")["register_tokens"] is False
    assert study.training(Run("clip", "a", "classification"))["image_size"] == 32
    assert study.training(Run("dino", "a", "classification"))["image_size"] == 224
    # the top-level model stays the default, and a 'pretrain:' source is the scratch source's model
    top = study.model("checkpoint:x", source="pre")
    assert (
        top
        == study.model("checkpoint:x")
        == {"name": "vit_tiny_patch16_224", "overrides": {}, "weights": "checkpoint:x", "head_init": "trunc_normal"}
    )
    assert study.source_image_size("pre") == study.image_size == 224
    assert study.compares_models and not design().compares_models


def test_a_pretrain_source_is_the_scratch_sources_model():
    small = {"name": "vit_tiny_patch16_224", "overrides": {"img_size": 32, "depth": 2}}
    study = design(sources={"pre": {"weights": "pretrain:pre"}, "scratch": {"weights": "scratch", "model": small}})
    assert study.model_entry("pre") == study.model_entry("scratch") != study.model_entry()
    assert study.training(study.pretraining_run("pre"))["image_size"] == 32
    assert not study.compares_models  # every run starts from the scratch source's model


def test_a_folder_dataset_is_read_from_its_root_in_the_workflows_folder_at_its_native_size(tmp_path):
    from .test_config import image_folder

    image_folder(tmp_path / "images", train=("x", "y", "z"), test=("x", "y"))
    datasets = {
        "a": {"kind": "folder", "root": "images", "image_size": 16},
        "b": {"kind": "generated"},
        "pre": {"kind": "generated"},
    }
    config = validated_config(
        {
            "model": {"name": "vit_tiny_patch16_224"},
            "datasets": datasets,
            "sources": {"pre": {"weights": "pretrain:pre"}, "scratch": {"weights": "scratch"}},
            "finetune_runs": [{"sources": ["pre"], "datasets": ["a"], "tasks": ["classification", "reconstruction"]}],
            "data_root": "data",
        }
    )
    study = StudyDesign(config, workflow_dir=tmp_path)
    assert study.data("a") == {"root": str(tmp_path / "images"), "download": False, "folder_size": 16}
    assert study.data("b") == {"root": "data", "download": False}
    assert study.num_classes(Run("pre", "a", "classification")) == 3
    assert study.num_classes(Run("pre", "a", "reconstruction")) is None
    assert study.is_folder("a") and not study.is_generated("a")
    absolute = validated_config(
        {**config, "datasets": {**datasets, "a": {**datasets["a"], "root": str(tmp_path / "images")}}}
    )
    assert StudyDesign(absolute, workflow_dir="/elsewhere").data("a")["root"] == str(tmp_path / "images")
