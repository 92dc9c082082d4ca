"""A model given by name or path, seen through its layers (docs/method.md, "Models and layers").

:func:`load_model` reads what the command line is given:

- a timm model name (``vit_base_patch32_224.augreg_in1k``): timm's pretrained weights from
  the Hugging Face hub (cached; with ``HF_HUB_OFFLINE=1`` they must be in the cache);
- a weights file of a timm ViT: the hub's ``model.safetensors``, a ``.pth``/``.bin``
  state dict, or a big_vision ``.npz`` (the authors' AugReg checkpoints), loaded into the
  timm ``architecture`` with timm's own conversion (:func:`load_timm_weights`), refused
  when it was trained at another image or patch size unless resampling is asked for;
- a checkpoint the study wrote (``finetune_invariance.study.checkpoints``: a shipped
  source, ``results/finetune/<run>/checkpoints/*.safetensors``): its ViT, built from the
  architecture, normalisation and layer convention its header names
  (:func:`checkpoint_model`);
- a folder of a Hugging Face ``transformers`` ViT (``save_pretrained``: ``config.json`` and
  weights, optionally ``preprocessor_config.json``): :class:`HuggingFaceViT`.

A timm ViT is read through :class:`.layers.ViTLayers`. A ``transformers`` ViT has the same
layers, read through :class:`.layers.HookedLayers`: the output of every encoder block (all
tokens, flattened) and, as the last layer, the class token of the final layer norm, which
is what ``ViTForImageClassification`` feeds its classifier (the ViT's pooled
representation). Its normalisation is its image processor's mean and std (the
``ViTImageProcessor`` defaults, 0.5 and 0.5, without a ``preprocessor_config.json``).
``transformers`` is imported only for such a model.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .checkpoint_format import BACKBONE_PREFIX, FORMAT_VERSION, HEADER_KEY, NORMALIZATION_PREFIX
from .layers import HookedLayers, LayeredModel, ViTLayers
from .preprocessing import InputNormalization

#: Suffixes read as weights files of a timm architecture.
WEIGHTS_SUFFIXES = (".safetensors", ".npz", ".pth", ".pt", ".bin")
#: The oldest ``transformers`` whose ViT blocks return a tensor (older ones return a tuple).
MIN_TRANSFORMERS = 5
#: Seconds to wait for the weights' host before saying it cannot be reached.
CONNECT_TIMEOUT_S = 3


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be obtained (no internet and not cached, bad tag, ...)."""


class WeightsFileError(ValueError):
    """A local weights file is unreadable or holds another architecture."""


class LoadedModel(NamedTuple):
    """A model ready for the metrics: its layered view and the images it takes."""

    layered: LayeredModel
    image_size: tuple[int, int]
    channels: int
    description: str


def check_timm_name(name: str) -> None:
    """ValueError with close matches unless timm knows the architecture of ``name`` (a tag may follow a dot)."""
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model '{name}'{_close_matches(name)}")


def create_vit(
    name: str,
    model_args: Mapping[str, Any] | None = None,
    *,
    pretrained: bool,
    offline_fix: str = "copy its weights file to this machine and load it by its path",
) -> VisionTransformer:
    """timm's ``create_model(name, pretrained=..., num_classes=0, **model_args)``, which must be a ViT
    whose patches tile its image.

    Without weights it draws from torch's global generator. :class:`WeightsUnavailableError`
    says how to get pretrained weights that could not be downloaded (``offline_fix`` names
    the caller's way to pass a local file).
    """
    check_timm_name(name)
    if pretrained:
        check_pretrained_available(name, offline_fix)
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, **dict(model_args or {}))
    except OSError as err:  # huggingface_hub's offline / not-cached / network errors are OSErrors
        raise WeightsUnavailableError(
            f"could not obtain timm pretrained weights '{name}' ({type(err).__name__}: {err}). "
            "Without internet (HF_HUB_OFFLINE=1) they must already be in the Hugging Face cache (HF_HOME); "
            f"otherwise {offline_fix}."
        ) from err
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"timm model '{name}' is a {type(model).__name__}; ViTLayers needs a VisionTransformer")
    image, patch = tuple(model.patch_embed.img_size), tuple(model.patch_embed.patch_size)
    if any(side % p for side, p in zip(image, patch)):
        # timm floors the patch grid, which would silently drop the image's last rows and columns.
        raise ValueError(
            f"timm model '{name}' with model arguments {dict(model_args or {})}: patch size {patch} does not tile "
            f"the image size {image}; choose img_size and patch_size so that the patch size divides the image size"
        )
    return model


