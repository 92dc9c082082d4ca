"""The study's models: a timm Vision Transformer backbone with a task head.

docs/method.md, "Models and layers" and "Tasks": images in [0, 1] enter the model, which
clamps and normalises them (:class:`~finetune_invariance.preprocessing.InputNormalization`),
runs a timm ``VisionTransformer`` without its classifier, and ends in

- classification: a linear head on the pooled representation, cross-entropy loss;
- reconstruction: the Hugging Face ViT masked-image-modeling decoder (class/prefix tokens
  dropped, final normalised patch tokens on their grid, 1x1 convolution to
  patch^2 * 3 channels, PixelShuffle(patch) back to the image), L1 loss to the input.

Starting weights (``ModelSpec.weights``):

- ``"scratch"``: random initialisation, seeded;
- ``"timm:<tag>"``: timm's pretrained weights ``<name>.<tag>`` from the Hugging Face hub
  (cached; with ``HF_HUB_OFFLINE=1`` they must already be in the cache); overrides that
  change the pooling (``global_pool``, ``fc_norm``: MAE's average pooling with a fresh
  ``fc_norm``) take the weights from the hub's own architecture
  (:func:`..model_loading.load_timm_state`);
- ``"url:<url>"``: a weights file downloaded once into torch's hub cache
  (``$TORCH_HOME/hub/checkpoints``), e.g. the authors' AugReg ``.npz`` from the public
  bucket ``https://storage.googleapis.com/vit_models/augreg/``;
- ``"file:<path>"``: a local weights file (the hub's ``model.safetensors``, a
  ``.pth``/``.bin`` state dict, or an original ViT / big_vision ``.npz``, which timm's npz
  loader maps), for offline clusters;
- ``"checkpoint:<path>"``: the backbone of a checkpoint this workflow trained; the head is new.

Creating the timm ViT and loading a weights file into it are the metrics library's
(:func:`..model_loading.create_vit`, :func:`..model_loading.load_timm_weights`), shared
with the command line. A ``url:`` or ``file:`` weights file is identified by its SHA-256 (``ModelSpec.sha256``):
checked before loading when given; when not, it is computed, logged with the line to pin
it in the config, and recorded in the built model's spec (so in every checkpoint's header).
"""

from __future__ import annotations

import logging
import numbers
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from ..checkpoint_format import BACKBONE_PREFIX
from ..model_loading import (
    WeightsFileError,
    WeightsUnavailableError,
    check_timm_name,
    create_vit,
    load_timm_state,
    load_timm_weights,
)
from ..preprocessing import InputNormalization
from .checkpoints import CheckpointError, read_checkpoint
from .runtime import sha256

logger = logging.getLogger(__name__)

TASKS = ("classification", "reconstruction")
WEIGHT_KINDS = ("scratch", "timm", "url", "file", "checkpoint")
#: Weights held in one file, which a SHA-256 identifies.
FILE_KINDS = ("url", "file")
PAPER_MODEL = "vit_base_patch32_224"

#: How a new task head is initialised: 'trunc_normal' (std 0.02, zero bias: the Hugging Face
#: ViT's initializer_range) or 'pytorch' (torch's default for a fresh nn.Linear / nn.Conv2d,
#: as the authors' classification head and their timm reconstruction decoder).
HEAD_INITS = ("trunc_normal", "pytorch")
HEAD_INIT_STD = 0.02

#: timm keywords that change how the backbone pools its last layer, not its weights.
POOLING_KEYS = ("global_pool", "fc_norm")


