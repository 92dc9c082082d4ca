"""Checks of a workflow config beyond its schema, run before any job (``snakemake -n``).

The schema (``workflow/schemas/config.schema.yaml``) checks each key on its own and holds
every default; :func:`check_config` checks what depends on several keys or on facts
outside the config: names that refer to other entries, sample sizes against the test
sets, epochs against the analyses that need them, corruption names, a folder dataset's
folder (:func:`.catalog.folder_index`), and each model (the top-level ``model`` and every
``sources.<name>.model``: :func:`check_model`, which asks timm). Every message names the
config key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .catalog import DatasetFacts, configured_facts, dataset_facts
from .cifar_c import ALL_CIFAR_C_CORRUPTIONS
from .corruptions import CORRUPTIONS
from .design import model_image_size
from .vocabulary import DEFAULT_VARIANT, SCRATCH

#: The fewest finetuned epochs a dynamics run may have: Pearson r of fewer points is
#: undefined (2 points always give r = +-1).
MIN_DYNAMICS_EPOCHS = 3


class ConfigError(ValueError):
    """A config value is valid for the schema but inconsistent with the rest of the design."""


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file, refusing a key given twice in one mapping.

    PyYAML (and so Snakemake's ``--configfile``) keeps the last of two equal keys without a
    word: a second ``stir:`` block would silently replace the first. Raises
    :class:`ConfigError` naming the file, the key and both lines.
    """
    import yaml

    path = Path(path)
    text = path.read_text()
    try:
        _refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), path, ())
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(_describe_yaml_error(path, text, err)) from None
    return {} if config is None else config


#: What a YAML syntax error most often means in a config file, by PyYAML's problem.
_YAML_HINTS = {
    "mapping values are not allowed": "a value holding ': ' must be quoted, and a key must line up with the keys "
    "beside it",
    "cannot start any token": "YAML indents with spaces, never tabs",
    "end of stream": "a quoted string or a bracket is not closed",
    "expected ',' or ']'": "a '[' list is not closed where it should be",
    "expected ',' or '}'": "a '{' mapping is not closed where it should be",
    "expected <block end>": "a line is indented less or more than the keys beside it",
}


def _describe_yaml_error(path: Path, text: str, err: Exception) -> str:
    """One line naming the file, the line and column, the line's text, PyYAML's problem and a hint."""
    mark = getattr(err, "problem_mark", None)
    if mark is None:
        return f"config file {path} is not valid YAML: {err}"
    problem = getattr(err, "problem", None) or str(err)
    lines = text.splitlines()
    shown = f" ({lines[mark.line].strip()!r})" if mark.line < len(lines) else ""
    context, context_mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    started = f", {context} begun on line {context_mark.line + 1}" if context and context_mark else ""
    hint = next((f"; {hint}" for key, hint in _YAML_HINTS.items() if key in problem), "")
    return f"config file {path}, line {mark.line + 1}, column {mark.column + 1}{shown}: {problem}{started}{hint}"


def check_config_files(paths: Iterable[str | Path]) -> None:
    """:func:`load_config_file` of each path, for the files Snakemake parsed itself."""
    for path in paths:
        load_config_file(path)


def check_command_line_config_files(argv: list[str] | None = None) -> None:
    """Exit with :func:`load_config_file`'s message for a ``--configfile`` on Snakemake's
    command line (``sys.argv``) that is not valid YAML or repeats a key.

    Snakemake reads those files before the workflow runs, and says only that one of them
    is "not valid JSON or YAML", naming neither the file nor the line: the workflow's
    profile (``profiles/default``) calls this before Snakemake reads them.
    """
    import sys

    argv = sys.argv[1:] if argv is None else argv
    files, taking = [], False
    for arg in argv:
        option, _, value = arg.partition("=")
        if option in ("--configfile", "--configfiles"):
            taking = not value
            files += [value] if value else []
        elif arg.startswith("-"):
            taking = False
        elif taking:
            files.append(arg)
    try:
        check_config_files(path for path in files if Path(path).is_file())
    except ConfigError as err:
        raise SystemExit(str(err)) from None


