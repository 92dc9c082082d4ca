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
        (with_model(dropout_rate=0.1), r"'model.overrides': timm's 'vit_tiny_patch16_224' does not take these keywords"),
        ({**TINY_MODEL, "name": "vit_tiny_patch16_244"}, r"'model.name': timm has no model 'vit_tiny_patch16_244'.*close"),
        ({**TINY_MODEL, "image_size": 32}, r"'model.image_size': 32, but the model takes \(16, 16\) images"),
        (with_model(num_classes=3), r"'model.overrides.num_classes'"),
    ],
)
def test_model_problems_name_the_key(model, message):
    with pytest.raises(ConfigError, match=message):
        check_model(model, {})


def test_unknown_pretrained_tag_names_the_source():
    with pytest.raises(ConfigError, match=r"'sources.imagenet.weights': timm has no weights 'vit_base_patch32_224.augreg_in2k'"):
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
        ({"stir": {"n_images": 61}}, r"'stir.n_images': 61 images are drawn from the test set of 'shapes', which has 60"),
        (
            {"robustness": {"corruptions": ["gaussian_noise", "contrast"], "n_images": 121}},
            r"'robustness.n_images': 121 inputs per severity are drawn from the 120 corrupted test images of 'shapes'",
        ),
        (
            {"robustness": {"corruptions": ["gaussian_noise"], "n_images": 61, "sampling": "per_corruption"}},
            r"'robustness.n_images': 61 inputs per corruption and severity",
        ),
        ({"variants": {"default": {}, "short": {"epochs": 2}}}, r"'variants.short.epochs'.*needs at least 3 epochs; it has 2"),
        ({"finetune": {"epochs": 2}}, r"'finetune.epochs'.*needs at least 3 epochs"),
        (
            {"variants": {"default": {}, "short": {"epochs": 6, "schedule_epochs": 5}}},
            r"'variants.short.epochs': 6 epochs exceed the schedule's schedule_epochs = 5",
        ),
        ({"robustness": {"corruptions": ["frost"], "n_images": 10}}, r"'robustness.corruptions': \['frost'\] are not generated"),
        ({"robustness": {"corruptions": ["contrast", "contrast"], "n_images": 10}}, r"repeats a corruption"),
        ({"sources": {"textures": {"weights": "pretrain:textures"}}}, r"'sources.textures.weights'.*define sources.scratch"),
        ({"sources": {"scratch": {"weights": "timm:augreg_in1k"}}}, r"'sources.scratch.weights': the name 'scratch' means"),
        ({"datasets": {"shapes": {"kind": "torchvision"}, "textures": {"kind": "generated"}}}, r"'datasets.shapes.kind'"),
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
    code = "\n".join(
        path.read_text()
        for folder in ("src", "workflow/rules", "workflow/scripts")
        for path in (repo_root / folder).rglob("*")
        if path.suffix in (".py", ".smk")
    ) + (repo_root / "Snakefile").read_text()

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

    unread = [key for key in keys(schema) if not re.search(rf"[\"'.]{re.escape(key.rsplit('.', 1)[-1])}[\"'\]]|\b{re.escape(key.rsplit('.', 1)[-1])}=", code)]
    assert not unread, f"config keys no code reads: {unread}"


@pytest.mark.parametrize(
    "text, key, lines",
    [
        ("stir:\n  n_images: 8\nmodel: {name: m}\nstir:\n  seeds: [0]\n", "stir", (1, 4)),
        ("stir:\n  n_images: 8\n  iterations: 3\n  n_images: 9\n", "stir.n_images", (2, 4)),
        ("finetune_runs:\n  - {sources: [a], datasets: [b]}\n  - {sources: [a], sources: [c]}\n", "finetune_runs[1].sources", (3, 3)),
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
