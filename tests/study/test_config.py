"""Config checks beyond the schema: every problem named by its key before any job runs."""

import copy

import pytest

from finetune_invariance.study.config import ConfigError, check_config, check_model

from .conftest import validated_config

TINY_MODEL = {
    "name": "vit_tiny_patch16_224",
    "overrides": {"img_size": 16, "patch_size": 8, "embed_dim": 16, "depth": 2, "num_heads": 2},
    "image_size": 16,
}


def config(**changes):
    base = {
        "model": TINY_MODEL,
        "datasets": {
            "shapes": {"kind": "generated", "n_test": 60, "corrupted": "generated"},
            "textures": {"kind": "generated"},
        },
        "sources": {"textures": {"weights": "pretrain:textures"}, "scratch": {"weights": "scratch"}},
        "finetune": {"epochs": 3},
        "variants": {"default": {}, "short": {"epochs": 3, "schedule_epochs": 5}},
        "finetune_runs": [{"sources": ["textures", "scratch"], "datasets": ["shapes"], "tasks": ["classification"]}],
        "dynamics": [{"source": "textures", "dataset": "shapes", "variants": ["default", "short"]}],
        "stir": {"n_images": 8, "seeds": [0, 1]},
        "robustness": {"corruptions": ["gaussian_noise", "contrast"], "n_images": 10},
    }
    for key, value in changes.items():
        base[key] = value
    return validated_config(base)


def test_a_consistent_config_passes(tmp_path):
    check_config(config(), model_check_cache=tmp_path / "checks.json")


def with_model(**overrides):
    model = copy.deepcopy(TINY_MODEL)
    model["overrides"].update(overrides)
    return model


@pytest.mark.parametrize(
    "model, message",
    [
        (with_model(depth=0), r"'model.overrides.depth': 0; a model needs at least 1 block"),
        (with_model(embed_dim=15, num_heads=2), r"'model.overrides'.*embed_dim 15 is not divisible by num_heads 2"),
        (with_model(patch_size=5), r"'model.overrides': patch size \(5, 5\) does not tile the image size \(16, 16\)"),
        (
            with_model(dropout_rate=0.1),
            r"'model.overrides': timm's 'vit_tiny_patch16_224' does not take these keywords",
        ),
        (
            {**TINY_MODEL, "name": "vit_tiny_patch16_244"},
            r"'model.name': timm has no model 'vit_tiny_patch16_244'.*close",
        ),
        ({**TINY_MODEL, "image_size": 32}, r"'model.image_size': 32, but the model takes \(16, 16\) images"),
        (with_model(num_classes=3), r"'model.overrides.num_classes'"),
    ],
)
def test_model_problems_name_the_key(model, message):
    with pytest.raises(ConfigError, match=message):
        check_model(model, {})


def test_unknown_pretrained_tag_names_the_source():
    with pytest.raises(
        ConfigError, match=r"'sources.imagenet.weights': timm has no weights 'vit_base_patch32_224.augreg_in2k'"
    ):
        check_model({"name": "vit_base_patch32_224"}, {"imagenet": "augreg_in2k"})
    check_model({"name": "vit_base_patch32_224"}, {"imagenet": "augreg_in1k"})  # the paper's source