def _refuse_duplicate_keys(node: Any, path: Path, parents: tuple[str, ...]) -> None:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, path, (*parents[:-1], f"{parents[-1]}[{i}]") if parents else (f"[{i}]",))
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key, value in node.value:
            name, line = str(key.value), key.start_mark.line + 1
            if name in first_line:
                dotted = ".".join((*parents, name))
                raise ConfigError(
                    f"config file {path}: key '{dotted}' is given twice (lines {first_line[name]} and {line}); "
                    "YAML would keep only the second, silently dropping the first: merge them into one"
                )
            first_line[name] = line
            _refuse_duplicate_keys(value, path, (*parents, name))


def describe_schema_error(error) -> str:
    """A one-paragraph message for a ``jsonschema.ValidationError`` of the config: the
    offending key as a dotted path, what is wrong, and what the schema allows there."""
    key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
    message = f"config key '{key}': {error.message}"
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and "properties" in schema:
        message += f"; allowed keys here: {sorted(schema['properties'])}"
    elif "enum" in schema:
        message += f"; allowed values: {schema['enum']}"
    if "description" in schema:
        message += f" ({' '.join(schema['description'].split())})"
    return message


def check_config(config: dict[str, Any], model_check_cache: Path | None = None, workflow_dir: str | Path = ".") -> None:
    """Raise :class:`ConfigError` for the first inconsistency of a schema-valid config
    (``workflow_dir``: the workflow's folder, which a relative folder-dataset root is in)."""
    facts = _check_references(config, workflow_dir)
    _check_corruptions(config)  # before the sample sizes, whose pool counts the corruptions
    _check_sample_sizes(config, facts)
    _check_epochs(config)
    _check_variant_metrics(config)
    for key, model, tags in _models(config):
        check_model(model, tags, cache=model_check_cache, key=key)
    _check_controls(config)


def _require_known(key: str, values: Iterable[str], known: Iterable[str]) -> None:
    known = set(known)
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ConfigError(f"config key '{key}': {unknown} not defined (defined: {sorted(known)})")


#: Dataset keys only a kind reads.
_KIND_KEYS = {"folder": ("root", "image_size"), "generated": ("n_train", "n_test")}


def _check_dataset(name: str, entry: dict[str, Any], workflow_dir: str | Path) -> DatasetFacts:
    """Check a dataset entry; returns its facts (a folder dataset's folder scanned once)."""
    for kind, keys in _KIND_KEYS.items():
        stray = [key for key in keys if key in entry and entry["kind"] != kind]
        if stray:
            raise ConfigError(f"config key 'datasets.{name}.{stray[0]}': only a '{kind}' dataset has it")
    if entry["kind"] == "folder":
        if entry.get("corrupted") == "published":
            raise ConfigError(
                f"config key 'datasets.{name}.corrupted': no published corrupted set exists for your own images; "
                "use 'generated' (the CIFAR-C corruptions applied to its test split)"
            )
        try:
            return configured_facts(name, entry, workflow_dir)
        except ValueError as err:  # catalog.FolderDatasetError
            raise ConfigError(f"config key 'datasets.{name}.root': {err}") from None
    try:
        facts = dataset_facts(name)
    except ValueError as err:
        raise ConfigError(f"config key 'datasets.{name}': {err} (or kind 'folder' for your own images)") from None
    kind = "generated" if facts.generated else "torchvision"
    if entry["kind"] != kind:
        raise ConfigError(f"config key 'datasets.{name}.kind': '{name}' is a {kind} dataset, not {entry['kind']}")
    return facts