def pretrained_tags(architecture: str) -> list[str]:
    """The tags of timm's pretrained weights of ``architecture`` (``vit_base_patch32_224``:
    ``augreg_in21k_ft_in1k``, ...), in timm's order."""
    return [t.split(".", 1)[1] for t in timm.list_pretrained(f"{architecture}.*")]


def check_pretrained_tag(name: str) -> None:
    """:class:`WeightsUnavailableError` listing the tags there are, unless timm has pretrained
    weights ``name`` (an architecture, whose default tag is then meant, or ``architecture.tag``)."""
    architecture, _, tag = name.partition(".")
    tags = pretrained_tags(architecture)
    if not tags or (tag and tag not in tags):
        raise WeightsUnavailableError(
            f"timm has no pretrained weights '{name}'; "
            + (f"tags for {architecture}: {tags}" if tags else f"'{architecture}' has none (build it without weights)")
        )


def check_pretrained_available(name: str, offline_fix: str = "load a local weights file by its path") -> None:
    """Raise :class:`WeightsUnavailableError` at once when timm's pretrained weights of
    ``name`` are neither cached nor obtainable: a tag timm does not know, or weights not in
    the cache while ``HF_HUB_OFFLINE`` is set or their host does not answer within
    :data:`CONNECT_TIMEOUT_S` (rather than after the hub client's retries)."""
    import os
    import socket
    import urllib.parse

    from huggingface_hub import constants, try_to_load_from_cache
    from timm.models import get_pretrained_cfg

    check_pretrained_tag(name)
    cfg = get_pretrained_cfg(name)
    if cfg.hf_hub_id:
        files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        if any(
            isinstance(try_to_load_from_cache(cfg.hf_hub_id, f, cache_dir=constants.HF_HUB_CACHE), str) for f in files
        ):
            return
        where, host = f"the Hugging Face cache ({constants.HF_HUB_CACHE})", urllib.parse.urlparse(constants.ENDPOINT)
    elif cfg.url:
        from timm.models._hub import check_cached_file

        if check_cached_file(cfg.url):
            return
        where, host = "torch's hub cache", urllib.parse.urlparse(cfg.url)
    else:
        return
    if constants.HF_HUB_OFFLINE:
        why = "HF_HUB_OFFLINE=1 is set"
    else:
        try:
            socket.create_connection((host.hostname, host.port or 443), timeout=CONNECT_TIMEOUT_S).close()
            return
        except OSError as err:
            why = f"{host.hostname} cannot be reached ({err})"
    raise WeightsUnavailableError(
        f"timm pretrained weights '{name}' are not in {where} and {why}. To get them, run "
        f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\" on a machine with internet and "
        f"copy its cache folder here ({constants.HF_HUB_CACHE}, or point HF_HOME at the copy); "
        f"or {offline_fix}{'' if os.environ.get('HF_HUB_OFFLINE') else ' (HF_HUB_OFFLINE=1 skips the connection attempt)'}"
    )