@dataclass(frozen=True)
class ModelSpec:
    """Which network and which starting weights (see the module docstring for ``weights``).

    ``overrides`` are keyword arguments of ``timm.create_model`` (``img_size``,
    ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ...); the mini study makes its
    tiny ViTs this way. ``mean``/``std`` default to the timm pretrained config's (for a
    ``checkpoint:`` source, to that checkpoint's); ``sha256`` is the expected checksum of a
    ``url:``/``file:`` weights file (None: not checked). Models built by
    :func:`build_model` carry all three resolved. ``head_init``: how the task head starts
    (:data:`HEAD_INITS`). ``register_tokens``: whether the block layers hold the register
    tokens (:class:`..layers.ViTLayers`; only models with registers, DINOv2 'reg4', have any).
    """

    name: str = PAPER_MODEL
    overrides: dict[str, Any] = field(default_factory=dict)
    weights: str = "scratch"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    sha256: str | None = None
    head_init: str = "trunc_normal"
    register_tokens: bool = True

    def __post_init__(self) -> None:
        kind, _ = self.weight_source()  # validates
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"ModelSpec.head_init must be one of {list(HEAD_INITS)}, got {self.head_init!r}")
        if "num_classes" in self.overrides:
            raise ValueError("ModelSpec.overrides must not set num_classes: the head is built by build_model")
        if self.sha256 is not None:
            if kind not in FILE_KINDS:
                raise ValueError(
                    f"ModelSpec.sha256 checks a 'url:' or 'file:' weights file; weights are '{self.weights}'"
                )
            if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
                raise ValueError(f"ModelSpec.sha256 must be 64 lowercase hex digits, got {self.sha256!r}")

    def weight_source(self) -> tuple[str, str]:
        """``weights`` split into (kind, location): ('scratch', ''), ('timm', tag), ('url', url), ('file', path), ..."""
        kind, _, location = self.weights.partition(":")
        if kind not in WEIGHT_KINDS or (kind == "scratch") != (location == ""):
            raise ValueError(
                f"ModelSpec.weights must be 'scratch', 'timm:<tag>', 'url:<url>', 'file:<path>' or "
                f"'checkpoint:<path>', got '{self.weights}'"
            )
        return kind, location

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (checkpoint metadata, configs)."""
        d = asdict(self)
        d["mean"] = None if self.mean is None else list(self.mean)
        d["std"] = None if self.std is None else list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelSpec":
        unknown = set(d) - {"name", "overrides", "weights", "mean", "std", "sha256", "head_init", "register_tokens"}
        if unknown:
            raise ValueError(f"unknown ModelSpec fields {sorted(unknown)}")
        mean, std = d.get("mean"), d.get("std")
        return cls(
            name=d["name"],
            overrides=dict(d.get("overrides") or {}),
            weights=d.get("weights", "scratch"),
            mean=None if mean is None else tuple(float(m) for m in mean),
            std=None if std is None else tuple(float(s) for s in std),
            sha256=d.get("sha256"),
            head_init=d.get("head_init", "trunc_normal"),
            register_tokens=bool(d.get("register_tokens", True)),
        )


class PatchDecoder(nn.Module):
    """Reconstruction head (docs/method.md "Tasks"; Hugging Face ``ViTForMaskedImageModeling``).

    Patch tokens (B x N x D, N = grid_h * grid_w, row-major) -> B x D x grid_h x grid_w ->
    1x1 conv to patch^2 * channels -> PixelShuffle(patch) -> B x channels x H x W.
    """

    def __init__(self, embed_dim: int, patch_size: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(embed_dim, patch_size**2 * channels, kernel_size=1)
        self.shuffle = nn.PixelShuffle(patch_size)

    def forward(self, patch_tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, d = patch_tokens.shape
        if n != grid[0] * grid[1]:
            raise ValueError(f"{n} patch tokens do not fill a {grid[0]} x {grid[1]} grid")
        feature_map = patch_tokens.transpose(1, 2).reshape(b, d, *grid)
        return self.shuffle(self.conv(feature_map))


class ImageModel(nn.Module):
    """normalization -> timm ViT backbone (no classifier) -> task head.

    ``forward(images)`` takes a batch in [0, 1] at :attr:`image_size` and returns class
    logits (B x num_classes) or the reconstructed image (same shape as the input).
    """

    def __init__(
        self,
        normalization: InputNormalization,
        backbone: VisionTransformer,
        head: nn.Module,
        task: str,
        spec: ModelSpec,
        num_classes: int | None,
    ):
        super().__init__()
        self.normalization = normalization
        self.backbone = backbone
        self.head = head
        self.task = task
        self.spec = spec
        self.num_classes = num_classes

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the backbone expects."""
        return tuple(self.backbone.patch_embed.img_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalization(images)
        if self.task == "classification":
            return self.head(self.backbone(x))  # backbone(x): pooled, normalised representation
        tokens = self.backbone.forward_features(x)[:, self.backbone.num_prefix_tokens :]
        patch_h, patch_w = self.backbone.patch_embed.patch_size
        return self.head(tokens, (images.shape[-2] // patch_h, images.shape[-1] // patch_w))

    def layered(self) -> nn.Module:
        """The model's layers 0..depth (docs/method.md) as a ``layers.ViTLayers`` module."""
        from ..layers import ViTLayers  # lazy: the metrics side is optional for training

        return ViTLayers(self.backbone, self.normalization, register_tokens=self.spec.register_tokens)


def per_sample_loss(task: str, outputs: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The task's loss for each sample (shape B), computed in float32.

    Classification: cross-entropy of the logits (nats). Reconstruction: mean absolute
    error between the output and the input image over all its pixels and channels, in
    [0, 1] pixel units (docs/method.md "Tasks"). The batch mean is the training loss.
    """
    if task == "classification":
        return F.cross_entropy(outputs.float(), labels, reduction="none")
    if task == "reconstruction":
        return (outputs.float() - images.float()).abs().flatten(1).mean(dim=1)
    raise ValueError(f"task must be one of {TASKS}, got '{task}'")


# --- construction ---------------------------------------------------------------------


def _hub_backbone(spec: ModelSpec, tag: str) -> VisionTransformer:
    name, fix = f"{spec.name}.{tag}", "copy the weights file to this machine and use weights 'file:<path>'"
    if not set(POOLING_KEYS) & set(spec.overrides):
        return create_vit(name, spec.overrides, pretrained=True, offline_fix=fix)
    # timm loads hub weights strictly into the architecture asked for: another pooling (MAE's
    # average pooling with a fresh fc_norm) takes them from the hub's own architecture.
    own = {key: value for key, value in spec.overrides.items() if key not in POOLING_KEYS}
    hub = create_vit(name, own, pretrained=True, offline_fix=fix)
    backbone = create_vit(name, spec.overrides, pretrained=False)
    load_timm_state(backbone, hub.state_dict(), f"timm weights '{name}'")
    return backbone


def _downloaded(url: str) -> Path:
    """The file at ``url`` in torch's hub cache, downloaded if it is not there yet."""
    import urllib.parse

    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise ValueError(f"weights URL {url} does not end in a file name")
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, path)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except OSError as err:  # urllib's URLError / HTTPError, a full disk
        raise WeightsUnavailableError(
            f"could not download weights {url} ({type(err).__name__}: {err}). Without internet, download the file "
            "elsewhere, copy it to this machine and use weights 'file:<path>' (with the same sha256)."
        ) from err
    return path


def verified_weights_file(spec: ModelSpec) -> Path:
    """The local weights file of a 'url:' or 'file:' spec (downloaded if needed), its
    SHA-256 checked against ``spec.sha256`` when that is given."""
    kind, location = spec.weight_source()
    if kind not in FILE_KINDS:
        raise ValueError(f"weights '{spec.weights}' are not a weights file ('url:' or 'file:')")
    return _verified_weights_file(spec, kind, location)[0]


def _verified_weights_file(spec: ModelSpec, kind: str, location: str) -> tuple[Path, str]:
    """The local weights file of a 'url:' or 'file:' spec and its SHA-256, checked against
    ``spec.sha256`` when that is given."""
    path = _downloaded(location) if kind == "url" else Path(location)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    digest = sha256(path)
    if spec.sha256 is None:
        logger.info(
            "weights %s: SHA-256 %s (pin it in the config: the source's sha256: %s)", spec.weights, digest, digest
        )
    elif digest != spec.sha256:
        fix = f"delete {path} to download it again" if kind == "url" else "copy the file again"
        raise WeightsFileError(
            f"weights file {path} has SHA-256 {digest}, expected {spec.sha256}: it is damaged or another file; "
            f"{fix}, or correct the source's sha256 in the config if the expected value is wrong"
        )
    return path, digest


def _checkpoint_backbone(spec: ModelSpec, backbone: VisionTransformer, path: Path) -> ModelSpec:
    """Copy a saved checkpoint's backbone weights into ``backbone``; returns the checkpoint's spec."""
    header, tensors = read_checkpoint(path)
    saved = ModelSpec.from_dict(header["model"]["spec"])
    saved_backbone = {k[len(BACKBONE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(BACKBONE_PREFIX)}
    expected = backbone.state_dict()
    mismatched = sorted(
        set(expected) ^ set(saved_backbone)
        | {k for k in set(expected) & set(saved_backbone) if expected[k].shape != saved_backbone[k].shape}
    )
    if mismatched:
        raise ValueError(
            f"checkpoint {path} holds another architecture: it is '{saved.name}' with overrides "
            f"{saved.overrides}, the spec asks for '{spec.name}' with overrides {spec.overrides} "
            f"(first differing backbone key: '{mismatched[0]}')"
        )
    backbone.load_state_dict(saved_backbone)
    return saved


def _make_head(task: str, backbone: VisionTransformer, num_classes: int | None, init: str) -> nn.Module:
    if task == "classification":
        head = nn.Linear(backbone.num_features, num_classes)
        layer = head
    else:
        patch_h, patch_w = backbone.patch_embed.patch_size
        if patch_h != patch_w:
            raise ValueError(f"reconstruction needs square patches, got {patch_h} x {patch_w}")
        head = PatchDecoder(backbone.embed_dim, patch_h, backbone.patch_embed.proj.in_channels)
        layer = head.conv
    if init == "trunc_normal":  # 'pytorch': as constructed
        nn.init.trunc_normal_(layer.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(layer.bias)
    return head


def _check_task(task: str, num_classes: int | None) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got '{task}'")
    if task == "classification" and (not isinstance(num_classes, numbers.Integral) or num_classes < 1):
        raise ValueError(f"classification needs num_classes >= 1, got {num_classes!r}")


def build_model(spec: ModelSpec, task: str, num_classes: int | None = None, seed: int = 0) -> ImageModel:
    """Build the model ``spec`` describes with a fresh ``task`` head.

    Random initialisation (the scratch backbone and every head) draws from
    ``torch.manual_seed(seed)`` inside a forked RNG, so the same arguments give the same
    weights and the caller's RNG is untouched. ``num_classes`` is required for
    classification and ignored for reconstruction.
    """
    _check_task(task, num_classes)
    check_timm_name(spec.name)
    kind, location = spec.weight_source()
    mean, std, digest = spec.mean, spec.std, spec.sha256
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "timm":
            backbone = _hub_backbone(spec, location)
        else:
            backbone = create_vit(spec.name, spec.overrides, pretrained=False)
        if kind in FILE_KINDS:
            path, digest = _verified_weights_file(spec, kind, location)
            load_timm_weights(backbone, path, resample=True)  # a file at another input size: resampled on purpose
        elif kind == "checkpoint":
            saved = _checkpoint_backbone(spec, backbone, Path(location))
            mean, std = mean or saved.mean, std or saved.std  # keep the pretrained model's normalisation
        head = _make_head(task, backbone, num_classes, spec.head_init)
    mean = tuple(mean or backbone.pretrained_cfg["mean"])
    std = tuple(std or backbone.pretrained_cfg["std"])
    return ImageModel(
        InputNormalization(mean, std),
        backbone,
        head,
        task,
        replace(spec, mean=mean, std=std, sha256=digest),
        int(num_classes) if task == "classification" else None,
    )


def _check_state_fits(path: Path, model: ImageModel, tensors: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit its own model description: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    for key, value in expected.items():
        if value.shape != tensors[key].shape:
            raise CheckpointError(
                f"checkpoint {path}: tensor '{key}' has shape {tuple(tensors[key].shape)}, "
                f"the model expects {tuple(value.shape)}"
            )


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[ImageModel, dict[str, Any]]:
    """Rebuild the model saved at ``path`` (from its header alone) and return it with the
    caller's metadata. The architecture is built without fetching any pretrained weights;
    every tensor then comes from the file."""
    path = Path(path)
    header, tensors = read_checkpoint(path)
    saved = header["model"]
    spec = ModelSpec.from_dict(saved["spec"])
    # A random-weight shell of the same architecture and normalisation, filled from the file.
    model = build_model(replace(spec, weights="scratch", sha256=None), saved["task"], saved["num_classes"])
    _check_state_fits(path, model, tensors)
    model.load_state_dict(tensors)
    model.spec = spec  # keep the provenance of the starting weights
    return model.to(map_location), header["metadata"]