def _check_references(config: dict[str, Any], workflow_dir: str | Path = ".") -> dict[str, DatasetFacts]:
    """Check what the config's entries name; returns each dataset's facts."""
    datasets, sources, variants = config["datasets"], config["sources"], config["variants"]
    if DEFAULT_VARIANT not in variants:
        raise ConfigError("config key 'variants' must define 'default' (the finetune hyperparameters unchanged)")
    facts = {name: _check_dataset(name, entry, workflow_dir) for name, entry in datasets.items()}
    for name, entry in sources.items():
        weights = entry["weights"]
        if weights.startswith("pretrain:") and "model" in entry:
            raise ConfigError(
                f"config key 'sources.{name}.model': a 'pretrain:' source is the model of the source "
                f"'{SCRATCH}' trained; give that source the model instead"
            )
        if weights.startswith("pretrain:"):
            _require_known(f"sources.{name}.weights", [weights.split(":", 1)[1]], datasets)
            _require_known(f"sources.{name}.variant", [entry.get("variant", DEFAULT_VARIANT)], variants)
            if sources.get(SCRATCH, {}).get("weights") != SCRATCH:
                raise ConfigError(
                    f"config key 'sources.{name}.weights': '{weights}' is trained from random initialisation, "
                    f"the source '{SCRATCH}': define sources.{SCRATCH}: {{weights: {SCRATCH}}}"
                )
        elif "variant" in entry:
            raise ConfigError(f"config key 'sources.{name}.variant': only 'pretrain:' sources are trained")
        if "sha256" in entry and not weights.startswith(("url:", "file:")):
            raise ConfigError(
                f"config key 'sources.{name}.sha256': a checksum of a 'url:' or 'file:' weights file, "
                f"but the source's weights are '{weights}'"
            )
    if sources.get(SCRATCH, {"weights": SCRATCH})["weights"] != SCRATCH:
        raise ConfigError(f"config key 'sources.{SCRATCH}.weights': the name '{SCRATCH}' means random initialisation")
    for i, block in enumerate(config["finetune_runs"]):
        _require_known(f"finetune_runs[{i}].sources", block["sources"], sources)
        _require_known(f"finetune_runs[{i}].datasets", block["datasets"], datasets)
    for i, entry in enumerate(config["dynamics"]):
        _require_known(f"dynamics[{i}].source", [entry["source"]], sources)
        _require_known(f"dynamics[{i}].dataset", [entry["dataset"]], datasets)
        _require_known(f"dynamics[{i}].variants", entry["variants"], variants)
        if datasets[entry["dataset"]].get("corrupted") is None:
            raise ConfigError(
                f"config key 'dynamics[{i}]': robustness is analysed on '{entry['dataset']}', which has no "
                f"corrupted test set: set datasets.{entry['dataset']}.corrupted"
            )
    if config["imagenet_source"] not in sources and config["imagenet_source"] != "imagenet":
        _require_known("imagenet_source", [config["imagenet_source"]], sources)
    seeds = config["stir"]["seeds"]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"config key 'stir.seeds': {seeds} repeats a seed, which would fake replication")
    return facts


def n_test_images(
    config: dict[str, Any], dataset: str, workflow_dir: str | Path = ".", facts: DatasetFacts | None = None
) -> int:
    """The number of test images of a configured dataset (``facts``: its facts where
    already found, so that a folder dataset is not scanned again)."""
    entry = config["datasets"][dataset]
    if facts is None:
        facts = configured_facts(dataset, entry, workflow_dir)
    return int(entry.get("n_test", facts.test_size))


def _check_sample_sizes(config: dict[str, Any], facts: dict[str, DatasetFacts]) -> None:
    """``facts``: each dataset's (:func:`_check_references`)."""
    analysed = {d for block in config["finetune_runs"] for d in block["datasets"]}
    analysed |= {entry["dataset"] for entry in config["dynamics"]}
    n_images = config["stir"]["n_images"]
    test_images = {dataset: n_test_images(config, dataset, facts=facts[dataset]) for dataset in analysed}
    for dataset in sorted(analysed):
        if n_images > test_images[dataset]:
            raise ConfigError(
                f"config key 'stir.n_images': {n_images} images are drawn from the test set of '{dataset}', "
                f"which has {test_images[dataset]}"
            )
    robustness = config["robustness"]
    for dataset in sorted({entry["dataset"] for entry in config["dynamics"]}):
        pool = test_images[dataset]
        if robustness["sampling"] == "per_severity":
            pool *= len(robustness["corruptions"])
        if robustness["n_images"] > pool:
            raise ConfigError(
                f"config key 'robustness.n_images': {robustness['n_images']} inputs per "
                f"{'severity' if robustness['sampling'] == 'per_severity' else 'corruption and severity'} "
                f"are drawn from the {pool} corrupted test images of '{dataset}'"
            )


def _epochs_key(config: dict[str, Any], variant: str) -> tuple[str, int]:
    if "epochs" in config["variants"][variant]:
        return f"variants.{variant}.epochs", config["variants"][variant]["epochs"]
    return "finetune.epochs", config["finetune"]["epochs"]