def load_timm_weights(vit: VisionTransformer, path: str | Path, resample: bool = False) -> None:
    """Load a local weights file into ``vit`` (built without a classifier), strictly.

    The same conversion timm applies to hub weights: its ``checkpoint_filter_fn`` (key
    remapping); the classifier's keys are dropped. A big_vision ``.npz`` goes through
    timm's npz loader. Every key of ``vit`` must be in the file, or
    :class:`WeightsFileError` names what does not fit. Weights trained at another image or
    patch size would be resampled to ``vit``'s by timm (position and patch embeddings),
    which changes the model: :class:`WeightsFileError` unless ``resample``.
    """
    from timm.models import load_state_dict
    from timm.models.vision_transformer import checkpoint_filter_fn

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    architecture = f"timm '{vit.pretrained_cfg.get('architecture')}' with its model arguments"
    if path.suffix == ".npz":
        if not resample:
            _refuse_resampling(vit, path, _npz_embedding_shapes(path))
        try:
            vit.load_pretrained(str(path))
        except Exception as err:  # timm's npz loader raises whatever numpy or its key lookup raise
            raise WeightsFileError(f"weights file {path} is not big_vision weights of {architecture} ({err})") from err
        return
    try:
        state = load_state_dict(str(path), weights_only=True)  # never unpickle code
    except Exception as err:  # safetensors and torch.load raise their own error types for unreadable files
        raise WeightsFileError(
            f"weights file {path} cannot be read as a state dict ({type(err).__name__}: {err}); expected the hub's "
            "model.safetensors (or a .pth/.bin state dict) of the model: download it again"
        ) from err
    if not resample:
        _refuse_resampling(vit, path, {k: tuple(state[k].shape) for k in _EMBEDDINGS if k in state})
    load_timm_state(vit, checkpoint_filter_fn(state, vit), f"weights file {path}")


#: The tensors timm resamples when weights meet another image or patch size.
_EMBEDDINGS = ("pos_embed", "patch_embed.proj.weight")


def _npz_embedding_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shapes of a big_vision ``.npz``'s embeddings, in timm's layout (read without loading them)."""
    import numpy as np

    try:
        with np.load(path) as npz:
            prefix = "opt/target/" if "opt/target/embedding/kernel" in npz.files else ""
            shapes = {}
            if f"{prefix}Transformer/posembed_input/pos_embedding" in npz.files:
                shapes["pos_embed"] = npz[f"{prefix}Transformer/posembed_input/pos_embedding"].shape
            if f"{prefix}embedding/kernel" in npz.files:
                kh, kw, channels, width = npz[f"{prefix}embedding/kernel"].shape
                shapes["patch_embed.proj.weight"] = (width, channels, kh, kw)
    except (OSError, ValueError) as err:
        raise WeightsFileError(f"weights file {path} is not a readable .npz ({err})") from err
    return shapes


def _refuse_resampling(vit: VisionTransformer, path: Path, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """:class:`WeightsFileError` when the file's embeddings have other shapes than ``vit``'s,
    naming the image and patch size the file was trained at where they can be read off."""
    model = {
        "pos_embed": tuple(vit.pos_embed.shape),
        "patch_embed.proj.weight": tuple(vit.patch_embed.proj.weight.shape),
    }
    # The same width, other tokens or another patch (another width is another architecture, named when loading).
    same_width = {"pos_embed": lambda a, b: a[2:] == b[2:], "patch_embed.proj.weight": lambda a, b: a[:2] == b[:2]}
    differing = [k for k, shape in shapes.items() if shape != model[k] and same_width[k](shape, model[k])]
    if not differing:
        return
    found = ", ".join(f"{k} {shapes[k]} in the file, {model[k]} in the model" for k in differing)
    sizes = ""
    patch = shapes.get("patch_embed.proj.weight", model["patch_embed.proj.weight"])[-1]
    tokens = shapes.get("pos_embed", model["pos_embed"])[1] - (0 if vit.no_embed_class else vit.num_prefix_tokens)
    side = round(tokens**0.5)
    if side * side == tokens:
        sizes = f" (img_size={side * patch}, patch_size={patch}: --model-arg img_size={side * patch} --model-arg patch_size={patch})"
    raise WeightsFileError(
        f"weights file {path} was trained at another image or patch size than the model it is loaded into "
        f"(timm '{vit.pretrained_cfg.get('architecture')}' at {tuple(vit.patch_embed.img_size)} with patches "
        f"{tuple(vit.patch_embed.patch_size)}): {found}. Loading it would resample its position and patch "
        f"embeddings, another model than the one saved. Build the model at the file's sizes{sizes}, or resample "
        "on purpose (--resample; load_timm_weights(..., resample=True))"
    )


#: The keys of a fresh ``fc_norm``, which MAE's finetuning recipe adds (below).
_FC_NORM_KEYS = {"fc_norm.weight", "fc_norm.bias"}


def load_timm_state(vit: VisionTransformer, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load a state dict already in timm's keys into ``vit`` (built without a classifier),
    strictly: the classifier's keys are dropped, every other key must fit, or
    :class:`WeightsFileError` names ``what`` and the keys that do not.

    One exception, MAE's finetuning recipe (He et al. 2022, their ``main_finetune.py``): a
    model that pools through ``fc_norm`` and has no final ``norm`` (timm's
    ``global_pool='avg'``) gets a fresh ``fc_norm`` (its initialisation, weight 1 and bias 0)
    when the weights have none, and the pretraining's final ``norm`` is left out.
    """
    state = {k: v for k, v in state.items() if not k.startswith(("head.", "head_dist."))}
    fresh_fc_norm = (
        isinstance(vit.norm, nn.Identity)
        and not isinstance(vit.fc_norm, nn.Identity)
        and not _FC_NORM_KEYS & set(state)
    )
    if fresh_fc_norm:
        state = {k: v for k, v in state.items() if not k.startswith("norm.")}
    architecture = f"timm '{vit.pretrained_cfg.get('architecture')}' with its model arguments"
    try:
        result = vit.load_state_dict(state, strict=False)
    except RuntimeError as err:  # tensors of another shape: another width, depth or patch size
        raise WeightsFileError(f"{what} holds another architecture than {architecture}: {err}") from err
    missing = sorted(set(result.missing_keys) - (_FC_NORM_KEYS if fresh_fc_norm else set()))
    if missing or result.unexpected_keys:
        raise WeightsFileError(
            f"{what} does not fit {architecture}: missing keys {missing[:5]}, unexpected keys {result.unexpected_keys[:5]}"
        )