def test_a_passing_model_check_is_remembered(tmp_path, monkeypatch):
    cache = tmp_path / "checks.json"
    check_model(TINY_MODEL, {}, cache=cache)
    import finetune_invariance.study.config as config_module

    monkeypatch.setattr(config_module, "_check_model_with_timm", lambda *args: pytest.fail("checked again"))
    check_model(TINY_MODEL, {}, cache=cache)
    with pytest.raises(pytest.fail.Exception):
        check_model(with_model(depth=3), {}, cache=cache)  # other settings are checked


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"stir": {"n_images": 61}},
            r"'stir.n_images': 61 images are drawn from the test set of 'shapes', which has 60",
        ),
        (
            {"robustness": {"corruptions": ["gaussian_noise", "contrast"], "n_images": 121}},
            r"'robustness.n_images': 121 inputs per severity are drawn from the 120 corrupted test images of 'shapes'",
        ),
        (
            {"robustness": {"corruptions": ["gaussian_noise"], "n_images": 61, "sampling": "per_corruption"}},
            r"'robustness.n_images': 61 inputs per corruption and severity",
        ),
        (
            {"variants": {"default": {}, "short": {"epochs": 2}}},
            r"'variants.short.epochs'.*needs at least 3 epochs; it has 2",
        ),
        ({"finetune": {"epochs": 2}}, r"'finetune.epochs'.*needs at least 3 epochs"),
        (
            {"variants": {"default": {}, "short": {"epochs": 6, "schedule_epochs": 5}}},
            r"'variants.short.epochs': 6 epochs exceed the schedule's schedule_epochs = 5",
        ),
        (
            {"robustness": {"corruptions": ["frost"], "n_images": 10}},
            r"'robustness.corruptions': \['frost'\] are not generated",
        ),
        ({"robustness": {"corruptions": ["contrast", "contrast"], "n_images": 10}}, r"repeats a corruption"),
        (
            {"sources": {"textures": {"weights": "pretrain:textures"}}},
            r"'sources.textures.weights'.*define sources.scratch",
        ),
        (
            {"sources": {"scratch": {"weights": "timm:augreg_in1k"}}},
            r"'sources.scratch.weights': the name 'scratch' means",
        ),
        (
            {"datasets": {"shapes": {"kind": "torchvision"}, "textures": {"kind": "generated"}}},
            r"'datasets.shapes.kind'",
        ),
        ({"datasets": {"mnist": {"kind": "torchvision"}}}, r"'datasets.mnist': unknown dataset 'mnist'"),
        ({"imagenet_source": "nowhere"}, r"'imagenet_source': \['nowhere'\] not defined"),
        (
            {"dynamics": [{"source": "textures", "dataset": "textures", "variants": ["default"]}]},
            r"'dynamics\[0\]': robustness is analysed on 'textures', which has no corrupted test set",
        ),
        (
            {"finetune_runs": [{"sources": ["ghost"], "datasets": ["shapes"], "tasks": ["classification"]}]},
            r"'finetune_runs\[0\].sources': \['ghost'\] not defined",
        ),
    ],
)
def test_design_problems_name_the_key(changes, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        check_config(config(**changes), model_check_cache=tmp_path / "checks.json")


def test_duplicate_seeds_are_refused_by_the_schema():
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError):
        config(stir={"seeds": [0, 0]})


def test_every_config_key_is_read_somewhere(repo_root):
    """A key the schema accepts but no code reads is dead config (it would silently do nothing)."""
    import re

    import yaml

    schema = yaml.safe_load((repo_root / "workflow/schemas/config.schema.yaml").read_text())
    code = (
        "\n".join(
            path.read_text()
            for folder in ("src", "workflow/rules", "workflow/scripts")
            for path in (repo_root / folder).rglob("*")
            if path.suffix in (".py", ".smk")
        )
        + (repo_root / "Snakefile").read_text()
    )

    def keys(node, prefix=""):
        for name, entry in node.get("properties", {}).items():
            yield f"{prefix}{name}"
            while "$ref" in entry:  # a JSON pointer into the schema, "#/$defs/..."
                target = schema
                for part in entry["$ref"].removeprefix("#/").split("/"):
                    target = target[part]
                entry = target
            yield from keys(entry, f"{prefix}{name}.")
        if isinstance(node.get("additionalProperties"), dict):
            yield from keys(node["additionalProperties"], prefix)

    unread = [
        key
        for key in keys(schema)
        if not re.search(
            rf"[\"'.]{re.escape(key.rsplit('.', 1)[-1])}[\"'\]]|\b{re.escape(key.rsplit('.', 1)[-1])}=", code
        )
    ]
    assert not unread, f"config keys no code reads: {unread}"