def _check_epochs(config: dict[str, Any]) -> None:
    for variant in config["variants"]:
        key, epochs = _epochs_key(config, variant)
        schedule = config["variants"][variant].get("schedule_epochs", config["finetune"].get("schedule_epochs"))
        if schedule is not None and schedule < epochs:
            raise ConfigError(
                f"config key '{key}': {epochs} epochs exceed the schedule's schedule_epochs = {schedule} "
                "(a run may stop early within its schedule, not run beyond it)"
            )
    for i, entry in enumerate(config["dynamics"]):
        for variant in entry["variants"]:
            key, epochs = _epochs_key(config, variant)
            if epochs < MIN_DYNAMICS_EPOCHS:
                raise ConfigError(
                    f"config key '{key}': dynamics[{i}] (variant '{variant}') correlates metrics with robustness "
                    f"across epochs, which needs at least {MIN_DYNAMICS_EPOCHS} epochs; it has {epochs}"
                )


def _check_variant_metrics(config: dict[str, Any]) -> None:
    if config["variant_metrics"] != "monitor" or config["monitor"]["enabled"]:
        return
    variants = sorted({v for entry in config["dynamics"] for v in entry["variants"]} - {DEFAULT_VARIANT})
    if variants:
        raise ConfigError(
            f"config key 'variant_metrics': 'monitor' measures the dynamics variants {variants} with the "
            "forgetting monitor, which is disabled (monitor.enabled: false): enable it or set variant_metrics: stir"
        )


def _check_controls(config: dict[str, Any]) -> None:
    controls = config["controls"]
    if not controls["enabled"]:
        return
    if controls["source"] is not None:
        _require_known("controls.source", [controls["source"]], config["sources"])
    elif config["imagenet_source"] not in config["sources"]:
        return  # no source plays ImageNet: no controls (StudyDesign.controls_enabled)
    if controls["dataset"] is not None:
        _require_known("controls.dataset", [controls["dataset"]], config["datasets"])
    elif not config["dynamics"]:
        raise ConfigError("config key 'controls.dataset': without dynamics runs, name the dataset the controls use")
    source = controls["source"] or config["imagenet_source"]
    model = config["sources"][source].get("model", config["model"])
    depth = model.get("overrides", {}).get("depth")
    if depth is not None:
        from .control_plan import control_specs

        try:
            control_specs(controls["block"], controls["shift"], depth)
        except ValueError as err:
            raise ConfigError(f"{err} (or set controls.enabled: false)") from None


def _check_corruptions(config: dict[str, Any]) -> None:
    corruptions = config["robustness"]["corruptions"]
    if len(set(corruptions)) != len(corruptions):
        raise ConfigError(f"config key 'robustness.corruptions': {corruptions} repeats a corruption")
    kinds = {entry.get("corrupted") for entry in config["datasets"].values()} - {None}
    known = {"published": ALL_CIFAR_C_CORRUPTIONS, "generated": tuple(CORRUPTIONS)}
    for kind in sorted(kinds):
        unknown = [c for c in corruptions if c not in known[kind]]
        if unknown:
            raise ConfigError(
                f"config key 'robustness.corruptions': {unknown} are not {kind} corruptions "
                f"(known {kind} corruptions: {list(known[kind])})"
            )


def _models(config: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    """Each model of the config with its key and the timm tags of the 'timm:<tag>' sources
    that use it (source name -> tag): the top-level ``model`` and every ``sources.<name>.model``."""
    shared = {
        name: entry["weights"].split(":", 1)[1]
        for name, entry in config["sources"].items()
        if entry["weights"].startswith("timm:") and "model" not in entry
    }
    models = [("model", config["model"], shared)]
    for name, entry in config["sources"].items():
        if "model" in entry:
            weights = entry["weights"]
            tags = {name: weights.split(":", 1)[1]} if weights.startswith("timm:") else {}
            models.append((f"sources.{name}.model", entry["model"], tags))
    return models


def check_model(model: dict[str, Any], hub_tags: dict[str, str], cache: Path | None = None, key: str = "model") -> None:
    """Check a config model block (``key``: where it is, e.g. ``sources.dino.model``) and the
    timm tags of its sources by building it on the meta device: the name (and a tag it
    carries) and tags known to timm, the overrides timm keywords that make a Vision
    Transformer with at least one block, heads dividing the width, patches tiling the image
    exactly, the input size the study resizes to (:func:`.design.model_image_size`) the
    model's own, and ``mean``/``std`` one value per input channel.

    timm is slow to import, so a passing check is remembered in ``cache`` (a JSON file of
    the checked settings' hashes, with the timm version) and not repeated.
    """
    import importlib.metadata

    digest = hashlib.sha256(
        json.dumps([model, hub_tags, importlib.metadata.version("timm")], sort_keys=True).encode()
    ).hexdigest()
    passed = json.loads(cache.read_text()) if cache is not None and cache.is_file() else []
    if digest in passed:
        return
    _check_model_with_timm(model, hub_tags, key)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(sorted({*passed, digest})))