class _ClassToken(nn.Module):
    """(n, T, D) tokens -> (n, D) class token: a module, so that a forward hook can read it."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0]


class HuggingFaceViT(nn.Module):
    """A Hugging Face ``transformers`` ViT taking [0, 1] images, with the library's layers.

    ``vit``: a ``ViTModel``, or a model holding one as ``.vit`` (``ViTForImageClassification``,
    ``ViTForMaskedImageModeling``), whose head is then left out. The forward clamps and
    normalises the images with ``mean``/``std`` (default: the ``ViTImageProcessor``'s 0.5,
    0.5) and returns the class token of the final layer norm. :meth:`layered` (used by
    :func:`.layers.as_layers`, so the model can be passed to every metric as is) gives
    layers 0..D-1, the encoder blocks' outputs, and layer D, that class token.
    """

    def __init__(self, vit: nn.Module, mean: Sequence[float] = (0.5,) * 3, std: Sequence[float] = (0.5,) * 3):
        super().__init__()
        import transformers

        major = int(transformers.__version__.split(".")[0])
        if major < MIN_TRANSFORMERS:
            raise RuntimeError(
                f"transformers {transformers.__version__} is installed; reading a ViT's layers needs "
                f"transformers >= {MIN_TRANSFORMERS} (its blocks return tensors): pip install -U transformers"
            )
        vit = getattr(vit, "vit", vit)
        if getattr(getattr(vit, "config", None), "model_type", None) != "vit" or not hasattr(vit, "layers"):
            raise TypeError(
                f"HuggingFaceViT needs a transformers ViTModel (model_type 'vit'), got {type(vit).__name__}"
            )
        self.vit = vit
        self.normalization = InputNormalization(mean, std)
        self.class_token = _ClassToken()

    @classmethod
    def from_pretrained(cls, name_or_folder: str | Path) -> HuggingFaceViT:
        """A ViT saved with ``save_pretrained`` (a folder) or a hub id, with its image processor's mean/std."""
        from transformers import AutoConfig, AutoModel, ViTImageProcessor

        config = AutoConfig.from_pretrained(name_or_folder)
        if config.model_type != "vit":
            raise ValueError(
                f"{name_or_folder} holds a transformers '{config.model_type}' model; "
                "only ViTs (model_type 'vit') are read"
            )
        with _quiet_transformers():  # its report lists the head's weights left out, which is intended
            vit, info = AutoModel.from_pretrained(name_or_folder, add_pooling_layer=False, output_loading_info=True)
        if info["missing_keys"]:
            raise WeightsFileError(
                f"{name_or_folder} lacks weights of the ViT, which would be left random: "
                f"{sorted(info['missing_keys'])[:5]}; save the model again with save_pretrained"
            )
        folder = Path(name_or_folder)
        has_processor = not folder.is_dir() or (folder / "preprocessor_config.json").is_file()
        processor = ViTImageProcessor.from_pretrained(name_or_folder) if has_processor else ViTImageProcessor()
        if not processor.do_normalize:
            return cls(vit, (0.0,) * config.num_channels, (1.0,) * config.num_channels)
        return cls(vit, processor.image_mean, processor.image_std)

    @property
    def depth(self) -> int:
        return len(self.vit.layers)

    @property
    def image_size(self) -> tuple[int, int]:
        size = self.vit.config.image_size
        return (size, size) if isinstance(size, int) else tuple(size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.vit(pixel_values=self.normalization(images)).last_hidden_state
        return self.class_token(tokens)

    def layered(self) -> HookedLayers:
        return HookedLayers(self, [f"vit.layers.{block}" for block in range(self.depth)] + ["class_token"])


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off for the duration (errors still show)."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def parse_model_args(pairs: Sequence[str]) -> dict[str, Any]:
    """``["img_size=32", "depth=4"]`` -> ``{"img_size": 32, "depth": 4}`` (values read as YAML scalars/lists)."""
    import yaml

    args = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"model argument '{pair}' is not KEY=VALUE (e.g. img_size=32)")
        args[key.strip()] = yaml.safe_load(value)
    return args