@pytest.mark.parametrize(
    "text, key, lines",
    [
        ("stir:\n  n_images: 8\nmodel: {name: m}\nstir:\n  seeds: [0]\n", "stir", (1, 4)),
        ("stir:\n  n_images: 8\n  iterations: 3\n  n_images: 9\n", "stir.n_images", (2, 4)),
        (
            "finetune_runs:\n  - {sources: [a], datasets: [b]}\n  - {sources: [a], sources: [c]}\n",
            "finetune_runs[1].sources",
            (3, 3),
        ),
    ],
)
def test_a_key_given_twice_is_refused_naming_the_file_the_key_and_both_lines(tmp_path, text, key, lines):
    from finetune_invariance.study.config import load_config_file

    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config_file(path)
    assert f"config file {path}: key '{key}' is given twice (lines {lines[0]} and {lines[1]})" in str(refused.value)


def test_a_config_file_with_unique_keys_loads_as_yaml_does(repo_root):
    import yaml

    from finetune_invariance.study.config import load_config_file

    for path in (repo_root / "config.yaml", repo_root / "config/paper.yaml", repo_root / "tests/configs/tiny.yaml"):
        assert load_config_file(path) == yaml.safe_load(path.read_text())


# --- a model per source ---------------------------------------------------------------------

CLIP_MODEL = {
    "name": "vit_base_patch16_clip_224",
    "overrides": {"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 3, "num_heads": 2},
}


def with_sources(**sources):
    return {"textures": {"weights": "pretrain:textures"}, "scratch": {"weights": "scratch"}, **sources}


def test_a_source_with_its_own_model_passes_and_each_model_is_checked(tmp_path):
    clip = {"weights": "scratch", "model": CLIP_MODEL}
    runs = [{"sources": ["textures", "clip"], "datasets": ["shapes"], "tasks": ["classification"]}]
    check_config(config(sources=with_sources(clip=clip), finetune_runs=runs), model_check_cache=tmp_path / "c.json")
    bad = {"weights": "scratch", "model": {**CLIP_MODEL, "overrides": {**CLIP_MODEL["overrides"], "patch_size": 5}}}
    with pytest.raises(ConfigError, match=r"'sources.clip.model.overrides': patch size \(5, 5\) does not tile"):
        check_config(config(sources=with_sources(clip=bad), finetune_runs=runs))


@pytest.mark.parametrize(
    "sources, message",
    [
        (
            with_sources(textures={"weights": "pretrain:textures", "model": CLIP_MODEL}),
            r"'sources.textures.model': a 'pretrain:' source is the model of the source 'scratch' trained",
        ),
        (
            with_sources(dino={"weights": "timm:lvd142m", "model": {"name": "vit_base_patch14_reg4_dinov2"}}),
            r"'sources.dino.model': the default input size 224, but the model takes \(518, 518\) images "
            r"\(set sources.dino.model.overrides.img_size",
        ),
        (
            with_sources(
                clip={"weights": "timm:openai", "model": {**CLIP_MODEL, "name": "vit_base_patch16_clip_224.openai"}}
            ),
            r"'sources.clip.model.name': 'vit_base_patch16_clip_224.openai' carries a tag, and the source 'clip'",
        ),
        (
            with_sources(
                clip={"weights": "scratch", "model": {**CLIP_MODEL, "name": "vit_base_patch16_clip_224.closedai"}}
            ),
            r"'sources.clip.model.name': timm has no pretrained config 'vit_base_patch16_clip_224.closedai'",
        ),
        (
            with_sources(clip={"weights": "timm:augreg_in1k", "model": CLIP_MODEL}),
            r"'sources.clip.weights': timm has no weights 'vit_base_patch16_clip_224.augreg_in1k'",
        ),
        (
            with_sources(clip={"weights": "scratch", "model": {**CLIP_MODEL, "mean": [0.5, 0.5], "std": [0.2, 0.2]}}),
            r"'sources.clip.model.mean': \[0.5, 0.5\] has 2 values for 3 channels",
        ),
        (
            with_sources(clip={"weights": "scratch", "model": {**CLIP_MODEL, "mean": [0.5] * 3}}),
            r"'sources.clip.model': give mean and std together",
        ),
    ],
)
def test_a_sources_model_problems_name_its_key(sources, message, tmp_path):
    runs = [{"sources": sorted(sources), "datasets": ["shapes"], "tasks": ["classification"]}]
    with pytest.raises(ConfigError, match=message):
        check_config(config(sources=sources, finetune_runs=runs))


def test_the_controls_depth_is_the_controls_sources_model(tmp_path):
    def controlled(depth):
        model = {**CLIP_MODEL, "overrides": {**CLIP_MODEL["overrides"], "depth": depth}}
        runs = [{"sources": ["clip"], "datasets": ["shapes"], "tasks": ["classification"]}]
        sources = with_sources(clip={"weights": "scratch", "model": model})
        return config(sources=sources, finetune_runs=runs, controls={"source": "clip", "shift": 2})

    check_config(controlled(6))  # the top-level model's depth 2 would not fit the shift
    with pytest.raises(ConfigError, match=r"'controls.shift': 2 layers from block 1 do not fit a model of depth 3"):
        check_config(controlled(3))


# --- a folder of your own images ------------------------------------------------------------


def image_folder(root, train=("a", "b"), test=("a", "b"), per_class=6):
    from .test_folder_dataset import random_pixels, write_png

    for split, classes in (("train", train), ("test", test)):
        for name in classes:
            for k in range(per_class):
                write_png(root / split / name / f"{k}.png", random_pixels(k))
    return root


def folder_config(root, **entry):
    datasets = {
        "mine": {"kind": "folder", "root": str(root), "image_size": 16, "corrupted": "generated", **entry},
        "textures": {"kind": "generated"},
    }
    runs = [{"sources": ["textures"], "datasets": ["mine"], "tasks": ["classification"]}]
    dynamics = [{"source": "textures", "dataset": "mine", "variants": ["default"]}]
    return config(datasets=datasets, finetune_runs=runs, dynamics=dynamics)


def test_a_folder_dataset_passes_and_its_test_images_bound_the_samples(tmp_path):
    root = image_folder(tmp_path / "mine")
    check_config(folder_config(root))
    from finetune_invariance.study.config import n_test_images

    assert n_test_images(folder_config(root), "mine") == 12
    too_many = folder_config(root)
    too_many["stir"]["n_images"] = 13
    with pytest.raises(
        ConfigError, match=r"'stir.n_images': 13 images are drawn from the test set of 'mine', which has 12"
    ):
        check_config(too_many)


def test_a_relative_folder_root_is_in_the_workflows_folder(tmp_path):
    image_folder(tmp_path / "workflow" / "images")
    check_config(folder_config("images"), workflow_dir=tmp_path / "workflow")
    with pytest.raises(ConfigError, match=rf"'datasets.mine.root': dataset folder {tmp_path}/images does not exist"):
        check_config(folder_config("images"), workflow_dir=tmp_path)


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {"corrupted": "published"},
            r"'datasets.mine.corrupted': no published corrupted set exists for your own images",
        ),
        ({"n_test": 10}, r"'datasets.mine.n_test': only a 'generated' dataset has it"),
    ],
)
def test_folder_dataset_keys_are_checked(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message):
        check_config(folder_config(image_folder(tmp_path / "mine"), **entry))


def test_a_badly_laid_out_folder_fails_the_config_naming_the_key_and_path(tmp_path):
    root = image_folder(tmp_path / "mine", test=("a", "kiwi"))
    with pytest.raises(
        ConfigError, match=r"'datasets.mine.root': \S+/test has classes \['kiwi'\] that \S+/train does not"
    ):
        check_config(folder_config(root))


def test_folder_keys_belong_to_folders_and_unknown_names_suggest_one(tmp_path):
    with pytest.raises(ConfigError, match=r"'datasets.shapes.root': only a 'folder' dataset has it"):
        check_config(
            config(
                datasets={
                    "shapes": {"kind": "generated", "root": "x", "corrupted": "generated"},
                    "textures": {"kind": "generated"},
                }
            )
        )
    with pytest.raises(
        ConfigError, match=r"'datasets.mnist': unknown dataset 'mnist'.*\(or kind 'folder' for your own images\)"
    ):
        check_config(config(datasets={"mnist": {"kind": "torchvision"}}))
