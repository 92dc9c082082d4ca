"""Finetuning / pretraining loop with checkpoints and exact resume.

docs/method.md "Training": SGD, cosine learning-rate schedule with linear warm-up (per
optimizer step), gradient clipping, 100 epochs; the authors' scripts use batch 256,
lr 1e-3, 100 warm-up steps and clipping at 1.0 — the :class:`TrainConfig` defaults, which
are the config schema's (``workflow/schemas/config.schema.yaml``; a test keeps them equal).

Files in ``out_dir`` (the run's private work folder):

- ``history.parquet``: :data:`~finetune_invariance.study.tables.TRAINING_HISTORY`, one row
  per finished epoch, rewritten after every epoch;
- ``epoch_{e:03d}.safetensors``: checkpoints at the requested epochs (0 = starting weights);
- ``best.safetensors`` (``keep_best``): the epoch with the best test metric so far
  (:func:`best_epoch`);
- ``resume.pt``: model + optimizer state + history after the last finished epoch, and the
  SHA-256 of every checkpoint written, which :func:`verified_checkpoint` checks before a
  checkpoint leaves the work folder.

Every file is written atomically (temporary file, then ``os.replace``), and ``resume.pt``
last, so it is the commit point of an epoch: a run killed at any moment restarts from its
last finished epoch. Randomness (shuffling, augmentation, dropout) is re-seeded at the
start of every epoch from (``seed``, epoch), and the learning rate is a pure function of
the step, so no RNG or scheduler state needs saving and a resumed run ends with the same
weights and history as an uninterrupted one on the same hardware. Wall times go to the
log, not to the files, so the same inputs give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..atomic import atomic_path
from .checkpoints import save_checkpoint
from .data import resize_to_model
from .layout import BEST_LABEL, checkpoint_label, checkpoint_path
from .models import ImageModel, per_sample_loss
from .tables import FORGETTING_MONITOR, TRAINING_HISTORY, conform, read_table, write_table
from .vocabulary import Run

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.parquet"
MONITOR_FILE = "forgetting_monitor.parquet"
RESUME_FILE = "resume.pt"
RESUME_FORMAT_VERSION = 2


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters; defaults are the authors' (docs/method.md "Training").

    ``epochs``: epochs trained. ``schedule_epochs``: the length of the cosine schedule in
    epochs (None: ``epochs``); a run with ``epochs`` < ``schedule_epochs`` is the first
    ``epochs`` epochs of a longer run (the paper's variants, Fig. 6). ``optimizer``: 'sgd'
    (momentum 0.9) or 'adam'. ``weight_decay`` applies to weight matrices only (not to
    biases, norms, position embedding or class token). ``warmup_steps``: linear warm-up
    length in optimizer steps. ``grad_clip``: max global gradient norm, None for no
    clipping. ``augment``: random crop and flip (:func:`~.data.augmentation`).
    ``image_size``: model input size (None: the model's); images are resized to it on the
    device. ``bf16``: bfloat16 autocast, CUDA only. ``compile``: wrap the model in
    ``torch.compile``. ``deterministic``: enable ``torch.use_deterministic_algorithms`` for
    the run (on CUDA also set ``CUBLAS_WORKSPACE_CONFIG=:4096:8``).
    """

    epochs: int = 100
    schedule_epochs: int | None = None
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float | None = 1.0
    augment: bool = True
    image_size: int | None = None
    num_workers: int = 0
    bf16: bool = True
    compile: bool = False
    deterministic: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"TrainConfig.optimizer must be 'sgd' or 'adam', got '{self.optimizer}'")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError(
                f"TrainConfig.schedule_epochs ({self.schedule_epochs}) must be at least epochs ({self.epochs}): "
                "a run stops early within its schedule, never beyond it"
            )
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"TrainConfig.grad_clip must be > 0, or None for no clipping, got {self.grad_clip}")
        if self.lr <= 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError(f"TrainConfig: lr must be > 0 and warmup_steps, weight_decay >= 0: {self}")

    @property
    def schedule_length(self) -> int:
        """The cosine schedule's length in epochs."""
        return self.epochs if self.schedule_epochs is None else self.schedule_epochs


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Learning rate of optimizer update ``step`` (0-based) of ``total_steps``.

    Linear warm-up then half-cosine decay to 0, exactly Hugging Face's
    ``get_cosine_schedule_with_warmup`` as stepped by its Trainer (update s uses the
    factor at s, so the very first update has lr 0 when there is warm-up):
    lr * s / W for s < W, else lr * 0.5 * (1 + cos(pi * (s - W) / max(1, S - W))).
    """
    warmup = config.warmup_steps
    if step < warmup:
        return config.lr * step / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


SHUFFLE_STREAM, TORCH_GLOBAL_STREAM = 0, 1


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A well-mixed 32-bit seed for one random stream of one epoch, from (seed, epoch, stream)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: not on biases, norm scales, tokens or position embeddings."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 and not name.endswith(("pos_embed", "cls_token", "reg_token")) else no_decay).append(
            param
        )
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    groups = _parameter_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9)
    return torch.optim.Adam(groups, lr=config.lr)


# --- evaluation -----------------------------------------------------------------------


def _autocast(device: torch.device, bf16: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


def _loader(dataset: Dataset, batch_size: int, device: torch.device, num_workers: int, **kwargs: Any) -> DataLoader:
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda", **kwargs
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader,
    task: str,
    image_size: int | tuple[int, int],
    device: str | torch.device,
    batch_size: int = 256,
    num_workers: int = 0,
    bf16: bool = False,
) -> dict[str, float]:
    """Mean loss, top-1 accuracy and mean L1 of ``model`` over ``data`` (a dataset or a loader).

    Returns ``{"loss", "accuracy", "l1", "n"}``: ``loss`` as in
    :func:`~finetune_invariance.models.per_sample_loss`; ``accuracy`` NaN for
    reconstruction and ``l1`` (= loss) NaN for classification. Images are resized to
    ``image_size`` on the device. The model is evaluated in eval mode and left in the
    mode it was in.
    """
    device = torch.device(device)
    loader = data if isinstance(data, DataLoader) else _loader(data, batch_size, device, num_workers)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    try:
        for images, labels in loader:
            images = resize_to_model(images.to(device, non_blocking=True), image_size)
            labels = labels.to(device, non_blocking=True)
            with _autocast(device, bf16):
                outputs = model(images)
            loss_sum += per_sample_loss(task, outputs, images, labels).sum()
            if task == "classification":
                correct += (outputs.argmax(dim=1) == labels).sum()
            n += len(labels)
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate got an empty dataset")
    loss = loss_sum.item() / n
    return {
        "loss": loss,
        "accuracy": correct.item() / n if task == "classification" else math.nan,
        "l1": loss if task == "reconstruction" else math.nan,
        "n": n,
    }


# --- resume state ---------------------------------------------------------------------


def _resume_identity(
    config: TrainConfig,
    run_name: str,
    checkpoint_epochs: set[int] | frozenset[int],
    keep_best: bool,
    monitor_schedule: MonitorSchedule | None,
) -> dict[str, Any]:
    """What a resume state must match: the run, its whole config, the checkpoints it keeps
    and when it measures forgetting (None: no monitor)."""
    return {
        "run": run_name,
        "config": asdict(config),
        "checkpoint_epochs": sorted(checkpoint_epochs),
        "keep_best": keep_best,
        "monitor": None if monitor_schedule is None else asdict(monitor_schedule),
    }


def _read_resume_file(path: Path) -> dict[str, Any]:
    """A resume state, loaded with ``weights_only=True`` (tensors and plain containers only;
    no code runs); RuntimeError saying what to delete when it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unpickling failure means the file cannot be trusted
        raise RuntimeError(
            f"resume state {path} cannot be read ({err}); delete {path.parent} to train the run again"
        ) from err


