"""Training-step throughput (images/s) and model FLOP utilisation of the study's trainer.

Times ``training.train_step`` (resize on the device, forward, loss, backward, gradient
clipping, SGD update) on random batches already on the device, so the input pipeline is
not measured. FLOPs per step are counted once with ``torch.utils.flop_counter``
(forward + backward matmuls, convolutions and attention); model FLOP utilisation (MFU)
= FLOPs per step x steps/s / peak FLOP/s of the device. Peak: on CPU a measured float32
matmul (so MFU is relative to what this machine's BLAS reaches with these threads); on
CUDA the datasheet dense peak of known cards in the run's precision when the card is
recognised, else a measured matmul.

Default: a tiny ViT (patch 8, width 64, depth 6) on 32 px images on one CPU thread, well
under a minute. Paper scale on a GPU (CIFAR images upsampled 32 -> 224 on the device):
    python benchmarks/train_throughput.py --model vit_base_patch32_224 --image-size 224 \\
        --native-size 32 --batch 256 --dtype bf16 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from devices import device_peak, synchronize

from finetune_invariance.study.models import ModelSpec, build_model
from finetune_invariance.study.training import TrainConfig, build_optimizer, train_step, training_environment

TINY = "tiny"

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=TINY, help=f"timm model name, or '{TINY}' (vit_tiny, patch 8, width 64, depth 6)"
    )
    parser.add_argument("--image-size", type=int, default=32, help="model input size")
    parser.add_argument(
        "--native-size", type=int, default=None, help="batch image size before resizing (default: image size)"
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, autotuning, compile)")
    parser.add_argument("--task", default="classification", choices=["classification", "reconstruction"])
    parser.add_argument(
        "--dtype", default=None, choices=["bf16", "tf32", "fp32"], help="the trainer's precision (default: bf16 on CUDA, fp32 on CPU)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    return parser.parse_args()


def model_spec(name: str, image_size: int) -> ModelSpec:
    if name == TINY:
        return ModelSpec(
            "vit_tiny_patch16_224", dict(img_size=image_size, patch_size=8, embed_dim=64, depth=6, num_heads=2)
        )
    return ModelSpec(name, dict(img_size=image_size))


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    precision = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    if precision != "fp32" and device.type != "cuda":
        raise SystemExit(f"--dtype {precision}: the trainer's {precision} is CUDA-only; use --dtype fp32 on CPU")
    native = args.native_size or args.image_size

    model = build_model(model_spec(args.model, args.image_size), args.task, num_classes=10).to(device).train()
    config = TrainConfig(batch_size=args.batch, precision=precision, compile=args.compile)
    optimizer = build_optimizer(model, config)
    forward = torch.compile(model) if args.compile else model
    images = torch.rand(args.batch, 3, native, native, device=device)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    size = (args.image_size, args.image_size)

    def step() -> torch.Tensor:
        return train_step(model, forward, optimizer, images, labels, config.lr, config, size)

    with training_environment(device, deterministic=False, precision=precision):
        for _ in range(args.warmup):
            step()
        with FlopCounterMode(display=False) as counter:
            step()
        flops_per_step = counter.get_total_flops()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        loss.item()  # waits for the device
        seconds = time.perf_counter() - start
        peak, peak_source = device_peak(device, precision)

    images_per_s = args.batch * args.steps / seconds
    achieved = flops_per_step * args.steps / seconds
    params = sum(p.numel() for p in model.parameters())
    print(
        f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else f'cpu, {args.threads} thread(s)'}"
    )
    print(f"model: {model.spec.name} {model.spec.overrides}, {params / 1e6:.2f} M parameters, task {args.task}")
    print(
        f"batch {args.batch} at {native} px -> {args.image_size} px, {precision}"
        f"{', compiled' if args.compile else ''}, {args.steps} timed steps"
    )
    print(f"FLOPs per image (forward + backward): {flops_per_step / args.batch / 1e9:.3f} GFLOP")
    print(f"throughput: {images_per_s:.1f} images/s ({seconds / args.steps * 1e3:.1f} ms/step)")
    print(f"achieved: {achieved / 1e12:.4f} TFLOP/s; peak: {peak / 1e12:.4f} TFLOP/s ({peak_source})")
    print(f"MFU: {achieved / peak:.3f}")


if __name__ == "__main__":
    main()