def _normalization(
    own: tuple[Sequence[float], Sequence[float]], mean: Sequence[float] | None, std: Sequence[float] | None
) -> InputNormalization:
    """The model's ``own`` (mean, std), or the given pair, which must come together."""
    if (mean is None) != (std is None):
        raise ValueError("give mean and std together (the input normalisation needs both), or neither")
    return InputNormalization(*(own if mean is None else (mean, std)))


def checkpoint_model(path: str | Path) -> dict[str, Any] | None:
    """The model description (``name``, ``overrides``, ``mean``, ``std``, ...) in the header
    of a checkpoint the study wrote, or None for any other file; reads no tensor."""
    import json

    from safetensors import SafetensorError, safe_open

    if Path(path).suffix != ".safetensors" or not Path(path).is_file():
        return None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            raw = (file.metadata() or {}).get(HEADER_KEY)
    except (SafetensorError, OSError):
        return None
    if raw is None:
        return None
    try:
        header = json.loads(raw)
        version, spec = header.get("format_version"), dict(header["model"]["spec"])
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise WeightsFileError(f"checkpoint {path} has a damaged '{HEADER_KEY}' header ({err})") from err
    if version != FORMAT_VERSION:
        raise WeightsFileError(
            f"checkpoint {path} has format_version {version}; this version of finetune_invariance reads "
            f"format_version {FORMAT_VERSION}: read it with the version that wrote it"
        )
    return spec