def _load_resume_state(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of the last finished epoch, or None when there is none."""
    if not path.exists():
        return None
    state = _read_resume_file(path)
    if state.get("format_version") != RESUME_FORMAT_VERSION or state.get("identity") != identity:
        raise ValueError(
            f"resume state {path} belongs to another run or config: saved {state.get('identity')}, "
            f"now {identity}; delete {path.parent} to train the run again with the new settings"
        )
    return state


# --- training -------------------------------------------------------------------------


@contextmanager
def training_environment(device: torch.device, deterministic: bool) -> Iterator[None]:
    """Fork the RNGs (the run re-seeds them; the caller's stay untouched), switch on TF32
    on CUDA and, if asked, deterministic algorithms; restore the caller's settings after."""
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        try:
            if device.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
            torch.use_deterministic_algorithms(deterministic or previous_deterministic)
            yield
        finally:
            torch.use_deterministic_algorithms(previous_deterministic)
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous_tf32


def train_step(
    model: ImageModel,
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    lr: float,
    config: TrainConfig,
    image_size: tuple[int, int],
) -> torch.Tensor:
    """One optimizer update on a batch already on the device; returns the detached batch-mean loss.

    ``forward`` is the model or its ``torch.compile`` wrapper; the loss is the task's
    (:func:`~finetune_invariance.models.per_sample_loss`) averaged over the batch.
    """
    images = resize_to_model(images, image_size)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with _autocast(images.device, config.bf16):
        outputs = forward(images)
    loss = per_sample_loss(model.task, outputs, images, labels).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach()


def _train_one_epoch(
    model: ImageModel,
    forward: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    first_step: int,
    total_steps: int,
    config: TrainConfig,
    image_size: tuple[int, int],
    device: torch.device,
    progress: tqdm,
    after_step: Callable[[int], None],
) -> tuple[float, float]:
    """One pass over ``loader``; returns (mean training loss, learning rate of the last update).

    ``after_step(steps_done)`` is called after every optimizer update. The loss is summed
    on the device and read once at the end, so the host never waits for the device
    inside the loop.
    """
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    lr = math.nan
    for i, (images, labels) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        lr = learning_rate(first_step + i, total_steps, config)
        loss = train_step(model, forward, optimizer, images, labels, lr, config, image_size)
        loss_sum += loss * len(labels)
        n += len(labels)
        progress.update(len(labels))
        after_step(first_step + i + 1)
    return loss_sum.item() / n, lr


@dataclass(frozen=True)
class MonitorSchedule:
    """When a run measures its forgetting (:class:`finetune_invariance.monitor.ForgettingMonitor`):
    always before the first step and at every epoch's end, and also every ``every_steps``
    optimizer steps during the first ``until_epoch`` epochs (all epochs if None)."""

    every_steps: int | None = None
    until_epoch: int | None = None

    def __post_init__(self) -> None:
        for name in ("every_steps", "until_epoch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"MonitorSchedule.{name} must be >= 1 or None, got {value}")

    def within_epoch(self, steps_done: int, epoch: int) -> bool:
        """Whether to measure after ``steps_done`` updates, inside ``epoch``."""
        early = self.until_epoch is None or epoch <= self.until_epoch
        return self.every_steps is not None and early and steps_done % self.every_steps == 0


def best_epoch(history: pd.DataFrame | list[dict[str, Any]]) -> int:
    """The epoch with the best test metric: highest test accuracy for classification, lowest
    test L1 for reconstruction (the authors' ``topk=1`` checkpoint); the earliest on ties.

    ``history`` is a :data:`~finetune_invariance.study.tables.TRAINING_HISTORY` table or its rows.
    """
    table = pd.DataFrame(history)
    if table.empty:
        raise ValueError("best_epoch: the training history has no epochs")
    classification = table["test_accuracy"].notna().all()
    score = table["test_accuracy"] if classification else -table["test_l1"]
    return int(table.loc[score.idxmax(), "epoch"])


def train(
    model: ImageModel,
    config: TrainConfig,
    train_set: Dataset,
    test_set: Dataset,
    out_dir: str | os.PathLike,
    checkpoint_epochs: set[int] | frozenset[int] = frozenset(),
    run_name: str = "run",
    device: str | torch.device = "cpu",
    on_epoch_end: Callable[[int], None] | None = None,
    keep_best: bool = False,
    monitor: Any | None = None,
    monitor_schedule: MonitorSchedule = MonitorSchedule(),
) -> pd.DataFrame:
    """Train ``model`` in place for ``config.epochs`` epochs and return the history table.

    Resumes from ``<out_dir>/resume.pt`` when present (same run name and config
    required). After each epoch: the test metrics, ``history.parquet``, the checkpoints
    of ``checkpoint_epochs`` (epoch 0 = the starting weights, saved before training) and,
    with ``keep_best``, ``best.safetensors`` when the epoch is the best so far
    (:func:`best_epoch`), then the resume state; ``on_epoch_end(epoch)`` is called after
    all of these are on disk. ``train_set`` supplies augmentation itself
    (``data.get_dataset(..., augment=True)``). Returns a DataFrame with the
    :data:`~finetune_invariance.study.tables.TRAINING_HISTORY` schema.

    ``monitor`` (a :class:`finetune_invariance.monitor.ForgettingMonitor` of the source's
    inversions) measures the model's forgetting on ``monitor_schedule``, into
    ``forgetting_monitor.parquet`` (:data:`~finetune_invariance.study.tables.FORGETTING_MONITOR`).
    It only reads the model: the run trains exactly as it would without it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    bad_epochs = sorted(e for e in checkpoint_epochs if not 0 <= e <= config.epochs)
    if bad_epochs:
        raise ValueError(f"checkpoint_epochs {bad_epochs} are outside 0..{config.epochs}")
    image_size = model.image_size if config.image_size is None else (config.image_size, config.image_size)
    if tuple(image_size) != model.image_size:
        raise ValueError(
            f"TrainConfig.image_size {config.image_size} differs from the model's input size {model.image_size}"
        )

    model.to(device)
    optimizer = build_optimizer(model, config)
    identity = _resume_identity(config, run_name, checkpoint_epochs, keep_best, monitor_schedule if monitor else None)
    state = _load_resume_state(out_dir / RESUME_FILE, identity)
    run = _RunState(out_dir, identity, checkpoint_epochs, keep_best)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)

    def measure(steps_done: int) -> None:
        if monitor is not None:
            start = time.perf_counter()
            run.record_forgetting(monitor.measure(model), run_name, steps_done, steps_per_epoch)
            logger.info("%s: forgetting measured after %d steps in %.2f s", run_name, steps_done, time.perf_counter() - start)

    if state is not None:
        run.restore(state, model, optimizer)
        logger.info("%s: resuming after epoch %d", run_name, run.last_epoch)
    else:
        if 0 in checkpoint_epochs:
            run.save_checkpoint(model, 0, {"epoch": 0, "run": run_name, "train_config": identity["config"]})
        measure(0)

    total_steps = config.schedule_length * steps_per_epoch
    forward = torch.compile(model) if config.compile else model

    def after_step(steps_done: int) -> None:
        epoch = math.ceil(steps_done / steps_per_epoch)
        if steps_done % steps_per_epoch and monitor_schedule.within_epoch(steps_done, epoch):
            measure(steps_done)

    with training_environment(device, config.deterministic):
        for epoch in range(run.last_epoch + 1, config.epochs + 1):
            start = time.perf_counter()
            # Augmentation in the main process and dropout draw from the global RNG; a fresh
            # loader per epoch draws the order and its workers' seeds from its own generator.
            torch.manual_seed(_epoch_seed(config.seed, epoch, TORCH_GLOBAL_STREAM))
            shuffle = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch, SHUFFLE_STREAM))
            loader = _loader(train_set, config.batch_size, device, config.num_workers, shuffle=True, generator=shuffle)
            with tqdm(total=len(train_set), unit="img", desc=f"{run_name} epoch {epoch}", disable=None) as progress:
                train_loss, lr = _train_one_epoch(
                    model,
                    forward,
                    optimizer,
                    loader,
                    (epoch - 1) * steps_per_epoch,
                    total_steps,
                    config,
                    image_size,
                    device,
                    progress,
                    after_step,
                )
            train_seconds = time.perf_counter() - start
            test = evaluate(
                forward, test_set, model.task, image_size, device, config.batch_size, config.num_workers, config.bf16
            )
            measure(epoch * steps_per_epoch)
            run.finish_epoch(
                model,
                optimizer,
                {
                    "run": run_name,
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "test_loss": test["loss"],
                    "test_accuracy": test["accuracy"],
                    "test_l1": test["l1"],
                    "learning_rate": lr,
                },
            )
            logger.info(
                "%s epoch %d/%d: train loss %.4f, test loss %.4f, test accuracy %.4f; %.1f s (%.0f training img/s)",
                run_name,
                epoch,
                config.epochs,
                train_loss,
                test["loss"],
                test["accuracy"],
                time.perf_counter() - start,
                len(train_set) / train_seconds,
            )
            if on_epoch_end is not None:
                on_epoch_end(epoch)
    return conform(pd.DataFrame(run.history, columns=list(TRAINING_HISTORY.columns)), TRAINING_HISTORY)


class _RunState:
    """What a run has written so far: its history and the checksums of its checkpoints."""

    def __init__(
        self, out_dir: Path, identity: dict[str, Any], checkpoint_epochs: set[int] | frozenset[int], keep_best: bool
    ):
        self.out_dir = out_dir
        self.identity = identity
        self.checkpoint_epochs = checkpoint_epochs
        self.keep_best = keep_best
        self.history: list[dict[str, Any]] = []
        self.forgetting: list[dict[str, Any]] = []
        self.checksums: dict[str, str] = {}

    @property
    def last_epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def restore(self, state: dict[str, Any], model: ImageModel, optimizer: torch.optim.Optimizer) -> None:
        path = self.out_dir / RESUME_FILE
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise RuntimeError(
                f"resume state {path} does not fit this model ({err}); delete {self.out_dir} to restart the run"
            ) from err
        self.history, self.checksums, self.forgetting = state["history"], state["checksums"], state["forgetting"]
        for label, recorded in self.checksums.items():
            _check_checksum(checkpoint_path(self.out_dir, label), recorded)

    def save_checkpoint(self, model: ImageModel, label: int | str, metadata: dict[str, Any]) -> None:
        path = save_checkpoint(checkpoint_path(self.out_dir, label), model, metadata)
        self.checksums[checkpoint_label(label)] = sha256(path)

    def record_forgetting(self, measured: pd.DataFrame, run_name: str, steps_done: int, steps_per_epoch: int) -> None:
        """Keep a monitor measurement (LAYER_METRICS rows of metric 'forgetting')."""
        context = {"run": run_name, "step": steps_done, "training_epochs": steps_done / steps_per_epoch}
        self.forgetting += [
            {**context, "seed": int(row.seed), "layer": int(row.layer), "forgetting": float(row.value)}
            for row in measured.itertuples(index=False)
        ]

    def finish_epoch(self, model: ImageModel, optimizer: torch.optim.Optimizer, row: dict[str, Any]) -> None:
        """Record the epoch and write its files; the resume state last, as the epoch's commit point."""
        self.history.append(row)
        epoch = row["epoch"]
        write_table(pd.DataFrame(self.history), self.out_dir / HISTORY_FILE, TRAINING_HISTORY)
        if self.forgetting:
            write_table(_monitor_table(self.forgetting), self.out_dir / MONITOR_FILE, FORGETTING_MONITOR)
        metadata = {"epoch": epoch, "run": self.identity["run"], "metrics": row, "train_config": self.identity["config"]}
        if epoch in self.checkpoint_epochs:
            self.save_checkpoint(model, epoch, metadata)
        if self.keep_best and best_epoch(self.history) == epoch:
            self.save_checkpoint(model, BEST_LABEL, metadata)
        state = {
            "format_version": RESUME_FORMAT_VERSION,
            "identity": self.identity,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": self.history,
            "forgetting": self.forgetting,
            "checksums": self.checksums,
        }
        # Serialised in memory: torch.save names the archive after the file, and the
        # temporary file's name is random, so the same state would give other bytes.
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with atomic_path(self.out_dir / RESUME_FILE) as tmp:
            tmp.write_bytes(buffer.getvalue())


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_checkpoint(out_dir: str | os.PathLike, epoch: int | str) -> Path:
    """The path of a checkpoint in a run's work folder, after checking that its bytes are
    those the run wrote (the SHA-256 its resume state recorded).

    Raises ``FileNotFoundError`` or ``RuntimeError`` naming the file and saying what to
    delete: a damaged or missing work file can only be made again by training again.
    """
    out_dir = Path(out_dir)
    resume = out_dir / RESUME_FILE
    label = checkpoint_label(epoch)
    recorded = _read_resume_file(resume).get("checksums", {}).get(label) if resume.exists() else None
    if recorded is None:
        raise FileNotFoundError(
            f"the run in {out_dir} has not recorded a checkpoint '{label}' (no finished epoch wrote it); "
            f"delete {out_dir} to train the run again"
        )
    path = checkpoint_path(out_dir, label)
    _check_checksum(path, recorded)
    return path


def _check_checksum(path: Path, recorded: str) -> None:
    if not path.is_file() or sha256(path) != recorded:
        problem = "is missing" if not path.is_file() else "differs from the bytes the run wrote (damaged on disk)"
        raise RuntimeError(f"checkpoint {path} {problem}; delete {path.parent} to train the run again")


def _monitor_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The monitor's rows as FORGETTING_MONITOR, the run's keys from its name."""
    table = pd.DataFrame(rows)
    context = Run.parse(table["run"].iloc[0]).context
    return table.drop(columns="run").assign(**context)


def monitor_table(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The forgetting a run measured while training (empty when it had no monitor)."""
    path = Path(out_dir) / MONITOR_FILE
    if not path.exists():
        return conform(pd.DataFrame({c: [] for c in FORGETTING_MONITOR.columns}), FORGETTING_MONITOR)
    return read_table(path, FORGETTING_MONITOR)
