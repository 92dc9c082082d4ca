"""A model's test metrics (loss, accuracy, L1) over a dataset, in a chosen compute precision.

Used by the trainer after every epoch (which picks the best checkpoint from these numbers)
and by the jobs that evaluate saved checkpoints (robust accuracy), which therefore do not
import the trainer.

Precision (config ``finetune.precision``): 'fp32' (the authors' trainer: PyTorch
Lightning's default 32-bit precision), 'tf32' (float32 storage, TF32 CUDA matmuls and
convolutions) or 'bf16' (bfloat16 autocast of the forward on CUDA). 'tf32' and 'bf16'
change the arithmetic on CUDA only, so training refuses them on any other device, where
the run would compute in fp32 and record the other (:func:`.training.train`). The losses
and metrics are always accumulated in float32 / float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..inversion_settings import check_precision
from .data import resize_to_model
from .models import per_sample_loss


@contextmanager
def precision_flags(device: torch.device, precision: str) -> Iterator[None]:
    """For the whole block (forward and backward passes): on CUDA, TF32 matmuls and cuDNN
    convolutions exactly when ``precision`` is 'tf32' (so 'fp32' is full float32, cuDNN's
    TF32 default included); the caller's flags are restored after."""
    check_precision(precision)
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def forward_precision(device: torch.device, precision: str) -> torch.autocast:
    """The context of a forward pass (and its loss): bfloat16 autocast for 'bf16' on CUDA.
    Backward passes run outside it, in the types autocast chose (PyTorch's recipe)."""
    return torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and precision == "bf16"
    )


def data_loader(dataset: Dataset, batch_size: int, device: torch.device, num_workers: int, **kwargs: Any) -> DataLoader:
    """A loader that pins host memory when the batches go to CUDA."""
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
    precision: str = "fp32",
) -> dict[str, float]:
    """Mean loss, top-1 accuracy and mean L1 of ``model`` over ``data`` (a dataset or a loader).

    Returns ``{"loss", "accuracy", "l1", "n"}``: ``loss`` as in
    :func:`~finetune_invariance.study.models.per_sample_loss`; ``accuracy`` NaN for
    reconstruction and ``l1`` (= loss) NaN for classification. Images are resized to
    ``image_size`` on the device. The model is evaluated in eval mode and left in the
    mode it was in.
    """
    device = torch.device(device)
    loader = data if isinstance(data, DataLoader) else data_loader(data, batch_size, device, num_workers)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = 0
    try:
        with precision_flags(device, precision):
            for images, labels in loader:
                images = resize_to_model(images.to(device, non_blocking=True), image_size)
                labels = labels.to(device, non_blocking=True)
                with forward_precision(device, precision):
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


def image_accuracy(
    model: nn.Module, task: str, image_size: int | tuple[int, int], device: str | torch.device
) -> Callable[[Any, Any], float]:
    """``model``'s top-1 accuracy on images as :func:`.robust_accuracy.robust_accuracy` asks
    for them: ``accuracy(images uint8 (N, H, W, 3), labels int (N,))``, each batch scaled to
    [0, 1] and :func:`evaluate`d."""

    def accuracy(images, labels) -> float:
        batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        return evaluate(model, TensorDataset(batch, torch.from_numpy(labels)), task, image_size, device)["accuracy"]

    return accuracy
