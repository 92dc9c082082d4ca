"""What the benchmarks need to know about the device: its peak FLOP rate per precision
(datasheet dense peaks of known GPUs, otherwise a measured matmul) and synchronisation.
Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on
the path)."""

from __future__ import annotations

import time

import torch

# Dense (no sparsity) datasheet peaks in TFLOP/s; fp32 without tensor cores. Checked in
# order, most specific name first.
CUDA_PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0}),
    ("H100", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("H200", {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4}),
    ("A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
)
MATMUL_DTYPE = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_call(function, device: torch.device) -> tuple[object, float]:
    """``function()``'s result and its wall seconds, the device's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def timed(function, device: torch.device) -> float:
    """Wall seconds of ``function()``, the device's queued work included."""
    return timed_call(function, device)[1]


def best_time(function, device: torch.device, repeats: int = 3) -> float:
    """The best of ``repeats`` :func:`timed` runs, after one untimed warm-up run."""
    function()
    return min(timed(function, device) for _ in range(repeats))


def measured_matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matmul in ``dtype`` (best of 5).

    Taken through ``linear`` (a @ b.T), the path the models' layers take: on CPUs without
    native bfloat16, ``a @ b`` in bfloat16 falls back to a far slower kernel.
    """
    size = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    return 2 * size**3 / best_time(lambda: torch.nn.functional.linear(a, b), device, repeats=5)


def device_peak(device: torch.device, precision: str, given: dict[str, float] | None = None) -> tuple[float, str]:
    """(peak FLOP/s of ``device`` in ``precision`` ('fp32', 'tf32' or 'bf16'), where the number comes from)."""
    if given and precision in given:
        return given[precision] * 1e12, "given"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in CUDA_PEAK_TFLOPS:
            if key in name:
                return peaks[precision] * 1e12, f"datasheet dense {precision}, {name}"
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        return measured_matmul_peak(device, MATMUL_DTYPE[precision]), f"measured {precision} matmul"
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