def _load_checkpoint_vit(
    path: Path, described: Mapping[str, Any], architecture: str | None, model_args: Mapping[str, Any] | None
) -> tuple[VisionTransformer, tuple[Sequence[float], Sequence[float]]]:
    """The ViT of a study checkpoint, built as its header ``described`` it, and its input
    normalisation's (mean, std) as the file holds them; a given ``architecture`` or
    ``model_args`` must agree with the header."""
    from safetensors import safe_open

    name, overrides = described["name"], dict(described.get("overrides") or {})
    if architecture is not None and architecture.partition(".")[0] != name:
        raise ValueError(f"checkpoint {path} holds a '{name}' (its header), not the --architecture '{architecture}'")
    conflicts = {k: v for k, v in (model_args or {}).items() if k not in overrides or overrides[k] != v}
    if conflicts:
        raise ValueError(
            f"checkpoint {path} names its model in its header ('{name}' with {overrides}); the model arguments "
            f"{conflicts} contradict it: leave them out for this model"
        )
    vit = create_vit(name, overrides, pretrained=False)
    with safe_open(str(path), framework="pt", device="cpu") as file:
        state = {
            key[len(BACKBONE_PREFIX) :]: file.get_tensor(key) for key in file.keys() if key.startswith(BACKBONE_PREFIX)
        }
        normalization = [f"{NORMALIZATION_PREFIX}{name}" for name in ("mean", "std")]
        own = [
            file.get_tensor(key).flatten().tolist() if key in file.keys() else described.get(name)
            for key, name in zip(normalization, ("mean", "std"))
        ]
    load_timm_state(vit, state, f"checkpoint {path}")
    mean, std = (value or vit.pretrained_cfg[name] for value, name in zip(own, ("mean", "std")))
    return vit, (mean, std)


def load_model(
    spec: str | Path,
    *,
    architecture: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    resample: bool = False,
) -> LoadedModel:
    """The model ``spec`` names: a Hugging Face ViT folder, a study checkpoint, a timm
    weights file or a timm model name.

    ``architecture`` (a timm model name, optionally with a pretrained tag whose mean/std
    then apply) and ``model_args`` (``timm.create_model`` keywords such as ``img_size``)
    build the network a weights file is loaded into; ``model_args`` also apply to a timm
    name. A study checkpoint is built from its header, with which they must agree.
    ``mean``/``std`` replace the model's own input normalisation. ``resample``: load a
    weights file trained at another image or patch size by resampling its embeddings
    (:func:`load_timm_weights`).
    """
    path = Path(spec)
    described = checkpoint_model(path)
    if described is not None:
        vit, own = _load_checkpoint_vit(path, described, architecture, model_args)
        layered = ViTLayers(vit, _normalization(own, mean, std), register_tokens=described.get("register_tokens", True))
        size, channels = tuple(vit.patch_embed.img_size), vit.patch_embed.proj.in_channels
        return LoadedModel(layered, size, channels, f"{path} (study checkpoint of '{described['name']}')")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"folder {path} has no config.json: expected a Hugging Face transformers ViT saved with "
                "save_pretrained (config.json and model.safetensors)"
            )
        model = HuggingFaceViT.from_pretrained(path)
        own = model.normalization.mean.flatten().tolist(), model.normalization.std.flatten().tolist()
        model.normalization = _normalization(own, mean, std)
        return LoadedModel(model.layered(), model.image_size, model.vit.config.num_channels, f"transformers ViT {path}")
    if path.suffix in WEIGHTS_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist")
        if architecture is None:
            raise ValueError(
                f"weights file {path} needs its architecture: give the timm model name it was built as "
                "(--architecture, e.g. vit_base_patch32_224, with --model-arg KEY=VALUE for changed sizes)"
            )
        vit = create_vit(architecture, model_args, pretrained=False)
        load_timm_weights(vit, path, resample=resample)
        description = f"{path} ({architecture})"
    else:
        if not timm.is_model(str(spec)):
            raise ValueError(
                f"'{spec}' is neither a folder, a weights file ({', '.join(WEIGHTS_SUFFIXES)}) nor a timm model name"
                + _close_matches(str(spec))
            )
        vit = create_vit(str(spec), model_args, pretrained=True)
        description = f"timm {spec}"
    layered = ViTLayers(vit, _normalization((vit.pretrained_cfg["mean"], vit.pretrained_cfg["std"]), mean, std))
    return LoadedModel(layered, tuple(vit.patch_embed.img_size), vit.patch_embed.proj.in_channels, description)


def _close_matches(name: str) -> str:
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    return f"; close matches: {close}" if close else ""
