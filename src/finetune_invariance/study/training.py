"""The training loop: finetuning and pretraining runs with an exact resume.

docs/method.md "Training": SGD, cosine learning-rate schedule with linear warm-up (per
optimizer step), gradient clipping, 100 epochs; the authors' scripts use batch 256,
lr 1e-3, 100 warm-up steps, clipping at 1.0 and fp32 — the :class:`TrainConfig`
defaults, which are the config schema's (``workflow/schemas/config.schema.yaml``; a test
keeps them equal). Their weight decay depends on the source (1e-4 ImageNet, 5e-4 CIFAR and
scratch): the workflow sets it per source (config ``sources.<name>.finetune``).

The run's files (history, checkpoints, resume state, checksums) are kept by
:mod:`.run_folder`; the per-epoch test metrics come from :mod:`.evaluation`. Randomness
(shuffling, augmentation, dropout) is re-seeded at the start of every epoch from
(``seed``, epoch), and the learning rate is a pure function of the step, so no RNG or
scheduler state needs saving and a resumed run ends with the same weights, history and
files as an uninterrupted one on the same hardware. Wall times go to the log, not to the
files, so the same inputs give the same bytes.
"""

from __future__ import annotations

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

from ..inversion_settings import check_precision
from .data import AUGMENTATIONS, resize_to_model
from .evaluation import data_loader, evaluate, forward_precision, precision_flags
from .models import ImageModel, per_sample_loss
from .run_folder import RunFolder, resume_identity

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters; defaults are the authors' (docs/method.md "Training").

    ``epochs``: epochs trained. ``schedule_epochs``: the length of the cosine schedule in
    epochs (None: ``epochs``); a run with ``epochs`` < ``schedule_epochs`` is the first
    ``epochs`` epochs of a longer run (the paper's variants, Fig. 6). ``optimizer``: 'sgd'
    (momentum 0.9) or 'adam'. ``weight_decay``: on every parameter, as the authors' optimizer
    (torch's ``weight_decay`` over ``model.parameters()``). ``warmup_steps``: linear warm-up
    length in optimizer steps. ``grad_clip``: max global gradient norm, None for no
    clipping. ``augment``: the training set's augmentation, one of
    :data:`~.data.AUGMENTATIONS` (the caller builds the dataset with it:
    :func:`~.data.get_dataset`). ``image_size``: model input size (None: the model's);
    images are resized to it on the device. ``precision``: 'fp32', 'tf32' or 'bf16'
    (:mod:`.evaluation`); the last two only on CUDA (:func:`train` refuses them elsewhere). ``compile``: wrap the
    model in ``torch.compile``. ``deterministic``: enable
    ``torch.use_deterministic_algorithms`` for the run (on CUDA also set
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8``).
    """

    epochs: int = 100
    schedule_epochs: int | None = None
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float | None = 1.0
    augment: str = "authors"
    image_size: int | None = None
    num_workers: int = 0
    precision: str = "fp32"
    compile: bool = False
    deterministic: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"TrainConfig.optimizer must be 'sgd' or 'adam', got '{self.optimizer}'")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"TrainConfig.augment must be one of {list(AUGMENTATIONS)}, got {self.augment!r}")
        check_precision(self.precision)
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


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or Adam over the trainable parameters, ``config.weight_decay`` on
    all of them (the authors' optimizer: one group, biases and norms included)."""
    parameters = [param for param in model.parameters() if param.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)


# --- training -------------------------------------------------------------------------


@contextmanager
def training_environment(device: torch.device, deterministic: bool, precision: str = "fp32") -> Iterator[None]:
    """Fork the RNGs (the run re-seeds them; the caller's stay untouched), set the TF32 flags
    of ``precision`` (:func:`.evaluation.precision_flags`) and, if asked, deterministic
    algorithms; restore the caller's settings after."""
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices), precision_flags(device, precision):
        try:
            torch.use_deterministic_algorithms(deterministic or previous_deterministic)
            yield
        finally:
            torch.use_deterministic_algorithms(previous_deterministic)


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
    with forward_precision(images.device, config.precision):
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


def _check_precision_on(device: torch.device, precision: str) -> None:
    """Refuse a reduced precision where it would not apply: 'tf32' and 'bf16' change the
    arithmetic on CUDA only, so elsewhere the run would compute in fp32 while its identity,
    its checkpoints' headers and the results folder's stamp record the configured precision
    (a run resumed on a GPU would then mix the two)."""
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(
            f"training precision '{precision}' (config finetune.precision, or a variant's or source's precision) "
            f"computes in reduced precision on CUDA only; this run's device is {device.type}, where it would compute "
            "in fp32 and record the other: set precision: fp32 for a run off the GPU, or run it on a GPU (config device)"
        )


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

    Resumes from the run folder's resume state when there is one (same run name and
    config required; :class:`.run_folder.RunFolder`). After each epoch: the test metrics,
    the history, the checkpoints of ``checkpoint_epochs`` (epoch 0 = the starting weights,
    saved before training) and, with ``keep_best``, ``best.safetensors`` when the epoch is
    the best so far (:func:`.history.best_epoch`), then the resume state;
    ``on_epoch_end(epoch)`` is called after all of these are on disk. ``train_set``
    supplies augmentation itself (``data.get_dataset(..., augment=config.augment)``).
    Returns a DataFrame with the :data:`~finetune_invariance.study.tables.TRAINING_HISTORY` schema.

    ``monitor`` (a :class:`finetune_invariance.monitor.ForgettingMonitor` of the source's
    inversions) measures the model's forgetting on ``monitor_schedule``, into
    ``forgetting_monitor.parquet`` (:data:`~finetune_invariance.study.tables.FORGETTING_MONITOR`).
    It only reads the model: the run trains exactly as it would without it.
    """
    device = torch.device(device)
    _check_precision_on(device, config.precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    schedule = asdict(monitor_schedule) if monitor is not None else None
    run = RunFolder(out_dir, resume_identity(asdict(config), run_name, checkpoint_epochs, keep_best, schedule))
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)

    def measure(steps_done: int) -> None:
        if monitor is not None:
            start = time.perf_counter()
            run.record_forgetting(monitor.measure(model), steps_done, steps_per_epoch)
            logger.info(
                "%s: forgetting measured after %d steps in %.2f s", run_name, steps_done, time.perf_counter() - start
            )

    if run.resume(model, optimizer):
        logger.info("%s: resuming after epoch %d", run_name, run.last_epoch)
    else:
        if 0 in checkpoint_epochs:
            run.save_checkpoint(model, 0, {"epoch": 0, "run": run_name, "train_config": run.identity["config"]})
        measure(0)

    total_steps = config.schedule_length * steps_per_epoch
    forward = torch.compile(model) if config.compile else model

    def after_step(steps_done: int) -> None:
        epoch = math.ceil(steps_done / steps_per_epoch)
        if steps_done % steps_per_epoch and monitor_schedule.within_epoch(steps_done, epoch):
            measure(steps_done)

    with training_environment(device, config.deterministic, config.precision):
        for epoch in range(run.last_epoch + 1, config.epochs + 1):
            start = time.perf_counter()
            # Augmentation in the main process and dropout draw from the global RNG; a fresh
            # loader per epoch draws the order and its workers' seeds from its own generator.
            torch.manual_seed(_epoch_seed(config.seed, epoch, TORCH_GLOBAL_STREAM))
            shuffle = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch, SHUFFLE_STREAM))
            loader = data_loader(
                train_set, config.batch_size, device, config.num_workers, shuffle=True, generator=shuffle
            )
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
                forward,
                test_set,
                model.task,
                image_size,
                device,
                config.batch_size,
                config.num_workers,
                config.precision,
            )
            measure(epoch * steps_per_epoch)
            row = {
                "run": run_name,
                "epoch": epoch,
                "train_loss": train_loss,
                "test_loss": test["loss"],
                "test_accuracy": test["accuracy"],
                "test_l1": test["l1"],
                "learning_rate": lr,
            }
            run.finish_epoch(model, optimizer, row, keep=epoch in checkpoint_epochs, keep_best=keep_best)
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
    return run.history_table()