def _check_model_with_timm(model: dict[str, Any], hub_tags: dict[str, str], key: str = "model") -> None:
    import difflib

    import timm
    import torch
    from timm.models.vision_transformer import VisionTransformer

    from ..model_loading import pretrained_tags

    name, overrides = model["name"], dict(model.get("overrides", {}))
    architecture, _, own_tag = name.partition(".")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        raise ConfigError(
            f"config key '{key}.name': timm has no model '{name}'" + (f"; close: {close}" if close else "")
        )
    tags = pretrained_tags(architecture)
    if own_tag and own_tag not in tags:
        raise ConfigError(f"config key '{key}.name': timm has no pretrained config '{name}'; tags: {tags}")
    for source, tag in hub_tags.items():
        if own_tag:
            raise ConfigError(
                f"config key '{key}.name': '{name}' carries a tag, and the source '{source}' names its weights "
                f"'timm:{tag}': give the name without the tag ('{architecture}')"
            )
        if tag not in tags:
            raise ConfigError(
                f"config key 'sources.{source}.weights': timm has no weights '{name}.{tag}'; tags: {tags}"
            )
    if "num_classes" in overrides:
        raise ConfigError(f"config key '{key}.overrides.num_classes': the task heads are built by the study")
    if overrides.get("depth", 1) < 1:
        raise ConfigError(f"config key '{key}.overrides.depth': {overrides['depth']}; a model needs at least 1 block")
    embed_dim, heads = overrides.get("embed_dim"), overrides.get("num_heads")
    try:
        with torch.device("meta"):
            vit = timm.create_model(name, pretrained=False, num_classes=0, **overrides)
    except TypeError as err:
        raise ConfigError(
            f"config key '{key}.overrides': timm's '{name}' does not take these keywords ({err})"
        ) from err
    except (AssertionError, ValueError, RuntimeError) as err:
        detail = str(err) or type(err).__name__
        if embed_dim is not None and heads is not None and embed_dim % heads:
            detail = f"embed_dim {embed_dim} is not divisible by num_heads {heads}"
        raise ConfigError(
            f"config key '{key}.overrides': timm cannot build '{name}' with {overrides}: {detail}"
        ) from err
    if not isinstance(vit, VisionTransformer):
        raise ConfigError(f"config key '{key}.name': '{name}' is a {type(vit).__name__}, not a Vision Transformer")
    if len(vit.blocks) < 1:
        raise ConfigError(f"config key '{key}.overrides.depth': the model has no transformer block")
    if vit.embed_dim % vit.blocks[0].attn.num_heads:
        raise ConfigError(
            f"config key '{key}.overrides': embed_dim {vit.embed_dim} is not divisible by "
            f"num_heads {vit.blocks[0].attn.num_heads}"
        )
    img_size, patch = tuple(vit.patch_embed.img_size), tuple(vit.patch_embed.patch_size)
    if any(side % p for side, p in zip(img_size, patch)):
        raise ConfigError(
            f"config key '{key}.overrides': patch size {patch} does not tile the image size {img_size}; "
            "pixels would be left out of every patch"
        )
    size = model_image_size(model)
    if (size, size) != img_size:
        given = f"'{key}.image_size': {size}" if "image_size" in model else f"'{key}': the default input size {size}"
        raise ConfigError(
            f"config key {given}, but the model takes {img_size} images (set {key}.overrides.img_size to change "
            "the model's input size: timm resamples its position embeddings)"
        )
    channels = vit.patch_embed.proj.in_channels
    for stat in ("mean", "std"):
        if stat in model and len(model[stat]) != channels:
            raise ConfigError(
                f"config key '{key}.{stat}': {model[stat]} has {len(model[stat])} values for {channels} channels"
            )
    if ("mean" in model) != ("std" in model):
        raise ConfigError(f"config key '{key}': give mean and std together (the input normalisation needs both)")
